// `#[serde(default)]` on a command field: defaults are written `#[field(default = …)]`.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Account {
    pub balance: i64,
}

#[command(part_of = Account)]
pub struct Open {
    #[serde(default)]
    pub balance: i64,
}

fn main() {}
