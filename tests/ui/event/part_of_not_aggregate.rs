// part_of names an aggregate.
use fidelis_core::prelude::*;

pub struct Account;

#[event(part_of = Account)]
pub struct DepositMade {
    pub account_id: Identifier,
}

fn main() {}
