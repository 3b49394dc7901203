// #[event] goes on a struct.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[event(part_of = Account)]
pub enum AccountEvent {
    Opened,
}

fn main() {}
