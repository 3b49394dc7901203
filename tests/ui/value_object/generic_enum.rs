// Field types from `#[value_object]` are concrete.
use fidelis_core::prelude::*;

#[value_object]
pub enum Either<T> {
    Left(T),
    Right,
}

fn main() {}
