// Length options are for text and lists, not enums.
use fidelis_core::prelude::*;

#[value_object]
pub enum Shelf {
    Fiction,
    Science,
}

#[command(part_of = Book)]
pub struct Shelve {
    pub book_id: Identifier,
    #[field(max_length = 10)]
    pub shelf: Shelf,
}

#[aggregate]
pub struct Book {
    pub title: String,
}

fn main() {}
