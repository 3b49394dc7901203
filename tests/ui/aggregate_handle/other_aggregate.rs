// An aggregate's #[handle(C)] method for a command of another aggregate.
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
    pub loan_id: Identifier,
    pub amount: f64,
}

#[aggregate]
impl Loan {
    #[apply]
    fn on_granted(&mut self, event: &LoanGranted) {
        self.amount = event.amount;
    }
}

#[aggregate]
impl Account {
    #[handle(GrantLoan)]
    fn grant(&mut self, command: GrantLoan) -> Result<()> {
        let _ = command;
        Ok(())
    }

    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

fn main() {}
