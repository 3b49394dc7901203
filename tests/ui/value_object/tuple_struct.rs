// #[value_object] needs named fields.
use fidelis_core::prelude::*;

#[value_object]
pub struct Money(f64);

fn main() {}
