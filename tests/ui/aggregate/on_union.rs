// #[aggregate] on a union.
use fidelis_core::prelude::*;

#[aggregate]
pub union Account {
    balance: f64,
    cents: i64,
}

fn main() {}
