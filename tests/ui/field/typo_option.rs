// A typo'd field option gets a suggestion.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(max_lenght = 20)]
    pub holder: String,
}

fn main() {}
