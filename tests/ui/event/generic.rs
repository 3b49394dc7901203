// Generic elements are not auto-registered.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[event(part_of = Account)]
pub struct DepositMade<T> {
    pub account_id: Identifier,
    pub amount: T,
}

fn main() {}
