// An event belongs to an aggregate.
use fidelis_core::prelude::*;

#[event]
pub struct DepositMade {
    pub account_id: Identifier,
}

fn main() {}
