// `#[serde(rename_all)]` on an element: stored names are the Rust field names.
use fidelis_core::prelude::*;

#[aggregate]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub email_address: String,
}

fn main() {}
