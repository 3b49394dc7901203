//! Helpers shared by the storage test files. Each test binary uses a part of them.

#![allow(dead_code, unused_macros, unused_imports)]

use std::path::Path;

use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{Domain, DomainBuilder, Identifier};

/// A PostgreSQL schema of one test's own, reached through `options[search_path]`, so tests
/// running in parallel never see each other's tables.
pub struct ScratchSchema {
    /// A connection to the server itself, to drop the schema afterwards.
    pub admin: sqlx::PgPool,
    /// The schema's name.
    pub schema: String,
    /// `FIDELIS_TEST_POSTGRES_URL` scoped to the schema.
    pub url: String,
}

impl ScratchSchema {
    /// A fresh schema, or `None` (after saying so) when `FIDELIS_TEST_POSTGRES_URL` is unset.
    /// An unreachable server fails the test.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(url) = std::env::var("FIDELIS_TEST_POSTGRES_URL") else {
            eprintln!(
                "SKIPPED: {test}: FIDELIS_TEST_POSTGRES_URL is unset, so this PostgreSQL test did not run"
            );
            return None;
        };
        let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|error| {
            panic!("FIDELIS_TEST_POSTGRES_URL is set but the server is unreachable: {error}")
        });
        let schema = format!(
            "fidelis_test_{}",
            Identifier::generate().as_str().replace('-', "")
        );
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create the test schema");
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options[search_path]={schema}");
        Some(Self { admin, schema, url })
    }

    /// Drops the schema and everything in it.
    pub async fn drop_schema(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.schema))
            .execute(&self.admin)
            .await
            .expect("drop the schema");
    }
}

/// Removes a SQLite database file and its WAL companions.
pub fn remove_sqlite_files(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// The database one check runs on.
pub enum Backend {
    /// One in-memory store shared by every domain the check builds with
    /// [`connect`](Backend::connect), as a database would be.
    Memory(MemoryStorage),
    Sqlite(std::path::PathBuf),
    Postgres(ScratchSchema),
}

impl Backend {
    pub async fn memory() -> Option<Self> {
        Some(Self::Memory(MemoryStorage::new()))
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Backend::Memory(_))
    }

    /// Points a domain builder at this database. Two domains connected to one backend see
    /// the same data (on memory too), like two processes on one database.
    pub fn connect(&self, builder: DomainBuilder) -> DomainBuilder {
        match self {
            Backend::Memory(storage) => builder.storage(storage.clone()),
            _ => builder.database(self.url()),
        }
    }

    /// Builds a domain on this database, naming the database if it fails.
    pub async fn build(&self, builder: DomainBuilder) -> Domain {
        self.connect(builder)
            .build()
            .await
            .unwrap_or_else(|e| panic!("the domain builds on {}: {e}", self.url()))
    }

    pub async fn sqlite() -> Option<Self> {
        Some(Self::Sqlite(std::env::temp_dir().join(format!(
            "fidelis-domain-{}.db",
            Identifier::generate()
        ))))
    }

    pub async fn postgres(test: &str) -> Option<Self> {
        ScratchSchema::create(test).await.map(Self::Postgres)
    }

    /// The database URL (on memory: `memory`, a store of the domain's own; see
    /// [`connect`](Backend::connect) for a shared one).
    pub fn url(&self) -> String {
        match self {
            Backend::Memory(_) => "memory".to_owned(),
            Backend::Sqlite(path) => format!("sqlite://{}", path.display()),
            Backend::Postgres(scratch) => scratch.url.clone(),
        }
    }

    /// Runs SQL of the test's own on the database (not on memory).
    pub async fn execute(&self, sql: &str) {
        match self {
            Backend::Memory(_) => unreachable!("no SQL on memory"),
            Backend::Sqlite(path) => {
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                pool.close().await;
            }
            Backend::Postgres(scratch) => {
                let pool = sqlx::PgPool::connect(&scratch.url).await.unwrap();
                sqlx::query(sql)
                    .execute(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                pool.close().await;
            }
        }
    }

    /// Removes the database.
    pub async fn finish(self) {
        match self {
            Backend::Memory(_) => {}
            Backend::Sqlite(path) => remove_sqlite_files(&path),
            Backend::Postgres(scratch) => scratch.drop_schema().await,
        }
    }
}

/// `on_every_adapter!(check, …)`: a module per check with a `memory`, `sqlite` and `postgres`
/// test, each calling `check(&Backend)` on a fresh database.
macro_rules! on_every_adapter {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                let backend = Backend::memory().await.unwrap();
                super::$check(&backend).await;
                backend.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let backend = Backend::sqlite().await.unwrap();
                super::$check(&backend).await;
                backend.finish().await;
            }
            #[cfg_attr(not(fidelis_postgres), ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(backend) = Backend::postgres(concat!(stringify!($check), "::postgres")).await else { return };
                super::$check(&backend).await;
                backend.finish().await;
            }
        }
    )*};
}

pub(crate) use on_every_adapter;
