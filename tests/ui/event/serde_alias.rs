// `#[serde(alias)]` on an event field: fields are decoded by their Rust name only.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: i64,
}

#[event(part_of = Account)]
pub struct Opened {
    pub account_id: Identifier,
    #[serde(alias = "holder")]
    pub holder_name: String,
}

fn main() {}
