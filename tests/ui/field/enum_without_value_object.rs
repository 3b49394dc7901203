// An enum is a field type once it is a `#[value_object]`; without it, one error, ours, at the
// field's type (not one per derive the element adds).
use fidelis_core::prelude::*;

pub enum LoanStatus {
    OnShelf,
    OnLoan { member: Identifier },
}

#[event(part_of = Book)]
pub struct BookLent {
    pub book_id: Identifier,
    pub status: LoanStatus,
}

#[aggregate]
pub struct Book {
    pub title: String,
}

fn main() {}
