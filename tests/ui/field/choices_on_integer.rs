// choices applies to text.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(choices = ["1", "2"])]
    pub tier: i64,
}

fn main() {}
