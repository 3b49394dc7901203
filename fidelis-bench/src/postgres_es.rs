//! The cqrs-es ledger of [`crate::cqrs`] on postgres-es 0.5: its `PostgresEventRepository`
//! behind cqrs-es's `PersistedEventStore` (the plain event store, as `postgres_cqrs` builds
//! it: no snapshots, no aggregate cache), and the summary view through `GenericQuery` over its
//! `PostgresViewRepository`.
//!
//! postgres-es creates no tables; [`SCHEMA`] is the DDL of its `db/init.sql` (the `events` and
//! `snapshots` tables, and one view table, here `account_summary`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cqrs_es::persist::{GenericQuery, PersistedEventStore};
use cqrs_es::{AggregateContext, AggregateError, CqrsFramework, EventStore};
use postgres_es::{PostgresCqrs, PostgresEventRepository, PostgresViewRepository};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::cqrs::{
    AccountSummaryView, BankAccount, BankAccountCommand, BankAccountEvent, Compliance, failed,
    with_time,
};
use crate::workload::{
    BenchError, Ledger, Money, RuleBroken, account_number, deposit_amount, holder_name,
    opening_deposit,
};

/// The tables postgres-es expects (from its `db/init.sql`), created in the scratch schema.
pub const SCHEMA: [&str; 3] = [
    "CREATE TABLE events (
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        sequence bigint CHECK (sequence >= 0) NOT NULL,
        event_type text NOT NULL,
        event_version text NOT NULL,
        payload json NOT NULL,
        metadata json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, sequence)
    )",
    "CREATE TABLE snapshots (
        aggregate_type text NOT NULL,
        aggregate_id text NOT NULL,
        last_sequence bigint CHECK (last_sequence >= 0) NOT NULL,
        current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
        payload json NOT NULL,
        PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
    )",
    "CREATE TABLE account_summary (
        view_id text NOT NULL,
        version bigint CHECK (version >= 0) NOT NULL,
        payload json NOT NULL,
        PRIMARY KEY (view_id)
    )",
];

type Store = PersistedEventStore<PostgresEventRepository, BankAccount>;
type SummaryQuery = GenericQuery<
    PostgresViewRepository<AccountSummaryView, BankAccount>,
    AccountSummaryView,
    BankAccount,
>;

/// The cqrs-es ledger on postgres-es.
pub struct PostgresEsLedger {
    cqrs: PostgresCqrs<BankAccount>,
    store: Store,
    summaries: SummaryQuery,
    pool: PgPool,
    /// View updates `GenericQuery` dropped (see [`PostgresEsLedger::lost_view_updates`]).
    lost_view_updates: Arc<AtomicU64>,
}

impl PostgresEsLedger {
    /// Connects (a pool of 10, as postgres-es's `default_postgress_pool`), creates the tables
    /// of [`SCHEMA`] (not timed) and builds the framework as `postgres_cqrs` does.
    pub async fn connect(options: PgConnectOptions) -> Result<Self, BenchError> {
        Self::connect_with_pool(options, 10).await
    }

    /// [`PostgresEsLedger::connect`] with a pool of `max_connections`.
    pub async fn connect_with_pool(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, BenchError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        let views =
            std::sync::Arc::new(PostgresViewRepository::new("account_summary", pool.clone()));
        let mut projector = GenericQuery::new(std::sync::Arc::clone(&views));
        // `GenericQuery` drops a view update that fails (by default silently); count them, so
        // that a stale summary row is reported as what it is.
        let lost_view_updates = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&lost_view_updates);
        projector.use_error_handler(Box::new(move |_| {
            lost.fetch_add(1, Ordering::Relaxed);
        }));
        let cqrs = CqrsFramework::new(
            PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone())),
            vec![Box::new(projector)],
            Compliance::default(),
        );
        Ok(Self {
            cqrs,
            store: PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone())),
            summaries: GenericQuery::new(views),
            pool,
            lost_view_updates,
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// View updates postgres-es's `GenericQuery` dropped so far: it loads the view, applies the
    /// committed events and writes it back under an optimistic version check, and a failed
    /// write (two commits to one account updating its view at once) goes to its error handler,
    /// not back to the command, so the view misses those events for good.
    pub fn lost_view_updates(&self) -> u64 {
        self.lost_view_updates.load(Ordering::Relaxed)
    }

    /// Opens account `i` (by `&self`, for concurrent clients).
    pub async fn open_shared(&self, i: usize) -> Result<String, BenchError> {
        let id = uuid::Uuid::now_v7().to_string();
        let command = BankAccountCommand::OpenAccount {
            account_id: id.clone(),
            account_number: account_number(i),
            holder_name: holder_name(i),
            opening_deposit: opening_deposit(i),
        };
        self.cqrs
            .execute_with_metadata(&id, command, with_time())
            .await
            .map_err(failed)?;
        Ok(id)
    }

    /// One attempt at a deposit (by `&self`, for concurrent clients): `Ok(false)` when
    /// postgres-es reports a version conflict (`AggregateConflict`: another commit appended
    /// to the account since it was loaded), which the caller may retry.
    pub async fn try_deposit(&self, id: &str, amount: Money) -> Result<bool, BenchError> {
        let command = BankAccountCommand::DepositMoney { amount };
        match self
            .cqrs
            .execute_with_metadata(id, command, with_time())
            .await
        {
            Ok(()) => Ok(true),
            Err(AggregateError::AggregateConflict) => Ok(false),
            Err(error) => Err(failed(error)),
        }
    }

    /// The account's summary row and aggregate balances (by `&self`).
    pub async fn balances(&self, id: &str) -> Result<(Money, Money), BenchError> {
        let view = self
            .summaries
            .load(id)
            .await
            .ok_or(RuleBroken("no summary"))?;
        Ok((view.balance, self.load(id).await?))
    }

    async fn load(&self, id: &str) -> Result<Money, BenchError> {
        let mut context = self.store.load_aggregate(id).await.map_err(failed)?;
        let account = context.aggregate();
        if !account.opened {
            return Err(RuleBroken("no such account").into());
        }
        Ok(account.balance)
    }
}

impl Ledger for PostgresEsLedger {
    const NAME: &'static str = "postgres-es";

    async fn open(&mut self, i: usize) -> Result<String, BenchError> {
        self.open_shared(i).await
    }

    async fn deposit(&mut self, id: &str, amount: Money) -> Result<(), BenchError> {
        let command = BankAccountCommand::DepositMoney { amount };
        self.cqrs
            .execute_with_metadata(id, command, with_time())
            .await
            .map_err(failed)
    }

    async fn summary_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        let view = self
            .summaries
            .load(id)
            .await
            .ok_or(RuleBroken("no summary"))?;
        Ok(view.balance)
    }

    async fn load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        // No aggregate cache in postgres_cqrs's event store: every load replays the stream.
        self.load(id).await
    }

    async fn cold_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        self.load(id).await
    }

    /// Opens the account through a command, then inserts the deposits straight into `events`
    /// in one transaction, as postgres-es would store them (through commands, each deposit
    /// would replay the whole stream so far). The summary view is not updated for them; the
    /// harness only loads this aggregate.
    async fn seed_long_stream(&mut self, events: usize) -> Result<String, BenchError> {
        let id = self.open(0).await?;
        let metadata = serde_json::to_value(with_time())?;
        let mut transaction = self.pool.begin().await?;
        for k in 1..events {
            let payload = serde_json::to_value(BankAccountEvent::DepositMade {
                account_id: id.clone(),
                amount: deposit_amount(k),
                reference: None,
            })?;
            sqlx::query(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(<BankAccount as cqrs_es::Aggregate>::TYPE)
            .bind(&id)
            .bind((k + 1) as i64)
            .bind("DepositMade")
            .bind("1.0")
            .bind(&payload)
            .bind(&metadata)
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(id)
    }
}
