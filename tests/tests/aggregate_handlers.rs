//! Command handlers written on the aggregate itself: `#[handle(C)] fn x(&mut self, command: C)`
//! in the `#[aggregate] impl` (the framework loads the aggregate the command names, calls the
//! method and saves it) and `#[handle(C, create)] fn x(command: C) -> Result<Self>` (a new
//! aggregate, saved; `process` returns its id), beside a command-handler type in one domain
//! (one without state, whose method takes no `self`, so it needs no `Default`).

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use fidelis_core::testing::given;

#[event(part_of = Book)]
pub struct BookCatalogued {
    pub book_id: Identifier,
    pub title: String,
    pub copies: i64,
}

#[event(part_of = Book)]
pub struct BookLent {
    pub book_id: Identifier,
    pub borrower: String,
}

#[event(part_of = Book)]
pub struct BookReturned {
    pub book_id: Identifier,
}

#[aggregate(event_sourced)]
pub struct Book {
    #[field(max_length = 100)]
    pub title: String,
    #[field(default = 0)]
    pub available: i64,
}

#[aggregate]
impl Book {
    #[invariant(post)]
    fn cannot_lend_more_than_we_have(&self) -> std::result::Result<(), ValidationError> {
        if self.available < 0 {
            return Err(ValidationError::field(
                "available",
                "no copy is left to lend",
            ));
        }
        Ok(())
    }

    #[handle(CatalogueBook, create)]
    fn catalogue(command: CatalogueBook) -> Result<Self> {
        let mut book = Self::create_new();
        book.raise(BookCatalogued {
            book_id: book.id.clone(),
            title: command.title,
            copies: command.copies,
        })?;
        Ok(book)
    }

    /// A mistake: an event-sourced aggregate is its events, and this one raised none.
    #[handle(ReserveTitle, create)]
    fn reserve(_command: ReserveTitle) -> Result<Self> {
        Ok(Self::create_new())
    }

    #[handle(LendBook)]
    fn lend(&mut self, command: LendBook) -> Result<usize> {
        self.raise(BookLent {
            book_id: self.id.clone(),
            borrower: command.borrower,
        })?;
        Ok(usize::try_from(self.available).unwrap_or(0))
    }

    #[handle(ReturnBook)]
    async fn give_back(&mut self, _command: ReturnBook) -> Result<()> {
        self.raise(BookReturned {
            book_id: self.id.clone(),
        })
    }

    #[apply]
    fn on_catalogued(&mut self, event: &BookCatalogued) {
        self.title = event.title.clone();
        self.available = event.copies;
    }

    #[apply]
    fn on_lent(&mut self, _: &BookLent) {
        self.available -= 1;
    }

    #[apply]
    fn on_returned(&mut self, _: &BookReturned) {
        self.available += 1;
    }
}

#[command(part_of = Book)]
pub struct CatalogueBook {
    pub title: String,
    pub copies: i64,
}

#[command(part_of = Book)]
pub struct ReserveTitle {
    pub title: String,
}

/// The target is the field named `<aggregate>_id`.
#[command(part_of = Book)]
pub struct LendBook {
    pub book_id: Identifier,
    pub borrower: String,
}

/// The target is the field marked `#[field(identifier)]`, whatever its name.
#[command(part_of = Book)]
pub struct ReturnBook {
    #[field(identifier)]
    pub copy_of: Identifier,
}

/// A command of the same aggregate handled by a command-handler type, beside the methods.
#[command(part_of = Book)]
pub struct CountCopies {
    pub book_id: Identifier,
}

/// A handler without state: its method takes no `self`, so it needs no `Default`.
pub struct BookQueries;

#[command_handler(part_of = Book)]
impl BookQueries {
    #[handle(CountCopies)]
    async fn count(command: CountCopies, ctx: &mut Context) -> Result<i64> {
        Ok(ctx
            .repository::<Book>()
            .get(&command.book_id)
            .await?
            .available)
    }
}

/// A command of the same aggregate whose handler type has state: one method uses it, the
/// other takes no `self`; the type needs its instance (`Default` here).
#[command(part_of = Book)]
pub struct StampBook {
    pub book_id: Identifier,
}

#[command(part_of = Book)]
pub struct CountStamps {
    pub book_id: Identifier,
}

#[derive(Default)]
pub struct Librarian {
    stamp: &'static str,
}

#[command_handler(part_of = Book)]
impl Librarian {
    #[handle(StampBook)]
    async fn stamp(&self, _command: StampBook, _ctx: &mut Context) -> Result<&'static str> {
        Ok(self.stamp)
    }

    #[handle(CountStamps)]
    fn count(_command: CountStamps, _ctx: &mut Context) -> Result<i64> {
        Ok(0)
    }
}

async fn domain() -> Domain {
    Domain::builder("library")
        .discover_crate(module_path!())
        .build()
        .await
        .expect("the library domain builds")
}

#[tokio::test]
async fn a_create_handler_saves_the_new_aggregate_and_returns_its_id() {
    let domain = domain().await;
    let id: Identifier = domain
        .process(CatalogueBook {
            title: "Dune".into(),
            copies: 2,
        })
        .await
        .expect("catalogued");
    let book = domain.repository::<Book>().get(&id).await.expect("saved");
    assert_eq!(
        (book.title.as_str(), book.available, book.version()),
        ("Dune", 2, 0)
    );
}

#[tokio::test]
async fn a_create_handler_whose_event_sourced_aggregate_raised_nothing_is_refused() {
    let domain = domain().await;
    let error = domain
        .process(ReserveTitle {
            title: "Dune".into(),
        })
        .await
        .expect_err("nothing would be stored");
    assert!(
        matches!(&error, Error::Handler { handler, message, .. }
            if handler == "Book::reserve" && message.contains("raised no event")),
        "{error:?}"
    );
    assert!(
        domain
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .expect("read")
            .is_empty()
    );
}

#[tokio::test]
async fn a_handler_loads_the_named_aggregate_calls_the_method_and_saves_it() {
    let domain = domain().await;
    let id = domain
        .process(CatalogueBook {
            title: "Dune".into(),
            copies: 2,
        })
        .await
        .expect("catalogued");
    let left: usize = domain
        .process(LendBook {
            book_id: id.clone(),
            borrower: "Ada".into(),
        })
        .await
        .expect("lent");
    assert_eq!(left, 1);
    domain
        .process(ReturnBook {
            copy_of: id.clone(),
        })
        .await
        .expect("returned (async method, `#[field(identifier)]` target)");
    let book = domain.repository::<Book>().get(&id).await.expect("saved");
    assert_eq!((book.available, book.version()), (2, 2));
    let copies: i64 = domain
        .process(CountCopies { book_id: id })
        .await
        .expect("a handler type beside the aggregate's methods");
    assert_eq!(copies, 2);
}

#[tokio::test]
async fn a_rejected_method_saves_nothing() {
    let domain = domain().await;
    let id = domain
        .process(CatalogueBook {
            title: "Dune".into(),
            copies: 1,
        })
        .await
        .expect("catalogued");
    domain
        .process(LendBook {
            book_id: id.clone(),
            borrower: "Ada".into(),
        })
        .await
        .expect("the only copy is lent");
    let refused = domain
        .process(LendBook {
            book_id: id.clone(),
            borrower: "Grace".into(),
        })
        .await
        .expect_err("no copy is left");
    let messages = refused.as_validation().expect("the invariant").messages();
    assert_eq!(messages["available"], ["no copy is left to lend"]);
    let book = domain.repository::<Book>().get(&id).await.expect("saved");
    assert_eq!((book.available, book.version()), (0, 1));
}

#[tokio::test]
async fn a_command_naming_no_existing_aggregate_is_not_found() {
    let domain = domain().await;
    let missing = Identifier::generate();
    let error = domain
        .process(LendBook {
            book_id: missing.clone(),
            borrower: "Ada".into(),
        })
        .await
        .expect_err("no such book");
    assert!(
        matches!(&error, Error::NotFound { id, .. } if *id == missing.as_str()),
        "{error:?}"
    );
    assert!(
        domain
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .expect("read")
            .is_empty(),
        "nothing was written"
    );
}

#[tokio::test]
async fn the_aggregates_methods_are_one_command_handler_of_the_registry() {
    let domain = domain().await;
    let handlers = domain.registry().command_handler_of::<LendBook>();
    assert_eq!(handlers, Some(("Book", "lend")));
    assert_eq!(
        domain.registry().command_handler_of::<CountCopies>(),
        Some(("BookQueries", "count"))
    );
}

#[tokio::test]
async fn the_testing_dsl_runs_aggregate_handlers() {
    let id = Identifier::generate();
    let outcome = given::<Book>()
        .after(BookCatalogued {
            book_id: id.clone(),
            title: "Dune".into(),
            copies: 1,
        })
        .process(LendBook {
            book_id: id.clone(),
            borrower: "Ada".into(),
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert!(outcome.events().contains::<BookLent>());
    assert_eq!(outcome.aggregate().available, 0);
}

// ---- a state-stored aggregate handles its commands the same way ---------------------------

#[aggregate]
pub struct Shelf {
    #[field(max_length = 20)]
    pub label: String,
    #[field(default = 0)]
    pub books: i64,
}

#[aggregate]
impl Shelf {
    #[handle(PutUpShelf, create)]
    async fn put_up(command: PutUpShelf) -> Result<Self> {
        let mut shelf = Self::create_new();
        shelf.label = command.label;
        Ok(shelf)
    }

    #[handle(ShelveBook)]
    fn shelve(&mut self, _command: ShelveBook) -> Result<i64> {
        self.books += 1;
        Ok(self.books)
    }
}

#[command(part_of = Shelf)]
pub struct PutUpShelf {
    pub label: String,
}

#[command(part_of = Shelf)]
pub struct ShelveBook {
    pub shelf_id: Identifier,
}

#[tokio::test]
async fn a_stored_aggregate_is_loaded_changed_and_saved_as_a_row() {
    let domain = domain().await;
    let id = domain
        .process(PutUpShelf { label: "SF".into() })
        .await
        .expect("put up");
    let books = domain
        .process(ShelveBook {
            shelf_id: id.clone(),
        })
        .await
        .expect("shelved");
    assert_eq!(books, 1);
    let shelf = domain.repository::<Shelf>().get(&id).await.expect("saved");
    assert_eq!((shelf.label.as_str(), shelf.books), ("SF", 1));
}

#[tokio::test]
async fn a_handler_type_with_state_mixes_methods_with_and_without_self() {
    let domain = domain().await;
    let book_id = Identifier::generate();
    let stamp = domain
        .process(StampBook {
            book_id: book_id.clone(),
        })
        .await
        .expect("stamped");
    assert_eq!(stamp, "");
    let count = domain
        .process(CountStamps { book_id })
        .await
        .expect("counted");
    assert_eq!(count, 0);
}

/// A handler whose output borrows (`&'static str`) compiles, and its output is not recorded
/// for process managers (serde cannot decode a borrowed `&'static str` from stored JSON);
/// `i64` is.
#[test]
fn borrowed_outputs_have_no_codec() {
    use fidelis_core::Handled;
    assert!(<StampBook as Handled>::output_codec().is_none());
    assert!(<CountStamps as Handled>::output_codec().is_some());
}
