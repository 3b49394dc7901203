// Two `#[handle(C)]` methods for the same command in one command handler.
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
#[command(part_of = Account)]
pub struct MakeDeposit {
    pub account_id: Identifier,
    pub amount: f64,
}

#[derive(Default)]
pub struct AccountHandler;

#[command_handler(part_of = Account)]
impl AccountHandler {
    #[handle(MakeDeposit)]
    async fn deposit(&self, _command: MakeDeposit, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }

    #[handle(MakeDeposit)]
    async fn deposit_again(&self, _command: MakeDeposit, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}

fn main() {}
