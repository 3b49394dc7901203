// A variant's fields take no `#[field(..)]` options.
use fidelis_core::prelude::*;

#[value_object]
pub enum LoanStatus {
    OnShelf,
    OnLoan {
        #[field(max_length = 20)]
        member: String,
    },
}

fn main() {}
