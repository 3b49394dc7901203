// `#[serde(flatten)]` on a field: fields are stored one per column; use a value object.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Member {
    pub email: String,
    #[serde(flatten)]
    pub address: serde_json::Value,
}

fn main() {}
