//! The comparison binary: runs the seed-ledger workloads through Fidelis, the hand-written
//! baseline and cqrs-es in memory, and through Fidelis on SQLite and PostgreSQL and cqrs-es on
//! postgres-es, in one process; checks that they all end with the same balances, and prints
//! the tables for `BENCHMARKS.md`. Workload (e), concurrent deposits, runs Fidelis (in memory,
//! on SQLite, on PostgreSQL), postgres-es and a raw sqlx baseline from many client tasks at
//! once.
//!
//! ```text
//! [FIDELIS_BENCH_POSTGRES_URL=postgres://…] cargo run --release -p fidelis-bench --
//!     [--quick] [--scale N…] [--reps N] [--only NAME]… [--memory | --no-memory]
//!     [--databases | --no-databases] [--clients N] [--pool N]
//! ```
//!
//! The database rows run by default: SQLite always, PostgreSQL (Fidelis, postgres-es, the raw
//! baseline) when `FIDELIS_BENCH_POSTGRES_URL` names a server (each repetition in a schema of
//! its own, dropped afterwards). `--quick` runs the memory rows and SQLite at tiny sizes, no
//! server needed; with `--databases` it also runs PostgreSQL, if the variable is set.
//! `--only concurrent` runs workload (e) alone. Workloads (f) engine catch-up and (g) commit →
//! visible latency run in memory, on SQLite and on PostgreSQL (when its rows run); `--only
//! catchup`, `--only latency` or `--only engine` (both) run them alone. Workload (h), the
//! rebuild of `AccountSummary` from the store of (f), runs alone with `--only rebuild`.
//! Workload (i), the example's transfers through its `FundsTransfer` process manager (transfers per second, sync
//! processing, memory, SQLite and PostgreSQL), runs only when named: `--only transfers`.
//! Workload (j), the outbox relay's throughput to an in-memory broker (memory, SQLite and
//! PostgreSQL), runs only when named: `--only relay`.

#![allow(clippy::print_stdout)] // printing the report is this binary's job

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fidelis_bench::baseline::Baseline;
use fidelis_bench::concurrent::{self, ConcurrentPass, ConcurrentSizes};
use fidelis_bench::cqrs::{CqrsMemStore, CqrsQuiet};
use fidelis_bench::db::{POSTGRES_URL_VAR, PostgresScratch, SqliteScratch};
use fidelis_bench::engine::{self as engine_rows, CatchupPass, EngineSizes, LatencyPass};
use fidelis_bench::fidelis::{FidelisLedger, FidelisPostgres, FidelisSqlite};
use fidelis_bench::postgres_es::PostgresEsLedger;
use fidelis_bench::raw::RawSqlx;
use fidelis_bench::relay::{self as relay_rows, RelayPass, RelaySizes};
use fidelis_bench::transfers::{self as transfer_rows, TransferSizes, TransfersPass};
use fidelis_bench::workload::{Money, deposit_amount, opening_deposit};
use fidelis_bench::{BenchError, Ledger, Sizes};

const IMPLEMENTATIONS: [&str; 4] = [
    FidelisLedger::NAME,
    Baseline::NAME,
    CqrsMemStore::NAME,
    CqrsQuiet::NAME,
];

/// The database rows.
const DATABASE_IMPLEMENTATIONS: [&str; 3] = [
    FidelisSqlite::NAME,
    FidelisPostgres::NAME,
    PostgresEsLedger::NAME,
];

/// `--only concurrent`: workload (e) alone.
const CONCURRENT: &str = "concurrent";

/// `--only catchup`, `--only latency`, `--only engine` (both): workloads (f) and (g) alone.
const CATCHUP: &str = "catchup";
const LATENCY: &str = "latency";
const ENGINE: &str = "engine";
/// `--only rebuild`: workload (h), the rebuild of `AccountSummary`, alone.
const REBUILD: &str = "rebuild";
/// `--only transfers`: workload (i), the example's transfer process manager, alone.
const TRANSFERS: &str = "transfers";
/// `--only relay`: workload (j), the outbox relay, alone.
const RELAY: &str = "relay";

/// Events held by each implementation in the memory measurement.
const MEMORY_EVENTS: usize = 100_000;

struct Args {
    quick: bool,
    scales: Vec<usize>,
    reps: usize,
    only: Vec<String>,
    memory: bool,
    memory_child: Option<String>,
    /// The database rows to run (after `--only`, `--no-databases` and the PostgreSQL URL).
    databases: Vec<String>,
    /// The implementations of workload (e) to run (after the same filters).
    concurrent: Vec<String>,
    /// Client tasks of workload (e).
    clients: usize,
    /// Connections in each implementation's pool in workload (e).
    pool: u32,
    /// The stores workload (f) runs on.
    catchup: Vec<String>,
    /// `--engines N…`: workload (f) on PostgreSQL also with N engines running side by side
    /// (`engine.run`, one domain and pool each, in this process), for each N.
    engines: Vec<usize>,
    /// The stores workload (g) runs on.
    latency: Vec<String>,
    /// The stores workload (h) runs on.
    rebuild: Vec<String>,
    /// The stores workload (i) runs on (only when named: `--only transfers`).
    transfers: Vec<String>,
    /// The stores workload (j) runs on (only when named: `--only relay`).
    relay: Vec<String>,
    /// The PostgreSQL server, when its rows run.
    postgres_url: Option<String>,
    /// Why the PostgreSQL rows do not run, when they do not.
    postgres_skipped: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        scales: Vec::new(),
        reps: 0,
        only: Vec::new(),
        memory: true,
        memory_child: None,
        databases: Vec::new(),
        concurrent: Vec::new(),
        clients: ConcurrentSizes::FULL.clients,
        pool: 16,
        catchup: Vec::new(),
        engines: Vec::new(),
        latency: Vec::new(),
        rebuild: Vec::new(),
        transfers: Vec::new(),
        relay: Vec::new(),
        postgres_url: None,
        postgres_skipped: None,
    };
    let mut explicit_memory = None;
    let mut explicit_databases = None;
    let mut iter = std::env::args().skip(1).peekable();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--scale" => {
                while let Some(n) = iter.peek().and_then(|v| v.parse::<usize>().ok()) {
                    args.scales.push(n);
                    iter.next();
                }
                if args.scales.is_empty() {
                    return Err("--scale needs at least one factor, e.g. --scale 10 100".into());
                }
            }
            "--reps" => {
                args.reps = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--reps needs N ≥ 1")?;
            }
            "--only" => {
                let name = iter
                    .next()
                    .ok_or("--only needs an implementation name or a workload")?;
                if ![
                    CONCURRENT, CATCHUP, LATENCY, ENGINE, REBUILD, TRANSFERS, RELAY,
                ]
                .contains(&name.as_str())
                    && !IMPLEMENTATIONS.contains(&name.as_str())
                    && !DATABASE_IMPLEMENTATIONS.contains(&name.as_str())
                    && !concurrent::IMPLEMENTATIONS.contains(&name.as_str())
                {
                    return Err(format!(
                        "unknown implementation `{name}`: one of {IMPLEMENTATIONS:?}, \
                         {DATABASE_IMPLEMENTATIONS:?} or {:?}, or a workload: `{CONCURRENT}` (e), \
                         `{CATCHUP}` (f), `{LATENCY}` (g), `{ENGINE}` (f and g), `{REBUILD}` (h), \
                         `{TRANSFERS}` (i), `{RELAY}` (j)",
                        concurrent::IMPLEMENTATIONS
                    ));
                }
                args.only.push(name);
            }
            "--clients" => {
                args.clients = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--clients needs N ≥ 1")?;
            }
            "--pool" => {
                args.pool = iter
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or("--pool needs N ≥ 1")?;
            }
            "--engines" => {
                while let Some(n) = iter.peek().and_then(|v| v.parse::<usize>().ok()) {
                    args.engines.push(n.max(1));
                    iter.next();
                }
                if args.engines.is_empty() {
                    return Err("--engines needs at least one count, e.g. --engines 1 3".into());
                }
            }
            "--memory" => explicit_memory = Some(true),
            "--no-memory" => explicit_memory = Some(false),
            "--databases" => explicit_databases = Some(true),
            "--no-databases" => explicit_databases = Some(false),
            "--memory-child" => {
                args.memory_child = Some(iter.next().ok_or("--memory-child needs a name")?)
            }
            "-h" | "--help" => {
                return Err(format!(
                    "usage: [{POSTGRES_URL_VAR}=postgres://…] fidelis-bench [--quick] [--scale N…] [--reps N] \
                     [--only NAME]… [--memory|--no-memory] [--databases|--no-databases] \
                     [--clients N] [--pool N] [--engines N…]\n\
                     implementations: {IMPLEMENTATIONS:?} (memory), {DATABASE_IMPLEMENTATIONS:?} (databases), \
                     {:?} (concurrent deposits)\n\
                     --only concurrent: the concurrent deposits alone (with implementation names: those only)\n\
                     --only catchup | latency | engine: the engine's catch-up (f), its commit → visible \
                     latency (g), or both, alone (memory, SQLite, PostgreSQL)\n\
                     --engines N…: the PostgreSQL catch-up also with N engines running side by \
                     side (one domain and pool each, in this process), for each N\n\
                     --only transfers: the example's transfers through its process manager (i), alone \
                     (memory, SQLite, PostgreSQL)\n\
                     --only relay: the outbox relay's throughput to an in-memory broker (j), alone \
                     (memory, SQLite, PostgreSQL)\n\
                     --clients N: client tasks of the concurrent deposits (default 16)\n\
                     --pool N: connections per implementation in the concurrent deposits (default 16)",
                    concurrent::IMPLEMENTATIONS
                ));
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if args.scales.is_empty() {
        args.scales = if args.quick { vec![10] } else { vec![10, 100] };
    }
    args.scales.retain(|&n| n > 1);
    if args.reps == 0 {
        args.reps = if args.quick { 1 } else { 3 };
    }
    args.memory = explicit_memory.unwrap_or(!args.quick);
    // `concurrent`, `catchup`, `latency` and `engine` name workloads, the other names
    // implementations: with a workload named, only the workloads named run (workload (e) by
    // the implementations named, if any). Without any `--only`, everything runs.
    let named = |workloads: &[&str]| args.only.iter().any(|n| workloads.contains(&n.as_str()));
    let concurrent_named = named(&[CONCURRENT]);
    let catchup_named = named(&[CATCHUP, ENGINE]);
    let latency_named = named(&[LATENCY, ENGINE]);
    let rebuild_named = named(&[REBUILD]);
    let transfers_named = named(&[TRANSFERS]);
    let relay_named = named(&[RELAY]);
    let workloads_named = concurrent_named
        || catchup_named
        || latency_named
        || rebuild_named
        || transfers_named
        || relay_named;
    let engine_default = args.only.is_empty();
    args.only.retain(|n| {
        ![
            CONCURRENT, CATCHUP, LATENCY, ENGINE, REBUILD, TRANSFERS, RELAY,
        ]
        .contains(&n.as_str())
    });
    let selected = |name: &str| args.only.is_empty() || args.only.iter().any(|n| n == name);
    let databases_on = explicit_databases != Some(false);
    args.databases = DATABASE_IMPLEMENTATIONS
        .iter()
        .filter(|name| !workloads_named && databases_on && selected(name))
        .map(|name| (*name).to_owned())
        .collect();
    args.concurrent = concurrent::IMPLEMENTATIONS
        .iter()
        .filter(|name| {
            (!workloads_named || concurrent_named)
                && selected(name)
                && (databases_on || **name == concurrent::FIDELIS_MEMORY)
        })
        .map(|name| (*name).to_owned())
        .collect();
    let engine_backends = || -> Vec<String> {
        engine_rows::BACKENDS
            .iter()
            .filter(|backend| databases_on || **backend == "memory")
            .map(|backend| (*backend).to_owned())
            .collect()
    };
    if catchup_named || engine_default {
        args.catchup = engine_backends();
    }
    if latency_named || engine_default {
        args.latency = engine_backends();
    }
    if rebuild_named || engine_default {
        args.rebuild = engine_backends();
    }
    if transfers_named {
        args.transfers = transfer_rows::BACKENDS
            .iter()
            .filter(|backend| databases_on || **backend == "memory")
            .map(|backend| (*backend).to_owned())
            .collect();
    }
    if relay_named {
        args.relay = relay_rows::BACKENDS
            .iter()
            .filter(|backend| databases_on || **backend == "memory")
            .map(|backend| (*backend).to_owned())
            .collect();
    }
    let wants_postgres = args
        .databases
        .iter()
        .chain(&args.concurrent)
        .any(|name| concurrent::needs_postgres(name))
        || args
            .catchup
            .iter()
            .chain(&args.latency)
            .chain(&args.rebuild)
            .chain(&args.transfers)
            .chain(&args.relay)
            .any(|b| b == "postgres");
    if wants_postgres {
        let url = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|url| !url.trim().is_empty());
        if args.quick && explicit_databases != Some(true) {
            args.postgres_skipped =
                Some("--quick runs no PostgreSQL rows (add --databases to run them)".to_owned());
        } else if url.is_none() {
            args.postgres_skipped = Some(format!(
                "{POSTGRES_URL_VAR} is unset (e.g. {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/fidelis_bench)"
            ));
        }
        if args.postgres_skipped.is_some() {
            args.databases
                .retain(|name| !concurrent::needs_postgres(name));
            args.concurrent
                .retain(|name| !concurrent::needs_postgres(name));
            args.catchup.retain(|backend| backend != "postgres");
            args.latency.retain(|backend| backend != "postgres");
            args.rebuild.retain(|backend| backend != "postgres");
            args.transfers.retain(|backend| backend != "postgres");
            args.relay.retain(|backend| backend != "postgres");
        } else {
            args.postgres_url = url;
        }
    }
    let memory_only: Vec<String> = IMPLEMENTATIONS
        .iter()
        .filter(|name| !workloads_named && selected(name))
        .map(|name| (*name).to_owned())
        .collect();
    args.only = memory_only;
    if args.only.is_empty() && args.memory {
        args.memory = false;
    }
    Ok(args)
}

/// What one pass of one implementation produced.
struct Pass {
    /// Workload → (operations, elapsed).
    timings: Vec<(Workload, usize, Duration)>,
    /// Per account: (summary balance, aggregate balance).
    balances: Vec<(Money, Money)>,
    /// The long stream's balance (warm, cold), when workload d ran.
    long_stream: Option<(Money, Money)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Workload {
    Open(usize),
    Deposit(usize),
    Read,
    LoadCold,
    LoadWarm,
    LoadSnapshot,
}

impl Workload {
    fn label(self, sizes: Sizes) -> String {
        let scaled = |factor: usize| sizes.scaled(factor);
        match self {
            Self::Open(f) => format!(
                "(a) open {} accounts{}",
                thousands(scaled(f).accounts),
                at(f)
            ),
            Self::Deposit(f) => format!("(b) {} deposits{}", thousands(scaled(f).deposits), at(f)),
            Self::Read => format!("(c) {} projection reads", thousands(sizes.reads)),
            Self::LoadCold => format!(
                "(d) load {}-event aggregate, cold",
                thousands(sizes.long_stream)
            ),
            Self::LoadWarm => format!(
                "(d) load {}-event aggregate, warm",
                thousands(sizes.long_stream)
            ),
            Self::LoadSnapshot => format!(
                "(d) load {}-event aggregate, cold from a snapshot",
                thousands(sizes.long_stream)
            ),
        }
    }
}

fn at(factor: usize) -> String {
    if factor == 1 {
        String::new()
    } else {
        format!(" ({factor}×)")
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

async fn pass<L: Ledger>(
    ledger: &mut L,
    sizes: Sizes,
    factor: usize,
    full: bool,
) -> Result<Pass, BenchError> {
    let mut timings = Vec::new();

    let start = Instant::now();
    let mut ids = Vec::with_capacity(sizes.accounts);
    for i in 0..sizes.accounts {
        ids.push(ledger.open(i).await?);
    }
    timings.push((Workload::Open(factor), sizes.accounts, start.elapsed()));

    let start = Instant::now();
    for k in 0..sizes.deposits {
        ledger
            .deposit(&ids[k % ids.len()], deposit_amount(k))
            .await?;
    }
    timings.push((Workload::Deposit(factor), sizes.deposits, start.elapsed()));

    let mut long_stream = None;
    if full {
        let start = Instant::now();
        let mut total = Money::ZERO;
        for r in 0..sizes.reads {
            total += ledger.summary_balance(&ids[(r * 7) % ids.len()]).await?;
        }
        black_box(total);
        timings.push((Workload::Read, sizes.reads, start.elapsed()));

        // Timed apart from the workloads: a unit of work of `long_stream` events (issue 15).
        let start = Instant::now();
        let id = ledger.seed_long_stream(sizes.long_stream).await?;
        // stderr: the passes run with stdout gagged.
        eprintln!(
            "seeding workload (d), {}: {} events in one unit of work in {:.3} s",
            L::NAME,
            thousands(sizes.long_stream),
            start.elapsed().as_secs_f64()
        );
        let warm = ledger.load_balance(&id).await?; // fills a cache, if there is one
        // One untimed load before each cold row: on SQLite, the first read of a pooled
        // connection after another connection's write costs a one-off 40-125 ms when that
        // connection replayed the long stream before (BENCHMARKS.md, issue 11); the rows
        // measure loads, not that.
        black_box(ledger.cold_load_balance(&id).await?);
        let start = Instant::now();
        for _ in 0..sizes.loads {
            black_box(ledger.cold_load_balance(&id).await?);
        }
        timings.push((Workload::LoadCold, sizes.loads, start.elapsed()));
        let start = Instant::now();
        for _ in 0..sizes.loads {
            black_box(ledger.load_balance(&id).await?);
        }
        timings.push((Workload::LoadWarm, sizes.loads, start.elapsed()));
        if ledger.take_snapshot(&id).await? {
            black_box(ledger.snapshot_load_balance(&id).await?);
            let start = Instant::now();
            for _ in 0..sizes.loads {
                black_box(ledger.snapshot_load_balance(&id).await?);
            }
            timings.push((Workload::LoadSnapshot, sizes.loads, start.elapsed()));
            let from_snapshot = ledger.snapshot_load_balance(&id).await?;
            if from_snapshot != warm {
                return Err(format!(
                    "{}: long stream balance from a snapshot {from_snapshot}, expected {warm}",
                    L::NAME
                )
                .into());
            }
        }
        long_stream = Some((warm, ledger.cold_load_balance(&id).await?));
    }

    let mut balances = Vec::with_capacity(ids.len());
    for id in &ids {
        balances.push((
            ledger.summary_balance(id).await?,
            ledger.load_balance(id).await?,
        ));
    }
    Ok(Pass {
        timings,
        balances,
        long_stream,
    })
}

async fn pass_of(name: &str, sizes: Sizes, factor: usize, full: bool) -> Result<Pass, BenchError> {
    match name {
        FidelisLedger::NAME => {
            pass(&mut FidelisLedger::in_memory().await?, sizes, factor, full).await
        }
        Baseline::NAME => pass(&mut Baseline::default(), sizes, factor, full).await,
        CqrsMemStore::NAME => pass(&mut CqrsMemStore::build(), sizes, factor, full).await,
        CqrsQuiet::NAME => pass(&mut CqrsQuiet::build(), sizes, factor, full).await,
        other => Err(format!("unknown implementation `{other}`").into()),
    }
}

/// One pass of a database implementation on a fresh database: a new SQLite file, or a new
/// schema on the PostgreSQL server (dropped afterwards). Connecting and creating tables is
/// not timed.
async fn database_pass_of(
    name: &str,
    sizes: Sizes,
    postgres_url: Option<&str>,
) -> Result<Pass, BenchError> {
    let postgres_url = || postgres_url.ok_or_else(|| format!("{POSTGRES_URL_VAR} is unset"));
    match name {
        FidelisSqlite::NAME => {
            let scratch = SqliteScratch::new()?;
            let mut ledger = FidelisSqlite(FidelisLedger::on_database(&scratch.url()).await?);
            let result = pass(&mut ledger, sizes, 1, true).await;
            drop(ledger);
            drop(scratch);
            result
        }
        FidelisPostgres::NAME => {
            let scratch = PostgresScratch::new(postgres_url()?).await?;
            let mut ledger = FidelisPostgres(FidelisLedger::on_database(&scratch.url()).await?);
            let result = pass(&mut ledger, sizes, 1, true).await;
            drop(ledger);
            scratch.drop_schema().await?;
            result
        }
        PostgresEsLedger::NAME => {
            let scratch = PostgresScratch::new(postgres_url()?).await?;
            let mut ledger = PostgresEsLedger::connect(scratch.connect_options()?).await?;
            let result = pass(&mut ledger, sizes, 1, true).await;
            ledger.close().await;
            scratch.drop_schema().await?;
            result
        }
        other => Err(format!("unknown implementation `{other}`").into()),
    }
}

/// The balances the rules imply, computed without any implementation.
fn expected_balances(sizes: Sizes) -> Vec<Money> {
    let mut balances: Vec<Money> = (0..sizes.accounts).map(opening_deposit).collect();
    for k in 0..sizes.deposits {
        balances[k % sizes.accounts] += deposit_amount(k);
    }
    balances
}

fn expected_long_stream(sizes: Sizes) -> Money {
    (1..sizes.long_stream).fold(opening_deposit(0), |balance, k| balance + deposit_amount(k))
}

/// Checks one pass's balances; returns a description of the first mismatch.
fn check(name: &str, sizes: Sizes, pass: &Pass) -> Result<(), String> {
    let expected = expected_balances(sizes);
    if pass.balances.len() != expected.len() {
        return Err(format!(
            "{name}: {} accounts, expected {}",
            pass.balances.len(),
            expected.len()
        ));
    }
    for (i, (&(summary, aggregate), &want)) in pass.balances.iter().zip(&expected).enumerate() {
        if summary != want || aggregate != want {
            return Err(format!(
                "{name}: account {i} has summary balance {summary} and aggregate balance {aggregate}, expected {want}"
            ));
        }
    }
    if let Some((warm, cold)) = pass.long_stream {
        let want = expected_long_stream(sizes);
        if warm != want || cold != want {
            return Err(format!(
                "{name}: long stream balance warm {warm}, cold {cold}, expected {want}"
            ));
        }
    }
    Ok(())
}

/// The best (shortest) time of each (workload, implementation) over the repetitions.
type Best = BTreeMap<(Workload, String), (usize, Duration)>;

fn record(best: &mut Best, name: &str, pass: &Pass) {
    for &(workload, ops, elapsed) in &pass.timings {
        let entry = best
            .entry((workload, name.to_owned()))
            .or_insert((ops, elapsed));
        if elapsed < entry.1 {
            *entry = (ops, elapsed);
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, BenchError> {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let base = if args.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let database_sizes = if args.quick {
        Sizes::QUICK_DATABASE
    } else {
        Sizes::DATABASE
    };
    let mut best = Best::new();
    let mut best_databases = Best::new();
    let mut failures = Vec::new();
    let mut passes = vec![(1, true)];
    passes.extend(args.scales.iter().map(|&factor| (factor, false)));
    if let Some(reason) = &args.postgres_skipped {
        eprintln!("PostgreSQL rows skipped: {reason}");
    }

    // cqrs-es's `MemStore` prints two lines per command; they go to /dev/null while anything
    // is measured (for every implementation alike), and the report is printed afterwards.
    // Asked before stdout goes to /dev/null: whether both streams are a terminal.
    let mut progress = Progress::new();
    std::io::stdout().flush()?;
    let gag = gag::Gag::stdout()?;
    for &(factor, full) in passes.iter().filter(|_| !args.only.is_empty()) {
        let sizes = base.scaled(factor);
        for rep in 0..args.reps {
            // Rotate the order so that no implementation always runs first (or last).
            for n in 0..args.only.len() {
                let name = &args.only[(n + rep) % args.only.len()];
                progress.step(format_args!(
                    "{sizes} ({factor}×), repetition {}/{}: {name:<14}",
                    rep + 1,
                    args.reps
                ));
                let pass = runtime.block_on(pass_of(name, sizes, factor, full))?;
                if let Err(mismatch) = check(name, sizes, &pass) {
                    failures.push(mismatch);
                }
                record(&mut best, name, &pass);
            }
        }
    }
    for rep in 0..args.reps {
        for n in 0..args.databases.len() {
            let name = &args.databases[(n + rep) % args.databases.len()];
            progress.step(format_args!(
                "{database_sizes} (databases), repetition {}/{}: {name:<17}",
                rep + 1,
                args.reps
            ));
            let pass = runtime.block_on(database_pass_of(
                name,
                database_sizes,
                args.postgres_url.as_deref(),
            ))?;
            if let Err(mismatch) = check(name, database_sizes, &pass) {
                failures.push(mismatch);
            }
            record(&mut best_databases, name, &pass);
        }
    }
    let concurrent_sizes = ConcurrentSizes {
        clients: args.clients,
        ..if args.quick {
            ConcurrentSizes::QUICK
        } else {
            ConcurrentSizes::FULL
        }
    };
    let mut best_concurrent: BTreeMap<String, ConcurrentPass> = BTreeMap::new();
    if !args.concurrent.is_empty() {
        let concurrent_runtime = concurrent::runtime()?;
        for rep in 0..args.reps {
            for n in 0..args.concurrent.len() {
                let name = &args.concurrent[(n + rep) % args.concurrent.len()];
                progress.step(format_args!(
                    "concurrent deposits ({} clients, pool {}), repetition {}/{}: {name:<17}",
                    concurrent_sizes.clients,
                    args.pool,
                    rep + 1,
                    args.reps
                ));
                let pass = concurrent_runtime.block_on(concurrent::pass_of(
                    name,
                    concurrent_sizes,
                    args.pool,
                    args.postgres_url.as_deref(),
                ))?;
                failures.extend(
                    pass.mismatches
                        .iter()
                        .map(|mismatch| format!("{name} (concurrent deposits): {mismatch}")),
                );
                let better = best_concurrent
                    .get(name)
                    .is_none_or(|best| pass.throughput() > best.throughput());
                if better {
                    best_concurrent.insert(name.clone(), pass);
                }
            }
        }
    }
    let engine_sizes = if args.quick {
        EngineSizes::QUICK
    } else {
        EngineSizes::FULL
    };
    let mut best_catchup: BTreeMap<String, CatchupPass> = BTreeMap::new();
    let mut best_latency: BTreeMap<String, LatencyPass> = BTreeMap::new();
    let mut best_rebuild: BTreeMap<String, CatchupPass> = BTreeMap::new();
    if !args.catchup.is_empty() || !args.latency.is_empty() || !args.rebuild.is_empty() {
        let engine_runtime = concurrent::runtime()?;
        for rep in 0..args.reps {
            for backend in &args.catchup {
                progress.step(format_args!(
                    "(f) engine catch-up of {} events, repetition {}/{}: {backend:<8}",
                    engine_sizes.events(),
                    rep + 1,
                    args.reps
                ));
                // `--engines`: PostgreSQL's rows with that many engines running side by side.
                let runs: Vec<(String, Option<usize>)> =
                    if backend == "postgres" && !args.engines.is_empty() {
                        args.engines
                            .iter()
                            .map(|&n| (format!("postgres, {n} engine(s) running"), Some(n)))
                            .collect()
                    } else {
                        vec![(backend.clone(), None)]
                    };
                for (row, engines) in runs {
                    let pass = engine_runtime.block_on(engine_rows::catchup(
                        backend,
                        engine_sizes,
                        args.postgres_url.as_deref(),
                        engines,
                    ))?;
                    keep_best(
                        &mut best_catchup,
                        &mut failures,
                        &row,
                        "engine catch-up",
                        pass,
                        |new, best| new.elapsed < best.elapsed,
                    );
                }
            }
            for backend in &args.rebuild {
                progress.step(format_args!(
                    "(h) rebuild of AccountSummary from {} events, repetition {}/{}: {backend:<8}",
                    engine_sizes.events(),
                    rep + 1,
                    args.reps
                ));
                let pass = engine_runtime.block_on(engine_rows::rebuild(
                    backend,
                    engine_sizes,
                    args.postgres_url.as_deref(),
                ))?;
                keep_best(
                    &mut best_rebuild,
                    &mut failures,
                    backend,
                    "rebuild",
                    pass,
                    |new, best| new.elapsed < best.elapsed,
                );
            }
            for backend in &args.latency {
                progress.step(format_args!(
                    "(g) commit → visible, {} commands/s, repetition {}/{}: {backend:<8}",
                    engine_sizes.rate,
                    rep + 1,
                    args.reps
                ));
                let pass = engine_runtime.block_on(engine_rows::latency(
                    backend,
                    engine_sizes,
                    args.postgres_url.as_deref(),
                ))?;
                keep_best(
                    &mut best_latency,
                    &mut failures,
                    backend,
                    "commit → visible",
                    pass,
                    |new, best| new.quantile(0.99) < best.quantile(0.99),
                );
            }
        }
    }
    let transfer_sizes = if args.quick {
        TransferSizes::QUICK
    } else {
        TransferSizes::FULL
    };
    let mut best_transfers: BTreeMap<String, TransfersPass> = BTreeMap::new();
    if !args.transfers.is_empty() {
        let transfers_runtime = concurrent::runtime()?;
        for rep in 0..args.reps {
            for backend in &args.transfers {
                progress.step(format_args!(
                    "(i) {} transfers, repetition {}/{}: {backend:<8}",
                    transfer_sizes.transfers,
                    rep + 1,
                    args.reps
                ));
                let pass = transfers_runtime.block_on(transfer_rows::transfers(
                    backend,
                    transfer_sizes,
                    args.postgres_url.as_deref(),
                ))?;
                keep_best(
                    &mut best_transfers,
                    &mut failures,
                    backend,
                    "transfers",
                    pass,
                    |new, best| new.elapsed < best.elapsed,
                );
            }
        }
    }
    let relay_sizes = if args.quick {
        RelaySizes::QUICK
    } else {
        RelaySizes::FULL
    };
    let mut best_relay: BTreeMap<String, RelayPass> = BTreeMap::new();
    if !args.relay.is_empty() {
        let relay_runtime = concurrent::runtime()?;
        for rep in 0..args.reps {
            for backend in &args.relay {
                progress.step(format_args!(
                    "(j) relay of {} events, repetition {}/{}: {backend:<8}",
                    relay_sizes.events(),
                    rep + 1,
                    args.reps
                ));
                let pass = relay_runtime.block_on(relay_rows::relay(
                    backend,
                    relay_sizes,
                    args.postgres_url.as_deref(),
                ))?;
                failures.extend(
                    pass.mismatches
                        .iter()
                        .map(|mismatch| format!("{backend} (relay): {mismatch}")),
                );
                if best_relay
                    .get(backend)
                    .is_none_or(|best| pass.elapsed < best.elapsed)
                {
                    best_relay.insert(backend.clone(), pass);
                }
            }
        }
    }
    progress.finish();
    drop(gag);

    if !args.only.is_empty() {
        println!(
            "In memory: throughput, operations per second (best of {} repetitions; higher is better)\n",
            args.reps
        );
        let ratios: Vec<(&str, &str)> = [Baseline::NAME, CqrsMemStore::NAME, CqrsQuiet::NAME]
            .into_iter()
            .map(|other| (FidelisLedger::NAME, other))
            .collect();
        print_table(&args.only, &ratios, base, &best);
        print_costs(&args.only, &best);
    }
    if !args.databases.is_empty() {
        println!(
            "\nOn databases: throughput, operations per second (best of {} repetitions; a fresh \
             SQLite file or PostgreSQL schema per repetition; every command is a transaction)\n",
            args.reps
        );
        print_table(
            &args.databases,
            &[(FidelisPostgres::NAME, PostgresEsLedger::NAME)],
            database_sizes,
            &best_databases,
        );
    }
    if !args.concurrent.is_empty() {
        print_concurrent(args, concurrent_sizes, &best_concurrent);
    }
    if !args.catchup.is_empty() {
        print_catchup(args, engine_sizes, &best_catchup);
    }
    if !args.latency.is_empty() {
        print_latency(args, engine_sizes, &best_latency);
    }
    if !args.rebuild.is_empty() {
        print_rebuild(args, engine_sizes, &best_rebuild);
    }
    if !args.transfers.is_empty() {
        println!(
            "\n(i) Transfers through the FundsTransfer process manager, sync processing ({} transfers \
             around {} accounts, one in ten refused for want of funds; best of {} repetitions)\n",
            transfer_sizes.transfers, transfer_sizes.accounts, args.reps
        );
        println!("| store | transfers/s | ms per transfer |");
        println!("|---|---:|---:|");
        for (backend, pass) in &best_transfers {
            println!(
                "| {backend} | {:.0} | {:.2} |",
                pass.rate(),
                pass.elapsed.as_secs_f64() * 1000.0 / pass.transfers as f64
            );
        }
    }
    if !args.relay.is_empty() {
        println!(
            "\n(j) Outbox relay to an in-memory broker: {} events ({} streams × {}) committed with \
             their outbox rows, then relayed by `run_until_idle` (best of {} repetitions)\n",
            relay_sizes.events(),
            relay_sizes.streams,
            relay_sizes.events_per_stream,
            args.reps
        );
        println!("| store | events/s relayed | relay time | seeding (not measured) |");
        println!("|---|---:|---:|---:|");
        for (backend, pass) in &best_relay {
            println!(
                "| {backend} | {:.0} | {:.2} s | {:.1} s |",
                pass.rate(),
                pass.elapsed.as_secs_f64(),
                pass.seed.as_secs_f64()
            );
        }
    }
    if let Some(reason) = &args.postgres_skipped {
        println!("\nPostgreSQL rows skipped: {reason}.");
    }
    if args.memory {
        print_memory(args)?;
    }
    println!(
        "\nWhole run: {:.0} s (one process; memory children included).",
        started.elapsed().as_secs_f64()
    );
    if failures.is_empty() {
        println!(
            "\nBalance check: every implementation ended with the expected balances (summary rows and aggregates)."
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for failure in &failures {
            eprintln!("balance mismatch: {failure}");
        }
        println!(
            "\nBalance check FAILED ({} mismatches, listed on stderr).",
            failures.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn ops_per_sec(ops: usize, elapsed: Duration) -> f64 {
    ops as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        thousands(rate.round() as usize)
    } else {
        format!("{rate:.1}")
    }
}

/// Prints the throughput table of `names`, with a ratio column per `(numerator, denominator)`
/// pair whose two implementations ran.
fn print_table(names: &[String], ratios: &[(&str, &str)], base: Sizes, best: &Best) {
    let workloads: Vec<Workload> = {
        let mut w: Vec<Workload> = best.keys().map(|(workload, _)| *workload).collect();
        w.dedup();
        w
    };
    let rate = |workload: Workload, name: &str| {
        best.get(&(workload, name.to_owned()))
            .map(|&(ops, d)| ops_per_sec(ops, d))
    };
    let ran = |name: &str| names.iter().any(|n| n == name);
    let ratios: Vec<(&str, &str)> = ratios
        .iter()
        .copied()
        .filter(|(a, b)| ran(a) && ran(b))
        .collect();

    let mut header = String::from("| workload |");
    let mut rule = String::from("|---|");
    for name in names {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---:|");
    }
    for (a, b) in &ratios {
        header.push_str(&format!(" {a} / {b} |"));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for &workload in &workloads {
        let mut line = format!("| {} |", workload.label(base));
        for name in names {
            line.push_str(&format!(
                " {} |",
                rate(workload, name).map_or_else(|| "–".to_owned(), format_rate)
            ));
        }
        for (a, b) in &ratios {
            let ratio = rate(workload, a).zip(rate(workload, b)).map(|(f, o)| f / o);
            line.push_str(&format!(
                " {} |",
                ratio.map_or_else(|| "–".to_owned(), |r| format!("{r:.2}×"))
            ));
        }
        println!("{line}");
    }
}

/// Prints the cost per command (open, deposit) at each scale.
fn print_costs(names: &[String], best: &Best) {
    let workloads: Vec<Workload> = {
        let mut w: Vec<Workload> = best.keys().map(|(workload, _)| *workload).collect();
        w.dedup();
        w
    };
    let rate = |workload: Workload, name: &str| {
        best.get(&(workload, name.to_owned()))
            .map(|&(ops, d)| ops_per_sec(ops, d))
    };
    println!("\nCost per command in memory, microseconds (flat is the goal)\n");
    let mut header = String::from("| command | scale |");
    let mut rule = String::from("|---|---:|");
    for name in names {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for &workload in &workloads {
        let (command, factor) = match workload {
            Workload::Open(f) => ("open", f),
            Workload::Deposit(f) => ("deposit", f),
            _ => continue,
        };
        let mut line = format!("| {command} | {factor}× |");
        for name in names {
            let micros = rate(workload, name).map(|r| 1e6 / r);
            line.push_str(&format!(
                " {} |",
                micros.map_or_else(|| "–".to_owned(), |m| format!("{m:.2}"))
            ));
        }
        println!("{line}");
    }
}

/// Prints workload (e): one row per implementation (its best repetition), then the ratios.
fn print_concurrent(args: &Args, sizes: ConcurrentSizes, best: &BTreeMap<String, ConcurrentPass>) {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "\n(e) Concurrent deposits: {} client tasks at once on a multi-threaded runtime ({workers} \
         worker threads), each opening {} accounts, then making {} deposits, every {}th into one \
         of {} hot accounts shared by all ({} commands in all); one domain or pool of {} \
         connections per implementation; a fresh SQLite file or PostgreSQL schema per repetition; \
         best of {} repetitions by throughput, its retries and latencies\n",
        sizes.clients,
        sizes.accounts_per_client,
        sizes.deposits_per_client,
        concurrent::HOT_EVERY,
        sizes.hot_accounts,
        thousands(sizes.commands()),
        args.pool,
        args.reps
    );
    println!(
        "| implementation | commands/s | version conflicts retried | conflicts returned | median latency | p99 latency | read-model updates lost |\n\
         |---|---:|---:|---:|---:|---:|---:|"
    );
    for name in &args.concurrent {
        let Some(pass) = best.get(name) else { continue };
        let lost = if pass.lost_view_updates == 0 {
            "0".to_owned()
        } else {
            format!(
                "{} ({} stale summaries)",
                pass.lost_view_updates, pass.stale_summaries
            )
        };
        println!(
            "| {name} | {} | {} | {} | {} | {} | {lost} |",
            format_rate(pass.throughput()),
            pass.retries,
            pass.conflicts_returned,
            format_latency(pass.latency(0.5)),
            format_latency(pass.latency(0.99)),
        );
    }
    let ratios = [
        (concurrent::FIDELIS_POSTGRES, concurrent::POSTGRES_ES),
        (concurrent::FIDELIS_POSTGRES, RawSqlx::NAME),
        (concurrent::POSTGRES_ES, RawSqlx::NAME),
    ];
    let rows: Vec<String> = ratios
        .iter()
        .filter_map(|(a, b)| {
            let (a_pass, b_pass) = (best.get(*a)?, best.get(*b)?);
            Some(format!(
                "| {a} / {b} | {:.2}× |",
                a_pass.throughput() / b_pass.throughput()
            ))
        })
        .collect();
    if !rows.is_empty() {
        println!("\n| throughput ratio | |\n|---|---:|\n{}", rows.join("\n"));
    }
}

/// Prints workload (f): one row per store (its fastest repetition).
fn print_catchup(args: &Args, sizes: EngineSizes, best: &BTreeMap<String, CatchupPass>) {
    println!(
        "\n(f) Engine catch-up: a store of {} events ({} accounts, each opened and given {} \
         deposits, seeded in asynchronous processing: one unit of work per account, no projector \
         run), then one engine in this process runs the `AccountSummary` projector from position \
         0 to the head (`engine.run_until_idle()`, batches of 500 events, rows and checkpoint \
         in one transaction per batch); a fresh store per repetition; fastest of {} repetitions; \
         every summary row checked against the synchronous result afterwards\n",
        thousands(sizes.events()),
        thousands(sizes.accounts),
        sizes.deposits_per_account,
        args.reps
    );
    println!(
        "| store | events | catch-up time | events/s | peak RSS above its start | seeding (not timed) |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for (backend, pass) in best {
        println!(
            "| {backend} | {} | {:.2} s | {} | {} | {:.1} s |",
            thousands(pass.events),
            pass.elapsed.as_secs_f64(),
            format_rate(pass.rate()),
            pass.peak_rss_growth_kib.map_or_else(
                || "–".to_owned(),
                |kib| format!("{:.1} MiB", kib as f64 / 1024.0)
            ),
            pass.seed.as_secs_f64()
        );
    }
}

/// Prints workload (h): one row per store (its fastest repetition).
fn print_rebuild(args: &Args, sizes: EngineSizes, best: &BTreeMap<String, CatchupPass>) {
    println!(
        "\n(h) Projection rebuild: the store of (f) ({} events), then \
         `domain.rebuild_projection::<AccountSummary>()` replays every account event into a \
         fresh table (in memory, batches of 1,000) and swaps the rows in with the projector's \
         checkpoint in one transaction; a fresh store per repetition; fastest of {} \
         repetitions; every summary row checked afterwards\n",
        thousands(sizes.events()),
        args.reps
    );
    println!(
        "| store | events | rebuild time | events/s | peak RSS above its start | seeding (not timed) |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for backend in &args.rebuild {
        let Some(pass) = best.get(backend) else {
            continue;
        };
        println!(
            "| {backend} | {} | {:.2} s | {} | {} | {:.1} s |",
            thousands(pass.events),
            pass.elapsed.as_secs_f64(),
            format_rate(pass.rate()),
            pass.peak_rss_growth_kib.map_or_else(
                || "–".to_owned(),
                |kib| format!("{:.1} MiB", kib as f64 / 1024.0)
            ),
            pass.seed.as_secs_f64()
        );
    }
}

/// Prints workload (g): one row per store (its repetition with the lowest p99).
fn print_latency(args: &Args, sizes: EngineSizes, best: &BTreeMap<String, LatencyPass>) {
    println!(
        "\n(g) Commit → visible: deposits at a steady {} commands/s for {} s into {} accounts, \
         in asynchronous processing, with the engine running in the same process (a \
         multi-threaded runtime); per deposit, the time from `process` returning to its \
         `AccountSummary` row showing it (polled every millisecond, so about 1 ms of \
         resolution); lowest p99 of {} repetitions\n",
        sizes.rate,
        sizes.duration.as_secs(),
        sizes.latency_accounts,
        args.reps
    );
    println!(
        "| store | commands/s sent | deposits | p50 | p99 | max |\n|---|---:|---:|---:|---:|---:|"
    );
    for backend in &args.latency {
        let Some(pass) = best.get(backend) else {
            continue;
        };
        println!(
            "| {backend} | {:.0} | {} | {} | {} | {} |",
            pass.achieved_rate,
            thousands(pass.latencies.len()),
            format_latency(pass.quantile(0.5)),
            format_latency(pass.quantile(0.99)),
            format_latency(pass.quantile(1.0)),
        );
    }
}

/// `850 µs`, `12.3 ms`.
fn format_latency(latency: Duration) -> String {
    let micros = latency.as_secs_f64() * 1e6;
    if micros < 1_000.0 {
        format!("{micros:.0} µs")
    } else {
        format!("{:.1} ms", micros / 1e3)
    }
}

/// Reads `VmRSS` and `VmHWM` (peak) from `/proc/self/status`, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn fill<L: Ledger>(mut ledger: L) -> Result<L, BenchError> {
    let accounts = 1_000;
    let mut ids = Vec::with_capacity(accounts);
    for i in 0..accounts {
        ids.push(ledger.open(i).await?);
    }
    for k in 0..MEMORY_EVENTS - accounts {
        ledger
            .deposit(&ids[k % accounts], deposit_amount(k))
            .await?;
    }
    Ok(ledger)
}

/// The child process of the memory measurement: fills one implementation with
/// [`MEMORY_EVENTS`] events and prints `<RSS before> <peak RSS> <RSS after>` in KiB.
fn memory_child(name: &str) -> Result<ExitCode, BenchError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (before, _) = rss_kib();
    std::io::stdout().flush()?;
    let gag = gag::Gag::stdout()?;
    let held: Box<dyn std::any::Any> = runtime.block_on(async {
        Ok::<Box<dyn std::any::Any>, BenchError>(match name {
            FidelisLedger::NAME => Box::new(fill(FidelisLedger::in_memory().await?).await?),
            Baseline::NAME => Box::new(fill(Baseline::default()).await?),
            CqrsMemStore::NAME => Box::new(fill(CqrsMemStore::build()).await?),
            CqrsQuiet::NAME => Box::new(fill(CqrsQuiet::build()).await?),
            other => return Err(format!("unknown implementation `{other}`").into()),
        })
    })?;
    drop(gag);
    let (after, peak) = rss_kib();
    println!("{before} {peak} {after}");
    drop(held);
    Ok(ExitCode::SUCCESS)
}

fn print_memory(args: &Args) -> Result<(), BenchError> {
    println!(
        "\nMemory: {} events in the memory store (1,000 opens + {} deposits), one child process per \
         implementation; peak RSS (VmHWM) minus RSS before the work, from /proc/self/status\n",
        thousands(MEMORY_EVENTS),
        thousands(MEMORY_EVENTS - 1_000)
    );
    println!(
        "| implementation | peak RSS growth | RSS held at the end | per event |\n|---|---:|---:|---:|"
    );
    let exe = std::env::current_exe()?;
    for name in &args.only {
        let output = std::process::Command::new(&exe)
            .args(["--memory-child", name])
            .output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let numbers: Vec<u64> = text
            .split_whitespace()
            .filter_map(|n| n.parse().ok())
            .collect();
        let [before, peak, after] = numbers[..] else {
            return Err(format!(
                "memory child `{name}` failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        };
        let growth = peak.saturating_sub(before);
        println!(
            "| {name} | {:.1} MiB | {:.1} MiB | {} B |",
            growth as f64 / 1024.0,
            after.saturating_sub(before) as f64 / 1024.0,
            growth * 1024 / MEMORY_EVENTS as u64
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let result = match &args.memory_child {
        Some(name) => memory_child(name),
        None => run(&args),
    };
    result.unwrap_or_else(|error| {
        eprintln!("error: {error}");
        ExitCode::FAILURE
    })
}

/// A pass checked against the expected outcome afterwards.
trait Checked {
    /// What the check found wrong (empty when all is right).
    fn mismatches(&self) -> &[String];
}

impl Checked for CatchupPass {
    fn mismatches(&self) -> &[String] {
        &self.mismatches
    }
}

impl Checked for LatencyPass {
    fn mismatches(&self) -> &[String] {
        &self.mismatches
    }
}

impl Checked for TransfersPass {
    fn mismatches(&self) -> &[String] {
        &self.mismatches
    }
}

/// Records one pass of a workload that runs on several stores: its mismatches go to
/// `failures`, named by `row` and `what`, and the pass becomes `row`'s best when there is none
/// yet or `better(pass, best)` says so.
fn keep_best<P: Checked>(
    best: &mut BTreeMap<String, P>,
    failures: &mut Vec<String>,
    row: &str,
    what: &str,
    pass: P,
    better: impl Fn(&P, &P) -> bool,
) {
    failures.extend(
        pass.mismatches()
            .iter()
            .map(|mismatch| format!("{row} ({what}): {mismatch}")),
    );
    if best.get(row).is_none_or(|best| better(&pass, best)) {
        best.insert(row.to_owned(), pass);
    }
}

/// Progress on stderr: one line rewritten in place when stdout and stderr are both a
/// terminal, one line per step otherwise (`| cat`, `| tee log`, `2> file`, CI logs), so that
/// no log holds one run-on line of carriage returns. Must be made before stdout is gagged.
struct Progress {
    terminal: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            terminal: std::io::stderr().is_terminal() && std::io::stdout().is_terminal(),
            shown: false,
        }
    }

    fn step(&mut self, line: std::fmt::Arguments<'_>) {
        if self.terminal {
            // `ESC [K` clears the rest of the line: a shorter step leaves nothing of a longer.
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{}", line.to_string().trim_end());
        }
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.terminal && self.shown {
            eprintln!();
        }
    }
}
