// One `#[aggregate] impl` block per aggregate (other impl blocks need no macro).
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: f64,
}

#[aggregate]
impl Account {
    #[invariant(post)]
    fn positive(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

#[aggregate]
impl Account {}

fn main() {}
