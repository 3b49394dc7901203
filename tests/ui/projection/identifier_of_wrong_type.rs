// An identifier is an Identifier, a String or an integer.
use fidelis_core::prelude::*;

#[projection]
pub struct Summary {
    #[field(identifier)]
    pub account_id: f64,
}

fn main() {}
