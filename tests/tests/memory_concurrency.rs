//! The memory store under concurrency: a transaction holds no lock while it runs, so units of
//! work overlap, and what they relied on is checked when they commit (stream versions, row
//! versions, rows read then written, unique values).
//!
//! Timeouts here only detect a hang (a transaction that blocks others); they never measure
//! speed.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fidelis_core::prelude::*;
use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::store::{ExpectedVersion, JsonRow, Storage, TableSchema, Transaction, TypedRow};
use fidelis_core::{DomainBuilder, EventMetadata, FieldDef, FieldKind, Payload, RecordedEvent};
use fidelis_example::alerts::ComplianceDesk;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::events::DepositMade;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::timeout;

/// Long enough that only a hang reaches it.
const HANG: Duration = Duration::from_secs(10);

// ---- storage-level checks ---------------------------------------------------------------

const FIELDS: &[FieldDef] = &[
    FieldDef {
        identifier: true,
        ..FieldDef::new("id", FieldKind::Identifier, "Identifier")
    },
    FieldDef {
        required: false,
        unique: true,
        ..FieldDef::new("code", FieldKind::String, "Option<String>")
    },
];

const TABLE: TableSchema = TableSchema {
    name: "concurrency_rows",
    element: "ConcurrencyRow",
    fields: FIELDS,
    identifier: "id",
    former_name: None,
    indexes: &[],
};

async fn store() -> Arc<MemoryStorage> {
    let storage = Arc::new(MemoryStorage::new());
    storage.setup(&[TABLE]).await.expect("setup");
    storage
}

fn events(n: usize) -> Vec<RecordedEvent> {
    (0..n)
        .map(|n| RecordedEvent {
            metadata: EventMetadata {
                id: Identifier::generate(),
                type_name: "Test.Happened.v1".to_owned(),
                stream: String::new(),
                version: 0,
                global_position: 0,
                commit: 0,
                time: fidelis_core::chrono::Utc::now(),
                correlation_id: Identifier::generate(),
                causation_id: None,
                priority: Default::default(),
                extensions: Default::default(),
            },
            payload: Payload::json(&json!({ "n": n })),
        })
        .collect()
}

fn row(id: &str, code: Option<&str>, version: i64) -> JsonRow {
    let Value::Object(data) = json!({ "id": id, "code": code }) else {
        unreachable!("an object literal")
    };
    JsonRow {
        id: id.to_owned(),
        version,
        data,
    }
}

async fn begin(storage: &MemoryStorage) -> Box<dyn Transaction> {
    storage.begin().await.expect("begin")
}

/// `(stream, version, position)` of every stored event, in global order.
async fn log(storage: &MemoryStorage) -> Vec<(String, i64, i64)> {
    storage
        .read_all(Cursor::START, usize::MAX)
        .await
        .expect("read_all")
        .into_iter()
        .map(|e| {
            (
                e.metadata.stream,
                e.metadata.version,
                e.metadata.global_position,
            )
        })
        .collect()
}

fn assert_conflict(result: Result<()>, on: &str, expected: i64, actual: i64) {
    match result {
        Err(Error::VersionConflict {
            stream,
            expected: e,
            actual: a,
        }) => assert_eq!((stream.as_str(), e, a), (on, expected, actual)),
        other => panic!("expected a version conflict on {on}, got {other:?}"),
    }
}

#[tokio::test]
async fn transactions_on_different_streams_are_open_at_once_and_both_commit() {
    let storage = store().await;
    let mut first = begin(&storage).await;
    let mut second = begin(&storage).await;
    first
        .append("t::a-1", ExpectedVersion::Exact(-1), events(2))
        .await
        .unwrap();
    second
        .append("t::a-2", ExpectedVersion::Exact(-1), events(1))
        .await
        .unwrap();
    // Positions follow the commit order, without gaps.
    second.commit().await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(
        log(&storage).await,
        [
            ("t::a-2".to_owned(), 0, 1),
            ("t::a-1".to_owned(), 0, 2),
            ("t::a-1".to_owned(), 1, 3),
        ]
    );
}

#[tokio::test]
async fn the_second_commit_on_a_stream_conflicts_with_its_actual_version() {
    let storage = store().await;
    let mut setup = begin(&storage).await;
    setup
        .append("t::a-1", ExpectedVersion::Exact(-1), events(1))
        .await
        .unwrap();
    setup.commit().await.unwrap();

    let mut first = begin(&storage).await;
    let mut second = begin(&storage).await;
    // Both see version 0 when they append: the early check passes for both.
    first
        .append("t::a-1", ExpectedVersion::Exact(0), events(2))
        .await
        .unwrap();
    second
        .append("t::a-1", ExpectedVersion::Exact(0), events(1))
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert_conflict(second.commit().await, "t::a-1", 0, 2);
    assert_eq!(storage.stream_version("t::a-1").await.unwrap(), 2);
    assert_eq!(log(&storage).await.len(), 3);
}

#[tokio::test]
async fn appends_without_expected_version_run_on_from_the_committed_version() {
    let storage = store().await;
    let mut first = begin(&storage).await;
    let mut second = begin(&storage).await;
    first
        .append("t::s-1", ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    second
        .append("t::s-1", ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    first.commit().await.unwrap();
    second.commit().await.unwrap();
    assert_eq!(
        log(&storage).await,
        [
            ("t::s-1".to_owned(), 0, 1),
            ("t::s-1".to_owned(), 1, 2),
            ("t::s-1".to_owned(), 2, 3),
        ]
    );
}

#[tokio::test]
async fn an_open_transaction_blocks_no_reader_and_no_other_writer() {
    let storage = store().await;
    let mut open = begin(&storage).await;
    open.append("t::a-1", ExpectedVersion::Exact(-1), events(1))
        .await
        .unwrap();
    open.put_json_row(TABLE.name, row("r1", Some("X"), 1), None)
        .await
        .unwrap();
    let others = async {
        assert!(
            storage
                .read_all(Cursor::START, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(storage.stream_version("t::a-1").await.unwrap(), -1);
        assert!(
            storage
                .get_json_row(TABLE.name, "r1")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            storage
                .count(TABLE.name, &fidelis_core::query::QuerySpec::default())
                .await
                .unwrap(),
            0
        );
        let mut other = begin(&storage).await;
        other
            .append("t::b-1", ExpectedVersion::Exact(-1), events(1))
            .await
            .unwrap();
        other
            .put_json_row(TABLE.name, row("r2", None, 1), None)
            .await
            .unwrap();
        other.commit().await.unwrap();
    };
    timeout(HANG, others)
        .await
        .expect("an open transaction blocked another");
    open.commit().await.unwrap();
    assert_eq!(
        log(&storage).await,
        [("t::b-1".to_owned(), 0, 1), ("t::a-1".to_owned(), 0, 2)]
    );
}

#[tokio::test]
async fn a_unique_value_taken_by_a_concurrent_commit_is_refused_at_commit() {
    let storage = store().await;
    let mut first = begin(&storage).await;
    let mut second = begin(&storage).await;
    first
        .put_json_row(TABLE.name, row("a", Some("X"), 1), None)
        .await
        .unwrap();
    // Neither sees the other's uncommitted value.
    second
        .put_json_row(TABLE.name, row("b", Some("X"), 1), None)
        .await
        .unwrap();
    first.commit().await.unwrap();
    let error = second.commit().await.expect_err("the value is taken");
    let errors = error
        .as_validation()
        .unwrap_or_else(|| panic!("a validation error, got {error:?}"));
    assert_eq!(
        errors.messages()["code"],
        vec!["is already taken"],
        "{error}"
    );
    assert!(
        storage
            .get_json_row(TABLE.name, "b")
            .await
            .unwrap()
            .is_none()
    );

    // A value given up by a concurrent commit is free at commit.
    let mut third = begin(&storage).await;
    let mut fourth = begin(&storage).await;
    third
        .put_json_row(TABLE.name, row("a", Some("Y"), 2), None)
        .await
        .unwrap();
    third.commit().await.unwrap();
    fourth
        .put_json_row(TABLE.name, row("c", Some("X"), 1), None)
        .await
        .unwrap();
    fourth.commit().await.unwrap();
}

#[tokio::test]
async fn a_row_version_is_checked_again_at_commit() {
    let storage = store().await;
    let mut setup = begin(&storage).await;
    setup
        .put_json_row(TABLE.name, row("r", None, 1), None)
        .await
        .unwrap();
    setup.commit().await.unwrap();

    let mut first = begin(&storage).await;
    let mut second = begin(&storage).await;
    first
        .put_json_row(TABLE.name, row("r", None, 2), Some(1))
        .await
        .unwrap();
    second
        .put_json_row(TABLE.name, row("r", None, 2), Some(1))
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert_conflict(second.commit().await, "concurrency_rows/r", 1, 2);
}

#[tokio::test]
async fn a_row_read_then_written_must_be_unchanged_at_commit() {
    let storage = store().await;
    let typed = |n: i64| -> Arc<dyn TypedRow> { Arc::new(json!({ "id": "p", "n": n })) };
    let mut first = begin(&storage).await;
    let mut second = begin(&storage).await;
    // Both read the (absent) row, then write it: the second would lose the first's update.
    assert!(first.get_row(TABLE.name, "p").await.unwrap().is_none());
    assert!(second.get_row(TABLE.name, "p").await.unwrap().is_none());
    first
        .put_row(TABLE.name, "p".to_owned(), typed(1))
        .await
        .unwrap();
    second
        .put_row(TABLE.name, "p".to_owned(), typed(2))
        .await
        .unwrap();
    first.commit().await.unwrap();
    assert!(
        second
            .commit()
            .await
            .is_err_and(|error| error.is_version_conflict())
    );
    let stored = storage
        .get_json_row(TABLE.name, "p")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.data["n"], json!(1));

    // Written without reading it first, a row is last-writer-wins, as an upsert.
    let mut third = begin(&storage).await;
    let mut fourth = begin(&storage).await;
    third
        .put_row(TABLE.name, "p".to_owned(), typed(3))
        .await
        .unwrap();
    fourth
        .put_row(TABLE.name, "p".to_owned(), typed(4))
        .await
        .unwrap();
    fourth.commit().await.unwrap();
    third.commit().await.unwrap();
    let stored = storage
        .get_json_row(TABLE.name, "p")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.data["n"], json!(3));
}

#[tokio::test]
async fn a_dropped_transaction_leaves_nothing() {
    let storage = store().await;
    let mut dropped = begin(&storage).await;
    dropped
        .append("t::a-1", ExpectedVersion::Exact(-1), events(3))
        .await
        .unwrap();
    dropped
        .put_json_row(TABLE.name, row("a", Some("X"), 1), None)
        .await
        .unwrap();
    drop(dropped);
    assert!(log(&storage).await.is_empty());
    assert!(
        storage
            .get_json_row(TABLE.name, "a")
            .await
            .unwrap()
            .is_none()
    );

    // Its stream version, unique value and positions are free for the next one.
    let mut next = begin(&storage).await;
    let stored = next
        .append("t::a-1", ExpectedVersion::Exact(-1), events(1))
        .await
        .unwrap();
    assert_eq!((stored[0].version, stored[0].global_position), (0, 1));
    next.put_json_row(TABLE.name, row("b", Some("X"), 1), None)
        .await
        .unwrap();
    next.commit().await.unwrap();
    assert_eq!(log(&storage).await, [("t::a-1".to_owned(), 0, 1)]);
}

// ---- units of work ------------------------------------------------------------------------

/// Deposits counted across every account: one row that concurrent units of work all update.
#[projection]
pub struct DepositTally {
    #[field(identifier)]
    pub id: Identifier,
    pub deposits: i64,
}

const TALLY: &str = "all";

/// Where the first deposit referenced "park" waits, inside its open transaction, after it
/// has read the tally.
/// Where the projector parks: one test uses it.
static PARK: std::sync::LazyLock<Park> = std::sync::LazyLock::new(Park::default);

pub struct Park {
    used: AtomicBool,
    parked: Semaphore,
    release: Semaphore,
}

impl Default for Park {
    fn default() -> Self {
        Self {
            used: AtomicBool::new(false),
            parked: Semaphore::new(0),
            release: Semaphore::new(0),
        }
    }
}

#[derive(Default)]
pub struct TallyProjector;

#[projector(for = DepositTally, aggregates = [fidelis_example::account::Account])]
impl TallyProjector {
    #[on(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<DepositTally>();
        let mut tally = repo.find(TALLY).await?.unwrap_or(DepositTally {
            id: Identifier::new(TALLY),
            deposits: 0,
        });
        if event.reference.as_deref() == Some("park") {
            // A static, not a resource: projectors see projection rows only.
            let park = &*PARK;
            if !park.used.swap(true, Ordering::SeqCst) {
                park.parked.add_permits(1);
                let _ = park.release.acquire().await;
            }
        }
        tally.deposits += 1;
        repo.add(tally).await
    }
}

fn builder() -> DomainBuilder {
    Domain::builder("fidelis")
        .discover_crate("fidelis_example")
        .discover_crate("memory_concurrency")
        .resource(ComplianceDesk::default())
}

async fn open(domain: &Domain, number: &str) -> Identifier {
    domain
        .process(OpenAccount {
            account_number: number.into(),
            holder_name: "Alice Johnson".into(),
            opening_deposit: Decimal::from(100),
        })
        .await
        .expect("the account opens")
}

fn deposit(account_id: &Identifier, amount: i64, reference: &str) -> MakeDeposit {
    MakeDeposit {
        account_id: account_id.clone(),
        amount: Decimal::from(amount),
        reference: Some(reference.into()),
    }
}

async fn tally(domain: &Domain) -> i64 {
    domain
        .repository::<DepositTally>()
        .get(TALLY)
        .await
        .expect("the tally")
        .deposits
}

#[tokio::test]
async fn a_projector_parked_in_its_transaction_blocks_no_other_command() {
    let domain = builder().build().await.unwrap();
    let (a, b) = (open(&domain, "ACC-A").await, open(&domain, "ACC-B").await);
    let parked = tokio::spawn({
        let domain = domain.clone();
        let a = a.clone();
        async move { domain.process(deposit(&a, 10, "park")).await }
    });
    let park = &*PARK;
    timeout(HANG, park.parked.acquire())
        .await
        .expect("the projector parks")
        .expect("open")
        .forget();

    // Meanwhile another command commits and everything can be read.
    timeout(HANG, async {
        domain.process(deposit(&b, 5, "plain")).await.unwrap();
        let summary = domain.repository::<AccountSummary>().get(&b).await.unwrap();
        assert_eq!(summary.balance, Decimal::from(105));
        assert_eq!(
            domain
                .event_store()
                .read_all(Cursor::START)
                .await
                .unwrap()
                .len(),
            3
        );
    })
    .await
    .expect("a parked unit of work blocked another");

    // The parked unit of work read the tally before the other one updated it: its commit
    // conflicts and the command is retried, so no deposit is lost from the tally.
    park.release.add_permits(1);
    timeout(HANG, parked)
        .await
        .expect("the parked command ends")
        .unwrap()
        .unwrap();
    assert_eq!(tally(&domain).await, 2);
    let summary = domain.repository::<AccountSummary>().get(&a).await.unwrap();
    assert_eq!(summary.balance, Decimal::from(110));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_commands_all_commit_with_gapless_positions() {
    const WRITERS: usize = 4;
    const DEPOSITS: usize = 25;
    let domain = builder().build().await.unwrap();
    let mut accounts = Vec::new();
    for writer in 0..WRITERS {
        accounts.push(open(&domain, &format!("ACC-{writer}")).await);
    }
    let writers: Vec<_> = accounts
        .iter()
        .map(|account| {
            let domain = domain.clone();
            let account = account.clone();
            tokio::spawn(async move {
                for _ in 0..DEPOSITS {
                    domain.process(deposit(&account, 1, "plain")).await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    timeout(HANG, async {
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
    })
    .await
    .expect("the writers finish");

    let positions: Vec<i64> = domain
        .event_store()
        .read_all(Cursor::START)
        .await
        .unwrap()
        .iter()
        .map(|e| e.metadata.global_position)
        .collect();
    let total = WRITERS * (1 + DEPOSITS);
    assert_eq!(positions, (1..=total as i64).collect::<Vec<_>>());
    assert_eq!(tally(&domain).await, (WRITERS * DEPOSITS) as i64);
    for account in &accounts {
        let summary = domain
            .repository::<AccountSummary>()
            .get(account)
            .await
            .unwrap();
        assert_eq!(summary.balance, Decimal::from(100 + DEPOSITS as i64));
    }
}

#[tokio::test]
async fn the_memory_store_keeps_the_events_units_of_work_raised_typed() {
    let domain = builder().build().await.unwrap();
    let id = open(&domain, "ACC-T").await;
    domain.process(deposit(&id, 7, "typed")).await.unwrap();
    let stream = domain
        .event_store()
        .stream_of::<fidelis_example::account::Account>(&id)
        .unwrap();
    let events = domain.event_store().read_stream(&stream).await.unwrap();
    assert_eq!(events.len(), 2);
    for event in &events {
        assert!(matches!(event.payload, Payload::Typed(_)), "{event:?}");
    }
    let made = events[1].decode::<DepositMade>().unwrap();
    assert_eq!(made.amount, Decimal::from(7));
    // Readers of the event store still get JSON, encoded on demand.
    assert_eq!(events[1].data().unwrap()["reference"], json!("typed"));
}
