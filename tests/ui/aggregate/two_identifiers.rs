// An aggregate has one identifier.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(identifier)]
    pub id: Identifier,
    #[field(identifier)]
    pub number: Identifier,
}

fn main() {}
