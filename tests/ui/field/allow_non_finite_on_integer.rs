// `allow_non_finite` is for floats: integers and decimals are always finite.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Counter {
    #[field(allow_non_finite)]
    pub count: i64,
}

fn main() {}
