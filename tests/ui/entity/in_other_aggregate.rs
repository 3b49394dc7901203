// An entity held by an aggregate it is not `part_of`.
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

#[aggregate]
pub struct Branch {
    pub signatories: Vec<AuthorizedSignatory>,
}

fn main() {}
