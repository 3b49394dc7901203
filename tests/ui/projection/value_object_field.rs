// Projections hold basic fields only.
use fidelis_core::prelude::*;

#[value_object]
pub struct Money {
    pub amount: f64,
    pub currency: String,
}

#[projection]
pub struct Summary {
    #[field(identifier)]
    pub account_id: Identifier,
    pub balance: Money,
}

fn main() {}
