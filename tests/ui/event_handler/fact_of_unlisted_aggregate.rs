// An event handler handles the facts of an aggregate it does not listen to.
use fidelis_core::prelude::*;

#[aggregate(event_sourced, fact_events)]
pub struct Account {
    pub balance: i64,
}

#[aggregate]
impl Account {}

#[aggregate(fact_events)]
pub struct Customer {
    pub name: String,
}

pub struct Mailer;

#[event_handler(part_of = Customer)]
impl Mailer {
    #[handle(Fact<Account>)]
    async fn on_account(_fact: &Event<Fact<Account>>, _ctx: &mut EventHandlerContext) -> Result<()> {
        Ok(())
    }
}

fn main() {}
