// An entity (in a list) as a field of an event.
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

#[event(part_of = Account)]
pub struct SignatoriesReplaced {
    pub account_id: Identifier,
    pub signatories: Vec<AuthorizedSignatory>,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_replaced(&mut self, event: &SignatoriesReplaced) {
        self.signatories = event.signatories.clone();
    }
}

fn main() {}
