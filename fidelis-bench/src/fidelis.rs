//! The ledger in Fidelis: the example domain (`fidelis_example::domain()`), sync processing,
//! the `AccountSummary` projector on; in memory, on SQLite or on PostgreSQL.

use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{Domain, Identifier};
use fidelis_example::account::Account;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::AccountSummary;

use crate::workload::{
    BenchError, Ledger, Money, account_number, deposit_amount, holder_name, opening_deposit,
};

/// The Fidelis ledger: the example domain, and a second domain on the same storage with the
/// aggregate cache off, for cold loads. Automatic snapshots are off in both, so the cold row
/// replays the whole stream; the snapshot row takes one on demand
/// ([`Domain::create_snapshot`]) after the cold row ran.
pub struct FidelisLedger {
    domain: Domain,
    cold: Domain,
}

impl FidelisLedger {
    /// The domain commands go through.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

impl FidelisLedger {
    /// Over a new `MemoryStorage`.
    pub async fn in_memory() -> Result<Self, BenchError> {
        let storage = MemoryStorage::new();
        let domain = fidelis_example::domain()
            .storage(storage.clone())
            .snapshot_threshold(0)
            .build()
            .await?;
        let cold = fidelis_example::domain()
            .storage(storage)
            .snapshot_threshold(0)
            .aggregate_cache(0)
            .build()
            .await?;
        Ok(Self { domain, cold })
    }

    /// On the database at `url` (`sqlite://…`, `postgres://…`): two domains, each with its own
    /// connection pool, the second with the aggregate cache off. `build` creates the tables.
    pub async fn on_database(url: &str) -> Result<Self, BenchError> {
        let domain = fidelis_example::domain()
            .database(url)
            .snapshot_threshold(0)
            .build()
            .await?;
        let cold = fidelis_example::domain()
            .database(url)
            .snapshot_threshold(0)
            .aggregate_cache(0)
            .build()
            .await?;
        Ok(Self { domain, cold })
    }
}

impl FidelisLedger {
    /// Workload d's long stream on a database: the account opened through a command, then
    /// its `events - 1` deposits raised in one unit of work by hand, so one transaction (as
    /// postgres-es' seeding inserts its rows in one): through commands, 10,000 deposits
    /// would be 10,000 commits before anything is measured. The events are the ones the
    /// commands would store.
    pub async fn seed_in_one_unit(&mut self, events: usize) -> Result<String, BenchError> {
        let id = self.open(0).await?;
        let mut unit = self.domain.unit_of_work();
        let mut account = unit.repository::<Account>().get(&id).await?;
        for k in 1..events {
            account.deposit(deposit_amount(k), None)?;
        }
        unit.repository::<Account>().add(account).await?;
        unit.commit().await?;
        Ok(id)
    }
}

/// [`FidelisLedger`] on a SQLite file (WAL, `synchronous = NORMAL`, as fidelis-core opens it).
pub struct FidelisSqlite(pub FidelisLedger);

/// [`FidelisLedger`] on PostgreSQL.
pub struct FidelisPostgres(pub FidelisLedger);

macro_rules! delegate_ledger {
    ($ledger:ty, $name:literal) => {
        impl Ledger for $ledger {
            const NAME: &'static str = $name;

            async fn open(&mut self, i: usize) -> Result<String, BenchError> {
                self.0.open(i).await
            }

            async fn deposit(&mut self, id: &str, amount: Money) -> Result<(), BenchError> {
                self.0.deposit(id, amount).await
            }

            async fn summary_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                self.0.summary_balance(id).await
            }

            async fn load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                self.0.load_balance(id).await
            }

            async fn cold_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                self.0.cold_load_balance(id).await
            }

            async fn take_snapshot(&mut self, id: &str) -> Result<bool, BenchError> {
                self.0.take_snapshot(id).await
            }

            async fn snapshot_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                self.0.snapshot_load_balance(id).await
            }

            async fn seed_long_stream(&mut self, events: usize) -> Result<String, BenchError> {
                self.0.seed_in_one_unit(events).await
            }
        }
    };
}

delegate_ledger!(FidelisSqlite, "fidelis-sqlite");
delegate_ledger!(FidelisPostgres, "fidelis-postgres");

impl Ledger for FidelisLedger {
    const NAME: &'static str = "fidelis";

    async fn open(&mut self, i: usize) -> Result<String, BenchError> {
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

    async fn deposit(&mut self, id: &str, amount: Money) -> Result<(), BenchError> {
        self.domain
            .process(MakeDeposit {
                account_id: Identifier::from(id),
                amount,
                reference: None,
            })
            .await?;
        Ok(())
    }

    async fn summary_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        Ok(self
            .domain
            .repository::<AccountSummary>()
            .get(id)
            .await?
            .balance)
    }

    async fn load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        Ok(self.domain.repository::<Account>().get(id).await?.balance)
    }

    async fn cold_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        Ok(self.cold.repository::<Account>().get(id).await?.balance)
    }

    async fn take_snapshot(&mut self, id: &str) -> Result<bool, BenchError> {
        self.domain.create_snapshot::<Account>(id).await?;
        Ok(true)
    }

    async fn snapshot_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        // The cold domain: no cache, so each load reads the snapshot and the (no) events
        // after it.
        Ok(self.cold.repository::<Account>().get(id).await?.balance)
    }
}
