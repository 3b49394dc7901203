// A snapshot threshold of zero events.
use fidelis_core::prelude::*;

#[aggregate(event_sourced, snapshot_threshold = 0)]
pub struct Account {
    pub balance: i64,
}

fn main() {}
