// A command handled both by an aggregate's #[handle] method and by a command-handler type.
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
    fn deposit(&mut self, command: MakeDeposit) -> Result<()> {
        let account_id = self.id.clone();
        self.raise(DepositMade { account_id, amount: command.amount })
    }

    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

#[derive(Default)]
pub struct AccountHandler;

#[command_handler(part_of = Account)]
impl AccountHandler {
    #[handle(MakeDeposit)]
    async fn deposit(&self, _command: MakeDeposit, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}

fn main() {}
