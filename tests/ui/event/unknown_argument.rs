// An argument no macro knows.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[event(part_of = Account, topic = "accounts")]
pub struct DepositMade {
    pub account_id: Identifier,
}

fn main() {}
