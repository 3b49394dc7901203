// A projection has exactly one identifier.
use fidelis_core::prelude::*;

#[projection]
pub struct Summary {
    #[field(identifier)]
    pub account_id: Identifier,
    #[field(identifier)]
    pub number: String,
}

fn main() {}
