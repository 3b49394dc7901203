// Generic elements are not auto-registered.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account<T> {
    pub balance: T,
}

fn main() {}
