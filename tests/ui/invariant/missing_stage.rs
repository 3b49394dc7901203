// #[invariant] needs pre or post.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[aggregate]
impl Account {
    #[invariant]
    fn positive(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
