//! The engine of asynchronous processing, on every adapter: projections stay stale until it
//! runs, then equal sync mode's; a restarted engine resumes from its checkpoints without
//! applying anything twice; a failing (or panicking) handler is retried then dead-lettered
//! with its real error while other streams go on; a replay reaches the failing subscription
//! only; a purge lets the waiting events flow on; unknown event types are dead-lettered;
//! a graceful shutdown drains; and on PostgreSQL a subscription never passes an open
//! transaction's position.

#![allow(missing_docs)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fidelis_core::chrono::Utc;
use fidelis_core::prelude::*;
use fidelis_core::store::ExpectedVersion;
use fidelis_core::{DomainBuilder, HandlerRetry, Payload, Processing, RecordedEvent};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

/// Credits per ledger: counts every `Credited` it is given, so a double application shows.
#[projection]
pub struct Tally {
    #[field(identifier)]
    pub ledger_id: Identifier,
    pub credits: i64,
    pub total: i64,
}

#[derive(Default)]
pub struct Tallies;

#[projector(for = Tally, aggregates = [Ledger])]
impl Tallies {
    #[on(Credited)]
    async fn credited(
        &self,
        event: &Event<Credited>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut rows = ctx.repository::<Tally>();
        let mut row = rows.find(&event.ledger_id).await?.unwrap_or(Tally {
            ledger_id: event.ledger_id.clone(),
            credits: 0,
            total: 0,
        });
        if cursed(&event.ledger_id, event.amount) {
            return Err(Error::handler(
                "Tallies",
                format!(
                    "credit of {} to ledger {} is cursed",
                    event.amount, event.ledger_id
                ),
            ));
        }
        row.credits += 1;
        row.total += event.amount;
        rows.add(row).await
    }
}

/// Credits the projector refuses, by ledger and amount (ledger ids are unique to each test,
/// so tests running at once do not see each other's curses).
static CURSES: Mutex<Vec<(Identifier, i64)>> = Mutex::new(Vec::new());

fn curses() -> std::sync::MutexGuard<'static, Vec<(Identifier, i64)>> {
    CURSES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn cursed(ledger: &Identifier, amount: i64) -> bool {
    curses().iter().any(|(l, a)| l == ledger && *a == amount)
}

fn curse(ledger: &Identifier, amount: i64) {
    curses().push((ledger.clone(), amount));
}

fn lift(ledger: &Identifier, amount: i64) {
    curses().retain(|(l, a)| !(l == ledger && *a == amount));
}

/// What the auditor was given, and how it is told to fail.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<JournalState>>);

#[derive(Default)]
pub struct JournalState {
    /// Event id, ledger, amount of each delivery, in order.
    entries: Vec<(Identifier, Identifier, i64)>,
    /// Credits of these ledgers fail with an error…
    frozen: HashSet<Identifier>,
    /// …or with a panic.
    panicking: HashSet<Identifier>,
    /// Each delivery takes this long.
    delay: Duration,
}

impl Journal {
    fn state(&self) -> std::sync::MutexGuard<'_, JournalState> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn freeze(&self, ledger: &Identifier) {
        self.state().frozen.insert(ledger.clone());
    }
    fn thaw(&self, ledger: &Identifier) {
        self.state().frozen.remove(ledger);
    }
    fn make_panic(&self, ledger: &Identifier) {
        self.state().panicking.insert(ledger.clone());
    }
    fn amounts_of(&self, ledger: &Identifier) -> Vec<i64> {
        let state = self.state();
        state
            .entries
            .iter()
            .filter(|(_, l, _)| l == ledger)
            .map(|(_, _, a)| *a)
            .collect()
    }
    fn event_ids(&self) -> Vec<Identifier> {
        self.state()
            .entries
            .iter()
            .map(|(id, _, _)| id.clone())
            .collect()
    }
}

#[derive(Default)]
pub struct Auditor;

#[event_handler(part_of = Ledger)]
impl Auditor {
    #[handle(Credited)]
    async fn credited(&self, event: &Event<Credited>, ctx: &mut EventHandlerContext) -> Result<()> {
        let journal = ctx.resource::<Journal>()?.clone();
        let delay = journal.state().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut state = journal.state();
        if state.panicking.contains(&event.ledger_id) {
            drop(state);
            panic!("the auditor trips over ledger {}", event.ledger_id);
        }
        if state.frozen.contains(&event.ledger_id) {
            return Err(Error::handler(
                "Auditor",
                format!("ledger {} is frozen", event.ledger_id),
            ));
        }
        state.entries.push((
            event.metadata().id.clone(),
            event.ledger_id.clone(),
            event.amount,
        ));
        Ok(())
    }
}

fn builder(processing: Processing, journal: &Journal) -> DomainBuilder {
    Domain::builder("engine")
        .discover_crate(module_path!())
        .processing(processing)
        .handler_retry(HandlerRetry::exponential(3, Duration::from_millis(2)))
        .resource(journal.clone())
}

async fn async_domain(backend: &Backend, journal: &Journal) -> Domain {
    backend.build(builder(Processing::Async, journal)).await
}

async fn open(domain: &Domain, holder: &str) -> Identifier {
    domain
        .process(OpenLedger {
            holder: holder.into(),
            tags: json!({}),
        })
        .await
        .expect("the ledger opens")
}

async fn credit(domain: &Domain, ledger: &Identifier, amount: i64) {
    domain
        .process(Credit {
            ledger_id: ledger.clone(),
            amount,
        })
        .await
        .expect("the credit commits");
}

async fn tally(domain: &Domain, ledger: &Identifier) -> Option<(i64, i64)> {
    domain
        .repository::<Tally>()
        .find(ledger)
        .await
        .expect("the tally reads")
        .map(|row| (row.credits, row.total))
}

async fn balance(domain: &Domain, ledger: &Identifier) -> Option<i64> {
    domain
        .repository::<LedgerRow>()
        .find(ledger)
        .await
        .expect("the row reads")
        .map(|row| row.balance)
}

/// The same commands in both modes; returns what the read side shows after `settle`.
async fn the_ledger_story(
    domain: &Domain,
    journal: &Journal,
) -> (Option<i64>, Option<(i64, i64)>, Vec<i64>) {
    let ledger = open(domain, "Ada").await;
    for amount in [10, 20, 30] {
        credit(domain, &ledger, amount).await;
    }
    domain.settle().await.expect("the read side settles");
    (
        balance(domain, &ledger).await,
        tally(domain, &ledger).await,
        journal.amounts_of(&ledger),
    )
}

async fn async_processing_is_stale_until_the_engine_runs_then_equal_to_sync(backend: &Backend) {
    let journal = Journal::default();
    let domain = async_domain(backend, &journal).await;
    let ledger = open(&domain, "Ada").await;
    credit(&domain, &ledger, 10).await;
    // Committed: the aggregate reads back; the read side has not run.
    assert_eq!(
        domain
            .repository::<Ledger>()
            .get(&ledger)
            .await
            .unwrap()
            .balance,
        10
    );
    assert_eq!(
        balance(&domain, &ledger).await,
        None,
        "the projection is stale"
    );
    assert!(
        journal.amounts_of(&ledger).is_empty(),
        "the handler has not run"
    );
    domain.settle().await.unwrap();
    assert_eq!(balance(&domain, &ledger).await, Some(10));
    assert_eq!(journal.amounts_of(&ledger), vec![10]);

    let sync_journal = Journal::default();
    let sync = builder(Processing::Sync, &sync_journal)
        .database("memory")
        .build()
        .await
        .unwrap();
    let in_sync = the_ledger_story(&sync, &sync_journal).await;
    let in_async = the_ledger_story(&domain, &journal).await;
    assert_eq!(in_async, in_sync);
    assert_eq!(in_async, (Some(60), Some((3, 60)), vec![10, 20, 30]));
    // A synchronous domain's engine only processes submitted commands: it does not apply
    // the projectors and handlers that already ran in `process` a second time.
    let ledger = open(&sync, "Bob").await;
    credit(&sync, &ledger, 5).await;
    sync.engine().run_until_idle().await.unwrap();
    assert_eq!(tally(&sync, &ledger).await, Some((1, 5)), "applied once");
    assert_eq!(sync_journal.amounts_of(&ledger), vec![5], "handled once");
}

async fn a_restarted_engine_resumes_from_its_checkpoints(backend: &Backend) {
    let first_journal = Journal::default();
    let first = async_domain(backend, &first_journal).await;
    let ledger = open(&first, "Ada").await;
    credit(&first, &ledger, 1).await;
    credit(&first, &ledger, 2).await;
    first.settle().await.unwrap();
    assert_eq!(first_journal.amounts_of(&ledger), vec![1, 2]);

    // A new process: new domain, new engine, same store.
    let second_journal = Journal::default();
    let second = async_domain(backend, &second_journal).await;
    credit(&second, &ledger, 4).await;
    second.settle().await.unwrap();
    assert_eq!(
        tally(&second, &ledger).await,
        Some((3, 7)),
        "nothing applied twice"
    );
    assert_eq!(balance(&second, &ledger).await, Some(7));
    assert_eq!(
        second_journal.amounts_of(&ledger),
        vec![4],
        "only the new event is delivered"
    );
    let status = second.engine().status().await.unwrap();
    // One row per subscription and partition (4 partitions on PostgreSQL, 1 elsewhere).
    let partitions = status[0].partitions as usize;
    assert_eq!(status.len(), 3 * partitions, "{status:?}");
    for subscription in &status {
        assert_eq!(subscription.lag, 0, "{subscription:?}");
        assert_eq!(subscription.position, subscription.head, "{subscription:?}");
        assert_eq!(subscription.dead_letters, 0, "{subscription:?}");
        assert_eq!(subscription.behind, Duration::ZERO, "{subscription:?}");
    }
}

async fn a_failing_handler_is_dead_lettered_its_stream_waits_and_replay_reaches_it_alone(
    backend: &Backend,
) {
    let journal = Journal::default();
    let domain = async_domain(backend, &journal).await;
    let frozen = open(&domain, "Frozen").await;
    let other = open(&domain, "Other").await;
    journal.freeze(&frozen);
    let before = Utc::now();
    credit(&domain, &frozen, 1).await;
    credit(&domain, &frozen, 2).await;
    credit(&domain, &other, 5).await;
    domain.settle().await.unwrap();

    let letters = domain.dead_letters().list().await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.subscription, "Auditor");
    assert_eq!(letter.attempts, 3);
    assert!(
        letter.error.contains(&format!("ledger {frozen} is frozen")),
        "{}",
        letter.error
    );
    assert!(
        letter.type_name.ends_with("Credited.v1"),
        "{}",
        letter.type_name
    );
    assert!(before <= letter.first_failed_at && letter.first_failed_at <= letter.last_failed_at);
    assert!(letter.last_failed_at <= Utc::now());
    assert_eq!(
        letter.stream,
        domain.event_store().stream_of::<Ledger>(&frozen).unwrap()
    );
    assert_eq!(letter.version, 1);
    assert_eq!(domain.metrics().failed_event_handlers, 1);
    // The other stream went on; the frozen stream's later event waits.
    assert_eq!(journal.amounts_of(&other), vec![5]);
    assert!(journal.amounts_of(&frozen).is_empty());
    // The projectors are other subscriptions: they went on.
    assert_eq!(tally(&domain, &frozen).await, Some((2, 3)));
    let status = domain.engine().status().await.unwrap();
    // The row of the frozen stream's partition.
    let auditor = status
        .iter()
        .find(|s| s.name == "Auditor" && s.dead_letters > 0)
        .unwrap();
    assert_eq!((auditor.dead_letters, auditor.lag), (1, 0), "{auditor:?}");
    assert!(
        auditor
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("is frozen"),
        "{auditor:?}"
    );

    // Still frozen: the replay fails again, and says why.
    let error = domain.dead_letters().replay(&letter.id).await.unwrap_err();
    assert!(error.to_string().contains("is frozen"), "{error}");
    let again = domain
        .dead_letters()
        .get(&letter.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempts, 4);

    journal.thaw(&frozen);
    domain.dead_letters().replay(&letter.id).await.unwrap();
    assert_eq!(
        journal.amounts_of(&frozen),
        vec![1, 2],
        "the waiting event flowed on, in order"
    );
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
    assert_eq!(
        tally(&domain, &frozen).await,
        Some((2, 3)),
        "the projector did not count twice"
    );
    credit(&domain, &frozen, 4).await;
    domain.settle().await.unwrap();
    assert_eq!(journal.amounts_of(&frozen), vec![1, 2, 4]);
    assert_eq!(journal.amounts_of(&other), vec![5]);
    let summary = domain.dead_letters().replay_all("Auditor").await.unwrap();
    assert_eq!(summary, fidelis_core::ReplaySummary::default());
}

async fn a_panicking_handler_is_dead_lettered_and_a_purge_lets_its_stream_flow(backend: &Backend) {
    let journal = Journal::default();
    let domain = async_domain(backend, &journal).await;
    let ledger = open(&domain, "Tripwire").await;
    journal.make_panic(&ledger);
    credit(&domain, &ledger, 1).await;
    domain.settle().await.unwrap();
    journal.state().panicking.clear();
    credit(&domain, &ledger, 2).await;
    credit(&domain, &ledger, 3).await;
    domain.settle().await.unwrap();
    let letters = domain.dead_letters().list_of("Auditor").await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0]
            .error
            .contains("panicked: the auditor trips over ledger"),
        "{}",
        letters[0].error
    );
    assert!(journal.amounts_of(&ledger).is_empty(), "the stream waits");

    assert_eq!(domain.dead_letters().purge_all("Auditor").await.unwrap(), 1);
    assert_eq!(
        journal.amounts_of(&ledger),
        vec![2, 3],
        "the purged event is not delivered"
    );
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
    let error = domain
        .dead_letters()
        .replay(&letters[0].id)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("no dead letter"), "{error}");
}

async fn a_failing_projector_is_dead_lettered_and_a_replay_applies_each_event_once(
    backend: &Backend,
) {
    let journal = Journal::default();
    let domain = async_domain(backend, &journal).await;
    let ledger = open(&domain, "Cursed").await;
    let other = open(&domain, "Blessed").await;
    curse(&ledger, 1);
    curse(&ledger, 2);
    for amount in [1, 2, 3] {
        credit(&domain, &ledger, amount).await;
    }
    credit(&domain, &other, 9).await;
    domain.settle().await.unwrap();
    let letters = domain.dead_letters().list_of("Tallies").await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(
        letters[0].error.contains("credit of 1 to ledger"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].attempts, 3);
    assert_eq!(tally(&domain, &ledger).await, None, "the stream waits");
    assert_eq!(
        tally(&domain, &other).await,
        Some((1, 9)),
        "other streams go on"
    );
    assert_eq!(
        journal.amounts_of(&ledger),
        vec![1, 2, 3],
        "other subscriptions go on"
    );

    // The letter's event now passes, the next waiting one fails: it takes the letter's place.
    lift(&ledger, 1);
    let error = domain
        .dead_letters()
        .replay(&letters[0].id)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("credit of 2 to ledger"),
        "{error}"
    );
    let letters = domain.dead_letters().list_of("Tallies").await.unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!((letters[0].version, letters[0].attempts), (2, 1));
    assert_eq!(tally(&domain, &ledger).await, Some((1, 1)));

    lift(&ledger, 2);
    let summary = domain.dead_letters().replay_all("Tallies").await.unwrap();
    assert_eq!((summary.replayed, summary.failed), (1, 0));
    assert_eq!(
        tally(&domain, &ledger).await,
        Some((3, 6)),
        "each event applied once"
    );
    domain.settle().await.unwrap();
    assert_eq!(
        tally(&domain, &ledger).await,
        Some((3, 6)),
        "and not again by the engine"
    );
    assert_eq!(
        journal.amounts_of(&ledger),
        vec![1, 2, 3],
        "the handler was not replayed to"
    );
}

/// An event of a type no element declares, in the ledgers' category.
fn stranger(ledger: &Identifier, type_name: &str, amount: i64) -> RecordedEvent {
    RecordedEvent {
        metadata: fidelis_core::EventMetadata {
            id: Identifier::generate(),
            type_name: type_name.to_owned(),
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
        payload: Payload::json(&json!({ "ledger_id": ledger.as_str(), "amount": amount })),
    }
}

async fn append_raw(domain: &Domain, ledger: &Identifier, type_name: &str) {
    let stream = domain.event_store().stream_of::<Ledger>(ledger).unwrap();
    let version = domain.event_store().stream_version(&stream).await.unwrap();
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    transaction
        .append(
            &stream,
            ExpectedVersion::Exact(version),
            vec![stranger(ledger, type_name, 1)],
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

async fn unknown_event_types_are_dead_lettered_with_the_reason(backend: &Backend) {
    let journal = Journal::default();
    let domain = async_domain(backend, &journal).await;
    let ledger = open(&domain, "Ada").await;
    let other = open(&domain, "Bob").await;
    append_raw(&domain, &ledger, "Engine.Vanished.v1").await;
    credit(&domain, &other, 7).await;
    domain.settle().await.unwrap();
    let letters = domain.dead_letters().list().await.unwrap();
    let mut subscriptions: Vec<&str> = letters.iter().map(|l| l.subscription.as_str()).collect();
    subscriptions.sort_unstable();
    assert_eq!(
        subscriptions,
        ["Auditor", "LedgerRows", "Tallies"],
        "{letters:?}"
    );
    for letter in &letters {
        assert!(
            letter
                .error
                .contains("unknown event type `Engine.Vanished.v1`"),
            "{}",
            letter.error
        );
        assert_eq!(letter.attempts, 1, "an unknown type is not retried");
    }
    assert_eq!(journal.amounts_of(&other), vec![7], "other streams go on");
    assert_eq!(balance(&domain, &other).await, Some(7));
}

async fn a_graceful_shutdown_drains_and_saves_checkpoints(backend: &Backend) {
    let journal = Journal::default();
    journal.state().delay = Duration::from_millis(40);
    let domain = async_domain(backend, &journal).await;
    let engine = domain.engine();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let ledger = open(&domain, "Ada").await;
    for amount in 1..=5 {
        credit(&domain, &ledger, amount).await;
    }
    // The running engine is woken by the commits: the projection catches up by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tally(&domain, &ledger).await != Some((5, 15)) {
        assert!(
            Instant::now() < deadline,
            "the running engine did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Stop while the slow auditor is still at work.
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let delivered = journal.event_ids().len();
    assert!(delivered >= 1, "the in-flight delivery finished");
    // Whatever was delivered has its checkpoint: a new run delivers only the rest, once.
    domain.settle().await.unwrap();
    let ids = journal.event_ids();
    let unique: HashSet<&Identifier> = ids.iter().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (5, 5),
        "no event delivered twice"
    );
    assert_eq!(journal.amounts_of(&ledger), vec![1, 2, 3, 4, 5]);
}

on_every_adapter!(
    async_processing_is_stale_until_the_engine_runs_then_equal_to_sync,
    a_restarted_engine_resumes_from_its_checkpoints,
    a_failing_handler_is_dead_lettered_its_stream_waits_and_replay_reaches_it_alone,
    a_panicking_handler_is_dead_lettered_and_a_purge_lets_its_stream_flow,
    a_failing_projector_is_dead_lettered_and_a_replay_applies_each_event_once,
    unknown_event_types_are_dead_lettered_with_the_reason,
    a_graceful_shutdown_drains_and_saves_checkpoints,
);

/// On PostgreSQL, a transaction holding a lower position open while a later one commits: the
/// subscription does not pass it, and gets both, once, when it commits.
#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_never_passes_an_open_transaction() {
    let Some(backend) = Backend::postgres("engine::gap").await else {
        return;
    };
    let journal = Journal::default();
    let domain = async_domain(&backend, &journal).await;
    let credited = domain
        .registry()
        .events()
        .into_iter()
        .find(|e| e.name == "Credited")
        .map(|e| e.type_name.clone())
        .unwrap();
    let (early, late) = (Identifier::generate(), Identifier::generate());
    let stream = |id: &Identifier| domain.event_store().stream_of::<Ledger>(id).unwrap();

    let mut holding = domain.storage_unchecked().begin().await.unwrap();
    holding
        .append(
            &stream(&early),
            ExpectedVersion::Exact(-1),
            vec![stranger(&early, &credited, 1)],
        )
        .await
        .unwrap();
    let mut later = domain.storage_unchecked().begin().await.unwrap();
    later
        .append(
            &stream(&late),
            ExpectedVersion::Exact(-1),
            vec![stranger(&late, &credited, 2)],
        )
        .await
        .unwrap();
    later.commit().await.unwrap();

    let engine = domain.engine();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        tally(&domain, &late).await,
        None,
        "the later commit is not passed over the open one"
    );
    let status = engine.status().await.unwrap();
    let tallies = status.iter().find(|s| s.name == "Tallies").unwrap();
    assert_eq!(tallies.position, fidelis_core::Cursor::START, "{tallies:?}");

    holding.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tally(&domain, &early).await.is_none() || tally(&domain, &late).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "the engine did not catch up after the commit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    assert_eq!(tally(&domain, &early).await, Some((1, 1)));
    assert_eq!(tally(&domain, &late).await, Some((1, 2)));
    backend.finish().await;
}

/// On PostgreSQL, the store's commit signal (`LISTEN`) fires when a transaction that asked
/// for it commits, not before; an asynchronous domain's commits ask, a synchronous one's do
/// not; memory and SQLite have none (their engines are woken in process, and poll).
#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wakes_listeners_when_events_commit() {
    use futures::StreamExt;
    let Some(backend) = Backend::postgres("engine::notify").await else {
        return;
    };
    let journal = Journal::default();
    let domain = async_domain(&backend, &journal).await;
    let mut signal = domain
        .storage_unchecked()
        .commit_signal()
        .await
        .unwrap()
        .expect("PostgreSQL has a commit signal");
    // Another connection pool, as another process would have.
    let writer = fidelis_core::config::connect(&backend.url()).await.unwrap();
    let ledger = Identifier::generate();
    let stream = domain.event_store().stream_of::<Ledger>(&ledger).unwrap();
    let mut transaction = writer.begin().await.unwrap();
    transaction
        .append(
            &stream,
            ExpectedVersion::Exact(-1),
            vec![stranger(&ledger, "Engine.Any.v1", 1)],
        )
        .await
        .unwrap();
    transaction.notify_commit().await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(300), signal.next()).await;
    assert!(early.is_err(), "no signal before the commit");
    transaction.commit().await.unwrap();
    let woken = tokio::time::timeout(Duration::from_secs(10), signal.next()).await;
    assert!(
        matches!(woken, Ok(Some(()))),
        "the commit wakes the listener"
    );

    // A command of an asynchronous domain (another pool) notifies; a synchronous one does not.
    let sync = backend.build(builder(Processing::Sync, &journal)).await;
    open(&sync, "Quiet").await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), signal.next()).await;
    assert!(quiet.is_err(), "sync processing sends no NOTIFY");
    let other = async_domain(&backend, &journal).await;
    open(&other, "Loud").await;
    let woken = tokio::time::timeout(Duration::from_secs(10), signal.next()).await;
    assert!(
        matches!(woken, Ok(Some(()))),
        "an async commit wakes the listener"
    );
    for (backend, name) in [
        (Backend::memory().await.unwrap(), "memory"),
        (Backend::sqlite().await.unwrap(), "sqlite"),
    ] {
        let domain = async_domain(&backend, &journal).await;
        assert!(
            domain
                .storage_unchecked()
                .commit_signal()
                .await
                .unwrap()
                .is_none(),
            "{name}"
        );
        backend.finish().await;
    }
    backend.finish().await;
}
