// A process manager struct without its `#[process_manager] impl` block of steps.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Transfer {
    pub amount: i64,
}

#[process_manager(aggregates = [Transfer])]
pub struct FundsTransfer {
    pub status: String,
}

fn main() {}
