// `decimal_places` is for exact decimals; an f64 has no decimal places to count.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(decimal_places = 2)]
    pub balance: f64,
}

fn main() {}
