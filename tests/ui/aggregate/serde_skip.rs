// `#[serde(skip)]` on a field: every field of an element is stored.
use fidelis_core::prelude::*;

#[aggregate]
pub struct Member {
    pub email: String,
    #[serde(skip)]
    pub cached_score: i64,
}

fn main() {}
