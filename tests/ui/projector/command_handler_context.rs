// A projector takes a command handler's context.
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
    async fn on_deposit(event: &Event<DepositMade>, ctx: &mut Context) -> Result<()> {
        ctx.repository::<Summary>()
            .add(Summary { account_id: event.account_id.clone(), balance: event.amount })
            .await
    }
}

fn main() {}
