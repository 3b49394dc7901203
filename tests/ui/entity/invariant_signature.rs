// An entity invariant that takes `&mut self`, and one with a stage it does not have.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub signatories: Vec<AuthorizedSignatory>,
}

#[entity(part_of = Account)]
pub struct AuthorizedSignatory {
    #[field(max_length = 100)]
    pub name: String,
}

#[entity]
impl AuthorizedSignatory {
    #[invariant]
    fn named(&mut self) -> Result<(), ValidationError> {
        Ok(())
    }

    #[invariant(always)]
    fn short(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

fn main() {}
