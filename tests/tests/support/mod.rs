//! Helpers shared by the storage test files (`conformance.rs`, `storage_domain.rs`).

use std::path::Path;

use fidelis_core::Identifier;

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
