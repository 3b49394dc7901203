//! The storage conformance suite: one set of checks, written once over `Arc<dyn Storage>`,
//! run against every adapter (memory, SQLite, PostgreSQL).
//!
//! - Each check is an async function in `suite`; the `conformance!` macro makes one
//!   `#[tokio::test]` per adapter from it: `<check>_memory`, `<check>_sqlite`,
//!   `<check>_postgres`.
//! - SQLite tests use a fresh database file in the temp directory, removed afterwards.
//! - PostgreSQL tests read `FIDELIS_TEST_POSTGRES_URL`. Unset when the tests
//!   are built: they are `#[ignore]`d with that reason (see `tests/build.rs`), so `cargo test`
//!   lists them as ignored. Set: each test creates a schema of its own (`fidelis_test_<random>`) and
//!   connects with `options[search_path]=<schema>`, so tests running in parallel never see
//!   each other's tables; the schema is dropped when the test passes. An unreachable server
//!   fails the test.

#![allow(missing_docs)]

use std::sync::Arc;

use fidelis_core::chrono::{NaiveDate, TimeZone, Utc};
use fidelis_core::config::PoolOptions;
use fidelis_core::query::{CompareOp, Condition, Order, QuerySpec, QueryValue};
use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::store::postgres::PostgresStorage;
use fidelis_core::store::sqlite::SqliteStorage;
use fidelis_core::store::{
    Cursor, ExpectedVersion, GlobalRead, JsonRow, Partition, Row, Storage, StreamAppend,
    TableSchema, TypedRow,
};
use fidelis_core::{
    AnyEvent, Error, EventMetadata, FieldDef, FieldKind, Identifier, Payload, RecordedEvent,
};
use fidelis_example::events::DepositMade;
use serde_json::{Map, Value, json};

mod support;
use support::{ScratchSchema, remove_sqlite_files};

// ---- adapters --------------------------------------------------------------------------

/// Raw access to the database under a storage, for what the port cannot do (corrupt rows).
enum Raw {
    Memory,
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

struct Harness {
    storage: Arc<dyn Storage>,
    raw: Raw,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    File(std::path::PathBuf),
    Schema(ScratchSchema),
}

impl Harness {
    async fn memory() -> Self {
        Self {
            storage: Arc::new(MemoryStorage::new()),
            raw: Raw::Memory,
            cleanup: Cleanup::None,
        }
    }

    async fn sqlite() -> Self {
        let path =
            std::env::temp_dir().join(format!("fidelis-conformance-{}.db", Identifier::generate()));
        let url = format!("sqlite://{}", path.display());
        let storage = SqliteStorage::connect(&url, &PoolOptions::default())
            .await
            .expect("sqlite opens");
        Self {
            raw: Raw::Sqlite(storage.pool().clone()),
            storage: Arc::new(storage),
            cleanup: Cleanup::File(path),
        }
    }

    /// `None` (after saying so) when `FIDELIS_TEST_POSTGRES_URL` is unset.
    async fn postgres(test: &str) -> Option<Self> {
        let scratch = ScratchSchema::create(test).await?;
        let options = PoolOptions {
            max_connections: 5,
            ..PoolOptions::default()
        };
        let storage = PostgresStorage::connect(&scratch.url, &options)
            .await
            .expect("postgres connects");
        Some(Self {
            raw: Raw::Postgres(storage.pool().clone()),
            storage: Arc::new(storage),
            cleanup: Cleanup::Schema(scratch),
        })
    }

    async fn finish(self) {
        drop(self.storage);
        match self.cleanup {
            Cleanup::None => {}
            Cleanup::File(path) => {
                if let Raw::Sqlite(pool) = self.raw {
                    pool.close().await;
                }
                remove_sqlite_files(&path);
            }
            Cleanup::Schema(scratch) => {
                if let Raw::Postgres(pool) = self.raw {
                    pool.close().await;
                }
                scratch.drop_schema().await;
            }
        }
    }
}

/// Generates `<check>_memory`, `<check>_sqlite` and `<check>_postgres` tests from an async
/// check `suite::<check>(&Harness)`. `sql_only` checks skip memory (they test SQL itself).
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[tokio::test]
            async fn memory() {
                let harness = Harness::memory().await;
                suite::$check(&harness).await;
                harness.finish().await;
            }
            #[tokio::test]
            async fn sqlite() {
                let harness = Harness::sqlite().await;
                suite::$check(&harness).await;
                harness.finish().await;
            }
            #[cfg_attr(not(fidelis_postgres), ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests")]
            #[tokio::test]
            async fn postgres() {
                let Some(harness) = Harness::postgres(concat!(stringify!($check), "::postgres")).await else { return };
                suite::$check(&harness).await;
                harness.finish().await;
            }
        }
    )*};
}

macro_rules! conformance_sql {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[tokio::test]
            async fn sqlite() {
                let harness = Harness::sqlite().await;
                suite::$check(&harness).await;
                harness.finish().await;
            }
            #[cfg_attr(not(fidelis_postgres), ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests")]
            #[tokio::test]
            async fn postgres() {
                let Some(harness) = Harness::postgres(concat!(stringify!($check), "::postgres")).await else { return };
                suite::$check(&harness).await;
                harness.finish().await;
            }
        }
    )*};
}

conformance!(
    append_with_expected_version,
    read_stream_from_a_version,
    global_order_and_cursor_paging,
    read_categories_by_partition,
    documents_put_get_remove,
    document_expected_version,
    query_operators,
    query_order_and_paging,
    rollback_on_drop,
    commit_makes_writes_visible,
    setup_is_idempotent,
    unique_value_taken_by_a_committed_row,
    unique_values_within_one_transaction,
    unique_value_raced_by_two_writers,
    typed_rows_put_get,
    visit_stream_lends_events_in_order,
    long_streams_read_whole,
    typed_payloads_are_kept_or_encoded_once,
    append_all_orders_every_stream_of_a_unit,
    append_all_conflicts_store_nothing_of_the_unit,
);
conformance_sql!(
    drift_is_reported,
    bad_names_are_rejected,
    corrupt_event_rows_are_serialization_errors,
    events_table_of_the_previous_version_is_upgraded,
);

// ---- fixtures --------------------------------------------------------------------------

const ROWS: &[FieldDef] = &[
    FieldDef {
        identifier: true,
        ..FieldDef::new("id", FieldKind::Identifier, "Identifier")
    },
    FieldDef {
        max_length: Some(50),
        ..FieldDef::new("name", FieldKind::String, "String")
    },
    FieldDef::new("balance", FieldKind::Float, "f64"),
    FieldDef {
        required: false,
        ..FieldDef::new("rank", FieldKind::Integer, "Option<i64>")
    },
    FieldDef::new("active", FieldKind::Boolean, "bool"),
    FieldDef {
        required: false,
        ..FieldDef::new("opened", FieldKind::DateTime, "Option<DateTime<Utc>>")
    },
    FieldDef {
        required: false,
        ..FieldDef::new("day", FieldKind::Date, "Option<NaiveDate>")
    },
    FieldDef {
        required: false,
        ..FieldDef::new("tags", FieldKind::List, "Option<Vec<String>>")
    },
    FieldDef {
        required: false,
        unique: true,
        ..FieldDef::new("code", FieldKind::String, "Option<String>")
    },
];

const TABLE: TableSchema = TableSchema {
    name: "conformance_rows",
    element: "ConformanceRow",
    fields: ROWS,
    identifier: "id",
    former_name: None,
    indexes: &[],
};

fn event(type_name: &str, data: Value) -> RecordedEvent {
    RecordedEvent {
        metadata: EventMetadata {
            id: Identifier::generate(),
            type_name: type_name.to_owned(),
            stream: String::new(),
            version: 0,
            global_position: 0,
            commit: 0,
            time: Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(),
            correlation_id: Identifier::new("correlation-1"),
            causation_id: Some(Identifier::new("cause-1")),
            priority: Default::default(),
            extensions: Default::default(),
        },
        payload: Payload::json(&data),
    }
}

fn events(n: usize) -> Vec<RecordedEvent> {
    (0..n)
        .map(|i| event("Test.Happened.v1", json!({ "n": i })))
        .collect()
}

async fn append(
    storage: &dyn Storage,
    stream: &str,
    expected: ExpectedVersion,
    n: usize,
) -> fidelis_core::Result<Vec<EventMetadata>> {
    let mut transaction = storage.begin().await?;
    let stored = transaction.append(stream, expected, events(n)).await?;
    transaction.commit().await?;
    Ok(stored)
}

fn row(id: &str, fields: Value) -> JsonRow {
    let Value::Object(mut data) = fields else {
        panic!("rows are objects")
    };
    data.insert("id".into(), json!(id));
    JsonRow {
        id: id.to_owned(),
        version: 1,
        data,
    }
}

async fn put(storage: &dyn Storage, documents: Vec<JsonRow>) {
    let mut transaction = storage.begin().await.unwrap();
    for document in documents {
        transaction
            .put_json_row(TABLE.name, document, None)
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();
}

/// The fields of a stored row with nulls dropped (memory keeps absent fields absent, SQL
/// returns every column).
fn present(data: &Map<String, Value>) -> Map<String, Value> {
    data.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn ids(documents: &[JsonRow]) -> Vec<&str> {
    documents.iter().map(|d| d.id.as_str()).collect()
}

fn compare(field: &'static str, op: CompareOp, value: QueryValue) -> Condition {
    Condition::Compare { field, op, value }
}

fn filtered(conditions: Vec<Condition>) -> QuerySpec {
    QuerySpec {
        filters: conditions,
        ..QuerySpec::default()
    }
}

// ---- the checks ------------------------------------------------------------------------

mod suite {
    use super::*;

    /// A row of `TABLE` with a `code` (the unique field), or none.
    fn coded(id: &str, code: Option<&str>) -> JsonRow {
        row(
            id,
            json!({ "name": id, "balance": 1.0, "active": true, "code": code }),
        )
    }

    /// The error of a write that takes a unique value: `invalid ConformanceRow: code: is
    /// already taken`, a validation error on the field.
    fn assert_taken(result: fidelis_core::Result<()>) {
        let error = result.expect_err("the value is taken");
        let errors = error
            .as_validation()
            .unwrap_or_else(|| panic!("a validation error, got {error:?}"));
        assert_eq!(
            errors.messages()["code"],
            vec!["is already taken"],
            "{error}"
        );
        assert_eq!(errors.len(), 1, "{error}");
        assert!(
            matches!(&error, Error::Validation { element, .. } if element == "ConformanceRow"),
            "{error:?}"
        );
    }

    async fn codes(storage: &dyn Storage) -> Vec<(String, Option<String>)> {
        let mut rows: Vec<(String, Option<String>)> = storage
            .query(TABLE.name, &QuerySpec::default())
            .await
            .unwrap()
            .into_iter()
            .map(|d| {
                let code = d
                    .data
                    .get("code")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                (d.id, code)
            })
            .collect();
        rows.sort();
        rows
    }

    fn expected(rows: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        rows.iter()
            .map(|(id, code)| ((*id).to_owned(), code.map(str::to_owned)))
            .collect()
    }

    pub async fn unique_value_taken_by_a_committed_row(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        put(storage, vec![coded("a", Some("X")), coded("n1", None)]).await;

        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(TABLE.name, coded("other", Some("Y")), None)
            .await
            .unwrap();
        assert_taken(
            transaction
                .put_json_row(TABLE.name, coded("b", Some("X")), None)
                .await,
        );
        drop(transaction);
        // Nothing of the failed transaction was stored.
        assert_eq!(
            codes(storage).await,
            expected(&[("a", Some("X")), ("n1", None)])
        );

        // A row rewritten with its own value does not conflict with itself; absent values
        // never conflict; a typed row (`put_row`) is checked like a document.
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(TABLE.name, coded("a", Some("X")), None)
            .await
            .unwrap();
        transaction
            .put_json_row(TABLE.name, coded("n2", None), None)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        let mut transaction = storage.begin().await.unwrap();
        let typed = json!({ "id": "c", "name": "c", "balance": 1.0, "active": true, "code": "X" });
        assert_taken(
            transaction
                .put_row(TABLE.name, "c".to_owned(), Arc::new(typed))
                .await,
        );
        drop(transaction);
        assert_eq!(
            codes(storage).await,
            expected(&[("a", Some("X")), ("n1", None), ("n2", None)])
        );
    }

    pub async fn unique_values_within_one_transaction(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        put(storage, vec![coded("a", Some("A")), coded("b", Some("B"))]).await;

        // Two rows of one transaction with the same value conflict.
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(TABLE.name, coded("c", Some("C")), None)
            .await
            .unwrap();
        assert_taken(
            transaction
                .put_json_row(TABLE.name, coded("d", Some("C")), None)
                .await,
        );
        drop(transaction);

        // A value given up earlier in the transaction (changed, or its row removed) can be
        // taken by another row of it.
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(TABLE.name, coded("a", Some("A2")), None)
            .await
            .unwrap();
        transaction
            .put_json_row(TABLE.name, coded("e", Some("A")), None)
            .await
            .unwrap();
        transaction.remove_row(TABLE.name, "b").await.unwrap();
        transaction
            .put_json_row(TABLE.name, coded("f", Some("B")), None)
            .await
            .unwrap();
        // A value changed twice frees the first one too.
        transaction
            .put_json_row(TABLE.name, coded("g", Some("G1")), None)
            .await
            .unwrap();
        transaction
            .put_json_row(TABLE.name, coded("g", Some("G2")), None)
            .await
            .unwrap();
        transaction
            .put_json_row(TABLE.name, coded("h", Some("G1")), None)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        assert_eq!(
            codes(storage).await,
            expected(&[
                ("a", Some("A2")),
                ("e", Some("A")),
                ("f", Some("B")),
                ("g", Some("G2")),
                ("h", Some("G1")),
            ])
        );

        // After the commit, the values freed and taken are as stored.
        let mut transaction = storage.begin().await.unwrap();
        assert_taken(
            transaction
                .put_json_row(TABLE.name, coded("i", Some("G2")), None)
                .await,
        );
        drop(transaction);
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(TABLE.name, coded("i", Some("G1x")), None)
            .await
            .unwrap();
        assert_taken(
            transaction
                .put_json_row(TABLE.name, coded("j", Some("A")), None)
                .await,
        );
    }

    pub async fn unique_value_raced_by_two_writers(h: &Harness) {
        let storage = h.storage.clone();
        storage.setup(&[TABLE]).await.unwrap();
        // The first writer holds the value, uncommitted.
        let mut first = storage.begin().await.unwrap();
        first
            .put_json_row(TABLE.name, coded("first", Some("R")), None)
            .await
            .unwrap();
        // The second writer starts meanwhile (it waits where the adapter makes it wait: for
        // the transaction on SQLite, for the row's index entry on PostgreSQL; on memory it
        // waits for nothing and is refused at its write or its commit, whichever comes after
        // the first commit).
        let second = tokio::spawn({
            let storage = storage.clone();
            async move {
                let mut transaction = storage.begin().await?;
                transaction
                    .put_json_row(TABLE.name, coded("second", Some("R")), None)
                    .await?;
                transaction.commit().await
            }
        });
        first.commit().await.unwrap();
        assert_taken(second.await.unwrap());
        assert_eq!(
            codes(storage.as_ref()).await,
            expected(&[("first", Some("R"))])
        );
    }

    /// A row's fields, whichever form the adapter gave it back in.
    fn fields_of(row: Row) -> Map<String, Value> {
        match row {
            Row::Typed(row) => row.to_json().expect("a typed row has JSON"),
            Row::Json(row) => row.data,
        }
    }

    pub async fn typed_rows_put_get(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        let first = json!({ "id": "t1", "name": "One", "balance": 1.5, "active": true });
        let second = json!({ "id": "t1", "name": "One", "balance": 2.5, "active": false });
        let as_map = |value: &Value| value.as_object().cloned().expect("an object");

        let mut transaction = storage.begin().await.unwrap();
        let typed: Arc<dyn TypedRow> = Arc::new(first.clone());
        transaction
            .put_row(TABLE.name, "t1".to_owned(), typed)
            .await
            .unwrap();
        // The transaction sees its own typed write; nothing else does before the commit.
        let seen = transaction.get_row(TABLE.name, "t1").await.unwrap();
        assert_eq!(present(&fields_of(seen.expect("written"))), as_map(&first));
        assert!(
            transaction
                .get_row(TABLE.name, "t2")
                .await
                .unwrap()
                .is_none()
        );
        assert!(storage.get_row(TABLE.name, "t1").await.unwrap().is_none());
        transaction.commit().await.unwrap();

        let stored = storage
            .get_row(TABLE.name, "t1")
            .await
            .unwrap()
            .expect("committed");
        if matches!(h.raw, Raw::Memory) {
            // Memory keeps the value it was given: no round trip through JSON.
            assert!(
                matches!(&stored, Row::Typed(row) if row.as_any().downcast_ref::<Value>() == Some(&first)),
                "{stored:?}"
            );
        }
        assert_eq!(present(&fields_of(stored)), as_map(&first));
        let json = storage
            .get_json_row(TABLE.name, "t1")
            .await
            .unwrap()
            .expect("committed");
        assert_eq!(
            (json.id.as_str(), present(&json.data)),
            ("t1", as_map(&first))
        );
        let found = storage
            .query(TABLE.name, &QuerySpec::default())
            .await
            .unwrap();
        assert_eq!(ids(&found), ["t1"]);

        // Putting again replaces the row; removing it removes it.
        let mut transaction = storage.begin().await.unwrap();
        let typed: Arc<dyn TypedRow> = Arc::new(second.clone());
        transaction
            .put_row(TABLE.name, "t1".to_owned(), typed)
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        let stored = storage
            .get_row(TABLE.name, "t1")
            .await
            .unwrap()
            .expect("kept");
        assert_eq!(present(&fields_of(stored)), as_map(&second));
        assert_eq!(
            storage
                .count(TABLE.name, &QuerySpec::default())
                .await
                .unwrap(),
            1
        );

        let mut transaction = storage.begin().await.unwrap();
        transaction.remove_row(TABLE.name, "t1").await.unwrap();
        assert!(
            transaction
                .get_row(TABLE.name, "t1")
                .await
                .unwrap()
                .is_none()
        );
        transaction.commit().await.unwrap();
        assert!(storage.get_row(TABLE.name, "t1").await.unwrap().is_none());
    }

    /// Streams longer than one read's page (the SQL stores read 1,000 events at a time),
    /// with a page boundary at the end and in the middle: every event, once, in order.
    pub async fn long_streams_read_whole(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        for (stream, n) in [("acme::account-1", 2_000), ("acme::account-2", 2_345)] {
            append(storage, stream, ExpectedVersion::Exact(-1), n)
                .await
                .unwrap();
            for from in [0, 999, 1_000, 1_500] {
                let versions: Vec<i64> = storage
                    .read_stream(stream, from)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| e.metadata.version)
                    .collect();
                assert_eq!(
                    versions,
                    (from..n as i64).collect::<Vec<_>>(),
                    "{stream} from {from}"
                );
                let mut visited = Vec::new();
                let count = storage
                    .visit_stream(stream, from, &mut |event: &RecordedEvent| {
                        visited.push(event.metadata.version);
                        Ok(())
                    })
                    .await
                    .unwrap();
                assert_eq!((count, visited), (versions.len(), versions));
            }
        }
    }

    pub async fn visit_stream_lends_events_in_order(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        append(storage, "acme::account-1", ExpectedVersion::Exact(-1), 3)
            .await
            .unwrap();
        append(storage, "acme::account-2", ExpectedVersion::Exact(-1), 1)
            .await
            .unwrap();

        let visit = |from: i64| async move {
            let mut seen = Vec::new();
            let visited = storage
                .visit_stream("acme::account-1", from, &mut |event: &RecordedEvent| {
                    seen.push(event.clone());
                    Ok(())
                })
                .await
                .unwrap();
            assert_eq!(visited, seen.len());
            seen
        };
        // What a visit lends is what a read returns, in version order.
        let all = visit(0).await;
        assert_eq!(
            all,
            storage.read_stream("acme::account-1", 0).await.unwrap()
        );
        assert_eq!(
            all.iter()
                .map(|e| (e.metadata.version, e.data().unwrap()))
                .collect::<Vec<_>>(),
            [
                (0, json!({ "n": 0 })),
                (1, json!({ "n": 1 })),
                (2, json!({ "n": 2 }))
            ]
        );
        assert_eq!(visit(1).await, all[1..].to_vec());
        assert!(visit(5).await.is_empty());
        let missing = storage
            .visit_stream("acme::account-404", 0, &mut |_: &RecordedEvent| {
                panic!("a missing stream has no events")
            })
            .await
            .unwrap();
        assert_eq!(missing, 0);

        // The visitor's error ends the visit and is returned.
        let mut calls = 0;
        let result = storage
            .visit_stream("acme::account-1", 0, &mut |event: &RecordedEvent| {
                calls += 1;
                if event.metadata.version == 1 {
                    return Err(Error::storage("enough"));
                }
                Ok(())
            })
            .await;
        assert!(
            matches!(&result, Err(Error::Storage { message, .. }) if message.contains("enough")),
            "{result:?}"
        );
        assert_eq!(calls, 2);
    }

    pub async fn typed_payloads_are_kept_or_encoded_once(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        let deposit = DepositMade {
            account_id: Identifier::new("acc-1"),
            amount: "10.50".parse().unwrap(),
            reference: Some("paycheck \"june\"".to_owned()),
        };
        let typed: Arc<dyn AnyEvent> = Arc::new(deposit.clone());
        let RecordedEvent { metadata, .. } = event("Test.DepositMade.v1", json!({}));
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .append(
                "acme::account-1",
                ExpectedVersion::Exact(-1),
                vec![RecordedEvent {
                    metadata,
                    payload: Payload::Typed(typed.clone()),
                }],
            )
            .await
            .unwrap();
        transaction.commit().await.unwrap();

        let stored = storage.read_stream("acme::account-1", 0).await.unwrap();
        let [stored] = stored.as_slice() else {
            panic!("one event, got {stored:?}")
        };
        match (&h.raw, &stored.payload) {
            // Memory lends the event it was given: no JSON on either side.
            (Raw::Memory, Payload::Typed(kept)) => assert!(Arc::ptr_eq(kept, &typed)),
            (Raw::Sqlite(_) | Raw::Postgres(_), Payload::Encoded(text)) => assert_eq!(
                serde_json::from_str::<Value>(text.get()).unwrap(),
                serde_json::to_value(&deposit).unwrap()
            ),
            (_, payload) => panic!("unexpected payload {payload:?}"),
        }
        assert_eq!(stored.decode::<DepositMade>().unwrap(), deposit);
        assert_eq!(
            stored.data().unwrap(),
            serde_json::to_value(&deposit).unwrap()
        );
        // Text that is not a `DepositMade` is a serialization error naming the event.
        let mut wrong = stored.clone();
        wrong.payload = Payload::json(&json!({ "amount": "ten" }));
        let error = wrong.decode::<DepositMade>().expect_err("not a deposit");
        assert!(
            matches!(&error, Error::Serialization { what, .. } if what.contains("acme::account-1")),
            "{error:?}"
        );
        // Stored text that names a field twice is refused, not read as its last value.
        wrong.payload = Payload::Encoded(
            serde_json::value::RawValue::from_string(
                r#"{"account_id":"a","amount":"1","amount":"1000000","reference":null}"#.to_owned(),
            )
            .unwrap(),
        );
        let error = wrong
            .decode::<DepositMade>()
            .expect_err("a field given twice");
        assert!(
            error.to_string().contains("duplicate field `amount`"),
            "{error}"
        );
    }

    pub async fn append_with_expected_version(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        let stored = append(storage, "acme::account-1", ExpectedVersion::Exact(-1), 2)
            .await
            .unwrap();
        assert_eq!(stored.iter().map(|e| e.version).collect::<Vec<_>>(), [0, 1]);
        assert!(stored.iter().all(|e| e.stream == "acme::account-1"));

        let stored = append(storage, "acme::account-1", ExpectedVersion::Exact(1), 1)
            .await
            .unwrap();
        assert_eq!(stored[0].version, 2);

        for expected in [-1, 1, 5] {
            match append(
                storage,
                "acme::account-1",
                ExpectedVersion::Exact(expected),
                1,
            )
            .await
            {
                Err(Error::VersionConflict {
                    stream,
                    expected: e,
                    actual,
                }) => {
                    assert_eq!(
                        (stream.as_str(), e, actual),
                        ("acme::account-1", expected, 2)
                    );
                }
                other => panic!("expected a version conflict for {expected}, got {other:?}"),
            }
        }
        let stored = append(storage, "acme::account-1", ExpectedVersion::Any, 1)
            .await
            .unwrap();
        assert_eq!(stored[0].version, 3);
        assert_eq!(storage.stream_version("acme::account-1").await.unwrap(), 3);
        assert_eq!(
            storage.stream_version("acme::account-404").await.unwrap(),
            -1
        );
        assert!(
            storage
                .read_stream("acme::account-404", 0)
                .await
                .unwrap()
                .is_empty()
        );
    }

    fn stream_append(stream: &str, expected: ExpectedVersion, n: usize) -> StreamAppend {
        StreamAppend {
            stream: stream.to_owned(),
            expected,
            events: events(n),
        }
    }

    /// Enough events over several streams to take more than one `INSERT` on SQLite (3,000
    /// events each), a stream named twice, and one with events from before.
    pub async fn append_all_orders_every_stream_of_a_unit(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        append(storage, "acme::account-2", ExpectedVersion::Exact(-1), 2)
            .await
            .unwrap();
        // PostgreSQL readers of the global order wait for older transactions to end.
        storage.settle().await.unwrap();
        let before = storage.read_all(Cursor::START, 10).await.unwrap();
        let appends = vec![
            stream_append("acme::account-1", ExpectedVersion::Exact(-1), 2_000),
            stream_append("acme::account-2", ExpectedVersion::Exact(1), 1_500),
            stream_append("acme::ledger-1", ExpectedVersion::Any, 3),
            // Goes on from the first append to the stream, as a second `append` would.
            stream_append("acme::account-1", ExpectedVersion::Exact(1_999), 2),
        ];
        let mut transaction = storage.begin().await.unwrap();
        let stored = transaction.append_all(appends).await.unwrap();
        transaction.commit().await.unwrap();

        let lengths: Vec<usize> = stored.iter().map(Vec::len).collect();
        assert_eq!(lengths, [2_000, 1_500, 3, 2]);
        let versions =
            |index: usize| -> Vec<i64> { stored[index].iter().map(|e| e.version).collect() };
        assert_eq!(versions(0), (0..2_000).collect::<Vec<_>>());
        assert_eq!(versions(1), (2..1_502).collect::<Vec<_>>());
        assert_eq!(versions(2), [0, 1, 2]);
        assert_eq!(versions(3), [2_000, 2_001]);
        let stored: Vec<&EventMetadata> = stored.iter().flatten().collect();
        assert!(
            stored
                .windows(2)
                .all(|pair| pair[0].global_position < pair[1].global_position),
            "positions follow the order of the appends"
        );
        if matches!(h.raw, Raw::Postgres(_)) {
            assert!(
                stored.iter().all(|e| e.commit == stored[0].commit),
                "one transaction: one commit"
            );
        } else {
            assert!(stored.iter().all(|e| e.commit == e.global_position));
            // One writer: gapless, after the events of before.
            let first = before[1].metadata.global_position + 1;
            assert!(
                stored
                    .iter()
                    .zip(first..)
                    .all(|(e, p)| e.global_position == p)
            );
        }

        // What the store reads back is what the append returned, in the global order too.
        storage.settle().await.unwrap();
        let all = storage
            .read_all(before[1].metadata.cursor(), 10_000)
            .await
            .unwrap();
        assert_eq!(all.len(), stored.len());
        for (read, stored) in all.iter().zip(&stored) {
            assert_eq!(&read.metadata, *stored);
            assert_eq!(read.metadata.correlation_id.as_str(), "correlation-1");
            assert_eq!(
                read.metadata.causation_id.as_ref().map(|id| id.as_str()),
                Some("cause-1")
            );
        }
        let account = storage.read_stream("acme::account-1", 0).await.unwrap();
        assert_eq!(account.len(), 2_002);
        assert!(
            account
                .iter()
                .zip(0..)
                .all(|(e, v)| e.metadata.version == v)
        );
        assert_eq!(
            storage.stream_version("acme::account-2").await.unwrap(),
            1_501
        );
        assert_eq!(storage.stream_version("acme::ledger-1").await.unwrap(), 2);
    }

    fn assert_conflict(
        result: fidelis_core::Result<()>,
        expected_stream: &str,
        versions: (i64, i64),
    ) {
        match result {
            Err(Error::VersionConflict {
                stream,
                expected,
                actual,
            }) => assert_eq!(
                (stream.as_str(), expected, actual),
                (expected_stream, versions.0, versions.1)
            ),
            other => panic!("expected a version conflict on {expected_stream}, got {other:?}"),
        }
    }

    /// A conflict on any stream of an `append_all` fails it, and nothing of the unit is
    /// stored: found before the insert (the stream had moved), or by the database while
    /// inserting (another writer took the version meanwhile).
    pub async fn append_all_conflicts_store_nothing_of_the_unit(h: &Harness) {
        let storage = h.storage.clone();
        storage.setup(&[]).await.unwrap();
        append(
            storage.as_ref(),
            "acme::account-2",
            ExpectedVersion::Exact(-1),
            1,
        )
        .await
        .unwrap();
        let attempt = async {
            let mut transaction = storage.begin().await?;
            transaction
                .append_all(vec![
                    stream_append("acme::account-1", ExpectedVersion::Exact(-1), 2),
                    stream_append("acme::account-2", ExpectedVersion::Exact(-1), 1),
                    stream_append("acme::ledger-1", ExpectedVersion::Any, 1),
                ])
                .await?;
            transaction.commit().await
        };
        assert_conflict(attempt.await, "acme::account-2", (-1, 0));

        // The first writer holds version 0 of `account-3`, uncommitted; the second reads the
        // stream as empty (PostgreSQL) and its insert waits for the first, or it waits at
        // its start (SQLite), or is refused at its commit (memory).
        let mut first = storage.begin().await.unwrap();
        first
            .append_all(vec![stream_append(
                "acme::account-3",
                ExpectedVersion::Exact(-1),
                1,
            )])
            .await
            .unwrap();
        let (committed, first_committed) = tokio::sync::oneshot::channel::<()>();
        let second = tokio::spawn({
            let storage = storage.clone();
            async move {
                let mut transaction = storage.begin().await?;
                transaction
                    .append_all(vec![
                        stream_append("acme::account-4", ExpectedVersion::Exact(-1), 2),
                        stream_append("acme::account-3", ExpectedVersion::Exact(-1), 1),
                    ])
                    .await?;
                // Memory waits for nothing: it commits after the first, as the others do.
                let _ = first_committed.await;
                transaction.commit().await
            }
        });
        // Let the second writer reach its insert before the first commits.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        first.commit().await.unwrap();
        let _ = committed.send(());
        assert_conflict(second.await.unwrap(), "acme::account-3", (-1, 0));

        for stream in ["acme::account-1", "acme::ledger-1", "acme::account-4"] {
            assert!(
                storage.read_stream(stream, 0).await.unwrap().is_empty(),
                "nothing of the failed unit is stored in {stream}"
            );
        }
        assert_eq!(storage.stream_version("acme::account-2").await.unwrap(), 0);
        assert_eq!(storage.stream_version("acme::account-3").await.unwrap(), 0);
        storage.settle().await.unwrap();
        let all = storage.read_all(Cursor::START, 100).await.unwrap();
        assert_eq!(all.len(), 2, "the two committed events, nothing else");
    }

    pub async fn read_stream_from_a_version(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        append(storage, "acme::account-1", ExpectedVersion::Exact(-1), 3)
            .await
            .unwrap();
        append(storage, "acme::account-2", ExpectedVersion::Exact(-1), 1)
            .await
            .unwrap();
        append(storage, "acme::account-1", ExpectedVersion::Exact(2), 2)
            .await
            .unwrap();

        let all = storage.read_stream("acme::account-1", 0).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.metadata.version).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            all.iter()
                .map(|e| e.data().unwrap()["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            [0, 1, 2, 0, 1]
        );
        let first = &all[0];
        assert_eq!(first.metadata.type_name, "Test.Happened.v1");
        assert_eq!(first.metadata.category(), "acme::account");
        assert_eq!(first.metadata.correlation_id.as_str(), "correlation-1");
        assert_eq!(
            first.metadata.causation_id.as_ref().map(Identifier::as_str),
            Some("cause-1")
        );
        assert_eq!(
            first.metadata.time,
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
        );

        let tail = storage.read_stream("acme::account-1", 3).await.unwrap();
        assert_eq!(
            tail.iter().map(|e| e.metadata.version).collect::<Vec<_>>(),
            [3, 4]
        );
        assert_eq!(tail, all[3..].to_vec());
        assert!(
            storage
                .read_stream("acme::account-1", 5)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// The positions of events.
    fn positions(events: &[RecordedEvent]) -> Vec<i64> {
        events.iter().map(|e| e.metadata.global_position).collect()
    }

    /// Interleaved streams of two categories (a stream id with a dash stays in its category)
    /// and a rolled-back append; returns every event in global order.
    async fn interleaved(storage: &dyn Storage) -> Vec<RecordedEvent> {
        storage.setup(&[]).await.unwrap();
        let streams = [
            "acme::account-1",
            "acme::ledger-1",
            "acme::account-2-b",
            "acme::account-1",
        ];
        let mut expected_version = [-1_i64, -1, -1, 1];
        for (stream, expected) in streams.iter().zip(expected_version.iter_mut()) {
            append(storage, stream, ExpectedVersion::Exact(*expected), 2)
                .await
                .unwrap();
        }
        {
            let mut transaction = storage.begin().await.unwrap();
            transaction
                .append("acme::ledger-2", ExpectedVersion::Exact(-1), events(3))
                .await
                .unwrap();
        }
        append(storage, "acme::ledger-2", ExpectedVersion::Exact(-1), 1)
            .await
            .unwrap();
        storage.settle().await.unwrap();
        storage.read_all(Cursor::START, 1_000).await.unwrap()
    }

    pub async fn global_order_and_cursor_paging(h: &Harness) {
        let storage = h.storage.as_ref();
        let all = interleaved(storage).await;
        assert_eq!(all.len(), 9);
        let cursors: Vec<Cursor> = all.iter().map(|e| e.metadata.cursor()).collect();
        assert!(
            cursors.windows(2).all(|pair| pair[0] < pair[1]),
            "cursors increase: {cursors:?}"
        );
        if matches!(h.raw, Raw::Postgres(_)) {
            // A sequence: the rolled-back append left a gap, and positions still increase
            // within a transaction.
            assert!(positions(&all).windows(2).all(|p| p[0] < p[1]));
        } else {
            // One writer: positions are gapless, and they are the commit order.
            assert_eq!(positions(&all), (1..=9).collect::<Vec<_>>());
            assert!(
                all.iter()
                    .all(|e| e.metadata.commit == e.metadata.global_position)
            );
        }
        if matches!(h.raw, Raw::Postgres(_)) {
            // One transaction's events share its commit, in the order appended.
            assert_eq!(all[0].metadata.commit, all[1].metadata.commit);
        }
        assert!(all[1].metadata.commit < all[2].metadata.commit);
        assert_eq!(storage.head().await.unwrap(), cursors[8]);

        let mut batched = Vec::new();
        let mut after = Cursor::START;
        loop {
            let batch = storage.read_all(after, 2).await.unwrap();
            assert!(batch.len() <= 2);
            let Some(last) = batch.last() else { break };
            after = last.metadata.cursor();
            batched.extend(batch);
        }
        assert_eq!(batched, all);
        // Strictly after the cursor.
        assert_eq!(
            storage.read_all(cursors[2], 3).await.unwrap(),
            all[3..6].to_vec()
        );
        assert!(storage.read_all(cursors[8], 5).await.unwrap().is_empty());

        let accounts = storage
            .read_category("acme::account", Cursor::START, 1_000)
            .await
            .unwrap();
        let expected: Vec<RecordedEvent> =
            [0, 1, 4, 5, 6, 7].iter().map(|&i| all[i].clone()).collect();
        assert_eq!(accounts, expected);
        assert!(
            accounts
                .iter()
                .all(|e| e.metadata.category() == "acme::account")
        );
        let page = storage
            .read_category("acme::account", cursors[0], 3)
            .await
            .unwrap();
        assert_eq!(page, expected[1..4].to_vec());
        let page = storage
            .read_category("acme::account", cursors[5], 3)
            .await
            .unwrap();
        assert_eq!(page, expected[4..].to_vec());
        let ledgers = storage
            .read_category("acme::ledger", Cursor::START, 10)
            .await
            .unwrap();
        assert_eq!(
            ledgers,
            vec![all[2].clone(), all[3].clone(), all[8].clone()]
        );
        assert!(
            storage
                .read_category("acme::nothing", Cursor::START, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn read_categories_by_partition(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        assert_eq!(storage.head().await.unwrap(), Cursor::START);
        for i in 0..24 {
            let category = ["acme::account", "acme::ledger", "acme::other"][i % 3];
            append(
                storage,
                &format!("{category}-{i}"),
                ExpectedVersion::Exact(-1),
                2,
            )
            .await
            .unwrap();
        }
        storage.settle().await.unwrap();
        let all = storage.read_all(Cursor::START, 1_000).await.unwrap();
        let wanted: Vec<RecordedEvent> = all
            .iter()
            .filter(|e| e.metadata.category() != "acme::other")
            .cloned()
            .collect();
        let categories = ["acme::ledger", "acme::account"];
        let read = |after, limit, partition| GlobalRead {
            categories: &categories,
            after,
            limit,
            partition,
        };
        assert_eq!(
            storage
                .read_categories(&read(Cursor::START, 1_000, None))
                .await
                .unwrap(),
            wanted
        );
        // Paged by cursor.
        let mut paged = Vec::new();
        let mut after = Cursor::START;
        loop {
            let page = storage
                .read_categories(&read(after, 5, None))
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = last.metadata.cursor();
            paged.extend(page);
        }
        assert_eq!(paged, wanted);
        // Three partitions: disjoint, each whole streams, together everything, each in order.
        let mut union = Vec::new();
        for index in 0..3 {
            let partition = Partition { index, count: 3 };
            let part = storage
                .read_categories(&read(Cursor::START, 1_000, Some(partition)))
                .await
                .unwrap();
            assert!(!part.is_empty(), "24 streams fill each of 3 partitions");
            assert!(part.iter().all(|e| partition.contains(&e.metadata.stream)));
            assert!(part.iter().all(|e| {
                fidelis_core::store::stream_hash(&e.metadata.stream).rem_euclid(3)
                    == i64::from(index)
            }));
            let cursors: Vec<Cursor> = part.iter().map(|e| e.metadata.cursor()).collect();
            assert!(cursors.windows(2).all(|pair| pair[0] < pair[1]));
            union.extend(part);
        }
        union.sort_by_key(|e| e.metadata.cursor());
        assert_eq!(
            union, wanted,
            "the partitions are disjoint and cover every event"
        );
        // One partition is everything.
        assert_eq!(
            storage
                .read_categories(&read(
                    Cursor::START,
                    1_000,
                    Some(Partition { index: 0, count: 1 })
                ))
                .await
                .unwrap(),
            wanted
        );
        assert!(
            storage
                .read_categories(&GlobalRead {
                    categories: &[],
                    after: Cursor::START,
                    limit: 10,
                    partition: None,
                })
                .await
                .unwrap()
                .is_empty()
        );
        let error = storage
            .read_categories(&read(
                Cursor::START,
                10,
                Some(Partition { index: 3, count: 3 }),
            ))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Usage { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("partition 3 of 3 does not exist"),
            "{error}"
        );
        assert_eq!(
            storage.head().await.unwrap(),
            all.last().unwrap().metadata.cursor()
        );
    }

    pub async fn documents_put_get_remove(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        let document = row(
            "r1",
            json!({
                "name": "Ada", "balance": 10.5, "rank": 3, "active": true,
                "opened": "2026-01-02T03:04:05Z", "day": "2026-01-02", "tags": ["a", "b"], "code": null,
            }),
        );
        put(storage, vec![document.clone()]).await;
        let stored = storage
            .get_json_row(TABLE.name, "r1")
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.id, "r1");
        assert_eq!(stored.version, 1);
        assert_eq!(present(&stored.data), present(&document.data));
        assert!(
            storage
                .get_json_row(TABLE.name, "r404")
                .await
                .unwrap()
                .is_none()
        );

        // Replacing keeps one row.
        let replaced = JsonRow {
            version: 2,
            ..row(
                "r1",
                json!({ "name": "Ada L", "balance": 11.0, "active": false }),
            )
        };
        put(storage, vec![replaced.clone()]).await;
        let stored = storage
            .get_json_row(TABLE.name, "r1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.version, present(&stored.data)),
            (2, present(&replaced.data))
        );
        assert_eq!(
            storage
                .count(TABLE.name, &QuerySpec::default())
                .await
                .unwrap(),
            1
        );

        let mut transaction = storage.begin().await.unwrap();
        transaction.remove_row(TABLE.name, "r1").await.unwrap();
        transaction.remove_row(TABLE.name, "r404").await.unwrap();
        assert!(
            transaction
                .get_json_row(TABLE.name, "r1")
                .await
                .unwrap()
                .is_none()
        );
        transaction.commit().await.unwrap();
        assert!(
            storage
                .get_json_row(TABLE.name, "r1")
                .await
                .unwrap()
                .is_none()
        );
    }

    pub async fn document_expected_version(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        let base = json!({ "name": "Ada", "balance": 1.0, "active": true });
        let write = |version: i64, expected: Option<i64>| {
            let document = JsonRow {
                version,
                ..row("r1", base.clone())
            };
            async move {
                let mut transaction = storage.begin().await?;
                transaction
                    .put_json_row(TABLE.name, document, expected)
                    .await?;
                transaction.commit().await
            }
        };
        write(0, Some(-1)).await.unwrap();
        match write(0, Some(-1)).await {
            Err(Error::VersionConflict {
                stream,
                expected,
                actual,
            }) => {
                assert_eq!(
                    (stream.as_str(), expected, actual),
                    ("conformance_rows/r1", -1, 0)
                );
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        write(1, Some(0)).await.unwrap();
        match write(1, Some(0)).await {
            Err(Error::VersionConflict {
                expected, actual, ..
            }) => assert_eq!((expected, actual), (0, 1)),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            storage
                .get_json_row(TABLE.name, "r1")
                .await
                .unwrap()
                .unwrap()
                .version,
            1
        );
        // A conflict inside a transaction leaves its other writes uncommitted.
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(TABLE.name, row("r2", base.clone()), None)
            .await
            .unwrap();
        let conflict = transaction
            .put_json_row(
                TABLE.name,
                JsonRow {
                    version: 9,
                    ..row("r1", base.clone())
                },
                Some(7),
            )
            .await;
        assert!(conflict.unwrap_err().is_version_conflict());
        drop(transaction);
        assert!(
            storage
                .get_json_row(TABLE.name, "r2")
                .await
                .unwrap()
                .is_none()
        );
    }

    async fn query_rows(storage: &dyn Storage) {
        storage.setup(&[TABLE]).await.unwrap();
        put(
            storage,
            vec![
                row("a", json!({ "name": "ACC-1", "balance": 100.0, "rank": 2, "active": true,
                    "opened": "2026-01-01T00:00:00Z", "day": "2026-01-01", "code": "x" })),
                row("b", json!({ "name": "acc-2", "balance": 50.5, "rank": null, "active": false,
                    "opened": "2026-01-01T00:00:00.5Z", "day": "2026-02-01", "tags": ["t"] })),
                row("c", json!({ "name": "ACC_3", "balance": -5.0, "rank": 7, "active": true })),
                row("d", json!({ "name": "100%_off", "balance": 100.0, "rank": 2, "active": false,
                    "opened": "2025-12-31T23:59:59Z" })),
                row("e", json!({ "name": "100x off", "balance": 0.0, "active": true, "day": "2025-06-30" })),
                row("f", json!({ "name": "Zed", "balance": 75.0, "rank": 1, "active": true })),
            ],
        )
        .await;
    }

    pub async fn query_operators(h: &Harness) {
        let storage = h.storage.as_ref();
        query_rows(storage).await;
        let t = |s: &str| QueryValue::Text(s.to_owned());
        let time = |s: &str| QueryValue::Time(s.parse().unwrap());
        let cases: Vec<(&str, Vec<Condition>, Vec<&str>)> = vec![
            (
                "eq float",
                vec![compare("balance", CompareOp::Eq, QueryValue::Float(100.0))],
                vec!["a", "d"],
            ),
            (
                "eq int on float",
                vec![compare("balance", CompareOp::Eq, QueryValue::Int(100))],
                vec!["a", "d"],
            ),
            (
                "eq text",
                vec![compare("name", CompareOp::Eq, t("Zed"))],
                vec!["f"],
            ),
            (
                "ne skips nulls",
                vec![compare("rank", CompareOp::Ne, QueryValue::Int(2))],
                vec!["c", "f"],
            ),
            (
                "lt",
                vec![compare("balance", CompareOp::Lt, QueryValue::Float(50.5))],
                vec!["c", "e"],
            ),
            (
                "le",
                vec![compare("balance", CompareOp::Le, QueryValue::Float(50.5))],
                vec!["b", "c", "e"],
            ),
            (
                "gt",
                vec![compare("rank", CompareOp::Gt, QueryValue::Int(1))],
                vec!["a", "c", "d"],
            ),
            (
                "ge",
                vec![compare("rank", CompareOp::Ge, QueryValue::Int(2))],
                vec!["a", "c", "d"],
            ),
            (
                "text order is by code point",
                vec![compare("name", CompareOp::Lt, t("a"))],
                vec!["a", "c", "d", "e", "f"],
            ),
            (
                "bool",
                vec![compare("active", CompareOp::Eq, QueryValue::Bool(false))],
                vec!["b", "d"],
            ),
            (
                "time gt",
                vec![compare(
                    "opened",
                    CompareOp::Gt,
                    time("2026-01-01T00:00:00Z"),
                )],
                vec!["b"],
            ),
            (
                "time ge",
                vec![compare(
                    "opened",
                    CompareOp::Ge,
                    time("2026-01-01T00:00:00Z"),
                )],
                vec!["a", "b"],
            ),
            (
                "date lt",
                vec![compare(
                    "day",
                    CompareOp::Lt,
                    QueryValue::Date(NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()),
                )],
                vec!["a", "e"],
            ),
            (
                "in",
                vec![Condition::In {
                    field: "rank",
                    values: vec![QueryValue::Int(1), QueryValue::Int(7), QueryValue::Null],
                }],
                vec!["c", "f"],
            ),
            (
                "in text",
                vec![Condition::In {
                    field: "name",
                    values: vec![t("Zed"), t("zed"), t("ACC-1")],
                }],
                vec!["a", "f"],
            ),
            (
                "in nothing",
                vec![Condition::In {
                    field: "rank",
                    values: vec![],
                }],
                vec![],
            ),
            (
                "is null",
                vec![Condition::IsNull {
                    field: "rank",
                    negated: false,
                }],
                vec!["b", "e"],
            ),
            (
                "is not null",
                vec![Condition::IsNull {
                    field: "day",
                    negated: true,
                }],
                vec!["a", "b", "e"],
            ),
            (
                "is null list",
                vec![Condition::IsNull {
                    field: "tags",
                    negated: false,
                }],
                vec!["a", "c", "d", "e", "f"],
            ),
            (
                "starts with",
                vec![Condition::StartsWith {
                    field: "name",
                    prefix: "ACC".into(),
                }],
                vec!["a", "c"],
            ),
            (
                "starts with is case sensitive",
                vec![Condition::StartsWith {
                    field: "name",
                    prefix: "acc".into(),
                }],
                vec!["b"],
            ),
            (
                "starts with _ literally",
                vec![Condition::StartsWith {
                    field: "name",
                    prefix: "ACC_".into(),
                }],
                vec!["c"],
            ),
            (
                "starts with % literally",
                vec![Condition::StartsWith {
                    field: "name",
                    prefix: "100%".into(),
                }],
                vec!["d"],
            ),
            (
                "starts with empty",
                vec![Condition::StartsWith {
                    field: "name",
                    prefix: String::new(),
                }],
                vec!["a", "b", "c", "d", "e", "f"],
            ),
            (
                "and",
                vec![
                    compare("active", CompareOp::Eq, QueryValue::Bool(true)),
                    compare("balance", CompareOp::Ge, QueryValue::Float(75.0)),
                ],
                vec!["a", "f"],
            ),
            (
                "kind mismatch matches nothing",
                vec![compare("balance", CompareOp::Eq, t("100"))],
                vec![],
            ),
        ];
        for (name, conditions, expected) in cases {
            let query = filtered(conditions);
            let found = storage
                .query(TABLE.name, &query)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ids(&found), expected, "{name} on {}", storage.kind());
            assert_eq!(
                storage.count(TABLE.name, &query).await.unwrap(),
                expected.len() as u64,
                "count of {name}"
            );
        }
    }

    pub async fn query_order_and_paging(h: &Harness) {
        let storage = h.storage.as_ref();
        query_rows(storage).await;
        let order = |keys: &[(&'static str, bool)]| QuerySpec {
            order: keys
                .iter()
                .map(|&(field, descending)| Order { field, descending })
                .collect(),
            ..QuerySpec::default()
        };
        let cases: Vec<(&str, QuerySpec, Vec<&str>)> = vec![
            (
                "no order: by id",
                QuerySpec::default(),
                vec!["a", "b", "c", "d", "e", "f"],
            ),
            (
                "asc, ties by id",
                order(&[("balance", false)]),
                vec!["c", "e", "b", "f", "a", "d"],
            ),
            (
                "desc, ties by id",
                order(&[("balance", true)]),
                vec!["a", "d", "f", "b", "e", "c"],
            ),
            (
                "asc nulls last",
                order(&[("rank", false)]),
                vec!["f", "a", "d", "c", "b", "e"],
            ),
            (
                "desc nulls last",
                order(&[("rank", true)]),
                vec!["c", "a", "d", "f", "b", "e"],
            ),
            (
                "text by code point",
                order(&[("name", false)]),
                vec!["d", "e", "a", "c", "f", "b"],
            ),
            (
                "time desc",
                order(&[("opened", true)]),
                vec!["b", "a", "d", "c", "e", "f"],
            ),
            (
                "two keys",
                order(&[("active", false), ("balance", true)]),
                vec!["d", "b", "a", "f", "e", "c"],
            ),
            (
                "limit",
                QuerySpec {
                    limit: Some(2),
                    ..order(&[("balance", true)])
                },
                vec!["a", "d"],
            ),
            (
                "offset",
                QuerySpec {
                    offset: 4,
                    ..order(&[("balance", true)])
                },
                vec!["e", "c"],
            ),
            (
                "limit and offset",
                QuerySpec {
                    limit: Some(2),
                    offset: 1,
                    ..order(&[("rank", false)])
                },
                vec!["a", "d"],
            ),
            (
                "offset past the end",
                QuerySpec {
                    offset: 10,
                    ..QuerySpec::default()
                },
                vec![],
            ),
            (
                "filter, order, page",
                QuerySpec {
                    filters: vec![compare("active", CompareOp::Eq, QueryValue::Bool(true))],
                    limit: Some(2),
                    offset: 1,
                    ..order(&[("balance", true)])
                },
                vec!["f", "e"],
            ),
        ];
        for (name, query, expected) in cases {
            let found = storage
                .query(TABLE.name, &query)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ids(&found), expected, "{name} on {}", storage.kind());
        }
        // Count ignores order and paging.
        let query = QuerySpec {
            limit: Some(1),
            offset: 1,
            ..order(&[("rank", false)])
        };
        assert_eq!(storage.count(TABLE.name, &query).await.unwrap(), 6);
        // Paging through every row in pages of 4 sees each row once.
        let page = |offset| QuerySpec {
            limit: Some(4),
            offset,
            ..order(&[("balance", false)])
        };
        let mut seen = ids(&storage.query(TABLE.name, &page(0)).await.unwrap())
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        seen.extend(
            ids(&storage.query(TABLE.name, &page(4)).await.unwrap())
                .into_iter()
                .map(str::to_owned),
        );
        assert_eq!(seen, ["c", "e", "b", "f", "a", "d"]);
    }

    pub async fn rollback_on_drop(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        append(storage, "acme::account-1", ExpectedVersion::Exact(-1), 1)
            .await
            .unwrap();
        put(
            storage,
            vec![row(
                "keep",
                json!({ "name": "Keep", "balance": 1.0, "active": true }),
            )],
        )
        .await;
        {
            let mut transaction = storage.begin().await.unwrap();
            transaction
                .append("acme::account-1", ExpectedVersion::Exact(0), events(2))
                .await
                .unwrap();
            transaction
                .append("acme::account-2", ExpectedVersion::Exact(-1), events(1))
                .await
                .unwrap();
            transaction
                .put_json_row(
                    TABLE.name,
                    row(
                        "new",
                        json!({ "name": "New", "balance": 2.0, "active": true }),
                    ),
                    None,
                )
                .await
                .unwrap();
            transaction.remove_row(TABLE.name, "keep").await.unwrap();
            // The transaction sees its own writes.
            assert!(
                transaction
                    .get_json_row(TABLE.name, "new")
                    .await
                    .unwrap()
                    .is_some()
            );
            assert!(
                transaction
                    .get_json_row(TABLE.name, "keep")
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        assert_eq!(storage.stream_version("acme::account-1").await.unwrap(), 0);
        assert_eq!(storage.stream_version("acme::account-2").await.unwrap(), -1);
        storage.settle().await.unwrap();
        assert_eq!(storage.read_all(Cursor::START, 100).await.unwrap().len(), 1);
        assert!(
            storage
                .get_json_row(TABLE.name, "new")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            storage
                .get_json_row(TABLE.name, "keep")
                .await
                .unwrap()
                .is_some()
        );
        // The store still works after a rollback.
        let stored = append(storage, "acme::account-1", ExpectedVersion::Exact(0), 1)
            .await
            .unwrap();
        assert_eq!(stored[0].version, 1);
        if matches!(h.raw, Raw::Postgres(_)) {
            // A sequence: the rolled-back positions are not reused.
            assert!(stored[0].global_position > 1, "{stored:?}");
        } else {
            assert_eq!(stored[0].global_position, 2, "{stored:?}");
        }
    }

    pub async fn commit_makes_writes_visible(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_json_row(
                TABLE.name,
                row("r1", json!({ "name": "A", "balance": 1.0, "active": true })),
                None,
            )
            .await
            .unwrap();
        let stored = transaction
            .append("acme::account-9", ExpectedVersion::Exact(-1), events(2))
            .await
            .unwrap();
        assert_eq!(
            stored.iter().map(|e| e.global_position).collect::<Vec<_>>(),
            [1, 2]
        );
        // Appends to the same stream within one transaction run on.
        let more = transaction
            .append("acme::account-9", ExpectedVersion::Exact(1), events(1))
            .await
            .unwrap();
        assert_eq!((more[0].version, more[0].global_position), (2, 3));
        transaction.commit().await.unwrap();
        assert_eq!(
            storage
                .read_stream("acme::account-9", 0)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(
            storage
                .get_json_row(TABLE.name, "r1")
                .await
                .unwrap()
                .is_some()
        );
        let found = storage
            .query(TABLE.name, &QuerySpec::default())
            .await
            .unwrap();
        assert_eq!(ids(&found), ["r1"]);
    }

    pub async fn setup_is_idempotent(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[TABLE]).await.unwrap();
        append(storage, "acme::account-1", ExpectedVersion::Exact(-1), 1)
            .await
            .unwrap();
        put(
            storage,
            vec![row(
                "r1",
                json!({ "name": "A", "balance": 1.0, "active": true }),
            )],
        )
        .await;
        storage.setup(&[TABLE]).await.unwrap();
        storage.setup(&[TABLE]).await.unwrap();
        storage.settle().await.unwrap();
        assert_eq!(storage.read_all(Cursor::START, 10).await.unwrap().len(), 1);
        assert!(
            storage
                .get_json_row(TABLE.name, "r1")
                .await
                .unwrap()
                .is_some()
        );
    }

    async fn execute(h: &Harness, sql: &str) {
        match &h.raw {
            Raw::Memory => unreachable!("SQL checks do not run on memory"),
            Raw::Sqlite(pool) => {
                sqlx::query(sql)
                    .execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Raw::Postgres(pool) => {
                sqlx::query(sql)
                    .execute(pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    pub async fn drift_is_reported(h: &Harness) {
        let storage = h.storage.as_ref();
        // An older version of the table: `rank` is text, `balance` missing, `legacy` NOT NULL,
        // `opened` NOT NULL though optional now, and no `_version`.
        execute(
            h,
            "CREATE TABLE conformance_rows (id TEXT PRIMARY KEY, name TEXT NOT NULL, rank TEXT, active BOOLEAN NOT NULL, \
             opened TEXT NOT NULL, day TEXT, tags TEXT, code TEXT, legacy TEXT NOT NULL)",
        )
        .await;
        let error = storage.setup(&[TABLE]).await.unwrap_err();
        let Error::Configuration { problems } = &error else {
            panic!("expected a configuration error, got {error:?}")
        };
        let text = error.to_string();
        assert!(text.contains("table `conformance_rows` has no column `balance` (field `balance: f64`); add it or drop the table"), "{text}");
        assert!(
            text.contains("column `rank` of table `conformance_rows` is"),
            "{text}"
        );
        assert!(text.contains("has no column `_version`"), "{text}");
        assert!(text.contains("NOT NULL column `legacy`"), "{text}");
        if matches!(h.raw, Raw::Postgres(_)) {
            // TEXT is not TIMESTAMPTZ, DATE or JSONB either.
            assert!(
                text.contains("column `opened` of table `conformance_rows` is text"),
                "{text}"
            );
            assert!(
                text.contains("column `day` of table `conformance_rows` is text"),
                "{text}"
            );
            assert!(
                text.contains("column `tags` of table `conformance_rows` is text"),
                "{text}"
            );
            assert_eq!(problems.len(), 7, "{text}");
        } else {
            assert!(
                text.contains("column `opened` of table `conformance_rows` is NOT NULL"),
                "{text}"
            );
            assert_eq!(problems.len(), 5, "{text}");
        }
        // Nothing was created, and the table stays unusable until fixed.
        assert!(storage.get_json_row(TABLE.name, "x").await.is_err());
    }

    pub async fn bad_names_are_rejected(h: &Harness) {
        let storage = h.storage.as_ref();
        const BAD_FIELDS: &[FieldDef] = &[
            FieldDef {
                identifier: true,
                ..FieldDef::new("id", FieldKind::Identifier, "Identifier")
            },
            FieldDef::new("Bad Name", FieldKind::String, "String"),
            FieldDef::new(
                "x\"; DROP TABLE fidelis_events; --",
                FieldKind::String,
                "String",
            ),
        ];
        let bad = TableSchema {
            name: "Rows",
            element: "Row",
            fields: BAD_FIELDS,
            identifier: "id",
            former_name: None,
            indexes: &[],
        };
        let error = storage.setup(&[bad]).await.unwrap_err();
        let Error::Configuration { problems } = &error else {
            panic!("expected a configuration error, got {error:?}")
        };
        assert_eq!(problems.len(), 3, "{error}");
        assert!(
            error
                .to_string()
                .contains("table name `Rows` cannot be used in SQL"),
            "{error}"
        );
        // Nothing was touched.
        storage.setup(&[]).await.unwrap();
        assert!(
            storage
                .read_all(Cursor::START, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // A table that was never set up is a configuration error, not an SQL error.
        let error = storage
            .query("never_set_up", &QuerySpec::default())
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Configuration { .. }), "{error}");
    }

    /// An events table as the previous version made it (no `stream_hash`; on PostgreSQL no
    /// `transaction_id` either, and positions without a default) is upgraded by `setup`: its
    /// events keep their order, and new ones follow them.
    pub async fn events_table_of_the_previous_version_is_upgraded(h: &Harness) {
        let storage = h.storage.as_ref();
        let postgres = matches!(h.raw, Raw::Postgres(_));
        let (table, index) = if postgres {
            (
                "CREATE TABLE fidelis_events (global_position BIGINT PRIMARY KEY, \
                 id TEXT NOT NULL, stream TEXT NOT NULL, category TEXT NOT NULL, version BIGINT NOT NULL, \
                 type_name TEXT NOT NULL, data JSON NOT NULL, metadata JSONB NOT NULL, time TIMESTAMPTZ NOT NULL, \
                 UNIQUE (stream, version))",
                "CREATE INDEX fidelis_events_category ON fidelis_events (category, global_position)",
            )
        } else {
            (
                "CREATE TABLE fidelis_events (global_position INTEGER PRIMARY KEY, \
                 id TEXT NOT NULL, stream TEXT NOT NULL, category TEXT NOT NULL, version BIGINT NOT NULL, \
                 type_name TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, time TEXT NOT NULL, \
                 UNIQUE (stream, version))",
                "CREATE INDEX fidelis_events_category ON fidelis_events (category, global_position)",
            )
        };
        execute(h, table).await;
        execute(h, index).await;
        let time = if postgres {
            "now()"
        } else {
            "'2026-01-01T00:00:00.000000000Z'"
        };
        for (position, stream, version) in [
            (1, "acme::account-1", 0),
            (2, "acme::ledger-1", 0),
            (3, "acme::account-1", 1),
        ] {
            let category = stream.split('-').next().unwrap();
            execute(
                h,
                &format!(
                    "INSERT INTO fidelis_events (global_position, id, stream, category, version, type_name, data, metadata, time) \
                     VALUES ({position}, 'old-{position}', '{stream}', '{category}', {version}, 'Test.Happened.v1', \
                     '{{\"n\": {position}}}', '{{\"correlation_id\": \"c\"}}', {time})"
                ),
            )
            .await;
        }
        storage
            .setup(&[])
            .await
            .expect("setup upgrades the events table");
        storage
            .setup(&[])
            .await
            .expect("setup is idempotent after an upgrade");
        let old = storage.read_all(Cursor::START, 10).await.unwrap();
        assert_eq!(positions(&old), [1, 2, 3]);
        let commits: Vec<i64> = old.iter().map(|e| e.metadata.commit).collect();
        assert_eq!(commits, if postgres { [0, 0, 0] } else { [1, 2, 3] });
        assert_eq!(old[2].data().unwrap(), json!({ "n": 3 }));

        let new = append(storage, "acme::account-1", ExpectedVersion::Exact(1), 2)
            .await
            .unwrap();
        assert_eq!(
            positions_of(&new),
            [4, 5],
            "positions go on from the last one"
        );
        storage.settle().await.unwrap();
        let all = storage.read_all(Cursor::START, 10).await.unwrap();
        assert_eq!(positions(&all), [1, 2, 3, 4, 5]);
        assert_eq!(
            storage
                .read_all(old[2].metadata.cursor(), 10)
                .await
                .unwrap(),
            all[3..].to_vec()
        );
        // The old streams' hashes were filled in: partitions still hold whole streams.
        let categories = ["acme::account", "acme::ledger"];
        let mut union = Vec::new();
        for index in 0..2 {
            let partition = Partition { index, count: 2 };
            let part = storage
                .read_categories(&GlobalRead {
                    categories: &categories,
                    after: Cursor::START,
                    limit: 10,
                    partition: Some(partition),
                })
                .await
                .unwrap();
            assert!(part.iter().all(|e| partition.contains(&e.metadata.stream)));
            union.extend(part);
        }
        union.sort_by_key(|e| e.metadata.cursor());
        assert_eq!(union, all);
    }

    fn positions_of(stored: &[EventMetadata]) -> Vec<i64> {
        stored.iter().map(|e| e.global_position).collect()
    }

    pub async fn corrupt_event_rows_are_serialization_errors(h: &Harness) {
        let storage = h.storage.as_ref();
        storage.setup(&[]).await.unwrap();
        append(storage, "acme::account-1", ExpectedVersion::Exact(-1), 1)
            .await
            .unwrap();
        let (bad_data, bad_metadata) = match h.raw {
            // SQLite keeps JSON as text: it can hold malformed JSON.
            Raw::Sqlite(_) => ("'{not json'", "'{\"correlation_id\": \"c\"}'"),
            // JSONB only holds valid JSON: corrupt the metadata's shape instead.
            _ => ("'{}'", "'{\"correlation_id\": 5}'"),
        };
        let time = if matches!(h.raw, Raw::Sqlite(_)) {
            "'2026-01-01T00:00:00Z'"
        } else {
            "now()"
        };
        // On PostgreSQL, under the first event's commit, so it follows it in global order.
        let (commit_column, commit) = if matches!(h.raw, Raw::Postgres(_)) {
            (
                "transaction_id, ",
                "(SELECT MAX(transaction_id) FROM fidelis_events), ",
            )
        } else {
            ("", "")
        };
        execute(
            h,
            &format!(
                "INSERT INTO fidelis_events (global_position, {commit_column}id, stream, stream_hash, category, version, type_name, data, metadata, time) \
                 VALUES (2, {commit}'e2', 'acme::account-1', 0, 'acme::account', 1, 'Test.Happened.v1', {bad_data}, {bad_metadata}, {time})"
            ),
        )
        .await;
        storage.settle().await.unwrap();
        let error = storage.read_stream("acme::account-1", 0).await.unwrap_err();
        assert!(matches!(error, Error::Serialization { .. }), "{error:?}");
        let text = error.to_string();
        assert!(
            text.contains("acme::account-1") && text.contains("global position 2"),
            "{text}"
        );
        for result in [
            storage.read_all(Cursor::START, 10).await,
            storage
                .read_category("acme::account", Cursor::START, 10)
                .await,
        ] {
            let text = result.unwrap_err().to_string();
            assert!(
                text.contains("acme::account-1") && text.contains("global position 2"),
                "{text}"
            );
        }
        // Reads before the corrupt row still work.
        assert_eq!(storage.read_all(Cursor::START, 1).await.unwrap().len(), 1);
        if let Raw::Sqlite(_) = h.raw {
            execute(h, "UPDATE fidelis_events SET data = '{}', time = 'yesterday' WHERE global_position = 2").await;
            let text = storage
                .read_stream("acme::account-1", 1)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("global position 2") && text.contains("`time`"),
                "{text}"
            );
        }
    }
}

// ---- configuration errors --------------------------------------------------------------

#[tokio::test]
async fn unreachable_postgres_names_the_url_without_its_password() {
    let options = PoolOptions {
        connect_timeout: std::time::Duration::from_secs(5),
        acquire_timeout: std::time::Duration::from_secs(2),
        ..PoolOptions::default()
    };
    let error = fidelis_core::config::connect_with(
        "postgres://fidelis:hunter2@127.0.0.1:1/nowhere",
        &options,
    )
    .await
    .err()
    .expect("nothing listens on port 1");
    let text = error.to_string();
    assert!(
        text.contains("postgres://fidelis:***@127.0.0.1:1/nowhere"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn sqlite_in_a_missing_directory_is_a_clear_error() {
    let error = fidelis_core::config::connect("sqlite:///nonexistent-dir/fidelis.db")
        .await
        .err()
        .expect("cannot create");
    let text = error.to_string();
    assert!(matches!(error, Error::Storage { .. }), "{text}");
    assert!(
        text.contains("sqlite:///nonexistent-dir/fidelis.db"),
        "{text}"
    );
}

#[tokio::test]
async fn sqlite_memory_url_works() {
    let storage = fidelis_core::config::connect("sqlite::memory:")
        .await
        .unwrap();
    assert_eq!(storage.kind(), "sqlite");
    storage.setup(&[TABLE]).await.unwrap();
    append(
        storage.as_ref(),
        "acme::account-1",
        ExpectedVersion::Exact(-1),
        2,
    )
    .await
    .unwrap();
    assert_eq!(
        storage
            .read_stream("acme::account-1", 0)
            .await
            .unwrap()
            .len(),
        2
    );
}
