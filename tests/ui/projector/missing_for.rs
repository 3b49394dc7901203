// A projector names its projection.
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

#[derive(Default)]
pub struct SummaryProjector;

#[projector(aggregates = [Account])]
impl SummaryProjector {
    #[on(DepositMade)]
    async fn on_deposit(&self, _event: &Event<DepositMade>, _ctx: &mut ProjectorContext<'_>) -> Result<()> {
        Ok(())
    }
}

fn main() {}
