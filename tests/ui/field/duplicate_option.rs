// A field option given twice.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(max_length = 20, max_length = 30)]
    pub holder: String,
}

fn main() {}
