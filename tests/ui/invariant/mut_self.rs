// An invariant only reads the aggregate.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[aggregate]
impl Account {
    #[invariant(post)]
    fn positive(&mut self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
