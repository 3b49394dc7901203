// `#[serde(with = …)]` on a field: the stored value would not be the field's kind.
use fidelis_core::prelude::*;

mod as_text {}

#[projection]
pub struct Summary {
    #[field(identifier)]
    pub account_id: Identifier,
    #[serde(with = "as_text")]
    pub balance: f64,
}

fn main() {}
