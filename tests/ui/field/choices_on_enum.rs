// `choices` is for text; an enum field admits only its variants already.
use fidelis_core::prelude::*;

#[value_object]
pub enum Shelf {
    Fiction,
    Science,
}

#[command(part_of = Book)]
pub struct Shelve {
    pub book_id: Identifier,
    #[field(choices = ["Fiction"])]
    pub shelf: Shelf,
}

#[aggregate]
pub struct Book {
    pub title: String,
}

fn main() {}
