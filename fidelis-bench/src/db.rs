//! Fresh databases for the database rows: a new SQLite file in a temporary directory, or a
//! new schema on the PostgreSQL server named by [`POSTGRES_URL_VAR`], per repetition.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use fidelis_core::DomainBuilder;
use fidelis_core::store::memory::MemoryStorage;
use sqlx::Executor as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::workload::BenchError;

/// The environment variable with the PostgreSQL server's URL (for example
/// `postgres://postgres@127.0.0.1:5432/fidelis_bench`). The PostgreSQL rows are skipped when
/// it is unset.
pub const POSTGRES_URL_VAR: &str = "FIDELIS_BENCH_POSTGRES_URL";

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An empty SQLite database file in a temporary directory of its own, removed on drop.
#[derive(Debug)]
pub struct SqliteScratch {
    dir: PathBuf,
}

impl SqliteScratch {
    /// Creates the directory (the file is created by whoever connects first).
    pub fn new() -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(unique_name("fidelis-bench"));
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// `sqlite:///…/bench.db`.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.dir.join("bench.db").display())
    }
}

impl Drop for SqliteScratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// An empty schema on the benchmark's PostgreSQL server. Call [`PostgresScratch::drop_schema`]
/// when done (dropping it needs `await`).
#[derive(Debug)]
pub struct PostgresScratch {
    admin: PgPool,
    base_url: String,
    schema: String,
}

impl PostgresScratch {
    /// Creates a new schema on the server at `base_url`.
    pub async fn new(base_url: &str) -> Result<Self, BenchError> {
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(base_url)
            .await
            .map_err(|error| format!("cannot connect to {POSTGRES_URL_VAR}: {error}"))?;
        let schema = unique_name("fidelis_bench");
        admin
            .execute(format!("CREATE SCHEMA {schema}").as_str())
            .await?;
        Ok(Self {
            admin,
            base_url: base_url.to_owned(),
            schema,
        })
    }

    /// The server's URL with the schema as the search path (for Fidelis).
    pub fn url(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options[search_path]={}",
            self.base_url, self.schema
        )
    }

    /// Connection options with the schema as the search path (for postgres-es).
    pub fn connect_options(&self) -> Result<PgConnectOptions, BenchError> {
        Ok(PgConnectOptions::from_str(&self.base_url)?.options([("search_path", &self.schema)]))
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) -> Result<(), BenchError> {
        self.admin
            .execute(format!("DROP SCHEMA {} CASCADE", self.schema).as_str())
            .await?;
        self.admin.close().await;
        Ok(())
    }
}

/// A fresh store for one pass of a workload that runs on every backend (`memory`, `sqlite`,
/// `postgres`): where a domain connects, and what to clean up afterwards.
pub enum Scratch {
    /// A new memory store.
    Memory(MemoryStorage),
    /// A new SQLite file.
    Sqlite(SqliteScratch),
    /// A new PostgreSQL schema.
    Postgres(PostgresScratch),
}

impl Scratch {
    /// A fresh store on `backend`; `workload` names the workload in the error for an unknown
    /// backend.
    pub async fn new(
        backend: &str,
        postgres_url: Option<&str>,
        workload: &str,
    ) -> Result<Self, BenchError> {
        Ok(match backend {
            "memory" => Self::Memory(MemoryStorage::new()),
            "sqlite" => Self::Sqlite(SqliteScratch::new()?),
            "postgres" => {
                let url = postgres_url.ok_or_else(|| format!("{POSTGRES_URL_VAR} is unset"))?;
                Self::Postgres(PostgresScratch::new(url).await?)
            }
            other => return Err(format!("unknown {workload} backend `{other}`").into()),
        })
    }

    /// `builder` connected to this store.
    pub fn connect(&self, builder: DomainBuilder) -> DomainBuilder {
        match self {
            Self::Memory(storage) => builder.storage(storage.clone()),
            Self::Sqlite(scratch) => builder.database(scratch.url()),
            Self::Postgres(scratch) => builder.database(scratch.url()),
        }
    }

    /// Drops the store (a PostgreSQL schema; the others go with their value).
    pub async fn drop_store(self) -> Result<(), BenchError> {
        match self {
            Self::Postgres(scratch) => scratch.drop_schema().await,
            Self::Memory(_) | Self::Sqlite(_) => Ok(()),
        }
    }
}
