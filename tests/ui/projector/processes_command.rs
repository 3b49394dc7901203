// A projector processes a command: it runs inside a commit, so it cannot.
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

pub struct SummaryProjector;

#[projector(for = Summary, aggregates = [Account])]
impl SummaryProjector {
    #[on(DepositMade)]
    async fn on_deposit(event: &Event<DepositMade>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        ctx.process(MakeDeposit { account_id: event.account_id.clone(), amount: 1.0 }).await
    }
}

fn main() {}
