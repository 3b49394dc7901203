//! The work every implementation performs, and the interface the harness drives it through.

use std::fmt;

/// A failure inside an implementation (the harness stops and reports it).
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// The money type of every implementation: the example keeps amounts and balances in
/// `Decimal` (exact), so the baseline and cqrs-es do too, and the ratios compare the same
/// arithmetic and the same JSON (a decimal is a JSON string).
pub type Money = fidelis_core::Decimal;

/// Deposits at or above this amount are reported by the example's compliance handler
/// (`fidelis_example::alerts::LARGE_TRANSACTION`); the other implementations make the same
/// comparison so that all of them do the same work.
pub const LARGE_TRANSACTION: Money = fidelis_example::alerts::LARGE_TRANSACTION;

/// How much work one pass does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Accounts opened (workload a).
    pub accounts: usize,
    /// Deposits, spread round-robin over the accounts (workload b).
    pub deposits: usize,
    /// Projection reads (workload c).
    pub reads: usize,
    /// Events in the long stream that workload d loads.
    pub long_stream: usize,
    /// How many times workload d loads it.
    pub loads: usize,
}

impl Sizes {
    /// The sizes: 1,000 accounts, 10,000 deposits, 1,000 reads, a 10,000-event stream.
    pub const FULL: Self = Self {
        accounts: 1_000,
        deposits: 10_000,
        reads: 1_000,
        long_stream: 10_000,
        loads: 20,
    };

    /// A tenth of [`Sizes::FULL`], for the smoke pass.
    pub const QUICK: Self = Self {
        accounts: 100,
        deposits: 1_000,
        reads: 100,
        long_stream: 1_000,
        loads: 5,
    };

    /// The database rows (every command is a transaction): 200 accounts, 2,000 deposits,
    /// 1,000 reads, and the same 10,000-event stream as in memory (seeded in one
    /// transaction), so that a cold load from a snapshot compares with a replay of 10,000
    /// events (issue 11). `--scale` does not change it.
    pub const DATABASE: Self = Self {
        accounts: 200,
        deposits: 2_000,
        reads: 1_000,
        long_stream: 10_000,
        loads: 20,
    };

    /// The database rows of the smoke pass (SQLite only): a few dozen commands.
    pub const QUICK_DATABASE: Self = Self {
        accounts: 10,
        deposits: 100,
        reads: 20,
        long_stream: 100,
        loads: 2,
    };

    /// Accounts and deposits multiplied by `factor` (the scaled rows of (a) and (b)); the rest
    /// unchanged.
    pub fn scaled(self, factor: usize) -> Self {
        Self {
            accounts: self.accounts * factor,
            deposits: self.deposits * factor,
            ..self
        }
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} accounts, {} deposits", self.accounts, self.deposits)
    }
}

/// The number of account `i` (`ACC-000042`).
pub fn account_number(i: usize) -> String {
    format!("ACC-{i:06}")
}

/// The holder of account `i`.
pub fn holder_name(i: usize) -> String {
    format!("Holder {i}")
}

/// The opening deposit of account `i`.
pub fn opening_deposit(i: usize) -> Money {
    Money::from(100 + i % 50)
}

/// The amount of deposit `k`: whole numbers from 1 to 100, the same values in the same order
/// in every implementation, so balances compare exactly.
pub fn deposit_amount(k: usize) -> Money {
    Money::from(k.wrapping_mul(7_919) % 100 + 1)
}

/// One implementation of the seed ledger, as the harness drives it. (Each is built empty by
/// its own constructor, not timed.)
///
/// The harness runs on a current-thread tokio runtime, so the futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait Ledger: Sized {
    /// The implementation's name in the report.
    const NAME: &'static str;

    /// Opens account `i` (with [`account_number`], [`holder_name`], [`opening_deposit`])
    /// and returns its id.
    async fn open(&mut self, i: usize) -> Result<String, BenchError>;

    /// Deposits `amount` into an account: refused unless the amount is positive and the
    /// account exists; the balance must not go negative.
    async fn deposit(&mut self, id: &str, amount: Money) -> Result<(), BenchError>;

    /// The balance on the account's summary row (the read model).
    async fn summary_balance(&mut self, id: &str) -> Result<Money, BenchError>;

    /// The balance of the account as its write model loads it, the normal (warm) way.
    async fn load_balance(&mut self, id: &str) -> Result<Money, BenchError>;

    /// The balance of the account loaded with nothing cached: a replay of its whole stream.
    async fn cold_load_balance(&mut self, id: &str) -> Result<Money, BenchError>;

    /// Takes a snapshot of the account (not timed) for the snapshot row of workload d;
    /// `false` (the default): the implementation has no snapshots, and the row is skipped.
    async fn take_snapshot(&mut self, id: &str) -> Result<bool, BenchError> {
        let _ = id;
        Ok(false)
    }

    /// The balance of the account loaded with nothing cached but its snapshot: the snapshot
    /// and the events after it (none, in workload d).
    async fn snapshot_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        self.cold_load_balance(id).await
    }

    /// Prepares workload d: one account whose stream holds `events` events (the opening and
    /// `events - 1` deposits of [`deposit_amount`]). Not timed; by default through commands.
    async fn seed_long_stream(&mut self, events: usize) -> Result<String, BenchError> {
        let id = self.open(0).await?;
        for k in 1..events {
            self.deposit(&id, deposit_amount(k)).await?;
        }
        Ok(id)
    }
}

/// A rule of the ledger was broken (the same rules in every implementation).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleBroken(pub &'static str);

impl fmt::Display for RuleBroken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for RuleBroken {}
