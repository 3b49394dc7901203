// #[aggregate] needs named fields.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account(f64);

fn main() {}
