// A projection is a flat table: an enum with data in a variant is not a column.
use fidelis_core::prelude::*;

#[value_object]
pub enum LoanStatus {
    OnShelf,
    OnLoan { member: Identifier },
}

#[projection]
pub struct Catalogue {
    #[field(identifier)]
    pub book_id: Identifier,
    pub status: LoanStatus,
}

fn main() {}
