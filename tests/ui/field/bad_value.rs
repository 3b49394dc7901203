// max_length takes a whole number.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(max_length = "twenty")]
    pub holder: String,
}

fn main() {}
