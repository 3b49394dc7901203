// A projection has exactly one identifier.
use fidelis_core::prelude::*;

#[projection]
pub struct Summary {
    pub account_id: Identifier,
    pub balance: f64,
}

fn main() {}
