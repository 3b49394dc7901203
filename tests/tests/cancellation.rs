//! What `process` leaves behind when it does not end normally: a future dropped at any await
//! point (a web server cancels requests all the time) leaves nothing half done, event handler
//! delivery does not depend on the caller's future staying alive, and a panicking handler,
//! projector or event handler is contained like any other failure.
//!
//! Each check runs on memory, SQLite (a fresh file) and PostgreSQL (a fresh schema in
//! `FIDELIS_TEST_POSTGRES_URL`; `SKIPPED: …` is printed when the variable is unset), as
//! `<check>::<adapter>`. The random cancellation points come from a seed that is printed
//! (`FIDELIS_TEST_SEED=<n>` replays one run).

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use fidelis_core::prelude::*;
use fidelis_core::{DomainBuilder, RecordedEvent};
use fidelis_example::account::Account;
use fidelis_example::alerts::ComplianceDesk;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::events::DepositMade;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;

mod support;
use support::{Backend, on_every_adapter};

// ---- elements of this test ------------------------------------------------------------

/// Where the first listener of a "gated" deposit waits, after its command committed.
pub struct Gates {
    /// Set by the first listener to arrive, which then stops at the gate.
    stopped: AtomicBool,
    /// The stopped listener adds a permit when it reaches the gate.
    started: Semaphore,
    /// The stopped listener takes a permit to go on.
    release: Semaphore,
    /// Each listener adds a permit when it has finished.
    done: Semaphore,
    /// Deposits referenced "panic in event handler" the listeners saw.
    saw_panic_deposit: AtomicUsize,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            stopped: AtomicBool::new(false),
            started: Semaphore::new(0),
            release: Semaphore::new(0),
            done: Semaphore::new(0),
            saw_panic_deposit: AtomicUsize::new(0),
        }
    }
}

impl Gates {
    /// The first listener (whichever the registry runs first) stops at the gate; the other
    /// passes. Both then report that they are done.
    async fn listen(&self, event: &Event<DepositMade>) -> Result<()> {
        // Every delivery suspends once, so that cancelled commands are also dropped while
        // their events are being delivered.
        tokio::task::yield_now().await;
        if event.reference.as_deref() == Some("panic in event handler") {
            self.saw_panic_deposit.fetch_add(1, Ordering::SeqCst);
        }
        if event.reference.as_deref() != Some("gated") {
            return Ok(());
        }
        if !self.stopped.swap(true, Ordering::SeqCst) {
            self.started.add_permits(1);
            self.release
                .acquire()
                .await
                .map_err(|error| Error::handler("Gates", error.to_string()))?
                .forget();
        }
        self.done.add_permits(1);
        Ok(())
    }
}

/// One of two listeners of `DepositMade`.
#[derive(Default)]
pub struct FirstListener;

#[event_handler(part_of = Account)]
impl FirstListener {
    #[handle(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        ctx.resource::<Arc<Gates>>()?.listen(event).await
    }
}

/// The other listener of `DepositMade`.
#[derive(Default)]
pub struct SecondListener;

#[event_handler(part_of = Account)]
impl SecondListener {
    #[handle(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        ctx.resource::<Arc<Gates>>()?.listen(event).await
    }
}

/// A deposit whose handler panics.
#[command(part_of = Account)]
pub struct PanickyDeposit {
    pub account_id: Identifier,
}

#[derive(Default)]
pub struct PanickyHandler;

#[command_handler(part_of = Account)]
impl PanickyHandler {
    #[handle(PanickyDeposit)]
    async fn deposit(&self, command: PanickyDeposit, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Account>();
        let mut account = repo.get(&command.account_id).await?;
        account.deposit(Decimal::ONE, None)?;
        repo.add(account).await?;
        panic!("the handler fell over after adding the account");
    }
}

/// One row per deposit; its projector panics on deposits referenced "panic in projector".
#[projection]
pub struct DepositLog {
    #[field(identifier)]
    pub event_id: Identifier,
    pub amount: Decimal,
}

#[derive(Default)]
pub struct PanickyProjector;

#[projector(for = DepositLog, aggregates = [Account])]
impl PanickyProjector {
    #[on(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        ctx.repository::<DepositLog>()
            .add(DepositLog {
                event_id: event.metadata().id.clone(),
                amount: event.amount,
            })
            .await?;
        if event.reference.as_deref() == Some("panic in projector") {
            panic!("the projector fell over after writing its row");
        }
        Ok(())
    }
}

/// Panics on deposits referenced "panic in event handler"; counts the others it sees.
#[derive(Default)]
pub struct PanickyListener;

#[event_handler(part_of = Account)]
impl PanickyListener {
    #[handle(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        _ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        if event.reference.as_deref() == Some("panic in event handler") {
            panic!("the event handler fell over");
        }
        Ok(())
    }
}

/// A domain of the example's elements and this test's handlers on this backend: each call
/// opens a pool of its own (on memory, shares the backend's store).
async fn build_domain(backend: &Backend, gates: &Arc<Gates>) -> Domain {
    let builder: DomainBuilder = Domain::builder("fidelis")
        .discover_crate("fidelis_example")
        .discover_crate(module_path!())
        .resource(ComplianceDesk::default())
        .resource(gates.clone())
        // A database left locked fails within seconds instead of hanging the test.
        .acquire_timeout(Duration::from_secs(10));
    backend.build(builder).await
}

on_every_adapter!(
    cancelled_commands_leave_no_half_state,
    delivery_survives_a_dropped_future,
    a_panicking_command_handler_is_an_error,
    a_panicking_projector_rolls_back,
    a_panicking_event_handler_is_contained,
);

// ---- helpers ---------------------------------------------------------------------------

fn deposit(id: &Identifier, reference: Option<&str>) -> MakeDeposit {
    MakeDeposit {
        account_id: id.clone(),
        amount: Decimal::ONE,
        reference: reference.map(str::to_owned),
    }
}

async fn open(domain: &Domain) -> Identifier {
    domain
        .process(OpenAccount {
            account_number: "ACC-001".into(),
            holder_name: "Ada Lovelace".into(),
            opening_deposit: Decimal::from(100),
        })
        .await
        .expect("the account opens")
}

fn seed() -> u64 {
    let seed = std::env::var("FIDELIS_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("FIDELIS_TEST_SEED={seed}");
    seed
}

/// Polls `future` until it has suspended `suspensions` times, then drops it there: a
/// cancellation exactly at one of its await points. `None` when it was dropped.
async fn cancel_at_await_point<F: Future>(future: F, suspensions: usize) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut suspended = 0;
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(output) => Poll::Ready(Some(output)),
        Poll::Pending if suspended + 1 >= suspensions => Poll::Ready(None),
        Poll::Pending => {
            suspended += 1;
            Poll::Pending
        }
    })
    .await
}

/// The fold of the account's events and the projection row agree, versions are gapless,
/// and the balance counts every deposit that was committed. Returns how many there were.
async fn assert_consistent(domain: &Domain, id: &Identifier) -> usize {
    let store = domain.event_store();
    let events = store
        .read_stream(&store.stream_of::<Account>(id).unwrap())
        .await
        .unwrap();
    let versions: Vec<i64> = events.iter().map(|e| e.metadata.version).collect();
    assert_eq!(
        versions,
        (0..events.len() as i64).collect::<Vec<_>>(),
        "versions are gapless"
    );
    let deposits = events.len() - 1;
    let account = domain.repository::<Account>().get(id).await.unwrap();
    assert_eq!(account.balance, Decimal::from(100 + deposits));
    assert_eq!(account.version(), deposits as i64);
    let summary = domain.repository::<AccountSummary>().get(id).await.unwrap();
    assert_eq!(
        (summary.balance, summary.transaction_count),
        (account.balance, events.len() as i64),
        "the projection row matches the events"
    );
    deposits
}

// ---- checks ----------------------------------------------------------------------------

const ITERATIONS: usize = 300;

async fn cancelled_commands_leave_no_half_state(backend: &Backend) {
    let gates = Arc::new(Gates::default());
    let domain = build_domain(backend, &gates).await;
    let id = open(&domain).await;
    // A writer on another account keeps the store's write lock contended, so that the
    // cancelled commands also suspend (and are dropped) while waiting for it.
    let stop = Arc::new(AtomicBool::new(false));
    let background = {
        let (domain, stop) = (domain.clone(), stop.clone());
        let other = open(&domain).await;
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                domain.process(deposit(&other, None)).await?;
                tokio::task::yield_now().await;
            }
            Ok::<_, Error>(())
        })
    };
    let mut rng = StdRng::seed_from_u64(seed());
    let (mut finished, mut dropped) = (0, 0);
    for iteration in 0..ITERATIONS {
        let command = domain.process(deposit(&id, None));
        let outcome = if iteration % 2 == 0 {
            let budget = Duration::from_micros(rng.random_range(0..3_000));
            tokio::time::timeout(budget, command).await.ok()
        } else {
            cancel_at_await_point(command, rng.random_range(1..16)).await
        };
        match outcome {
            Some(Ok(())) => finished += 1,
            Some(Err(error)) => {
                panic!("iteration {iteration}: a deposit that ran to its end failed: {error}")
            }
            None => dropped += 1,
        }
    }
    stop.store(true, Ordering::SeqCst);
    background
        .await
        .expect("the background writer ran")
        .expect("the background writer's deposits commit");
    eprintln!(
        "{}: {finished} deposits finished, {dropped} dropped mid-way",
        domain.storage_unchecked().kind()
    );

    // Commits in the same process work, on every connection of the pool.
    for _ in 0..20 {
        domain
            .process(deposit(&id, None))
            .await
            .expect("a deposit after the cancellations commits");
    }
    let deposits = assert_consistent(&domain, &id).await;
    assert!(
        (finished + 20..=ITERATIONS + 20).contains(&deposits),
        "{deposits} deposits stored: every finished one, at most every one started"
    );

    // Another pool on the same database writes too: nothing still holds its write lock.
    let other = build_domain(backend, &gates).await;
    other
        .process(deposit(&id, None))
        .await
        .expect("another pool writes after the cancellations");
    assert_consistent(&other, &id).await;
    assert_consistent(&domain, &id).await;
}

async fn delivery_survives_a_dropped_future(backend: &Backend) {
    let gates = Arc::new(Gates::default());
    let domain = build_domain(backend, &gates).await;
    let id = open(&domain).await;
    {
        let command = domain.process(deposit(&id, Some("gated")));
        tokio::select! {
            outcome = command => panic!("the gated handler let the command finish: {outcome:?}"),
            permit = gates.started.acquire() => permit.expect("the gate is open").forget(),
        }
        // The command committed and its first event handler is running: the caller has
        // gone away, and `command` is dropped here.
    }
    gates.release.add_permits(1);

    // Both listeners finish without anyone polling `process`: the one that was running
    // when the caller went away, and the one after it. (The limit only keeps a regression
    // from hanging the suite; nothing here is timed.)
    tokio::time::timeout(Duration::from_secs(30), gates.done.acquire_many(2))
        .await
        .expect("both listeners of the event ran after the caller went away")
        .expect("the gate is open")
        .forget();
    assert_eq!(domain.metrics().failed_event_handlers, 0);
    assert_consistent(&domain, &id).await;
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(account.balance, Decimal::from(101));
}

/// Everything a failed command must leave as it was.
async fn snapshot(domain: &Domain) -> (Vec<RecordedEvent>, Vec<AccountSummary>, Vec<DepositLog>) {
    (
        domain
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap(),
        domain
            .repository::<AccountSummary>()
            .query()
            .all()
            .await
            .unwrap(),
        domain
            .repository::<DepositLog>()
            .query()
            .all()
            .await
            .unwrap(),
    )
}

async fn a_panicking_command_handler_is_an_error(backend: &Backend) {
    let gates = Arc::new(Gates::default());
    let domain = build_domain(backend, &gates).await;
    let id = open(&domain).await;
    let before = snapshot(&domain).await;

    let error = domain
        .process(PanickyDeposit {
            account_id: id.clone(),
        })
        .await
        .expect_err("a panicking handler fails the command");
    let Error::Handler {
        handler, message, ..
    } = &error
    else {
        panic!("expected a handler error, got {error:?}");
    };
    assert_eq!(handler, "PanickyHandler");
    assert!(
        message.contains("panicked") && message.contains("the handler fell over"),
        "{message}"
    );
    assert_eq!(snapshot(&domain).await, before, "nothing was stored");

    domain
        .process(deposit(&id, None))
        .await
        .expect("the next command commits");
    assert_consistent(&domain, &id).await;
}

async fn a_panicking_projector_rolls_back(backend: &Backend) {
    let gates = Arc::new(Gates::default());
    let domain = build_domain(backend, &gates).await;
    let id = open(&domain).await;
    let before = snapshot(&domain).await;

    let error = domain
        .process(deposit(&id, Some("panic in projector")))
        .await
        .expect_err("a panicking projector fails the command");
    let Error::Handler {
        handler, message, ..
    } = &error
    else {
        panic!("expected a handler error, got {error:?}");
    };
    assert_eq!(handler, "PanickyProjector::on_deposit_made");
    assert!(
        message.contains("panicked") && message.contains("the projector fell over"),
        "{message}"
    );
    assert_eq!(
        snapshot(&domain).await,
        before,
        "the unit of work was rolled back"
    );

    // The transaction, its connection and the in-process locks were released.
    for _ in 0..3 {
        domain
            .process(deposit(&id, None))
            .await
            .expect("the next command commits");
    }
    assert_consistent(&domain, &id).await;
    assert_eq!(snapshot(&domain).await.2.len(), 3);
    build_domain(backend, &gates)
        .await
        .process(deposit(&id, None))
        .await
        .expect("another pool writes");
}

async fn a_panicking_event_handler_is_contained(backend: &Backend) {
    let gates = Arc::new(Gates::default());
    let domain = build_domain(backend, &gates).await;
    let id = open(&domain).await;

    domain
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::ONE,
            reference: Some("panic in event handler".into()),
        })
        .await
        .expect("the command stands when an event handler panics after the commit");
    assert_eq!(domain.metrics().failed_event_handlers, 1);
    assert_eq!(
        gates.saw_panic_deposit.load(Ordering::SeqCst),
        2,
        "the other listeners of the event ran"
    );
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(account.balance, Decimal::from(101));
    assert_consistent(&domain, &id).await;

    domain
        .process(deposit(&id, None))
        .await
        .expect("the next command commits");
    assert_eq!(domain.metrics().failed_event_handlers, 1);
}
