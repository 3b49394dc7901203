// ctx.process(c) in an event handler, for a command with no handler.
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
pub struct Notifier;

#[event_handler(part_of = Account)]
impl Notifier {
    #[handle(DepositMade)]
    async fn on_deposit(&self, event: &Event<DepositMade>, ctx: &mut EventHandlerContext) -> Result<()> {
        ctx.process(MakeDeposit { account_id: event.account_id.clone(), amount: 1.0 }).await
    }
}

fn main() {}
