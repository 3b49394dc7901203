//! Entities inside aggregates (DESIGN §8.3, §8.11) on every adapter: an event-sourced
//! aggregate's entities keep the ids their events carried across reloads; a state-stored
//! aggregate keeps its entities (a list and an optional one) in its row; an invalid entity
//! refuses the command with every failing field and changes nothing.

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use fidelis_example::account::Account;
use fidelis_example::commands::{AddSignatory, OpenAccount};

mod support;
use support::{Backend, on_every_adapter};

// A state-stored aggregate with a list of entities and an optional one.
#[entity(part_of = Library)]
pub struct Book {
    #[field(max_length = 50)]
    pub title: String,
    #[field(min_value = 1)]
    pub copies: i64,
}

#[entity]
impl Book {
    #[invariant]
    fn not_too_many(&self) -> Result<(), ValidationError> {
        if self.copies > 10 {
            return Err(ValidationError::field(
                "copies",
                "a branch holds at most 10 copies",
            ));
        }
        Ok(())
    }
}

#[entity(part_of = Library)]
pub struct Librarian {
    #[field(max_length = 30)]
    pub name: String,
}

#[aggregate]
pub struct Library {
    pub books: Vec<Book>,
    pub librarian: Option<Librarian>,
}

#[command(part_of = Library)]
pub struct FoundLibrary {
    pub librarian: String,
}

#[command(part_of = Library)]
pub struct Shelve {
    pub library_id: Identifier,
    pub book_id: Identifier,
    pub title: String,
    pub copies: i64,
}

#[event(part_of = Library)]
pub struct Shelved {
    pub library_id: Identifier,
    pub book_id: Identifier,
}

#[aggregate]
impl Library {
    #[handle(FoundLibrary, create)]
    fn found(command: FoundLibrary) -> Result<Self> {
        let mut library = Self::create_new();
        library.librarian = Some(Librarian {
            id: Identifier::generate(),
            name: command.librarian,
        });
        Ok(library)
    }

    #[handle(Shelve)]
    fn shelve(&mut self, command: Shelve) -> Result<()> {
        self.books.push(Book {
            id: command.book_id.clone(),
            title: command.title,
            copies: command.copies,
        });
        self.raise(Shelved {
            library_id: self.id.clone(),
            book_id: command.book_id,
        })
    }
}

async fn signatories_keep_their_ids(backend: &Backend) {
    let domain = backend.build(fidelis_example::domain()).await;
    let account: Identifier = domain
        .process(OpenAccount {
            account_number: "ACC-1".into(),
            holder_name: "Ada".into(),
            opening_deposit: Decimal::from(10),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (name, role) in [("Ada Lovelace", "owner"), ("Charles Babbage", "signer")] {
        let id: Identifier = domain
            .process(AddSignatory {
                account_id: account.clone(),
                name: name.into(),
                role: role.into(),
            })
            .await
            .unwrap();
        ids.push(id);
    }

    // Another domain on the same database (no shared cache) replays the stream.
    let other = backend.build(fidelis_example::domain()).await;
    let reloaded = other.repository::<Account>().get(&account).await.unwrap();
    let reloaded_ids: Vec<Identifier> = reloaded.signatories.iter().map(|s| s.id.clone()).collect();
    assert_eq!(reloaded_ids, ids);
    assert_eq!(reloaded.signatories[1].name, "Charles Babbage");
    let again = other.repository::<Account>().get(&account).await.unwrap();
    assert_eq!(again.signatories, reloaded.signatories);

    // An invalid signatory: every failing field, nothing stored.
    let version = reloaded.version();
    let error = domain
        .process(AddSignatory {
            account_id: account.clone(),
            name: format!("{}@example.com", "x".repeat(100)),
            role: "boss".into(),
        })
        .await
        .unwrap_err();
    let messages = error
        .as_validation()
        .expect("a validation error")
        .messages();
    let name = &messages["signatories.2.name"];
    assert!(name.iter().any(|m| m.contains("too long")), "{messages:?}");
    assert!(name.iter().any(|m| m.contains("e-mail")), "{messages:?}");
    assert!(messages.contains_key("signatories.2.role"), "{messages:?}");
    let after = other.repository::<Account>().get(&account).await.unwrap();
    assert_eq!(after.version(), version);
    assert_eq!(after.signatories.len(), 2);
}

async fn stored_aggregates_keep_entities_in_their_row(backend: &Backend) {
    let builder = || Domain::builder("branches").discover_crate(module_path!());
    let domain = backend.build(builder()).await;
    let library: Identifier = domain
        .process(FoundLibrary {
            librarian: "Mme Pince".into(),
        })
        .await
        .unwrap();
    let book = Identifier::generate();
    domain
        .process(Shelve {
            library_id: library.clone(),
            book_id: book.clone(),
            title: "Hogwarts: A History".into(),
            copies: 3,
        })
        .await
        .unwrap();
    let other = backend.build(builder()).await;
    let stored = other.repository::<Library>().get(&library).await.unwrap();
    assert_eq!(stored.books.len(), 1);
    assert_eq!(stored.books[0].id, book);
    assert_eq!(stored.books[0].copies, 3);
    let librarian = stored.librarian.clone().expect("the librarian is kept");
    assert_eq!(librarian.name, "Mme Pince");

    // A book breaking its fields and its invariant: refused, the row unchanged.
    let error = domain
        .process(Shelve {
            library_id: library.clone(),
            book_id: Identifier::generate(),
            title: "x".repeat(60),
            copies: 11,
        })
        .await
        .unwrap_err();
    let messages = error
        .as_validation()
        .expect("a validation error")
        .messages();
    assert!(messages.contains_key("books.1.title"), "{messages:?}");
    assert_eq!(
        messages["books.1.copies"],
        ["a branch holds at most 10 copies"],
        "{messages:?}"
    );
    let after = other.repository::<Library>().get(&library).await.unwrap();
    assert_eq!(after.books, stored.books);
    assert_eq!(after.librarian, Some(librarian));
}

on_every_adapter!(
    signatories_keep_their_ids,
    stored_aggregates_keep_entities_in_their_row
);
