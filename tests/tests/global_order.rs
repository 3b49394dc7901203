//! The global order of events on PostgreSQL, as readers of `read_all` see it while writers
//! commit concurrently: a reader never skips an event, i.e. every read in global order is a
//! prefix of every later one (an event never appears later at a cursor below one a reader
//! has already passed), even when a transaction holding a lower position stays open while a
//! later one commits; concurrent writers on different streams all commit (their throughput
//! is printed, not asserted); and units of work that write a state-stored and an
//! event-sourced aggregate in opposite orders all commit (none hangs).

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use fidelis_core::chrono::Utc;
use fidelis_core::prelude::*;
use fidelis_core::store::{Cursor, ExpectedVersion, Storage};
use fidelis_core::{EventMetadata, Payload, RecordedEvent};
use serde_json::json;
use tokio::sync::{Mutex, oneshot};

mod support;
use support::Backend;
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

/// A state-stored aggregate, written in one unit of work with an event-sourced [`Ledger`].
#[aggregate]
pub struct Tally {
    #[field(default = 0)]
    pub count: i64,
}

/// The tests of this file watch the database's lock waits: one at a time, so that one test's
/// waiting writers are not taken for the other's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// A generous bound after which a test fails as hung (it never decides the outcome).
const HANG: Duration = Duration::from_secs(120);

fn event(label: &str) -> RecordedEvent {
    RecordedEvent {
        metadata: EventMetadata {
            id: Identifier::generate(),
            type_name: "Order.Happened.v1".to_owned(),
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
        payload: Payload::json(&json!({ "label": label })),
    }
}

async fn domain(backend: &Backend) -> Domain {
    backend.build(Domain::builder("order")).await
}

/// The labels of the events after a cursor, in global order; checks cursors increase.
async fn labels_after(storage: &dyn Storage, after: Cursor) -> Vec<String> {
    let events = storage
        .read_all(after, usize::MAX)
        .await
        .expect("read_all reads");
    let cursors: Vec<Cursor> = events.iter().map(|e| e.metadata.cursor()).collect();
    assert!(
        cursors.windows(2).all(|pair| pair[0] < pair[1]),
        "cursors increase: {cursors:?}"
    );
    events
        .iter()
        .map(|e| {
            e.data().unwrap()["label"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        })
        .collect()
}

/// The labels of every event readable now, in global order.
async fn labels(storage: &dyn Storage) -> Vec<String> {
    labels_after(storage, Cursor::START).await
}

/// The labels of every event committed so far, in global order.
async fn settled_labels(storage: &dyn Storage) -> Vec<String> {
    storage.settle().await.expect("settle waits");
    labels(storage).await
}

async fn append_one(
    transaction: &mut Box<dyn fidelis_core::store::Transaction>,
    stream: &str,
    label: &str,
) -> EventMetadata {
    let mut stored = transaction
        .append(stream, ExpectedVersion::Any, vec![event(label)])
        .await
        .unwrap_or_else(|error| panic!("{label} appends: {error}"));
    stored.remove(0)
}

/// The two ways a lower position can stay open while a later one commits.
///
/// 1. B (the older transaction) appends B0, A appends A1, B appends B2 and commits while A
///    stays open: A1's position is below B2's. A reader that reached B2 by position would
///    skip A1 for good; in global order A1 comes after B2 (A's commit is later), so a reader
///    going on from B2's cursor reads it once A commits.
/// 2. C (older) appends C0 and stays open; D appends D1 and commits: D1 must not be read
///    before C0, which precedes it; once C commits, both are read, in order.
async fn lower_position_open_while_a_later_one_commits(backend: &Backend) {
    let domain = domain(backend).await;
    let storage = domain.storage_unchecked().clone();

    let mut b = storage.begin().await.expect("B begins");
    let b0 = append_one(&mut b, "order::b-1", "B0").await;
    let mut a = storage.begin().await.expect("A begins");
    let a1 = append_one(&mut a, "order::a-1", "A1").await;
    let b2 = append_one(&mut b, "order::b-2", "B2").await;
    assert!(b0.commit < a1.commit, "B's transaction began first");
    assert!(
        a1.global_position < b2.global_position,
        "A holds a position below B2's: {a1:?} {b2:?}"
    );
    b.commit().await.expect("B commits");
    assert_eq!(settled_labels(storage.as_ref()).await, ["B0", "B2"]);
    let passed = storage.head().await.expect("head reads");
    assert_eq!(passed, b2.cursor(), "a reader may go up to B2");
    a.commit().await.expect("A commits");
    storage.settle().await.expect("settle waits");
    assert_eq!(
        labels_after(storage.as_ref(), passed).await,
        ["A1"],
        "a reader that passed B2 still reads A1"
    );

    let mut c = storage.begin().await.expect("C begins");
    append_one(&mut c, "order::c-1", "C0").await;
    let mut d = storage.begin().await.expect("D begins");
    append_one(&mut d, "order::d-1", "D1").await;
    d.commit().await.expect("D commits");
    for _ in 0..5 {
        assert_eq!(
            labels_after(storage.as_ref(), passed).await,
            ["A1"],
            "D1 is not read while C, which began before D, is open"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.commit().await.expect("C commits");
    storage.settle().await.expect("settle waits");
    assert_eq!(
        labels_after(storage.as_ref(), passed).await,
        ["A1", "C0", "D1"]
    );
    assert_eq!(
        labels(storage.as_ref()).await,
        ["B0", "B2", "A1", "C0", "D1"]
    );
}

/// Whether a backend of this database waits for a lock (a writer blocked by another).
async fn someone_waits_for_a_lock(backend: &Backend) -> bool {
    let Backend::Postgres(scratch) = backend else {
        unreachable!("PostgreSQL only")
    };
    sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock')",
    )
    .fetch_one(&scratch.admin)
    .await
    .expect("read pg_stat_activity")
}

/// Transaction Y appends Y1; transaction X appends X1 and stays open; Y appends Y2 and
/// commits; then X commits. Readers in between must never see an order that a later read
/// contradicts. (With a sequence and "only transactions below the oldest running xid"
/// readers, Y's Y2 — above X1's position, written by an older transaction — became
/// visible while X1 was open, and a reader that went past it skipped X1 for good.)
async fn open_lower_position_is_never_skipped(backend: &Backend) {
    let domain = domain(backend).await;
    let storage = domain.storage_unchecked().clone();

    let mut y = storage.begin().await.expect("Y begins");
    y.append("order::y-1", ExpectedVersion::Any, vec![event("Y1")])
        .await
        .expect("Y1 appends");

    let (appended_tx, mut appended) = oneshot::channel::<()>();
    let (commit_tx, commit) = oneshot::channel::<()>();
    let x_storage = storage.clone();
    let x = tokio::spawn(async move {
        let mut x = x_storage.begin().await.expect("X begins");
        x.append("order::x-1", ExpectedVersion::Any, vec![event("X1")])
            .await
            .expect("X1 appends");
        let _ = appended_tx.send(());
        commit.await.expect("the test lets X commit");
        x.commit().await.expect("X commits");
    });

    // X's append either completes (the store lets writers run in parallel) or waits for a
    // lock Y holds (the store serializes appends); both are valid. Go on in either case.
    loop {
        match appended.try_recv() {
            Ok(()) => break,
            Err(oneshot::error::TryRecvError::Closed) => {
                x.await.expect("X's task failed");
                unreachable!("X ended without appending")
            }
            Err(oneshot::error::TryRecvError::Empty) => {}
        }
        if someone_waits_for_a_lock(backend).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    y.append("order::y-2", ExpectedVersion::Any, vec![event("Y2")])
        .await
        .expect("Y2 appends");
    let mut reads = vec![labels(storage.as_ref()).await];
    y.commit().await.expect("Y commits");
    reads.push(labels(storage.as_ref()).await);
    commit_tx.send(()).expect("X waits for its commit");
    x.await.expect("X's task succeeds");

    let last = settled_labels(storage.as_ref()).await;
    let mut sorted = last.clone();
    sorted.sort();
    assert_eq!(sorted, ["X1", "Y1", "Y2"], "every committed event is read");
    for read in reads {
        assert!(
            last.starts_with(&read),
            "a reader saw {read:?}, but the global order is now {last:?}: \
             a reader that went past it skipped an event"
        );
    }
}

/// Writers on different streams, one commit per event.
const WRITERS: usize = 16;
const COMMITS_PER_WRITER: usize = 25;

async fn concurrent_writers_all_commit(backend: &Backend) {
    let domain = domain(backend).await;
    let storage: Arc<dyn Storage> = domain.storage_unchecked().clone();
    let started = Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let stream = format!("order::writer-{writer}");
                for commit in 0..COMMITS_PER_WRITER {
                    let mut transaction = storage.begin().await.expect("begin");
                    transaction
                        .append(
                            &stream,
                            ExpectedVersion::Exact(commit as i64 - 1),
                            vec![event(&format!("{writer}/{commit}"))],
                        )
                        .await
                        .expect("an append to a stream of one's own never conflicts");
                    transaction.commit().await.expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("the writer succeeds");
    }
    let elapsed = started.elapsed();
    let total = WRITERS * COMMITS_PER_WRITER;
    eprintln!(
        "{}: {WRITERS} writers on different streams committed {total} events (one per commit) \
         in {elapsed:?}: {:.0} commits/s",
        storage.kind(),
        total as f64 / elapsed.as_secs_f64()
    );
    let read = settled_labels(storage.as_ref()).await;
    assert_eq!(read.len(), total, "every commit is read");
    for writer in 0..WRITERS {
        let stream = storage
            .read_stream(&format!("order::writer-{writer}"), 0)
            .await
            .expect("read_stream reads");
        let versions: Vec<i64> = stream.iter().map(|e| e.metadata.version).collect();
        assert_eq!(
            versions,
            (0..COMMITS_PER_WRITER as i64).collect::<Vec<_>>(),
            "versions are gapless"
        );
    }
}

/// Units of work per task in [`mixed_units_of_work_do_not_deadlock`].
const MIXED_ROUNDS: usize = 20;

/// One unit of work: +1 on the tally and a credit of 1 on the ledger, in the given order.
async fn tally_and_credit(
    domain: &Domain,
    tally_id: &Identifier,
    ledger_id: &Identifier,
    tally_first: bool,
) -> fidelis_core::Result<()> {
    let mut uow = domain.unit_of_work();
    let mut tally = None;
    let mut ledger = None;
    for step in [tally_first, !tally_first] {
        if step {
            let mut loaded = uow.repository::<Tally>().get(tally_id).await?;
            loaded.count += 1;
            tally = Some(loaded);
        } else {
            let mut loaded = uow.repository::<Ledger>().get(ledger_id).await?;
            loaded.raise(Credited {
                ledger_id: ledger_id.clone(),
                amount: 1,
            })?;
            ledger = Some(loaded);
        }
    }
    for step in [tally_first, !tally_first] {
        if step {
            if let Some(tally) = tally.take() {
                uow.repository::<Tally>().add(tally).await?;
            }
        } else if let Some(ledger) = ledger.take() {
            uow.repository::<Ledger>().add(ledger).await?;
        }
    }
    uow.commit().await
}

/// Two tasks write the same state-stored and event-sourced aggregates in one unit of work,
/// in opposite orders. Each attempt commits or fails with a version conflict, which a retry
/// resolves; nothing hangs (the caller's timeout fails the test). PostgreSQL's deadlock
/// detector is put off past that timeout on these connections, so that a lock-order
/// inversion (the stored row's `FOR UPDATE` against the append) hangs instead of being broken
/// after a second and retried as a conflict (a failed run's stuck sessions end soon after).
async fn mixed_units_of_work_do_not_deadlock(backend: &Backend) {
    let domain = Domain::builder("order")
        .discover_crate(module_path!())
        .database(format!("{}&options[deadlock_timeout]=150s", backend.url()))
        .build()
        .await
        .expect("the domain builds");
    let ledger_id = domain
        .process(OpenLedger {
            holder: "both".into(),
            tags: json!({}),
        })
        .await
        .expect("the ledger opens");
    let tally = Tally::create_new();
    let tally_id = tally.id.clone();
    domain
        .repository::<Tally>()
        .add(tally)
        .await
        .expect("the tally is stored");

    let tasks: Vec<_> = [true, false]
        .into_iter()
        .map(|tally_first| {
            let domain = domain.clone();
            let (tally_id, ledger_id) = (tally_id.clone(), ledger_id.clone());
            tokio::spawn(async move {
                let mut conflicts = 0;
                for _ in 0..MIXED_ROUNDS {
                    loop {
                        match tally_and_credit(&domain, &tally_id, &ledger_id, tally_first).await {
                            Ok(()) => break,
                            Err(error) if error.is_version_conflict() => conflicts += 1,
                            Err(error) => panic!("a unit of work failed: {error}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("the task succeeds");
    }
    eprintln!(
        "{}: {} mixed units of work committed, {conflicts} version conflicts retried",
        domain.storage_unchecked().kind(),
        2 * MIXED_ROUNDS
    );
    let tally = domain.repository::<Tally>().get(&tally_id).await.unwrap();
    let ledger = domain.repository::<Ledger>().get(&ledger_id).await.unwrap();
    assert_eq!(tally.count, 2 * MIXED_ROUNDS as i64, "every tally commit");
    assert_eq!(ledger.balance, 2 * MIXED_ROUNDS as i64, "every credit");
}

async fn on_postgres<F>(test: &str, body: impl FnOnce(Arc<Backend>) -> F)
where
    F: std::future::Future<Output = ()>,
{
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(backend) = Backend::postgres(test).await else {
        return;
    };
    let backend = Arc::new(backend);
    tokio::time::timeout(HANG, body(backend.clone()))
        .await
        .unwrap_or_else(|_| panic!("{test} hung for {HANG:?}"));
    if let Ok(backend) = Arc::try_unwrap(backend) {
        backend.finish().await;
    }
}

#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_open_lower_position_is_never_skipped() {
    on_postgres(
        "global_order::postgres_open_lower_position_is_never_skipped",
        |backend| async move { open_lower_position_is_never_skipped(&backend).await },
    )
    .await;
}

#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lower_position_open_while_a_later_one_commits() {
    on_postgres(
        "global_order::postgres_lower_position_open_while_a_later_one_commits",
        |backend| async move { lower_position_open_while_a_later_one_commits(&backend).await },
    )
    .await;
}

#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_writers_all_commit() {
    on_postgres(
        "global_order::postgres_concurrent_writers_all_commit",
        |backend| async move { concurrent_writers_all_commit(&backend).await },
    )
    .await;
}

#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_mixed_units_of_work_do_not_deadlock() {
    on_postgres(
        "global_order::postgres_mixed_units_of_work_do_not_deadlock",
        |backend| async move { mixed_units_of_work_do_not_deadlock(&backend).await },
    )
    .await;
}
