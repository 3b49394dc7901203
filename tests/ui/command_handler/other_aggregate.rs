// #[handle(C)] in a handler part of another aggregate.
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
pub struct AccountHandler;

#[command_handler(part_of = Account)]
impl AccountHandler {
    #[handle(GrantLoan)]
    async fn grant(&self, _command: GrantLoan, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}

fn main() {}
