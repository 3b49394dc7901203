// A typo'd invariant stage.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[aggregate]
impl Account {
    #[invariant(psot)]
    fn positive(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
