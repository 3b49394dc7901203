// A typo'd argument gets a suggestion.
use fidelis_core::prelude::*;

#[aggregate(event_sourcd)]
pub struct Account {
    pub balance: f64,
}

fn main() {}
