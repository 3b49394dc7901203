//! Rust enums as fields (`#[value_object]` on an enum), on every adapter: a library-lending
//! context with a data-carrying enum in events, commands, an aggregate and a value object,
//! and unit-only enums in a projection (a text column, queried by variant, an unknown name
//! in a stored row reported on read).

#![allow(missing_docs)]

use fidelis_core::FieldKind;
use fidelis_core::prelude::*;
use fidelis_core::{FieldType, HasFields};
use serde::{Deserialize, Serialize};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};

/// The enum, with the user's own serde derives: data in one variant.
#[value_object]
#[derive(Serialize, Deserialize)]
pub enum LoanStatus {
    OnShelf,
    OnLoan { member: Identifier, due: NaiveDate },
    Lost(String),
}

/// Unit-only: a text column in projections. `Default` for aggregates' `create_new`.
#[value_object]
#[derive(Default)]
pub enum Shelf {
    #[default]
    Fiction,
    Science,
    History,
}

/// Unit-only, written by serde under other names: stored and queried as serde writes them.
#[value_object]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Condition {
    Good,
    #[serde(rename = "worn-out")]
    WornOut,
    Damaged,
}

/// A value object holding enums.
#[value_object]
pub struct Placement {
    pub shelf: Shelf,
    pub condition: Option<Condition>,
}

#[aggregate]
pub struct Book {
    #[field(max_length = 100)]
    pub title: String,
    #[field(default = LoanStatus::OnShelf)]
    pub status: LoanStatus,
    pub placement: Placement,
    pub history: Vec<LoanStatus>,
}

#[event(part_of = Book)]
pub struct BookAcquired {
    pub book_id: Identifier,
    pub title: String,
    pub placement: Placement,
}

#[event(part_of = Book)]
pub struct BookStatusChanged {
    pub book_id: Identifier,
    pub status: LoanStatus,
}

#[command(part_of = Book)]
pub struct AcquireBook {
    pub title: String,
    pub shelf: Shelf,
    pub condition: Option<Condition>,
}

#[command(part_of = Book)]
pub struct ChangeStatus {
    pub book_id: Identifier,
    pub status: LoanStatus,
}

#[derive(Default)]
pub struct Library;

#[command_handler(part_of = Book)]
impl Library {
    #[handle(AcquireBook)]
    async fn acquire(&self, command: AcquireBook, ctx: &mut Context) -> Result<Identifier> {
        let mut book = Book::create_new();
        let book_id = book.id.clone();
        let placement = Placement {
            shelf: command.shelf,
            condition: command.condition,
        };
        book.title = command.title.clone();
        book.placement = placement.clone();
        book.raise(BookAcquired {
            book_id: book_id.clone(),
            title: command.title,
            placement,
        })?;
        ctx.repository::<Book>().add(book).await?;
        Ok(book_id)
    }

    #[handle(ChangeStatus)]
    async fn change(&self, command: ChangeStatus, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Book>();
        let mut book = repo.get(&command.book_id).await?;
        let previous = std::mem::replace(&mut book.status, command.status.clone());
        book.history.push(previous);
        book.raise(BookStatusChanged {
            book_id: command.book_id,
            status: command.status,
        })?;
        repo.add(book).await
    }
}

#[projection]
pub struct CatalogueEntry {
    #[field(identifier)]
    pub book_id: Identifier,
    pub title: String,
    pub shelf: Shelf,
    pub condition: Option<Condition>,
    pub on_loan: bool,
    pub shelves: Vec<Shelf>,
}

#[derive(Default)]
pub struct Catalogue;

#[projector(for = CatalogueEntry, aggregates = [Book])]
impl Catalogue {
    #[on(BookAcquired)]
    async fn acquired(
        &self,
        event: &Event<BookAcquired>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        ctx.repository::<CatalogueEntry>()
            .add(CatalogueEntry {
                book_id: event.book_id.clone(),
                title: event.title.clone(),
                shelf: event.placement.shelf.clone(),
                condition: event.placement.condition.clone(),
                on_loan: false,
                shelves: vec![event.placement.shelf.clone()],
            })
            .await
    }

    #[on(BookStatusChanged)]
    async fn status_changed(
        &self,
        event: &Event<BookStatusChanged>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<CatalogueEntry>();
        let mut entry = repo.get(&event.book_id).await?;
        entry.on_loan = matches!(event.status, LoanStatus::OnLoan { .. });
        repo.add(entry).await
    }
}

async fn library(backend: &Backend) -> Domain {
    backend
        .build(Domain::builder("library").discover_crate(module_path!()))
        .await
}

fn due() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()
}

async fn acquire(
    domain: &Domain,
    title: &str,
    shelf: Shelf,
    condition: Option<Condition>,
) -> Identifier {
    domain
        .process(AcquireBook {
            title: title.into(),
            shelf,
            condition,
        })
        .await
        .unwrap()
}

on_every_adapter!(
    enums_round_trip_through_events_commands_aggregates_and_value_objects,
    unit_enums_are_projection_columns_queried_by_variant,
    an_unknown_variant_in_a_stored_row_is_reported_on_read,
);

async fn enums_round_trip_through_events_commands_aggregates_and_value_objects(backend: &Backend) {
    let domain = library(backend).await;
    let id = acquire(&domain, "Dune", Shelf::Fiction, Some(Condition::WornOut)).await;
    let book = domain.repository::<Book>().get(&id).await.unwrap();
    assert_eq!(
        book.status,
        LoanStatus::OnShelf,
        "`default = …` of an enum field"
    );
    assert_eq!(book.placement.condition, Some(Condition::WornOut));

    let on_loan = LoanStatus::OnLoan {
        member: "m-7".into(),
        due: due(),
    };
    domain
        .process(ChangeStatus {
            book_id: id.clone(),
            status: on_loan.clone(),
        })
        .await
        .unwrap();
    domain
        .process(ChangeStatus {
            book_id: id.clone(),
            status: LoanStatus::Lost("left on a train".into()),
        })
        .await
        .unwrap();

    let book = domain.repository::<Book>().get(&id).await.unwrap();
    assert_eq!(book.status, LoanStatus::Lost("left on a train".into()));
    assert_eq!(book.history, [LoanStatus::OnShelf, on_loan.clone()]);

    // Events keep serde's representation of the enum.
    let events = domain
        .event_store()
        .read_stream(&format!("library::book-{id}"))
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    let changed = domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .unwrap()
        .into_iter()
        .find(|event| event.metadata.type_name.contains("BookStatusChanged"))
        .expect("the status change is recorded");
    assert_eq!(
        changed.data().unwrap()["status"],
        json!({"OnLoan": {"member": "m-7", "due": "2026-12-24"}})
    );
}

async fn unit_enums_are_projection_columns_queried_by_variant(backend: &Backend) {
    let domain = library(backend).await;
    let dune = acquire(&domain, "Dune", Shelf::Fiction, Some(Condition::Good)).await;
    let cosmos = acquire(&domain, "Cosmos", Shelf::Science, Some(Condition::WornOut)).await;
    let spqr = acquire(&domain, "SPQR", Shelf::History, None).await;
    domain
        .process(ChangeStatus {
            book_id: cosmos.clone(),
            status: LoanStatus::OnLoan {
                member: "m-1".into(),
                due: due(),
            },
        })
        .await
        .unwrap();

    let repo = domain.repository::<CatalogueEntry>();
    let f = CatalogueEntry::fields();
    let entry = repo.get(&cosmos).await.unwrap();
    assert_eq!(entry.shelf, Shelf::Science);
    assert_eq!(entry.condition, Some(Condition::WornOut));
    assert!(entry.on_loan);
    assert_eq!(entry.shelves, [Shelf::Science]);

    let ids = |rows: Vec<CatalogueEntry>| {
        let mut ids: Vec<Identifier> = rows.into_iter().map(|row| row.book_id).collect();
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<Identifier>| {
        ids.sort();
        ids
    };
    let science = repo
        .query()
        .filter(f.shelf.eq(Shelf::Science))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(science), std::slice::from_ref(&cosmos));
    let not_science = repo
        .query()
        .filter(f.shelf.ne(Shelf::Science))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(not_science), sorted(vec![dune.clone(), spqr.clone()]));
    let some = repo
        .query()
        .filter(f.shelf.is_in([Shelf::Fiction, Shelf::History]))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(some), sorted(vec![dune.clone(), spqr.clone()]));
    // Renamed variants are queried by the name serde writes.
    let worn = repo
        .query()
        .filter(f.condition.eq(Condition::WornOut))
        .all()
        .await
        .unwrap();
    assert_eq!(ids(worn), std::slice::from_ref(&cosmos));
    let unknown_condition = repo
        .query()
        .filter(f.condition.is_null())
        .count()
        .await
        .unwrap();
    assert_eq!(unknown_condition, 1);
    let none = repo
        .query()
        .filter(f.condition.eq(Condition::Damaged))
        .count()
        .await
        .unwrap();
    assert_eq!(none, 0);
}

async fn an_unknown_variant_in_a_stored_row_is_reported_on_read(backend: &Backend) {
    if backend.is_memory() {
        // Nothing outside the process can change an in-memory store.
        return;
    }
    let domain = library(backend).await;
    let good = acquire(&domain, "Dune", Shelf::Fiction, None).await;
    let bad = acquire(&domain, "Cosmos", Shelf::Science, None).await;
    // A variant renamed or removed since the row was written (or a value typed into the
    // table by hand).
    backend
        .execute(&format!(
            "UPDATE library_catalogue_entry SET shelf = 'Poetry' WHERE book_id = '{bad}'"
        ))
        .await;
    let error = domain
        .repository::<CatalogueEntry>()
        .get(&bad)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Serialization { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("`Poetry` is not a variant of `Shelf`")
            && message.contains("[\"Fiction\", \"Science\", \"History\"]")
            && message.contains("column `shelf`")
            && message.contains(bad.as_str()),
        "the error names the value, the variants, the column and the row: {message}"
    );
    assert_eq!(
        domain
            .repository::<CatalogueEntry>()
            .get(&good)
            .await
            .unwrap()
            .shelf,
        Shelf::Fiction
    );
}

// ---- what does not depend on storage -------------------------------------------------------

#[test]
fn field_definitions_name_the_enum_kinds_and_variants() {
    let field = |fields: &'static [fidelis_core::FieldDef], name: &str| {
        *fields.iter().find(|f| f.name == name).unwrap()
    };
    let status = field(Book::FIELDS, "status");
    assert_eq!(status.kind, FieldKind::DataEnum);
    assert!(status.variants.is_none());
    assert!(!status.kind.is_basic());

    let shelf = field(CatalogueEntry::FIELDS, "shelf");
    assert_eq!(shelf.kind, FieldKind::Enum);
    assert!(shelf.kind.is_basic());
    assert_eq!(shelf.variants.unwrap()(), ["Fiction", "Science", "History"]);

    let condition = field(CatalogueEntry::FIELDS, "condition");
    assert_eq!(condition.kind, FieldKind::Enum);
    assert!(!condition.required);
    assert_eq!(
        condition.variants.unwrap()(),
        ["GOOD", "worn-out", "DAMAGED"],
        "serde's names"
    );
    assert_eq!(<Vec<Shelf> as FieldType>::KIND, FieldKind::List);
}

#[test]
fn a_data_variant_s_fields_are_validated() {
    let error = ChangeStatus::from_value(json!({
        "book_id": "b-1",
        "status": {"OnLoan": {"member": " ", "due": "2026-12-24"}},
    }))
    .unwrap_err();
    let validation = error.as_validation().unwrap();
    assert_eq!(validation.messages_for("status.member"), ["is required"]);

    let error = ChangeStatus::from_value(json!({
        "book_id": "b-1",
        "status": {"Lost": "\u{0}"},
    }))
    .unwrap_err();
    assert_eq!(
        error.as_validation().unwrap().messages_for("status.0"),
        ["must not contain NUL characters"]
    );

    let ok = ChangeStatus::from_value(json!({"book_id": "b-1", "status": "OnShelf"})).unwrap();
    assert_eq!(ok.status, LoanStatus::OnShelf);
}

#[test]
fn an_unknown_variant_in_input_is_a_validation_error() {
    let error = AcquireBook::from_value(json!({
        "title": "Dune",
        "shelf": "Poetry",
        "condition": "worn-out",
    }))
    .unwrap_err();
    let messages = error
        .as_validation()
        .unwrap()
        .messages_for("shelf")
        .to_vec();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("unknown variant `Poetry`")
            && messages[0].contains("`Fiction`, `Science`, `History`"),
        "{messages:?}"
    );
    let ok = AcquireBook::from_value(json!({
        "title": "Dune",
        "shelf": "Fiction",
        "condition": "worn-out",
    }))
    .unwrap();
    assert_eq!(ok.condition, Some(Condition::WornOut));
}
