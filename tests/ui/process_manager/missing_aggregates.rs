// The state struct does not say which aggregates it listens to.
use fidelis_core::prelude::*;

#[process_manager]
pub struct FundsTransfer {
    pub status: String,
}

fn main() {}
