// #[invariant] on a plain impl block.
use fidelis_core::prelude::*;

pub struct Ledger {
    pub balance: f64,
}

impl Ledger {
    #[invariant(post)]
    fn positive(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
