// A projection's version counts from 1.
use fidelis_core::prelude::*;

#[projection(version = 0)]
pub struct Summary {
    #[field(identifier)]
    pub account_id: Identifier,
    pub balance: i64,
}

fn main() {}
