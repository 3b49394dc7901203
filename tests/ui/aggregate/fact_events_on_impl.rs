// `fact_events` goes on the struct.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
}

#[aggregate(fact_events)]
impl Account {}

fn main() {}
