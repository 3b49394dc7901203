// An entity as a field of a projection.
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

#[projection]
pub struct SignatoryList {
    #[field(identifier)]
    pub account_id: Identifier,
    pub first: Option<AuthorizedSignatory>,
}

fn main() {}
