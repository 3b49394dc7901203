// An event-sourced aggregate is a stream of events, not a table: it cannot be queried.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
}

#[event(part_of = Account)]
pub struct Opened {
    pub account_id: Identifier,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_opened(&mut self, _event: &Opened) {}
}

async fn rich(domain: &Domain) {
    let _ = domain.repository::<Account>().query();
}

fn main() {}
