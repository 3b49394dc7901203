// An enum without variants could hold no value.
use fidelis_core::prelude::*;

#[value_object]
pub enum Never {}

fn main() {}
