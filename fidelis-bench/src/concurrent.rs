//! Workload (e), concurrent deposits: client tasks on a multi-threaded runtime, all at once,
//! against one shared ledger (one domain, one pool).
//!
//! Before the clock starts, the harness opens a few hot accounts shared by every client. Then
//! each client opens accounts of its own and makes deposits: every [`HOT_EVERY`]th into a hot
//! account (clients start on different ones), the others round-robin into its own accounts.
//! Two deposits into one hot account at once conflict on its version: Fidelis retries them by
//! its default `RetryPolicy`; for postgres-es the harness retries its `AggregateConflict` with
//! the same policy (attempts and backoff); the raw sqlx baseline assigns versions in memory
//! and never conflicts. Throughput is every command (opens and deposits) over the wall-clock
//! time from the first client's start to the last client's end.
//!
//! Afterwards every account's balance, on its summary row and on its aggregate (loaded with
//! no cache), must equal its opening deposit plus the deposits that committed.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{Domain, Identifier};
use fidelis_example::account::Account;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use rand::Rng as _;
use tracing::level_filters::LevelFilter;
use tracing::span;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::db::{PostgresScratch, SqliteScratch};
use crate::postgres_es::PostgresEsLedger;
use crate::raw::RawSqlx;
use crate::workload::{
    BenchError, Money, account_number, deposit_amount, holder_name, opening_deposit,
};

/// Every `HOT_EVERY`th deposit of a client goes into a hot account.
pub const HOT_EVERY: usize = 4;

/// The implementations of the workload, in report order.
pub const IMPLEMENTATIONS: [&str; 5] = [
    FIDELIS_MEMORY,
    FIDELIS_SQLITE,
    FIDELIS_POSTGRES,
    POSTGRES_ES,
    RawSqlx::NAME,
];

/// Fidelis over `MemoryStorage`.
pub const FIDELIS_MEMORY: &str = "fidelis";
/// Fidelis on a SQLite file.
pub const FIDELIS_SQLITE: &str = "fidelis-sqlite";
/// Fidelis on PostgreSQL.
pub const FIDELIS_POSTGRES: &str = "fidelis-postgres";
/// cqrs-es on postgres-es.
pub const POSTGRES_ES: &str = "postgres-es";

/// Whether implementation `name` needs the PostgreSQL server.
pub fn needs_postgres(name: &str) -> bool {
    matches!(name, FIDELIS_POSTGRES | POSTGRES_ES | RawSqlx::NAME)
}

/// How much work one pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcurrentSizes {
    /// Client tasks running at once.
    pub clients: usize,
    /// Accounts each client opens (timed).
    pub accounts_per_client: usize,
    /// Deposits each client makes.
    pub deposits_per_client: usize,
    /// Accounts shared by all clients (opened before the clock starts).
    pub hot_accounts: usize,
}

impl ConcurrentSizes {
    /// 16 clients, each opening 8 accounts and making 200 deposits, 4 hot accounts: 3,328
    /// timed commands, 800 of them into hot accounts.
    pub const FULL: Self = Self {
        clients: 16,
        accounts_per_client: 8,
        deposits_per_client: 200,
        hot_accounts: 4,
    };

    /// The smoke pass: 16 clients, 2 accounts and 20 deposits each.
    pub const QUICK: Self = Self {
        clients: 16,
        accounts_per_client: 2,
        deposits_per_client: 20,
        hot_accounts: 4,
    };

    /// Commands timed in one pass.
    pub fn commands(&self) -> usize {
        self.clients * (self.accounts_per_client + self.deposits_per_client)
    }
}

/// What one pass measured.
#[derive(Debug)]
pub struct ConcurrentPass {
    /// Commands timed (opens and deposits).
    pub commands: usize,
    /// From the first client's start to the last client's end.
    pub elapsed: Duration,
    /// Version conflicts retried.
    pub retries: u64,
    /// Deposits that got a version conflict back after every retry (not committed).
    pub conflicts_returned: u64,
    /// Every command's latency, sorted.
    pub latencies: Vec<Duration>,
    /// Read-model updates the implementation dropped (postgres-es's `GenericQuery`).
    pub lost_view_updates: u64,
    /// Accounts whose summary row disagrees with the deposits committed, when the
    /// implementation reported dropped read-model updates (explained, so not a failure).
    pub stale_summaries: usize,
    /// Balances that disagree with the deposits committed (failures).
    pub mismatches: Vec<String>,
}

impl ConcurrentPass {
    /// Commands per second.
    pub fn throughput(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0 to 1).
    pub fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let index = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)]
    }
}

/// One implementation as the concurrent clients drive it: shared by reference between tasks.
pub trait SharedLedger: Send + Sync + 'static {
    /// Opens account `i` and returns its id.
    fn open(&self, i: usize) -> impl Future<Output = Result<String, BenchError>> + Send;

    /// Deposits `amount` into account `id`, retrying version conflicts by the implementation's
    /// policy: `Ok(true)` when it committed, `Ok(false)` when a version conflict came back
    /// after the last attempt.
    fn deposit(
        &self,
        id: &str,
        amount: Money,
    ) -> impl Future<Output = Result<bool, BenchError>> + Send;

    /// Version conflicts retried so far.
    fn retries(&self) -> u64;

    /// Read-model updates dropped so far (default none).
    fn lost_view_updates(&self) -> u64 {
        0
    }

    /// Each account's (summary row balance, aggregate balance), read with nothing cached.
    fn balances(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<(Money, Money)>, BenchError>> + Send;
}

/// What one client did.
struct ClientOutcome {
    /// (account, amount) of every committed command, the opening deposits included.
    committed: Vec<(String, Money)>,
    latencies: Vec<Duration>,
    conflicts_returned: u64,
}

async fn client<L: SharedLedger>(
    ledger: Arc<L>,
    hot: Arc<Vec<String>>,
    sizes: ConcurrentSizes,
    client: usize,
) -> Result<ClientOutcome, BenchError> {
    let commands = sizes.accounts_per_client + sizes.deposits_per_client;
    let mut outcome = ClientOutcome {
        committed: Vec::with_capacity(commands),
        latencies: Vec::with_capacity(commands),
        conflicts_returned: 0,
    };
    let mut own = Vec::with_capacity(sizes.accounts_per_client);
    for j in 0..sizes.accounts_per_client {
        let i = client * sizes.accounts_per_client + j;
        let started = Instant::now();
        let id = ledger.open(i).await?;
        outcome.latencies.push(started.elapsed());
        outcome.committed.push((id.clone(), opening_deposit(i)));
        own.push(id);
    }
    for k in 0..sizes.deposits_per_client {
        let account = if (k + 1) % HOT_EVERY == 0 && !hot.is_empty() {
            &hot[(client + k / HOT_EVERY) % hot.len()]
        } else if own.is_empty() {
            &hot[k % hot.len()]
        } else {
            &own[k % own.len()]
        };
        let amount = deposit_amount(client * sizes.deposits_per_client + k);
        let started = Instant::now();
        let committed = ledger.deposit(account, amount).await?;
        outcome.latencies.push(started.elapsed());
        if committed {
            outcome.committed.push((account.clone(), amount));
        } else {
            outcome.conflicts_returned += 1;
        }
    }
    Ok(outcome)
}

/// Runs one pass on `ledger` (already built, empty) and checks the balances.
pub async fn run<L: SharedLedger>(
    ledger: Arc<L>,
    sizes: ConcurrentSizes,
) -> Result<ConcurrentPass, BenchError> {
    if sizes.accounts_per_client == 0 && sizes.hot_accounts == 0 {
        return Err("the concurrent workload needs at least one account".into());
    }
    let first_hot = sizes.clients * sizes.accounts_per_client;
    let mut expected: HashMap<String, Money> = HashMap::new();
    let mut hot = Vec::with_capacity(sizes.hot_accounts);
    for h in 0..sizes.hot_accounts {
        let id = ledger.open(first_hot + h).await?;
        expected.insert(id.clone(), opening_deposit(first_hot + h));
        hot.push(id);
    }
    let hot = Arc::new(hot);
    let retries_before = ledger.retries();

    let started = Instant::now();
    let tasks: Vec<_> = (0..sizes.clients)
        .map(|c| tokio::spawn(client(Arc::clone(&ledger), Arc::clone(&hot), sizes, c)))
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join_error) => {
                first_error.get_or_insert(format!("a client task failed: {join_error}").into());
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(error) = first_error {
        return Err(error);
    }

    let retries = ledger.retries() - retries_before;
    let mut latencies = Vec::with_capacity(sizes.commands());
    let mut conflicts_returned = 0;
    for outcome in outcomes {
        latencies.extend(outcome.latencies);
        conflicts_returned += outcome.conflicts_returned;
        for (id, amount) in outcome.committed {
            *expected.entry(id).or_insert(Money::ZERO) += amount;
        }
    }
    latencies.sort_unstable();

    let mut ids: Vec<String> = expected.keys().cloned().collect();
    ids.sort_unstable();
    let balances = ledger.balances(&ids).await?;
    let lost_view_updates = ledger.lost_view_updates();
    let mut mismatches = Vec::new();
    let mut stale_summaries = 0;
    for (id, (summary, aggregate)) in ids.iter().zip(balances) {
        let want = expected[id];
        if aggregate != want {
            mismatches.push(format!(
                "account {id}: aggregate balance {aggregate}, expected {want}"
            ));
        }
        if summary != want {
            if lost_view_updates > 0 {
                stale_summaries += 1;
            } else {
                mismatches.push(format!(
                    "account {id}: summary balance {summary}, expected {want}"
                ));
            }
        }
    }
    Ok(ConcurrentPass {
        commands: sizes.commands(),
        elapsed,
        retries,
        conflicts_returned,
        latencies,
        lost_view_updates,
        stale_summaries,
        mismatches,
    })
}

/// One pass of implementation `name` in a fresh store (a new SQLite file or PostgreSQL
/// schema, removed afterwards), with a pool of `pool` connections. Building is not timed.
pub async fn pass_of(
    name: &str,
    sizes: ConcurrentSizes,
    pool: u32,
    postgres_url: Option<&str>,
) -> Result<ConcurrentPass, BenchError> {
    let postgres_url =
        || postgres_url.ok_or_else(|| format!("{} is unset", crate::db::POSTGRES_URL_VAR));
    match name {
        FIDELIS_MEMORY => run(Arc::new(FidelisShared::in_memory().await?), sizes).await,
        FIDELIS_SQLITE => {
            let scratch = SqliteScratch::new()?;
            let ledger = Arc::new(FidelisShared::on_database(&scratch.url(), pool).await?);
            let result = run(ledger, sizes).await;
            drop(scratch);
            result
        }
        FIDELIS_POSTGRES => {
            let scratch = PostgresScratch::new(postgres_url()?).await?;
            let ledger = Arc::new(FidelisShared::on_database(&scratch.url(), pool).await?);
            let result = run(ledger, sizes).await;
            scratch.drop_schema().await?;
            result
        }
        POSTGRES_ES => {
            let scratch = PostgresScratch::new(postgres_url()?).await?;
            let ledger = Arc::new(PostgresEsShared {
                ledger: PostgresEsLedger::connect_with_pool(scratch.connect_options()?, pool)
                    .await?,
                retries: AtomicU64::new(0),
            });
            let result = run(Arc::clone(&ledger), sizes).await;
            ledger.ledger.close().await;
            scratch.drop_schema().await?;
            result
        }
        RawSqlx::NAME => {
            let scratch = PostgresScratch::new(postgres_url()?).await?;
            let ledger = Arc::new(RawSqlx::connect(scratch.connect_options()?, pool).await?);
            let result = run(Arc::clone(&ledger), sizes).await;
            ledger.close().await;
            scratch.drop_schema().await?;
            result
        }
        other => Err(format!("unknown implementation `{other}` of the concurrent workload").into()),
    }
}

/// The multi-threaded runtime the workload runs on (a worker per CPU, tokio's default), with
/// a tracing subscriber on its threads that counts Fidelis's retries (and enables nothing
/// else), so that no other thread of the process gets a subscriber.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let dispatch = tracing::Dispatch::new(FidelisRetries);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // The runtime's threads keep this default for their whole life: the guard only
            // restores the previous default when dropped, and these threads end with it.
            std::mem::forget(tracing::dispatcher::set_default(&dispatch));
        })
        .build()
}

/// Version conflicts Fidelis retried, counted by [`FidelisRetries`].
static FIDELIS_RETRIES: AtomicU64 = AtomicU64::new(0);

/// A tracing subscriber that only counts fidelis-core's debug event at each retry of a
/// command handler after a version conflict (`version conflict; retrying the handler`, with
/// the fields `error`, `attempt` and `delay`). It enables nothing else, so no span is built
/// and the rest of Fidelis's tracing costs what it costs without a subscriber, give or take a
/// cached interest check. (fidelis-core exposes no retry counter; if that event changes, the
/// count reads 0.)
struct FidelisRetries;

impl FidelisRetries {
    fn wanted(metadata: &Metadata<'_>) -> bool {
        let fields = metadata.fields();
        metadata.is_event()
            && *metadata.level() == tracing::Level::DEBUG
            && metadata.target().starts_with("fidelis_core")
            && ["error", "attempt", "delay"]
                .iter()
                .all(|name| fields.field(name).is_some())
    }
}

impl Subscriber for FidelisRetries {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if Self::wanted(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        Self::wanted(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        // Never called for a disabled span; any non-zero id would do.
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, _: &Event<'_>) {
        FIDELIS_RETRIES.fetch_add(1, Ordering::Relaxed);
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// Fidelis for concurrent clients: the example domain (default retry policy, pool of the
/// given size), and a second domain on the same store with the aggregate cache off, which
/// reads the balances at the end.
pub struct FidelisShared {
    domain: Domain,
    check: Domain,
}

impl FidelisShared {
    /// Over a new `MemoryStorage`.
    pub async fn in_memory() -> Result<Self, BenchError> {
        let storage = MemoryStorage::new();
        let domain = fidelis_example::domain()
            .storage(storage.clone())
            .build()
            .await?;
        let check = fidelis_example::domain()
            .storage(storage)
            .aggregate_cache(0)
            .build()
            .await?;
        Ok(Self { domain, check })
    }

    /// On the database at `url`, with a pool of `pool` connections.
    pub async fn on_database(url: &str, pool: u32) -> Result<Self, BenchError> {
        let domain = fidelis_example::domain()
            .database(url)
            .pool_size(pool)
            .build()
            .await?;
        let check = fidelis_example::domain()
            .database(url)
            .pool_size(1)
            .aggregate_cache(0)
            .build()
            .await?;
        Ok(Self { domain, check })
    }
}

impl SharedLedger for FidelisShared {
    async fn open(&self, i: usize) -> Result<String, BenchError> {
        let id = self
            .domain
            .process(OpenAccount {
                account_number: account_number(i),
                holder_name: holder_name(i),
                opening_deposit: opening_deposit(i),
            })
            .await?;
        Ok(id.into_string())
    }

    async fn deposit(&self, id: &str, amount: Money) -> Result<bool, BenchError> {
        let deposit = MakeDeposit {
            account_id: Identifier::from(id),
            amount,
            reference: None,
        };
        match self.domain.process(deposit).await {
            Ok(()) => Ok(true),
            Err(error) if error.is_version_conflict() => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    fn retries(&self) -> u64 {
        FIDELIS_RETRIES.load(Ordering::Relaxed)
    }

    async fn balances(&self, ids: &[String]) -> Result<Vec<(Money, Money)>, BenchError> {
        let mut balances = Vec::with_capacity(ids.len());
        for id in ids {
            let summary = self.check.repository::<AccountSummary>().get(id).await?;
            let account = self.check.repository::<Account>().get(id).await?;
            balances.push((summary.balance, account.balance));
        }
        Ok(balances)
    }
}

/// postgres-es for concurrent clients, with the harness retrying its version conflicts as
/// Fidelis's default `RetryPolicy` does: up to [`RETRY_ATTEMPTS`] attempts, waits with
/// decorrelated jitter between [`RETRY_BASE`] and three times the previous wait, at most
/// [`RETRY_MAX`].
pub struct PostgresEsShared {
    ledger: PostgresEsLedger,
    retries: AtomicU64,
}

/// Attempts in all (Fidelis's default).
pub const RETRY_ATTEMPTS: u32 = 30;
/// The shortest wait before a retry (Fidelis's default).
pub const RETRY_BASE: Duration = Duration::from_millis(2);
/// The longest wait before a retry (Fidelis's default).
pub const RETRY_MAX: Duration = Duration::from_millis(50);

/// The wait before the next retry, given the previous wait (zero before the first).
fn next_delay(previous: Duration) -> Duration {
    let ceiling = (previous.max(RETRY_BASE) * 3).min(RETRY_MAX);
    rand::rng().random_range(RETRY_BASE..=ceiling)
}

impl SharedLedger for PostgresEsShared {
    async fn open(&self, i: usize) -> Result<String, BenchError> {
        self.ledger.open_shared(i).await
    }

    async fn deposit(&self, id: &str, amount: Money) -> Result<bool, BenchError> {
        let mut delay = Duration::ZERO;
        for attempt in 1..=RETRY_ATTEMPTS {
            if self.ledger.try_deposit(id, amount).await? {
                return Ok(true);
            }
            if attempt < RETRY_ATTEMPTS {
                self.retries.fetch_add(1, Ordering::Relaxed);
                delay = next_delay(delay);
                tokio::time::sleep(delay).await;
            }
        }
        Ok(false)
    }

    fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn lost_view_updates(&self) -> u64 {
        self.ledger.lost_view_updates()
    }

    async fn balances(&self, ids: &[String]) -> Result<Vec<(Money, Money)>, BenchError> {
        let mut balances = Vec::with_capacity(ids.len());
        for id in ids {
            balances.push(self.ledger.balances(id).await?);
        }
        Ok(balances)
    }
}

impl SharedLedger for RawSqlx {
    async fn open(&self, i: usize) -> Result<String, BenchError> {
        RawSqlx::open(self, i).await
    }

    async fn deposit(&self, id: &str, amount: Money) -> Result<bool, BenchError> {
        RawSqlx::deposit(self, id, amount).await?;
        Ok(true)
    }

    fn retries(&self) -> u64 {
        0
    }

    /// The replayed balance twice: the baseline has no summary rows.
    async fn balances(&self, ids: &[String]) -> Result<Vec<(Money, Money)>, BenchError> {
        let all = RawSqlx::balances(self).await?;
        ids.iter()
            .map(|id| {
                let balance = all
                    .get(id)
                    .copied()
                    .ok_or_else(|| format!("raw-sqlx: no rows for account {id}"))?;
                Ok((balance, balance))
            })
            .collect()
    }
}
