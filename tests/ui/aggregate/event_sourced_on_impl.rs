// `event_sourced` belongs on the struct.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[aggregate(event_sourced)]
impl Account {}

fn main() {}
