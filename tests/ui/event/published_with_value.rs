// `published` is a flag: it takes no value.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[event(part_of = Account, published = 3)]
pub struct DepositMade {
    pub account_id: Identifier,
}

fn main() {}
