// A misspelt option of #[handle(C, create)].
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
    #[handle(OpenAccount, creat)]
    fn open(command: OpenAccount) -> Result<Self> {
        let _ = command;
        Ok(Self::create_new())
    }

    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

fn main() {}
