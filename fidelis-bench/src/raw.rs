//! The raw sqlx baseline of the concurrent workload: no framework, no read, no projection;
//! each command is one event row written in a transaction of its own (`BEGIN; INSERT …;
//! COMMIT`), as pgbench's single-INSERT scripts do. It is the physical limit of the server
//! for this workload: what one row per transaction costs at the same concurrency and pool size.
//!
//! The row has the shape of Fidelis's `fidelis_events` (a global position, the stream and its
//! version unique together, JSON data, JSONB metadata, a time, the category index), so the
//! server maintains the same indexes. Versions come from a counter in memory, so no insert
//! conflicts and none is retried; balances are checked by replaying the rows.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use sqlx::Row as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::workload::{BenchError, Money, account_number, holder_name, opening_deposit};

/// The baseline's table and index, created in the scratch schema (not timed).
pub const SCHEMA: [&str; 2] = [
    "CREATE TABLE raw_events (
        global_position BIGSERIAL PRIMARY KEY,
        id TEXT NOT NULL,
        stream TEXT NOT NULL,
        category TEXT NOT NULL,
        version BIGINT NOT NULL,
        type_name TEXT NOT NULL,
        data JSON NOT NULL,
        metadata JSONB NOT NULL,
        time TIMESTAMPTZ NOT NULL,
        UNIQUE (stream, version)
    )",
    "CREATE INDEX raw_events_category ON raw_events (category, global_position)",
];

const CATEGORY: &str = "bench::account";
const INSERT: &str = "INSERT INTO raw_events \
     (id, stream, category, version, type_name, data, metadata, time) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, now())";

/// The raw sqlx baseline on PostgreSQL.
pub struct RawSqlx {
    pool: PgPool,
    /// The next version of each stream.
    versions: Mutex<HashMap<String, i64>>,
}

impl RawSqlx {
    /// The name in the report.
    pub const NAME: &'static str = "raw-sqlx";

    /// Connects with a pool of `max_connections` and creates [`SCHEMA`].
    pub async fn connect(
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
        Ok(Self {
            pool,
            versions: Mutex::new(HashMap::new()),
        })
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn next_version(&self, stream: &str) -> i64 {
        // Held for a map update only, never across an await.
        let mut versions = self.versions.lock().unwrap_or_else(PoisonError::into_inner);
        let next = versions.entry(stream.to_owned()).or_insert(1);
        let version = *next;
        *next += 1;
        version
    }

    async fn append(
        &self,
        stream: &str,
        type_name: &str,
        data: serde_json::Value,
    ) -> Result<(), BenchError> {
        let version = self.next_version(stream);
        let metadata = serde_json::json!({ "time": chrono::Utc::now().to_rfc3339() });
        let mut transaction = self.pool.begin().await?;
        sqlx::query(INSERT)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(stream)
            .bind(CATEGORY)
            .bind(version)
            .bind(type_name)
            .bind(data)
            .bind(metadata)
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Opens account `i`: one `AccountOpened` row.
    pub async fn open(&self, i: usize) -> Result<String, BenchError> {
        let id = uuid::Uuid::now_v7().to_string();
        let data = serde_json::json!({
            "account_number": account_number(i),
            "holder_name": holder_name(i),
            "opening_deposit": opening_deposit(i),
        });
        self.append(&id, "AccountOpened", data).await?;
        Ok(id)
    }

    /// Deposits into account `id`: one `DepositMade` row.
    pub async fn deposit(&self, id: &str, amount: Money) -> Result<(), BenchError> {
        let data = serde_json::json!({ "amount": amount, "reference": null });
        self.append(id, "DepositMade", data).await
    }

    /// Every stream's balance, replayed from its rows in version order (not timed).
    pub async fn balances(&self) -> Result<HashMap<String, Money>, BenchError> {
        let rows =
            sqlx::query("SELECT stream, type_name, data FROM raw_events ORDER BY stream, version")
                .fetch_all(&self.pool)
                .await?;
        let mut balances = HashMap::new();
        for row in rows {
            let stream: String = row.try_get("stream")?;
            let type_name: String = row.try_get("type_name")?;
            let data: serde_json::Value = row.try_get("data")?;
            let field = match type_name.as_str() {
                "AccountOpened" => "opening_deposit",
                "DepositMade" => "amount",
                other => return Err(format!("raw-sqlx: unexpected event type `{other}`").into()),
            };
            let amount: Money = serde_json::from_value(data[field].clone())?;
            *balances.entry(stream).or_insert(Money::ZERO) += amount;
        }
        Ok(balances)
    }
}
