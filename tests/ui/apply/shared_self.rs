// #[apply] takes &mut self.
use fidelis_core::prelude::*;

#[aggregate(event_sourced)]
pub struct Account {
    pub closed: bool,
}

#[event(part_of = Account)]
pub struct AccountClosed {
    pub account_id: Identifier,
}

#[aggregate]
impl Account {
    #[apply]
    fn on_closed(&self, _event: &AccountClosed) {}
}

fn main() {}
