// `#[serde(rename)]` on a field: storage and queries use the Rust name, so it is refused.
use fidelis_core::prelude::*;

#[projection]
pub struct Summary {
    #[field(identifier)]
    pub account_id: Identifier,
    #[serde(rename = "accountBalance")]
    pub balance: f64,
}

fn main() {}
