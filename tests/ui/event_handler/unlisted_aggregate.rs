// #[handle(E)] for an event of an aggregate the handler is not part of.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: f64,
}

#[event(part_of = Account)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: f64,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}
#[aggregate(event_sourced)]
pub struct Loan {
    pub amount: f64,
}

#[event(part_of = Loan)]
pub struct LoanGranted {
    pub loan_id: Identifier,
    pub amount: f64,
}

#[command(part_of = Loan)]
pub struct GrantLoan {
    pub amount: f64,
}

#[aggregate]
impl Loan {
    #[apply]
    fn on_granted(&mut self, event: &LoanGranted) {
        self.amount = event.amount;
    }
}

#[derive(Default)]
pub struct Alerts;

#[event_handler(part_of = Account)]
impl Alerts {
    #[handle(LoanGranted)]
    async fn on_loan(&self, _event: &Event<LoanGranted>, _ctx: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
