// A command handler processes another command: only event handlers may.
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
    #[apply]
    fn on_deposit_made(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }

    #[handle(MakeDeposit)]
    fn deposit(&mut self, command: MakeDeposit) -> Result<()> {
        self.raise(DepositMade { account_id: self.id.clone(), amount: command.amount })
    }
}

#[projection]
pub struct Summary {
    #[field(identifier)]
    pub account_id: Identifier,
    pub balance: f64,
}

pub struct Payouts;
#[command(part_of = Account)]
pub struct DoubleDeposit {
    pub account_id: Identifier,
    pub amount: f64,
}

#[command_handler(part_of = Account)]
impl Payouts {
    #[handle(DoubleDeposit)]
    async fn double(command: DoubleDeposit, ctx: &mut Context) -> Result<()> {
        let deposit = MakeDeposit { account_id: command.account_id, amount: command.amount };
        ctx.process(deposit).await
    }
}

fn main() {}
