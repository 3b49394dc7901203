//! Issue 10's acceptance test: three engine **processes** (`src/bin/crash_engine.rs`) share
//! one PostgreSQL database's partitions while concurrent writers commit over 20,000 events;
//! one engine is SIGKILLed every 1.5 to 2.3 s and restarted (at least 10 kills). Then every
//! projection row equals a fold of the stored events (each event applied exactly once, in
//! stream order) and the event handler's rows count every event once, in stream order (its
//! writes commit with its checkpoint). Without `FIDELIS_TEST_POSTGRES_URL` it says it did
//! not run.
//!
//! `FIDELIS_CRASH_LOG=<dir>` (with `RUST_LOG`) makes each engine process log to a file there.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use fidelis_core::Processing;
use fidelis_core::prelude::*;
use fidelis_core::store::Cursor;

mod support;
use support::Backend;

#[path = "support/meters.rs"]
mod meters;
use meters::{MILESTONE, MeterRow, OpenMeter, Tick, WatchRow};

const EVENTS: i64 = 20_000;
const KILLS: usize = 10;
const ENGINES: usize = 3;
const PARTITIONS: u32 = 4;
const LEASE_MS: u64 = 1_000;
const METERS: usize = 48;
const WRITERS: usize = 6;
const TICKS_PER_COMMAND: i64 = 5;

/// The engine processes; killed when dropped, so that a failing test leaves none behind.
struct Engines(Vec<Child>);

impl Drop for Engines {
    fn drop(&mut self) {
        for engine in &mut self.0 {
            let _ = engine.kill();
            let _ = engine.wait();
        }
    }
}

fn spawn_engine(url: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash_engine"))
        .args([url, &PARTITIONS.to_string(), &LEASE_MS.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start an engine process")
}

#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_engine_processes_survive_kills_without_applying_an_event_twice() {
    let Some(backend) = Backend::postgres("engine_crash").await else {
        return;
    };
    let url = backend.url();
    let domain = Domain::builder("meters")
        .discover_crate(module_path!())
        .database(url.clone())
        .processing(Processing::Async)
        .engine_partitions(PARTITIONS)
        .engine_lease(Duration::from_millis(LEASE_MS))
        .retry(RetryPolicy::attempts(1_000))
        .build()
        .await
        .expect("build the meters domain");
    let mut meters = Vec::new();
    for _ in 0..METERS {
        meters.push(domain.process(OpenMeter {}).await.expect("open a meter"));
    }
    let meters = Arc::new(meters);

    let mut engines = Engines((0..ENGINES).map(|_| spawn_engine(&url)).collect());
    let written = Arc::new(AtomicI64::new(METERS as i64));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (domain, meters, written) = (domain.clone(), meters.clone(), written.clone());
            tokio::spawn(async move {
                let mut turn = writer;
                while written.load(Ordering::SeqCst) < EVENTS {
                    turn += WRITERS;
                    let meter_id = meters[turn % meters.len()].clone();
                    domain
                        .process(Tick {
                            meter_id,
                            ticks: TICKS_PER_COMMAND,
                            first: turn as i64,
                        })
                        .await
                        .expect("a tick commits");
                    written.fetch_add(TICKS_PER_COMMAND, Ordering::SeqCst);
                }
            })
        })
        .collect();

    // Kill one engine every 1.5 to 2.3 s (a lease and more: some kills land on an engine
    // that just took over) until the writers are done and the kills are counted.
    let mut kills = 0;
    let started = Instant::now();
    while kills < KILLS || writers.iter().any(|w| !w.is_finished()) {
        tokio::time::sleep(Duration::from_millis(1_500 + 197 * (kills as u64 % 5))).await;
        let victim = kills % ENGINES;
        let engine = &mut engines.0[victim];
        if let Some(status) = engine.try_wait().expect("poll an engine") {
            panic!("engine process {victim} exited on its own: {status}");
        }
        engine.kill().expect("SIGKILL an engine");
        engine.wait().expect("reap the killed engine");
        *engine = spawn_engine(&url);
        kills += 1;
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the writers did not finish in 4 minutes"
        );
    }
    for writer in writers {
        writer.await.expect("a writer task");
    }

    // The three engines (the last restarted included) catch up.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        domain.storage_unchecked().settle().await.expect("settle");
        let status = domain.engine().status().await.expect("status");
        assert_eq!(status.len(), 2 * PARTITIONS as usize, "{status:?}");
        if status.iter().all(|s| s.lag == 0) {
            assert!(status.iter().all(|s| s.dead_letters == 0), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the engines did not catch up: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(engines);

    // The expected rows: a fold of every stored event.
    #[derive(Default, Debug, PartialEq)]
    struct Expected {
        events: i64,
        sum: i64,
        last_version: i64,
        milestones: i64,
        last_milestone: i64,
    }
    let mut expected: HashMap<String, Expected> = HashMap::new();
    let mut after = Cursor::START;
    let store = domain.storage_unchecked();
    loop {
        let events = store.read_all(after, 5_000).await.expect("read all");
        let Some(last) = events.last() else { break };
        after = last.metadata.cursor();
        for event in &events {
            let id = event
                .metadata
                .stream
                .split_once('-')
                .map(|(_, id)| id.to_owned())
                .expect("a stream id");
            let entry = expected.entry(id).or_default();
            entry.events += 1;
            entry.last_version = event.metadata.version;
            if event.metadata.type_name.ends_with("Ticked.v1") {
                let amount = event.data().expect("event data")["amount"]
                    .as_i64()
                    .expect("an amount");
                entry.sum += amount;
                if amount % MILESTONE == 0 {
                    entry.milestones += 1;
                    entry.last_milestone = event.metadata.version;
                }
            }
        }
    }
    let total: i64 = expected.values().map(|e| e.events).sum();
    assert!(total >= EVENTS, "{total} events written");
    for meter in meters.iter() {
        let want = &expected[meter.as_str()];
        let row = domain
            .repository::<MeterRow>()
            .get(meter)
            .await
            .expect("a meter row");
        assert_eq!(
            (row.applied, row.sum, row.last_version, row.out_of_order),
            (want.events, want.sum, want.last_version, 0),
            "meter {meter}: applied, sum, last version, applied out of order or twice"
        );
        let watch = domain
            .repository::<WatchRow>()
            .get(meter)
            .await
            .expect("a watch row");
        assert_eq!(
            (watch.deliveries, watch.max_version, watch.regressions),
            (want.milestones, want.last_milestone, 0),
            "meter {meter}: the handler's count of milestones, last version, and versions \
             seen at or below an earlier one (twice or out of order)"
        );
    }
    tracing::info!(total, kills, "engine crash test passed");
    eprintln!(
        "engine_crash: {total} events, {kills} kills of {ENGINES} engine processes, every row equal to the fold"
    );
    backend.finish().await;
}
