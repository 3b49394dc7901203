//! The system tables (`fidelis_core::store::system`) on every adapter: `setup` creates them,
//! every row type round-trips exactly through a transaction, is found by a query on its
//! fields, is replaced and removed; rows written in a transaction that is dropped are not
//! stored; `setup` creates the indexes the tables declare (again on a second `setup`, and
//! refuses an index on a column that is not a field); and a domain whose own table would
//! take a system table's name is refused by `build`.

#![allow(missing_docs)]

use fidelis_core::chrono::{DateTime, TimeZone, Utc};
use fidelis_core::prelude::*;
use fidelis_core::query::QuerySpec;
use fidelis_core::store::system::{
    self, Checkpoint, CommandLogEntry, DeadLetter, IdempotencyKey, Lease, OutboxMessage,
    QueuedCommand, Snapshot, SystemRow,
};
use fidelis_core::store::{Storage, TableSchema};
use fidelis_core::{FieldDef, FieldKind};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};

on_every_adapter!(
    every_system_row_round_trips,
    queries_find_rows_by_field,
    dropped_transactions_write_no_system_rows,
    setup_creates_the_declared_indexes,
);

/// A time with whole microseconds: what every adapter keeps of a time.
fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_780_000_000 + seconds, 123_456_000)
        .single()
        .expect("a valid time")
}

async fn storage(backend: &Backend) -> (Domain, std::sync::Arc<dyn Storage>) {
    let domain = backend
        .build(Domain::builder("system").without_discovery())
        .await;
    let storage = domain.storage_unchecked().clone();
    (domain, storage)
}

/// Writes `row` in its own transaction, reads it back (committed and in a new transaction),
/// then replaces it with `changed` and removes it.
async fn round_trip<R: SystemRow + PartialEq + std::fmt::Debug>(
    storage: &dyn Storage,
    row: R,
    changed: R,
) {
    let table = R::TABLE.name;
    let mut transaction = storage.begin().await.unwrap();
    system::put(transaction.as_mut(), row.clone())
        .await
        .unwrap();
    assert_eq!(
        system::get_in::<R>(transaction.as_mut(), row.id())
            .await
            .unwrap()
            .as_ref(),
        Some(&row),
        "{table}: the transaction sees its own write"
    );
    transaction.commit().await.unwrap();
    assert_eq!(
        system::get::<R>(storage, row.id()).await.unwrap().as_ref(),
        Some(&row),
        "{table}: committed row"
    );

    let mut transaction = storage.begin().await.unwrap();
    system::put(transaction.as_mut(), changed.clone())
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(
        system::get::<R>(storage, row.id()).await.unwrap().as_ref(),
        Some(&changed),
        "{table}: replaced row"
    );

    let mut transaction = storage.begin().await.unwrap();
    system::remove::<R>(transaction.as_mut(), row.id())
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    assert_eq!(
        system::get::<R>(storage, row.id()).await.unwrap(),
        None,
        "{table}: removed row"
    );
}

fn checkpoint(subscription: &str, partition: i64, position: i64) -> Checkpoint {
    Checkpoint {
        id: Checkpoint::key(subscription, partition),
        subscription: subscription.to_owned(),
        partition,
        commit: position,
        position,
        updated_at: at(position),
    }
}

async fn every_system_row_round_trips(backend: &Backend) {
    let (_domain, storage) = storage(backend).await;
    let storage = storage.as_ref();

    let first = checkpoint("AccountSummaryProjector", 0, 41);
    let moved = Checkpoint {
        commit: i64::MAX,
        position: 9_007_199_254_740_993, // not exact as an f64
        ..first.clone()
    };
    round_trip(storage, first, moved).await;

    let lease = Lease {
        id: Checkpoint::key("Notifier", 3),
        subscription: "Notifier".to_owned(),
        partition: 3,
        owner: "engine-1@host".to_owned(),
        token: 1,
        expires_at: at(10),
    };
    let taken_over = Lease {
        owner: "engine-2@host".to_owned(),
        token: 2,
        expires_at: at(20),
        ..lease.clone()
    };
    round_trip(storage, lease, taken_over).await;

    let snapshot = Snapshot {
        id: "bank::account-1".to_owned(),
        aggregate: "Account".to_owned(),
        version: 99,
        last_event_id: "evt-99".to_owned(),
        state: json!({"balance": "1500.10", "holder": "Zoë ✓", "tags": [1, 2.5, null]}),
        taken_at: at(1),
    };
    let later = Snapshot {
        version: 199,
        state: json!({"balance": "0.00", "nested": {"deep": [{"x": 1}]}}),
        ..snapshot.clone()
    };
    round_trip(storage, snapshot, later).await;

    let dead = DeadLetter {
        id: "Notifier/evt-7".to_owned(),
        subscription: "Notifier".to_owned(),
        partition: 0,
        event_id: "evt-7".to_owned(),
        stream: "bank::account-1".to_owned(),
        version: 7,
        type_name: "Bank.DepositMade.v1".to_owned(),
        commit: 70,
        position: 71,
        error: "handler Notifier::on_deposit failed: smtp: connection refused\n  caused by: os error 111".to_owned(),
        attempts: 5,
        first_failed_at: at(1),
        last_failed_at: at(30),
    };
    let retried = DeadLetter {
        attempts: 6,
        last_failed_at: at(60),
        ..dead.clone()
    };
    round_trip(storage, dead, retried).await;

    let message = OutboxMessage {
        id: "evt-8".to_owned(),
        domain: "bank".to_owned(),
        stream: "bank::account-1".to_owned(),
        version: 8,
        position: 80,
        type_name: "Bank.DepositMade.v1".to_owned(),
        data: json!({"amount": "10.00"}),
        metadata: json!({"correlation_id": "c-1"}),
        created_at: at(2),
        claimed_by: None,
        claimed_until: None,
        attempts: 0,
        last_error: None,
    };
    let published = OutboxMessage {
        claimed_by: Some("host:1:abcd".to_owned()),
        claimed_until: Some(at(3)),
        attempts: 1,
        last_error: Some("redis: timed out".to_owned()),
        ..message.clone()
    };
    round_trip(storage, message, published).await;

    let command = CommandLogEntry {
        id: "cmd-1".to_owned(),
        domain: "bank".to_owned(),
        type_name: "Bank.Deposit".to_owned(),
        data: json!({"amount": "10.00", "account_id": "a-1"}),
        correlation_id: "c-1".to_owned(),
        causation_id: None,
        priority: "normal".to_owned(),
        extensions: json!({}),
        events: vec!["evt-8".to_owned()],
        received_at: at(4),
        processed_at: at(4),
    };
    let caused = CommandLogEntry {
        causation_id: Some("evt-8".to_owned()),
        priority: "bulk".to_owned(),
        extensions: json!({"tenant": "acme"}),
        events: Vec::new(),
        processed_at: at(5),
        ..command.clone()
    };
    round_trip(storage, command, caused).await;

    let queued = QueuedCommand {
        id: "cmd-2".to_owned(),
        domain: "bank".to_owned(),
        type_name: "Bank.Deposit".to_owned(),
        data: json!({"amount": "10.00", "account_id": "a-1"}),
        correlation_id: "cmd-2".to_owned(),
        causation_id: None,
        priority: "bulk".to_owned(),
        extensions: json!({"tenant": "acme"}),
        idempotency_key: Some("client-key-1".to_owned()),
        submitted_at: at(5),
        status: QueuedCommand::QUEUED.to_owned(),
    };
    let dead = QueuedCommand {
        status: QueuedCommand::DEAD.to_owned(),
        ..queued.clone()
    };
    round_trip(storage, queued, dead).await;

    let key = IdempotencyKey {
        id: "client-key-1".to_owned(),
        command_id: "cmd-1".to_owned(),
        type_name: "Bank.Deposit".to_owned(),
        created_at: at(6),
    };
    let retaken = IdempotencyKey {
        command_id: "cmd-2".to_owned(),
        ..key.clone()
    };
    round_trip(storage, key, retaken).await;
}

async fn queries_find_rows_by_field(backend: &Backend) {
    let (_domain, storage) = storage(backend).await;
    let mut transaction = storage.begin().await.unwrap();
    for (subscription, partition, position) in [("A", 0, 5), ("B", 0, 7), ("A", 2, 3), ("A", 1, 9)]
    {
        system::put(
            transaction.as_mut(),
            checkpoint(subscription, partition, position),
        )
        .await
        .unwrap();
    }
    transaction.commit().await.unwrap();

    let query = QuerySpec {
        filters: vec![system::field_eq("subscription", "A".to_owned())],
        order: vec![system::order_by("partition", false)],
        ..QuerySpec::default()
    };
    let partitions: Vec<(i64, i64)> = system::query::<Checkpoint>(storage.as_ref(), &query)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.partition, row.position))
        .collect();
    assert_eq!(partitions, vec![(0, 5), (1, 9), (2, 3)]);
}

async fn dropped_transactions_write_no_system_rows(backend: &Backend) {
    let (_domain, storage) = storage(backend).await;
    let mut transaction = storage.begin().await.unwrap();
    system::put(transaction.as_mut(), checkpoint("A", 0, 1))
        .await
        .unwrap();
    drop(transaction);
    assert_eq!(
        system::get::<Checkpoint>(storage.as_ref(), &Checkpoint::key("A", 0))
            .await
            .unwrap(),
        None
    );
}

/// A projection whose table, in a domain named `fidelis`, would be `fidelis_checkpoints`.
#[projection]
pub struct Checkpoints {
    #[field(identifier)]
    pub id: Identifier,
}

/// One whose table would be the events table.
#[projection]
pub struct Events {
    #[field(identifier)]
    pub id: Identifier,
}

#[tokio::test]
async fn a_domain_table_with_a_reserved_name_is_refused() {
    let built = Domain::builder("fidelis")
        .without_discovery()
        .register::<Checkpoints>()
        .register::<Events>()
        .database("memory")
        .build()
        .await;
    let Err(error) = built else {
        panic!("reserved table names are refused");
    };
    let message = error.to_string();
    assert!(
        message.contains(
            "`Checkpoints`'s table would be `fidelis_checkpoints`, a table Fidelis keeps for itself"
        ),
        "{message}"
    );
    assert!(
        message.contains("`Events`'s table would be `fidelis_events`"),
        "{message}"
    );
}

/// The columns of an index as the database describes it (`None`: no such index).
async fn index_columns(backend: &Backend, index: &str) -> Option<Vec<String>> {
    let definition: Option<String> = match backend {
        Backend::Memory(_) => unreachable!("no indexes on memory"),
        Backend::Sqlite(_) => {
            let pool = sqlx::SqlitePool::connect(&backend.url()).await.unwrap();
            let sql = "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?";
            let found = sqlx::query_scalar(sql)
                .bind(index)
                .fetch_optional(&pool)
                .await
                .unwrap();
            pool.close().await;
            found
        }
        Backend::Postgres(_) => {
            let pool = sqlx::PgPool::connect(&backend.url()).await.unwrap();
            let sql = "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1";
            let found = sqlx::query_scalar(sql)
                .bind(index)
                .fetch_optional(&pool)
                .await
                .unwrap();
            pool.close().await;
            found
        }
    };
    // `… ON <table> [USING btree] (<columns>)`: the columns, without quotes.
    let definition = definition?;
    let columns = definition.rsplit_once('(')?.1.trim_end_matches(')');
    Some(
        columns
            .split(", ")
            .map(|column| column.trim_matches('"').to_owned())
            .collect(),
    )
}

async fn setup_creates_the_declared_indexes(backend: &Backend) {
    let (_domain, storage) = storage(backend).await;
    if backend.is_memory() {
        return;
    }
    // A second setup finds them there.
    storage.setup(&system::schemas()).await.unwrap();
    for (index, columns) in [
        (
            "fidelis_outbox_domain_position_idx",
            &["domain", "position"][..],
        ),
        ("fidelis_commands_correlation_id_idx", &["correlation_id"]),
        (
            "fidelis_subscriber_messages_domain_subscriber_status_idx",
            &["domain", "subscriber", "status"],
        ),
    ] {
        assert_eq!(
            index_columns(backend, index).await.as_deref(),
            Some(
                &columns
                    .iter()
                    .map(|column| (*column).to_owned())
                    .collect::<Vec<_>>()[..]
            ),
            "{index} on {}",
            backend.url()
        );
    }
    let mut declared = 0;
    for table in system::schemas() {
        declared += table.indexes.len();
    }
    assert_eq!(declared, 3, "a new index gets a line above");

    // An index must name fields of its table.
    const FIELDS: &[FieldDef] = &[FieldDef {
        identifier: true,
        ..FieldDef::new("id", FieldKind::String, "String")
    }];
    let bad = TableSchema {
        name: "indexed_rows",
        element: "IndexedRow",
        fields: FIELDS,
        identifier: "id",
        former_name: None,
        indexes: &[&["id", "missing"], &[]],
    };
    let error = storage.setup(&[bad]).await.unwrap_err().to_string();
    assert!(
        error.contains(
            "the index on (id, missing) of table `indexed_rows` names `missing`, which is not one of its fields"
        ) && error.contains("an index of table `indexed_rows` has no columns"),
        "{error}"
    );
}
