// An event handler names the aggregates it listens to.
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
pub struct Alerts;

#[event_handler]
impl Alerts {
    #[handle(DepositMade)]
    async fn on_deposit(&self, _event: &Event<DepositMade>, _ctx: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
