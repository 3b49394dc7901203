// `#[serde(deny_unknown_fields)]` on an element: Fidelis decides which keys are accepted.
use fidelis_core::prelude::*;

#[value_object]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub street: String,
}

fn main() {}
