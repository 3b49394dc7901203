// Field types are the Fidelis field types.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub limits: std::collections::HashMap<String, f64>,
}

fn main() {}
