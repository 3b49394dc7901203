// An aggregate's #[handle(C)] method that borrows the command.
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

#[command(part_of = Account)]
pub struct MakeDeposit {
    pub account_id: Identifier,
    pub amount: f64,
}

#[aggregate]
impl Account {
    #[handle(MakeDeposit)]
    fn deposit(&mut self, command: &MakeDeposit) -> Result<()> {
        let _ = command;
        Ok(())
    }

    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

fn main() {}
