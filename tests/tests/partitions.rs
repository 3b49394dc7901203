//! Partitions and leases: the one-engine rule of SQLite, fencing of a stale owner (event
//! handlers on every adapter, projectors on PostgreSQL), leases given back by a clean
//! shutdown, a shutdown interrupting a retry wait, owners in `engine.status()`.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use fidelis_core::chrono;
use fidelis_core::prelude::*;
use fidelis_core::query::QuerySpec;
use fidelis_core::store::system::{self, Lease};
use fidelis_core::{DomainBuilder, HandlerRetry, Processing};
use tokio::sync::{oneshot, watch};

mod support;
use support::{Backend, on_every_adapter};

#[path = "support/meters.rs"]
mod meters;
use meters::{Meter, OpenMeter, Tick, Ticked};

async fn domain(url: &str) -> Domain {
    Domain::builder("meters")
        .discover_crate(module_path!())
        .database(url.to_owned())
        .processing(Processing::Async)
        .engine_lease(Duration::from_secs(5))
        .build()
        .await
        .expect("build")
}

/// A second engine on the same SQLite file fails, naming the file and the holder; once the
/// first stops cleanly (its leases released), the second runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_one_sqlite_file_is_refused_with_the_file_named() {
    let Some(backend) = Backend::sqlite().await else {
        return;
    };
    let url = backend.url();
    let first = domain(&url).await;
    let second = domain(&url).await;
    first.process(OpenMeter {}).await.expect("open");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let engine = first.engine();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let error = second
        .engine()
        .run_until_idle()
        .await
        .expect_err("a second engine");
    let message = error.to_string();
    let file = url.trim_start_matches("sqlite://");
    assert!(message.contains("another engine runs on"), "{message}");
    assert!(message.contains(file), "{message} names {file}");
    assert!(message.contains(first.engine().owner()), "{message}");
    let _ = stop.send(());
    running
        .await
        .expect("the engine task")
        .expect("the first engine");
    second
        .engine()
        .run_until_idle()
        .await
        .expect("the first released its leases");
    backend.finish().await;
}

// ---- fencing, clean shutdown, retry waits, owners -----------------------------------------

/// Gates and curses of the [`Gatekeeper`] and [`GateTally`], per meter: a listener reaching
/// an armed gate says so and waits until it opens; a cursed meter's ticks fail.
#[derive(Default)]
struct Gates {
    armed: HashMap<String, (watch::Sender<bool>, watch::Sender<bool>)>,
    cursed: HashMap<String, usize>,
}

fn gates() -> std::sync::MutexGuard<'static, Gates> {
    static GATES: OnceLock<Mutex<Gates>> = OnceLock::new();
    GATES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Arms a gate for `listener` on `meter`: returns (entered, open).
fn arm(listener: &str, meter: &Identifier) -> (watch::Receiver<bool>, watch::Sender<bool>) {
    let (entered, entered_rx) = watch::channel(false);
    let (open, _) = watch::channel(false);
    gates().armed.insert(
        format!("{listener}/{meter}"),
        (entered.clone(), open.clone()),
    );
    (entered_rx, open)
}

async fn pass_gate(listener: &str, meter: &Identifier) {
    let gate = gates().armed.get(&format!("{listener}/{meter}")).cloned();
    if let Some((entered, open)) = gate {
        entered.send_replace(true);
        let mut open = open.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }
}

/// Makes the [`Gatekeeper`] fail on every tick of `meter`.
fn curse(meter: &Identifier) {
    gates().cursed.insert(meter.to_string(), 0);
}

/// How often the [`Gatekeeper`] failed on a cursed meter's ticks.
fn failures(meter: &Identifier) -> usize {
    gates()
        .cursed
        .get(meter.as_str())
        .copied()
        .unwrap_or_default()
}

/// How many ticks the [`Gatekeeper`] applied to a meter.
#[projection]
struct GateRow {
    #[field(identifier)]
    meter_id: Identifier,
    seen: i64,
}

/// How many ticks the [`GateTally`] applied to a meter.
#[projection]
struct TallyRow {
    #[field(identifier)]
    meter_id: Identifier,
    seen: i64,
}

/// An event handler that counts ticks, behind a gate, failing on cursed meters.
#[derive(Default)]
struct Gatekeeper;

#[event_handler(part_of = Meter)]
impl Gatekeeper {
    #[handle(Ticked)]
    async fn ticked(&self, event: &Event<Ticked>, ctx: &mut EventHandlerContext) -> Result<()> {
        pass_gate("Gatekeeper", &event.meter_id).await;
        if let Some(count) = gates().cursed.get_mut(event.meter_id.as_str()) {
            *count += 1;
            return Err(Error::handler("Gatekeeper", "this meter is cursed"));
        }
        let mut repo = ctx.repository::<GateRow>();
        let mut row = repo.find(&event.meter_id).await?.unwrap_or(GateRow {
            meter_id: event.meter_id.clone(),
            seen: 0,
        });
        row.seen += 1;
        repo.add(row).await
    }
}

/// A projector that counts ticks, behind a gate.
#[derive(Default)]
struct GateTally;

#[projector(for = TallyRow, aggregates = [Meter])]
impl GateTally {
    #[on(Ticked)]
    async fn ticked(&self, event: &Event<Ticked>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        pass_gate("GateTally", &event.meter_id).await;
        let mut repo = ctx.repository::<TallyRow>();
        let mut row = repo.find(&event.meter_id).await?.unwrap_or(TallyRow {
            meter_id: event.meter_id.clone(),
            seen: 0,
        });
        row.seen += 1;
        repo.add(row).await
    }
}

fn builder(lease: Duration) -> DomainBuilder {
    Domain::builder("meters")
        .discover_crate(module_path!())
        .processing(Processing::Async)
        .engine_lease(lease)
        .handler_retry(HandlerRetry::exponential(5, Duration::from_secs(30)))
}

/// An engine running in a task until `stop` is sent.
fn start(domain: &Domain) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Result<()>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let engine = domain.engine();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    (stop, running)
}

async fn tick(domain: &Domain, meter: &Identifier, ticks: i64) {
    domain
        .process(Tick {
            meter_id: meter.clone(),
            ticks,
            first: 1,
        })
        .await
        .expect("a tick");
}

/// How many ticks of a meter the [`Gatekeeper`] (or, `tally`, the [`GateTally`]) applied.
async fn seen(domain: &Domain, meter: &Identifier, tally: bool) -> Option<i64> {
    if tally {
        domain
            .repository::<TallyRow>()
            .find(meter)
            .await
            .expect("a row")
            .map(|row| row.seen)
    } else {
        domain
            .repository::<GateRow>()
            .find(meter)
            .await
            .expect("a row")
            .map(|row| row.seen)
    }
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes a subscription's leases away from their holder, as another engine would after a
/// pause of the holder past its lease: owner `thief`, the token one higher, for `for_`.
async fn steal(domain: &Domain, subscription: &str, for_: Duration) {
    let storage = domain.storage_unchecked();
    let leases = system::query::<Lease>(
        storage.as_ref(),
        &QuerySpec {
            filters: vec![system::field_eq("subscription", subscription.to_owned())],
            ..QuerySpec::default()
        },
    )
    .await
    .expect("read the leases");
    assert!(!leases.is_empty(), "{subscription} has leases");
    let mut transaction = storage.begin().await.expect("begin");
    for lease in leases {
        system::put(
            transaction.as_mut(),
            Lease {
                owner: "thief".to_owned(),
                token: lease.token + 1,
                expires_at: chrono::Utc::now()
                    + chrono::TimeDelta::from_std(for_).expect("a duration"),
                ..lease
            },
        )
        .await
        .expect("steal a lease");
    }
    transaction.commit().await.expect("commit the theft");
}

/// A stale owner (its lease taken over while its event handler runs) cannot commit: the
/// handler's writes and its checkpoint are refused together; once the thief's lease lapses
/// the engine takes the partition back and delivers the events, each once.
async fn a_stale_owner_cannot_commit_an_event_handlers_work(backend: &Backend) {
    let domain = backend.build(builder(Duration::from_secs(5))).await;
    let meter = domain.process(OpenMeter {}).await.expect("open");
    let (entered, open) = arm("Gatekeeper", &meter);
    tick(&domain, &meter, 2).await;
    let (stop, running) = start(&domain);
    let mut entered = entered;
    entered.wait_for(|e| *e).await.expect("the handler runs");
    steal(&domain, "Gatekeeper", Duration::from_secs(2)).await;
    open.send_replace(true);
    // The stale delivery is refused: nothing of it lands while the thief holds the lease.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(seen(&domain, &meter, false).await, None);
    let status = domain.engine().status().await.expect("status");
    assert!(
        status
            .iter()
            .any(|s| s.name == "Gatekeeper" && s.owner.as_deref() == Some("thief")),
        "{status:?}"
    );
    // Taken back after the lapse: each event once.
    wait_until("the partition is taken back", async || {
        seen(&domain, &meter, false).await == Some(2)
    })
    .await;
    let _ = stop.send(());
    running.await.expect("the engine task").expect("the engine");
    assert_eq!(seen(&domain, &meter, false).await, Some(2));
}

/// A clean shutdown gives every lease back at once: while running, each status row names
/// this engine as the owner; after, none has an owner, and another engine (another domain
/// on the database) takes over without waiting for the (long) lease time.
async fn a_clean_shutdown_releases_the_leases_at_once(backend: &Backend) {
    let lease = Duration::from_secs(60);
    let first = backend.build(builder(lease)).await;
    let meter = first.process(OpenMeter {}).await.expect("open");
    tick(&first, &meter, 1).await;
    let (stop, running) = start(&first);
    wait_until("the first engine handles the tick", async || {
        seen(&first, &meter, false).await == Some(1)
    })
    .await;
    let owner = first.engine().owner().to_owned();
    wait_until("every partition has its owner", async || {
        let status = first.engine().status().await.expect("status");
        status
            .iter()
            .all(|s| s.owner.as_deref() == Some(owner.as_str()))
    })
    .await;
    let _ = stop.send(());
    running.await.expect("the engine task").expect("the engine");
    let status = first.engine().status().await.expect("status");
    assert!(status.iter().all(|s| s.owner.is_none()), "{status:?}");

    let second = backend.build(builder(lease)).await;
    tick(&second, &meter, 1).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(20), second.engine().run_until_idle())
        .await
        .expect("the second engine does not wait for the first one's leases")
        .expect("the second engine");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(seen(&second, &meter, false).await, Some(2));
}

/// A shutdown interrupts a handler's wait between retries (here 15 to 30 s): the engine
/// stops at once, the event is neither dead-lettered nor passed, and its lease is released.
async fn a_shutdown_interrupts_a_retry_wait(backend: &Backend) {
    let domain = backend.build(builder(Duration::from_secs(5))).await;
    let meter = domain.process(OpenMeter {}).await.expect("open");
    curse(&meter);
    tick(&domain, &meter, 1).await;
    let (stop, running) = start(&domain);
    wait_until("the handler fails once", async || failures(&meter) >= 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("the shutdown does not wait out the retry")
        .expect("the engine task")
        .expect("the engine");
    assert!(stopping.elapsed() < Duration::from_secs(5));
    assert_eq!(failures(&meter), 1, "no retry after the shutdown");
    let letters = domain.dead_letters().list().await.expect("dead letters");
    assert!(letters.is_empty(), "{letters:?}");
    let status = domain.engine().status().await.expect("status");
    let gatekeeper: Vec<_> = status.iter().filter(|s| s.name == "Gatekeeper").collect();
    // The meter's two events (opened, ticked) are still ahead of the checkpoint.
    assert_eq!(
        gatekeeper.iter().map(|s| s.lag).sum::<u64>(),
        2,
        "{gatekeeper:?}"
    );
    assert!(
        gatekeeper.iter().all(|s| s.owner.is_none()),
        "{gatekeeper:?}"
    );
}

on_every_adapter!(
    a_stale_owner_cannot_commit_an_event_handlers_work,
    a_clean_shutdown_releases_the_leases_at_once,
    a_shutdown_interrupts_a_retry_wait,
);

/// On PostgreSQL (where a projector's batch does not hold the only write lock), a stale
/// owner's projector batch is refused at commit: its rows and checkpoint do not land; once
/// the thief's lease lapses, each event is applied once.
#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_owner_cannot_commit_a_projector_batch() {
    let Some(backend) = Backend::postgres("partitions::fenced_projector").await else {
        return;
    };
    let domain = backend.build(builder(Duration::from_secs(5))).await;
    let meter = domain.process(OpenMeter {}).await.expect("open");
    let (mut entered, open) = arm("GateTally", &meter);
    tick(&domain, &meter, 2).await;
    let (stop, running) = start(&domain);
    entered.wait_for(|e| *e).await.expect("the projector runs");
    steal(&domain, "GateTally", Duration::from_secs(2)).await;
    open.send_replace(true);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(seen(&domain, &meter, true).await, None);
    wait_until("the partition is taken back", async || {
        seen(&domain, &meter, true).await == Some(2)
    })
    .await;
    let _ = stop.send(());
    running.await.expect("the engine task").expect("the engine");
    assert_eq!(seen(&domain, &meter, true).await, Some(2));
    backend.finish().await;
}
