// An argument given twice.
use fidelis_core::prelude::*;

#[aggregate(event_sourced, event_sourced)]
pub struct Account {
    pub balance: f64,
}

fn main() {}
