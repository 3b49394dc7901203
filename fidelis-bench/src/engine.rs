//! Workloads (f) and (g): the engine of asynchronous processing.
//!
//! **(f) Catch-up**: a store seeded with accounts and their deposits in asynchronous
//! processing (so no projector ran), then one engine brings the `AccountSummary` projector
//! from position 0 to the head (`engine.run_until_idle()`), timed; every summary row is then
//! checked against what synchronous processing writes (the balances the workload's amounts
//! imply, and one row change per event).
//!
//! **(h) Rebuild**: the store of (f), then `domain.rebuild_projection::<AccountSummary>()`
//! replays it into a fresh table and swaps it in with the checkpoint, timed; every row is
//! checked the same way.
//!
//! **(g) Commit → visible**: commands at a steady rate into a domain in asynchronous
//! processing whose engine runs in the same process; for each deposit, the time from
//! `process` returning to its summary row showing it (p50, p99).

use std::sync::Arc;
use std::time::{Duration, Instant};

use fidelis_core::{Domain, DomainBuilder, Identifier, Processing};
use fidelis_example::account::Account;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::{AccountSummary, AccountSummaryProjector};
use fidelis_example::events::{AccountClosed, AccountOpened, DepositMade, WithdrawalMade};

use crate::db::Scratch;
use crate::workload::{
    BenchError, Money, account_number, deposit_amount, holder_name, opening_deposit,
};

/// The stores the engine workloads run on.
pub const BACKENDS: [&str; 3] = ["memory", "sqlite", "postgres"];

/// How much work (f) and (g) do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineSizes {
    /// (f): accounts in the seeded store.
    pub accounts: usize,
    /// (f): deposits per account (each account's stream: its opening and these).
    pub deposits_per_account: usize,
    /// (g): accounts the deposits go to, round-robin.
    pub latency_accounts: usize,
    /// (g): commands per second.
    pub rate: u32,
    /// (g): how long the load lasts.
    pub duration: Duration,
}

impl EngineSizes {
    /// The sizes: 1,000 accounts × 100 deposits (101,000 events); 200 commands/s
    /// for 5 s.
    pub const FULL: Self = Self {
        accounts: 1_000,
        deposits_per_account: 100,
        latency_accounts: 100,
        rate: 200,
        duration: Duration::from_secs(5),
    };

    /// The smoke pass: 50 × 20 (1,050 events); 200 commands/s for 1 s.
    pub const QUICK: Self = Self {
        accounts: 50,
        deposits_per_account: 20,
        latency_accounts: 20,
        rate: 200,
        duration: Duration::from_secs(1),
    };

    /// Events in the store of (f).
    pub fn events(&self) -> usize {
        self.accounts * (1 + self.deposits_per_account)
    }
}

/// What one catch-up produced.
#[derive(Clone, Debug)]
pub struct CatchupPass {
    /// Events the projector handled.
    pub events: usize,
    /// How long seeding took (not part of the measure).
    pub seed: Duration,
    /// How long the catch-up took (`run_until_idle`, or the engines running until no
    /// partition lags).
    pub elapsed: Duration,
    /// Peak RSS growth during the catch-up, in KiB (`None` where `/proc` cannot tell).
    pub peak_rss_growth_kib: Option<u64>,
    /// Summary rows that differ from synchronous processing's.
    pub mismatches: Vec<String>,
}

impl CatchupPass {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// What one latency run produced.
#[derive(Clone, Debug)]
pub struct LatencyPass {
    /// Commit → visible, one per deposit, sorted.
    pub latencies: Vec<Duration>,
    /// Commands per second actually sent.
    pub achieved_rate: f64,
    /// Summary rows that differ from synchronous processing's at the end.
    pub mismatches: Vec<String>,
}

impl LatencyPass {
    /// The `q` quantile (0.5: the median).
    pub fn quantile(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }
}

/// The example's domain with the `AccountSummary` projector as its only subscription (the
/// compliance handler left out), in asynchronous processing.
fn projector_only() -> DomainBuilder {
    Domain::builder("fidelis")
        .without_discovery()
        .register::<Account>()
        .register::<AccountOpened>()
        .register::<DepositMade>()
        .register::<WithdrawalMade>()
        .register::<AccountClosed>()
        .register::<AccountSummary>()
        .register::<AccountSummaryProjector>()
        .processing(Processing::Async)
}

/// The balance of account `i` of (f) after its deposits, and its transaction count.
fn expected_catchup(i: usize, deposits: usize) -> (Money, i64) {
    let balance = (0..deposits).fold(opening_deposit(i), |balance, j| {
        balance + deposit_amount(i * deposits + j)
    });
    (balance, 1 + deposits as i64)
}

/// Workload (f) on `backend`: seeds, catches up, checks. The store is dropped afterwards.
///
/// `engines`: `None` catches up with one engine's `run_until_idle()`; `Some(n)` with `n`
/// engines running side by side (`engine.run`, each its own domain and connection pool, in
/// this process), timed until every partition has caught up.
pub async fn catchup(
    backend: &str,
    sizes: EngineSizes,
    postgres_url: Option<&str>,
    engines: Option<usize>,
) -> Result<CatchupPass, BenchError> {
    let scratch = Scratch::new(backend, postgres_url, "engine").await?;
    let result = catchup_on(&scratch, sizes, engines).await;
    scratch.drop_store().await?;
    result
}

/// Runs `count` engines (one domain each) until every partition of the projector has
/// caught up; returns how long it took.
async fn catch_up_running(scratch: &Scratch, count: usize) -> Result<Duration, BenchError> {
    let mut domains = Vec::with_capacity(count);
    for _ in 0..count {
        domains.push(scratch.connect(projector_only()).build().await?);
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let mut running = Vec::with_capacity(count);
    for domain in &domains {
        let engine = domain.engine();
        let mut stopped = stopped.clone();
        running.push(tokio::spawn(async move {
            engine
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await
        }));
    }
    // Caught up: no partition has events left (`status` counts them, one COUNT each).
    let watcher = domains[0].engine();
    let elapsed = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if watcher.status().await?.iter().all(|s| s.lag == 0) {
            break started.elapsed();
        }
    };
    let _ = stop.send(true);
    for engine in running {
        engine
            .await
            .map_err(|error| format!("an engine task failed: {error}"))??;
    }
    Ok(elapsed)
}

/// Seeds the store of (f) and (h): one unit of work per account (its opening and its
/// deposits in one commit), in asynchronous processing, so no projector runs and nothing
/// else is timed. Returns the accounts' ids and how long it took.
async fn seed(
    scratch: &Scratch,
    sizes: EngineSizes,
) -> Result<(Vec<Identifier>, Duration), BenchError> {
    let seeder = scratch
        .connect(fidelis_example::domain().processing(Processing::Async))
        .build()
        .await?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(sizes.accounts);
    for i in 0..sizes.accounts {
        let mut account = Account::open(&account_number(i), &holder_name(i), opening_deposit(i))?;
        for j in 0..sizes.deposits_per_account {
            account.deposit(deposit_amount(i * sizes.deposits_per_account + j), None)?;
        }
        ids.push(account.id.clone());
        let mut unit = seeder.unit_of_work();
        unit.repository::<Account>().add(account).await?;
        unit.commit().await?;
    }
    Ok((ids, started.elapsed()))
}

/// Every summary row against what synchronous processing writes.
async fn check_summaries(
    domain: &Domain,
    ids: &[Identifier],
    sizes: EngineSizes,
) -> Result<Vec<String>, BenchError> {
    let mut mismatches = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (balance, count) = expected_catchup(i, sizes.deposits_per_account);
        match domain.repository::<AccountSummary>().find(id).await? {
            Some(row) if row.balance == balance && row.transaction_count == count => {}
            Some(row) => mismatches.push(format!(
                "account {i}: summary balance {} after {} transactions, expected {balance} after {count}",
                row.balance, row.transaction_count
            )),
            None => mismatches.push(format!("account {i}: no summary row")),
        }
    }
    let rows = domain
        .repository::<AccountSummary>()
        .query()
        .count()
        .await?;
    if rows != sizes.accounts as u64 {
        mismatches.push(format!("{rows} summary rows, expected {}", sizes.accounts));
    }
    Ok(mismatches)
}

async fn catchup_on(
    scratch: &Scratch,
    sizes: EngineSizes,
    engines: Option<usize>,
) -> Result<CatchupPass, BenchError> {
    let (ids, seed) = seed(scratch, sizes).await?;

    let domain = scratch.connect(projector_only()).build().await?;
    let engine = domain.engine();
    // One row per partition of each subscription.
    let mut subscriptions: Vec<String> = engine
        .status()
        .await?
        .into_iter()
        .map(|status| status.name)
        .collect();
    subscriptions.dedup();
    if subscriptions.len() != 1 {
        return Err(format!(
            "the catch-up domain should run the `AccountSummary` projector alone, it runs {subscriptions:?}"
        )
        .into());
    }
    let (before, _) = rss_kib();
    let peak_reset = reset_peak_rss();
    let elapsed = match engines {
        None => {
            let started = Instant::now();
            engine.run_until_idle().await?;
            started.elapsed()
        }
        Some(count) => catch_up_running(scratch, count).await?,
    };
    let (_, peak) = rss_kib();
    let peak_rss_growth_kib = (peak_reset && peak > 0).then(|| peak.saturating_sub(before));

    let mismatches = check_summaries(&domain, &ids, sizes).await?;
    Ok(CatchupPass {
        events: sizes.events(),
        seed,
        elapsed,
        peak_rss_growth_kib,
        mismatches,
    })
}

/// Workload (h) on `backend`: seeds the store of (f), then rebuilds `AccountSummary` from it
/// (`domain.rebuild_projection::<AccountSummary>()`: replay into a fresh table, swap with
/// the checkpoint), timed, and checks every row. The store is dropped afterwards.
pub async fn rebuild(
    backend: &str,
    sizes: EngineSizes,
    postgres_url: Option<&str>,
) -> Result<CatchupPass, BenchError> {
    let scratch = Scratch::new(backend, postgres_url, "engine").await?;
    let result = rebuild_on(&scratch, sizes).await;
    scratch.drop_store().await?;
    result
}

async fn rebuild_on(scratch: &Scratch, sizes: EngineSizes) -> Result<CatchupPass, BenchError> {
    let (ids, seed) = seed(scratch, sizes).await?;
    let domain = scratch.connect(projector_only()).build().await?;
    let (before, _) = rss_kib();
    let peak_reset = reset_peak_rss();
    let started = Instant::now();
    let report = domain.rebuild_projection::<AccountSummary>().await?;
    let elapsed = started.elapsed();
    let (_, peak) = rss_kib();
    let peak_rss_growth_kib = (peak_reset && peak > 0).then(|| peak.saturating_sub(before));
    let mut mismatches = check_summaries(&domain, &ids, sizes).await?;
    if report.events_applied != sizes.events() as u64 {
        mismatches.push(format!(
            "the rebuild applied {} events, expected {}",
            report.events_applied,
            sizes.events()
        ));
    }
    Ok(CatchupPass {
        events: report.events_read as usize,
        seed,
        elapsed,
        peak_rss_growth_kib,
        mismatches,
    })
}

/// Workload (g) on `backend`. The store is dropped afterwards.
pub async fn latency(
    backend: &str,
    sizes: EngineSizes,
    postgres_url: Option<&str>,
) -> Result<LatencyPass, BenchError> {
    let scratch = Scratch::new(backend, postgres_url, "engine").await?;
    let result = latency_on(&scratch, sizes).await;
    scratch.drop_store().await?;
    result
}

async fn latency_on(scratch: &Scratch, sizes: EngineSizes) -> Result<LatencyPass, BenchError> {
    let domain = scratch
        .connect(fidelis_example::domain().processing(Processing::Async))
        .build()
        .await?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let engine = {
        let engine = domain.engine();
        let stop = stop.clone();
        tokio::spawn(async move { engine.run(stop.notified()).await })
    };

    let mut ids = Vec::with_capacity(sizes.latency_accounts);
    let mut balances = Vec::with_capacity(sizes.latency_accounts);
    for i in 0..sizes.latency_accounts {
        let id: Identifier = domain
            .process(OpenAccount {
                account_number: account_number(i),
                holder_name: holder_name(i),
                opening_deposit: opening_deposit(i),
            })
            .await?;
        ids.push(id);
        balances.push(opening_deposit(i));
    }
    let mut counts = vec![1_i64; sizes.latency_accounts];
    // The openings are not measured: wait until the engine has them all.
    for (id, balance) in ids.iter().zip(&balances) {
        wait_visible(&domain, id, *balance, 1, Instant::now()).await?;
    }

    let mut watchers = Vec::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(sizes.rate.max(1)));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut sent = 0_usize;
    while started.elapsed() < sizes.duration {
        ticks.tick().await;
        let a = sent % ids.len();
        let amount = deposit_amount(sent);
        domain
            .process(MakeDeposit {
                account_id: ids[a].clone(),
                amount,
                reference: None,
            })
            .await?;
        let committed = Instant::now();
        balances[a] += amount;
        counts[a] += 1;
        sent += 1;
        let (domain, id, balance, count) = (domain.clone(), ids[a].clone(), balances[a], counts[a]);
        watchers.push(tokio::spawn(async move {
            wait_visible(&domain, &id, balance, count, committed).await
        }));
    }
    let achieved_rate = sent as f64 / started.elapsed().as_secs_f64().max(1e-9);
    let mut latencies = Vec::with_capacity(watchers.len());
    for watcher in watchers {
        latencies.push(watcher.await??);
    }
    latencies.sort();
    stop.notify_one();
    engine.await??;

    let mut mismatches = Vec::new();
    for (a, id) in ids.iter().enumerate() {
        let row = domain.repository::<AccountSummary>().get(id).await?;
        if row.balance != balances[a] || row.transaction_count != counts[a] {
            mismatches.push(format!(
                "account {a}: summary balance {} after {} transactions, expected {} after {}",
                row.balance, row.transaction_count, balances[a], counts[a]
            ));
        }
    }
    Ok(LatencyPass {
        latencies,
        achieved_rate,
        mismatches,
    })
}

/// Only detects a hang: the engine is expected within milliseconds.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls the account's summary row (every millisecond) until it shows `count` transactions;
/// returns the time since `since`. Balances only grow here, so the count names the deposit.
async fn wait_visible(
    domain: &Domain,
    id: &Identifier,
    balance: Money,
    count: i64,
    since: Instant,
) -> Result<Duration, BenchError> {
    loop {
        if let Some(row) = domain.repository::<AccountSummary>().find(id).await?
            && row.transaction_count >= count
        {
            if row.transaction_count == count && row.balance != balance {
                return Err(format!(
                    "account {id}: summary balance {} after {count} transactions, expected {balance}",
                    row.balance
                )
                .into());
            }
            return Ok(since.elapsed());
        }
        if since.elapsed() > VISIBLE_TIMEOUT {
            return Err(format!(
                "account {id}: transaction {count} not visible after {VISIBLE_TIMEOUT:?}"
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// `VmRSS` and `VmHWM` (peak) of this process, in KiB (zeros where `/proc` is missing).
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

/// Resets `VmHWM` to the current RSS (Linux), so a later peak is this step's.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
