// A projector handles the facts of an aggregate that does not record them.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
}

#[aggregate]
impl Account {}

#[projection]
pub struct Report {
    #[field(identifier)]
    pub account_id: Identifier,
    pub balance: i64,
}

pub struct Reporter;

#[projector(for = Report, aggregates = [Account])]
impl Reporter {
    #[on(Fact<Account>)]
    async fn on_fact(fact: &Event<Fact<Account>>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        ctx.repository::<Report>()
            .add(Report { account_id: fact.id.clone(), balance: fact.balance })
            .await
    }
}

fn main() {}
