// #[handle(C, create)] on a method that takes &mut self.
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
pub struct OpenAccount {
    pub holder: String,
}

#[aggregate]
impl Account {
    #[handle(OpenAccount, create)]
    fn open(&mut self, command: OpenAccount) -> Result<Self> {
        let _ = command;
        Ok(self.clone())
    }

    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

fn main() {}
