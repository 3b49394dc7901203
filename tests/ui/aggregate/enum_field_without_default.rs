// `create_new` starts every field at its `default = …` or at `Default`: an enum with neither
// is reported at the field.
use fidelis_core::prelude::*;

#[value_object]
pub enum LoanStatus {
    OnShelf,
    OnLoan { member: Identifier },
}

#[aggregate]
pub struct Book {
    pub title: String,
    pub status: LoanStatus,
}

fn main() {}
