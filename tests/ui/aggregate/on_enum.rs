// #[aggregate] goes on a struct with named fields, not an enum.
use fidelis_core::prelude::*;

#[aggregate]
pub enum Account {
    Open,
    Closed,
}

fn main() {}
