// A typo'd argument gets a suggestion.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[event(part_off = Account)]
pub struct DepositMade {
    pub account_id: Identifier,
}

fn main() {}
