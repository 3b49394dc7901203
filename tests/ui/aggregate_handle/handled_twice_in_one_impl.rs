// Two `#[handle(C)]` methods for the same command in one `#[aggregate] impl`.
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

    #[handle(MakeDeposit, create)]
    fn open_with_deposit(command: MakeDeposit) -> Result<Self> {
        Ok(Self { balance: command.amount, ..Self::create_new() })
    }

    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

fn main() {}
