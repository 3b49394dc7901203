// An entity as a field of a command.
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

#[command(part_of = Account)]
pub struct AddSignatory {
    pub account_id: Identifier,
    pub signatory: AuthorizedSignatory,
}

fn main() {}
