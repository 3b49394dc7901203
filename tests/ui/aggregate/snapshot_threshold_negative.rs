// A negative snapshot threshold.
use fidelis_core::prelude::*;

#[aggregate(event_sourced, snapshot_threshold = -5)]
pub struct Account {
    pub balance: i64,
}

fn main() {}
