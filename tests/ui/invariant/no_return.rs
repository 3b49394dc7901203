// An invariant returns Result<(), ValidationError>.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[aggregate]
impl Account {
    #[invariant(pre)]
    fn positive(&self) {}
}

fn main() {}
