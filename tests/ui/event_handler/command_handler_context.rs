// An event handler takes a command handler's context.
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

pub struct Notifier;

#[event_handler(part_of = Account)]
impl Notifier {
    #[handle(DepositMade)]
    async fn on_deposit(_event: &Event<DepositMade>, _ctx: &mut Context) -> Result<()> {
        Ok(())
    }
}

fn main() {}
