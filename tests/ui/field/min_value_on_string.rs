// Value bounds apply to numbers.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(min_value = 0)]
    pub holder: String,
}

fn main() {}
