// An entity that does not say which aggregate it lives in.
use fidelis_core::prelude::*;

#[entity]
pub struct AuthorizedSignatory {
    pub name: String,
}

fn main() {}
