// A command belongs to an aggregate.
use fidelis_core::prelude::*;

#[command]
pub struct MakeDeposit {
    pub amount: f64,
}

fn main() {}
