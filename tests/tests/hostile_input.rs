//! Property tests: decoding never panics, whatever the bytes. Untrusted command JSON, stored
//! events whose data or type was changed behind the store's back, and projection rows holding
//! values of the wrong kind each give `Ok` or a clear `Err`, never a panic, and the domain
//! keeps working afterwards.

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::store::{ExpectedVersion, Storage};
use fidelis_core::{EventMetadata, Payload, RecordedEvent};
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value};

mod support;
use support::Backend;
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Any JSON value, nested a few levels, with the keys the ledger's elements use mixed in so
/// that decoding gets past "unknown field" often.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("ledger_id".to_owned()),
        Just("amount".to_owned()),
        Just("holder".to_owned()),
        Just("tags".to_owned()),
        Just("opening_deposit".to_owned()),
        "\\PC{0,6}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        "[0-9.eE+-]{1,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

#[test]
fn command_json_never_panics() {
    runner(512)
        .run(
            &(json(), "\\PC{0,40}", any::<Vec<u8>>()),
            |(value, text, bytes)| {
                let as_text = value.to_string();
                let lossy = String::from_utf8_lossy(&bytes).into_owned();
                for input in [&as_text, &text, &lossy] {
                    let _ = Credit::from_json(input);
                    let _ = OpenLedger::from_json(input);
                    let _ = OpenAccount::from_json(input);
                    let _ = MakeDeposit::from_json(input);
                }
                let _ = Credit::from_value(value.clone());
                let _ = MakeDeposit::from_value(value);
                Ok(())
            },
        )
        .unwrap();
}

fn stored_event(type_name: String, data: Value) -> RecordedEvent {
    RecordedEvent {
        metadata: EventMetadata {
            id: Identifier::generate(),
            type_name,
            stream: String::new(),
            version: 0,
            global_position: 0,
            commit: 0,
            time: Utc::now(),
            correlation_id: Identifier::generate(),
            causation_id: None,
            priority: Default::default(),
            extensions: Default::default(),
        },
        payload: Payload::json(&data),
    }
}

async fn append_raw(storage: &dyn Storage, stream: &str, event: RecordedEvent) {
    let mut transaction = storage.begin().await.unwrap();
    transaction
        .append(stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

/// Appends a hostile event after a real history, then loads the aggregate and runs a command
/// on it: each may fail, none may panic, and other ledgers are unaffected.
fn stored_events_never_panic(backend: Backend, cases: u32) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let domain =
        runtime.block_on(backend.build(Domain::builder("hostile").discover_crate(module_path!())));
    let healthy = runtime.block_on(domain.process(OpenLedger {
        holder: "healthy".into(),
        tags: serde_json::json!({}),
    }));
    let healthy = healthy.unwrap();
    let type_name = prop_oneof![
        Just("Hostile.Credited.v1".to_owned()),
        Just("Hostile.Debited.v1".to_owned()),
        Just("Hostile.LedgerOpened.v1".to_owned()),
        "\\PC{0,20}",
    ];
    runner(cases)
        .run(&(type_name, json()), |(type_name, data)| {
            runtime.block_on(async {
                let id = domain
                    .process(OpenLedger {
                        holder: "victim".into(),
                        tags: serde_json::json!({}),
                    })
                    .await
                    .unwrap();
                let stream = domain.event_store().stream_of::<Ledger>(&id).unwrap();
                append_raw(
                    domain.storage_unchecked().as_ref(),
                    &stream,
                    stored_event(type_name, data),
                )
                .await;
                let _ = domain.repository::<Ledger>().get(&id).await;
                let _ = domain
                    .process(Credit {
                        ledger_id: id,
                        amount: 1,
                    })
                    .await;
                let _ = domain
                    .event_store()
                    .read_all(fidelis_core::Cursor::START)
                    .await;
                domain
                    .process(Credit {
                        ledger_id: healthy.clone(),
                        amount: 1,
                    })
                    .await
                    .expect("other ledgers keep working");
            });
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{}: {failure}", backend.url()));
    runtime.block_on(backend.finish());
}

#[test]
fn stored_events_never_panic_in_memory() {
    stored_events_never_panic(Backend::Memory(MemoryStorage::new()), 256);
}

#[test]
fn stored_events_never_panic_on_sqlite() {
    let backend = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(Backend::sqlite())
        .unwrap();
    stored_events_never_panic(backend, 64);
}

/// Writes arbitrary text or numbers into a SQLite projection row's columns (SQLite columns
/// take any value) and reads the rows back every way a user can.
#[test]
fn stored_rows_never_panic_on_sqlite() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(Backend::sqlite()).unwrap();
    let (domain, pool) = runtime.block_on(async {
        let domain = Domain::builder("hostile")
            .discover_crate(module_path!())
            .database(backend.url())
            .build()
            .await
            .unwrap();
        let pool = sqlx::SqlitePool::connect(&backend.url()).await.unwrap();
        (domain, pool)
    });
    let value = prop_oneof![
        "\\PC{0,16}".prop_map(|text| (Some(text), None, None)),
        any::<i64>().prop_map(|int| (None, Some(int), None)),
        any::<f64>().prop_map(|float| (None, None, Some(float))),
        Just((None, None, None)),
    ];
    let column = prop_oneof![Just("holder"), Just("balance"), Just("ledger_id")];
    runner(128)
        .run(&(column, value), |(column, (text, int, float))| {
            runtime.block_on(async {
                let id = domain
                    .process(OpenLedger {
                        holder: "row".into(),
                        tags: serde_json::json!({}),
                    })
                    .await
                    .unwrap();
                let sql = format!("UPDATE hostile_ledger_row SET {column} = ? WHERE ledger_id = ?");
                let query = sqlx::query(&sql);
                let query = match (text, int, float) {
                    (Some(text), _, _) => query.bind(text),
                    (_, Some(int), _) => query.bind(int),
                    (_, _, Some(float)) => query.bind(float),
                    _ => query.bind(None::<String>),
                };
                // A NULL identifier or a duplicate key is refused by the table itself.
                let _ = query.bind(id.as_str()).execute(&pool).await;
                let _ = domain.repository::<LedgerRow>().get(&id).await;
                let _ = domain.repository::<LedgerRow>().query().all().await;
                let _ = domain.repository::<LedgerRow>().query().count().await;
                let _ = domain
                    .process(Credit {
                        ledger_id: id,
                        amount: 1,
                    })
                    .await;
            });
            Ok(())
        })
        .unwrap();
    runtime.block_on(async {
        pool.close().await;
        backend.finish().await;
    });
}
