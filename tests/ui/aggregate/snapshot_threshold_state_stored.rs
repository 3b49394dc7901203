// `snapshot_threshold` on a state-stored aggregate, which has no events to replay.
use fidelis_core::prelude::*;

#[aggregate(snapshot_threshold = 500)]
pub struct Account {
    pub balance: i64,
}

fn main() {}
