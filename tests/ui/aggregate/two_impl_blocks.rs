// An aggregate's invariants are declared in one `#[aggregate] impl` block; other blocks
// (of `#[apply]` methods, say) may sit beside it, but two cannot both declare invariants.
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

#[aggregate]
impl Account {
    #[invariant(pre)]
    fn open(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
