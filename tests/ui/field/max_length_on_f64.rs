// Length options apply to text and lists.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    #[field(max_length = 10)]
    pub balance: f64,
}

fn main() {}
