//! The SQLite adapter: an embedded database file, for laptops and single-process services.
//!
//! - The file is opened in WAL mode (readers never block the writer) with `synchronous =
//!   NORMAL` (a commit survives a crash of the process; a power loss may lose the last
//!   commits, never corrupt the file) and a busy timeout, so that several processes can share
//!   it.
//! - SQLite has one writer at a time. Transactions start with `BEGIN IMMEDIATE`, which takes
//!   the write lock at once: a deferred transaction that read first and wrote later could
//!   deadlock with another writer (`SQLITE_BUSY` without waiting). Within the process, write
//!   transactions also queue on an async mutex, so they wait in order instead of polling the
//!   busy handler.
//! - Global positions are assigned in the transaction (the last position + 1) while it holds
//!   the write lock, so they are gapless and commit in order: an event's commit (its
//!   [`Cursor`]) is its position. An append is one multi-row `INSERT`.
//! - Times are stored as RFC 3339 text with nanoseconds (fixed width, so text order is time
//!   order), dates as `YYYY-MM-DD`, JSON as text.

use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::{PoolOptions, redact};
use crate::error::{Error, Result};
use crate::event::{EventMetadata, RecordedEvent, category_of};
use crate::field::FieldKind;
use crate::query::QuerySpec;
use crate::store::sql::{
    self, Dialect, EVENTS_TABLE, EventRow, ExistingColumn, Schemas, SqlValue, Statement,
};
use crate::store::{
    Cursor, ExpectedVersion, GlobalRead, JsonRow, Storage, TableSchema, Transaction, stream_hash,
};

const DIALECT: Dialect = Dialect::Sqlite;
/// The columns every read of events selects, decoded by [`decode_event`]; the last is the
/// commit, which is the position (one writer commits in position order).
const COLUMNS: &str =
    "global_position, id, stream, version, type_name, data, metadata, time, global_position";
/// Events per `INSERT`: SQLite binds at most 32766 parameters to a statement.
const EVENTS_PER_INSERT: usize = 1_000;

/// The SQLite storage adapter. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    /// The URL without password, for messages.
    url: Arc<str>,
    /// Write transactions of this process, one at a time.
    writer: Arc<Mutex<()>>,
    schemas: Arc<Schemas>,
}

impl std::fmt::Debug for SqliteStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStorage")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SqliteStorage {
    /// Opens (creating it if missing) the database of a `sqlite://path` or `sqlite::memory:`
    /// URL. Call [`Storage::setup`] before use (a domain's `build` does). A URL without a
    /// path (`sqlite://`, `sqlite:`) is a configuration error: SQLite would open a private
    /// temporary database, which looks like a working one and loses everything.
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self> {
        let shown: Arc<str> = redact(url).into();
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        // The path as sqlx reads it: after the scheme, before the parameters.
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or_default();
        if path.is_empty() && !memory {
            return Err(Error::configuration(format!(
                "SQLite URL `{shown}` names no database file: use `sqlite://fidelis.db` (relative to the current directory), `sqlite:///absolute/path.db`, or `sqlite::memory:` for a throwaway database"
            )));
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| {
                Error::configuration(format!("invalid SQLite URL `{shown}`: {error}"))
            })?
            .create_if_missing(true)
            .collation(sql::DECIMAL_COLLATION, crate::query::compare_decimal_text)
            .busy_timeout(pool.acquire_timeout)
            .foreign_keys(false);
        let options = if memory {
            options
        } else {
            options
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
        };
        // An in-memory database lives in its connection: the pool keeps exactly one, forever.
        let pool_options = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(pool.max_connections)
        };
        let connecting = pool_options
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options);
        let pool = match tokio::time::timeout(pool.connect_timeout, connecting).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(error)) => {
                return Err(Error::storage_with(
                    format!("cannot open SQLite database `{shown}`: {error}"),
                    error,
                ));
            }
            Err(_) => {
                return Err(Error::storage(format!(
                    "cannot open SQLite database `{shown}`: timed out after {:?}",
                    pool.connect_timeout
                )));
            }
        };
        tracing::debug!(url = %shown, "sqlite storage connected");
        Ok(Self {
            pool,
            url: shown,
            writer: Arc::new(Mutex::new(())),
            schemas: Arc::default(),
        })
    }

    /// The connection pool, for SQL of your own (reports, maintenance). Write through units of
    /// work, not here.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    fn error(&self, what: &str, error: sqlx::Error) -> Error {
        db_error(&self.url, what, error)
    }

    async fn write_transaction(&self) -> Result<SqliteTransaction> {
        let writer = self.writer.clone().lock_owned().await;
        // The `BEGIN` is finished by a task of its own if the caller is dropped meanwhile
        // (`run_to_completion`). sqlx runs `BEGIN IMMEDIATE`, then checks that the connection
        // is in a transaction, across two await points: a future dropped between them
        // returned the connection to the pool inside a transaction that nothing would end,
        // holding SQLite's write lock (other processes: "database is locked") and failing
        // every later `BEGIN` on it ("attempted to call begin_with at non-zero transaction
        // depth"). Now the `Transaction` is always built; if the caller is gone, it is dropped
        // in that task, which queues its `ROLLBACK` ahead of the connection's return to the
        // pool, and the writer mutex is released with it. Once built, sqlx's transaction is
        // safe to drop at any await point: statements run to their end on the connection's
        // worker thread, in order, so a queued `ROLLBACK` always runs before the next user's
        // statements, and a `COMMIT` that ran but was not acknowledged is not rolled back.
        let pool = self.pool.clone();
        let url = self.url.clone();
        let (transaction, writer) = crate::task::run_to_completion(async move {
            let transaction = pool
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(|error| db_error(&url, "starting a transaction", error))?;
            Ok::<_, Error>((transaction, writer))
        })
        .await?;
        Ok(SqliteTransaction {
            transaction,
            _writer: writer,
            url: self.url.clone(),
            schemas: self.schemas.clone(),
            last_position: None,
        })
    }
}

fn db_error(url: &str, what: &str, error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::PoolTimedOut => Error::storage(format!(
            "{what} on `{url}`: timed out waiting for a connection; raise the pool size or the acquire timeout"
        )),
        error => Error::storage_with(format!("{what} on `{url}`: {error}"), error),
    }
}

fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    value: SqlValue,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    match value {
        SqlValue::Null(_) => query.bind(None::<String>),
        SqlValue::Bool(b) => query.bind(b),
        SqlValue::Int(i) => query.bind(i),
        // SQLite stores a NaN as NULL: an `allow_non_finite` field's NaN is kept as its name.
        SqlValue::Float(f) if f.is_nan() => query.bind("NaN"),
        SqlValue::Float(f) => query.bind(f),
        #[cfg(feature = "decimal")]
        SqlValue::Decimal(d) => query.bind(d.to_string()),
        SqlValue::Text(text) => query.bind(text),
        SqlValue::Time(time) => query.bind(sql::sqlite_time(&time)),
        SqlValue::Date(date) => query.bind(date.format("%Y-%m-%d").to_string()),
        SqlValue::Json(value) => query.bind(value.to_string()),
    }
}

fn prepare(statement: &Statement) -> Query<'_, Sqlite, SqliteArguments<'_>> {
    statement
        .params
        .iter()
        .cloned()
        .fold(sqlx::query(&statement.sql), bind)
}

/// Decodes a document row (the columns of [`sql::select_columns`]).
fn decode_document(table: &TableSchema, row: &SqliteRow) -> Result<JsonRow> {
    let mut values = Vec::with_capacity(table.fields.len());
    for (index, field) in table.fields.iter().enumerate() {
        let corrupt = |message: String| Error::Serialization {
            what: format!(
                "column `{}` of {} of table `{}`",
                field.name,
                sql::row_name(table, row),
                table.name
            ),
            message,
        };
        let read = |error: sqlx::Error| corrupt(error.to_string());
        let value = match field.kind {
            FieldKind::Identifier | FieldKind::String => row
                .try_get::<Option<String>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, Value::String),
            FieldKind::Enum => match row.try_get::<Option<String>, _>(index).map_err(read)? {
                None => Value::Null,
                Some(text) => match crate::field::unknown_variant(&text, field) {
                    Some(message) => return Err(corrupt(message)),
                    None => Value::String(text),
                },
            },
            FieldKind::Integer => row
                .try_get::<Option<i64>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, Value::from),
            FieldKind::Float => match row.try_get::<Option<f64>, _>(index) {
                Ok(value) => value.map_or(Value::Null, sql::float_json),
                // A NaN, written by name (see `bind`).
                Err(error) => match row.try_get::<Option<String>, _>(index) {
                    Ok(Some(text)) if text == "NaN" => sql::float_json(f64::NAN),
                    _ => return Err(read(error)),
                },
            },
            FieldKind::Decimal => match row.try_get::<Option<String>, _>(index).map_err(read)? {
                None => Value::Null,
                Some(text) => {
                    #[cfg(feature = "decimal")]
                    text.parse::<rust_decimal::Decimal>()
                        .map_err(|error| corrupt(format!("`{text}` is not a decimal: {error}")))?;
                    Value::String(text)
                }
            },
            FieldKind::Boolean => row
                .try_get::<Option<bool>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, Value::Bool),
            FieldKind::DateTime => match row.try_get::<Option<String>, _>(index).map_err(read)? {
                None => Value::Null,
                Some(text) => {
                    let time = DateTime::parse_from_rfc3339(&text).map_err(|error| {
                        corrupt(format!("`{text}` is not an RFC 3339 time: {error}"))
                    })?;
                    sql::time_json(time.with_timezone(&Utc))
                }
            },
            FieldKind::Date => match row.try_get::<Option<String>, _>(index).map_err(read)? {
                None => Value::Null,
                Some(text) => {
                    text.parse::<NaiveDate>()
                        .map_err(|error| corrupt(format!("`{text}` is not a date: {error}")))?;
                    Value::String(text)
                }
            },
            FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict => {
                match row.try_get::<Option<String>, _>(index).map_err(read)? {
                    None => Value::Null,
                    Some(text) => serde_json::from_str(&text)
                        .map_err(|error| corrupt(format!("malformed JSON: {error}")))?,
                }
            }
        };
        values.push(value);
    }
    let version =
        row.try_get::<i64, _>(table.fields.len())
            .map_err(|error| Error::Serialization {
                what: format!(
                    "column `{}` of {} of table `{}`",
                    sql::VERSION_COLUMN,
                    sql::row_name(table, row),
                    table.name
                ),
                message: error.to_string(),
            })?;
    Ok(sql::document(table, values, version))
}

/// Decodes an event row (the columns of [`COLUMNS`]).
fn decode_event(row: &SqliteRow) -> Result<RecordedEvent> {
    let position = row.try_get::<i64, _>(0).unwrap_or_default();
    let stream = row
        .try_get::<String, _>(2)
        .unwrap_or_else(|_| "?".to_owned());
    let corrupt = |message: String| sql::corrupt_event(&stream, position, message);
    let column =
        |name: &str, error: sqlx::Error| corrupt(format!("column `{name}` is unreadable: {error}"));
    let json = |name: &str, index: usize| -> Result<Value> {
        let text = row
            .try_get::<String, _>(index)
            .map_err(|error| column(name, error))?;
        serde_json::from_str(&text)
            .map_err(|error| corrupt(format!("malformed JSON in column `{name}`: {error}")))
    };
    let time_text = row
        .try_get::<String, _>(7)
        .map_err(|error| column("time", error))?;
    let time = DateTime::parse_from_rfc3339(&time_text).map_err(|error| {
        corrupt(format!(
            "column `time` holds `{time_text}`, not an RFC 3339 time: {error}"
        ))
    })?;
    EventRow {
        position: row
            .try_get(0)
            .map_err(|error| column("global_position", error))?,
        id: row.try_get(1).map_err(|error| column("id", error))?,
        stream: row.try_get(2).map_err(|error| column("stream", error))?,
        version: row.try_get(3).map_err(|error| column("version", error))?,
        type_name: row.try_get(4).map_err(|error| column("type_name", error))?,
        data: json("data", 5)?,
        metadata: json("metadata", 6)?,
        time: time.with_timezone(&Utc),
        commit: row
            .try_get(8)
            .map_err(|error| column("global_position", error))?,
    }
    .into_event()
}

/// Adds the `stream_hash` column to an events table of an earlier version of Fidelis, and
/// fills it for every stream (in the transaction of `setup`).
async fn add_stream_hash(
    connection: &mut SqliteConnection,
) -> std::result::Result<(), sqlx::Error> {
    tracing::info!("adding column `stream_hash` to `{EVENTS_TABLE}`");
    sqlx::query(&format!(
        "ALTER TABLE {EVENTS_TABLE} ADD COLUMN stream_hash BIGINT NOT NULL DEFAULT 0"
    ))
    .execute(&mut *connection)
    .await?;
    let streams: Vec<String> =
        sqlx::query_scalar(&format!("SELECT DISTINCT stream FROM {EVENTS_TABLE}"))
            .fetch_all(&mut *connection)
            .await?;
    for stream in streams {
        sqlx::query(&format!(
            "UPDATE {EVENTS_TABLE} SET stream_hash = ? WHERE stream = ?"
        ))
        .bind(stream_hash(&stream))
        .bind(&stream)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

async fn existing_columns(
    connection: &mut SqliteConnection,
    table: &str,
) -> std::result::Result<Vec<ExistingColumn>, sqlx::Error> {
    let rows = sqlx::query(r#"SELECT name, type, "notnull" FROM pragma_table_info(?)"#)
        .bind(table)
        .fetch_all(&mut *connection)
        .await?;
    rows.iter()
        .map(|row| {
            Ok(ExistingColumn {
                name: row.try_get(0)?,
                data_type: row.try_get(1)?,
                not_null: row.try_get::<i64, _>(2)? != 0,
            })
        })
        .collect()
}

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    async fn setup(&self, tables: &[TableSchema]) -> Result<()> {
        sql::check_schemas(tables)?;
        let mut transaction = self.write_transaction().await?;
        let connection = &mut *transaction.transaction;
        let fail = |error| db_error(&self.url, "setting up tables", error);
        let mut problems = Vec::new();
        let mut events = existing_columns(connection, EVENTS_TABLE)
            .await
            .map_err(fail)?;
        if events.is_empty() {
            let statements = [
                "CREATE TABLE IF NOT EXISTS fidelis_events (\
                   global_position INTEGER PRIMARY KEY, \
                   id TEXT NOT NULL, stream TEXT NOT NULL, stream_hash BIGINT NOT NULL, category TEXT NOT NULL, version BIGINT NOT NULL, \
                   type_name TEXT NOT NULL, data TEXT NOT NULL, metadata TEXT NOT NULL, time TEXT NOT NULL, \
                   UNIQUE (stream, version))",
                "CREATE INDEX IF NOT EXISTS fidelis_events_category ON fidelis_events (category, global_position)",
            ];
            for statement in statements {
                sqlx::query(statement)
                    .execute(&mut *connection)
                    .await
                    .map_err(fail)?;
            }
        } else {
            if !events.iter().any(|column| column.name == "stream_hash") {
                add_stream_hash(connection).await.map_err(fail)?;
                events = existing_columns(connection, EVENTS_TABLE)
                    .await
                    .map_err(fail)?;
            }
            sql::events_drift(DIALECT, &events, &mut problems);
        }
        for table in tables {
            let existing = existing_columns(connection, table.name)
                .await
                .map_err(fail)?;
            if existing.is_empty() {
                if let Some(former_name) = table.former_name {
                    let former = existing_columns(connection, former_name)
                        .await
                        .map_err(fail)?;
                    if let Some(problem) = sql::former_table(DIALECT, table, &former) {
                        problems.push(problem);
                        continue;
                    }
                }
                sqlx::query(&sql::create_table(DIALECT, table))
                    .execute(&mut *connection)
                    .await
                    .map_err(fail)?;
            } else {
                sql::drift(DIALECT, table, &existing, &mut problems);
            }
        }
        if !problems.is_empty() {
            return Err(Error::Configuration { problems });
        }
        Box::new(transaction).commit().await?;
        self.schemas.insert(tables);
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(self.write_transaction().await?))
    }

    async fn read_stream(&self, stream: &str, from_version: i64) -> Result<Vec<RecordedEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE stream = ? AND version >= ? ORDER BY version"
        ))
        .bind(stream)
        .bind(from_version)
        .fetch_all(&self.pool)
        .await
        .map_err(|error| self.error(&format!("reading stream `{stream}`"), error))?;
        rows.iter().map(decode_event).collect()
    }

    async fn read_category(
        &self,
        category: &str,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE category = ? AND global_position >= ? \
             ORDER BY global_position LIMIT ?"
        ))
        .bind(category)
        .bind(sql::first_position_after(after))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|error| self.error(&format!("reading category `{category}`"), error))?;
        rows.iter().map(decode_event).collect()
    }

    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<RecordedEvent>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE global_position >= ? ORDER BY global_position LIMIT ?"
        ))
        .bind(sql::first_position_after(after))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|error| self.error("reading all events", error))?;
        rows.iter().map(decode_event).collect()
    }

    async fn read_categories(&self, read: &GlobalRead<'_>) -> Result<Vec<RecordedEvent>> {
        if read.categories.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders = vec!["?"; read.categories.len()].join(", ");
        let partition = match &read.partition {
            Some(partition) => {
                partition.check()?;
                format!(" AND {}", sql::partition_condition(partition))
            }
            None => String::new(),
        };
        let statement = format!(
            "SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE category IN ({placeholders}) AND global_position >= ?{partition} \
             ORDER BY global_position LIMIT ?"
        );
        let query = read
            .categories
            .iter()
            .fold(sqlx::query(&statement), |query, category| {
                query.bind(*category)
            });
        let rows = query
            .bind(sql::first_position_after(read.after))
            .bind(i64::try_from(read.limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|error| self.error("reading categories", error))?;
        rows.iter().map(decode_event).collect()
    }

    async fn head(&self) -> Result<Cursor> {
        let position = sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COALESCE(MAX(global_position), 0) FROM {EVENTS_TABLE}"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(|error| self.error("reading the last global position", error))?;
        Ok(Cursor {
            commit: position,
            position,
        })
    }

    async fn stream_version(&self, stream: &str) -> Result<i64> {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COALESCE(MAX(version), -1) FROM {EVENTS_TABLE} WHERE stream = ?"
        ))
        .bind(stream)
        .fetch_one(&self.pool)
        .await
        .map_err(|error| self.error(&format!("reading the version of stream `{stream}`"), error))
    }

    async fn get_json_row(&self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        let schema = self.schemas.get(table)?;
        let Some(statement) = select_by_id(&schema, id) else {
            return Ok(None);
        };
        let row = prepare(&statement)
            .fetch_optional(&self.pool)
            .await
            .map_err(|error| {
                self.error(&format!("reading row `{id}` of table `{table}`"), error)
            })?;
        row.map(|row| decode_document(&schema, &row)).transpose()
    }

    async fn query(&self, table: &str, query: &QuerySpec) -> Result<Vec<JsonRow>> {
        let schema = self.schemas.get(table)?;
        let statement = sql::select(DIALECT, &schema, query, false)?;
        let rows = prepare(&statement)
            .fetch_all(&self.pool)
            .await
            .map_err(|error| self.error(&format!("querying table `{table}`"), error))?;
        rows.iter()
            .map(|row| decode_document(&schema, row))
            .collect()
    }

    async fn count(&self, table: &str, query: &QuerySpec) -> Result<u64> {
        let schema = self.schemas.get(table)?;
        let statement = sql::select(DIALECT, &schema, query, true)?;
        let row = prepare(&statement)
            .fetch_one(&self.pool)
            .await
            .map_err(|error| self.error(&format!("counting rows of table `{table}`"), error))?;
        let count = row
            .try_get::<i64, _>(0)
            .map_err(|error| self.error("reading a count", error))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

fn select_by_id(table: &TableSchema, id: &str) -> Option<Statement> {
    let mut statement = Statement::new(DIALECT, "");
    let key = statement.param(sql::key_value(table, id)?);
    statement.sql = format!(
        "SELECT {} FROM {} WHERE {} = {key}",
        sql::select_columns(table),
        sql::quote(table.name),
        sql::quote(table.identifier)
    );
    Some(statement)
}

/// A write transaction: holds SQLite's write lock (and this process' writer mutex) until it
/// commits or is dropped (which rolls back).
struct SqliteTransaction {
    // Declared first so that it is dropped (rolled back) before the mutex is released.
    transaction: sqlx::Transaction<'static, Sqlite>,
    _writer: OwnedMutexGuard<()>,
    url: Arc<str>,
    schemas: Arc<Schemas>,
    /// The last global position, once read in this transaction.
    last_position: Option<i64>,
}

impl SqliteTransaction {
    fn error(&self, what: &str, error: sqlx::Error) -> Error {
        db_error(&self.url, what, error)
    }

    async fn stream_version(&mut self, stream: &str) -> Result<i64> {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COALESCE(MAX(version), -1) FROM {EVENTS_TABLE} WHERE stream = ?"
        ))
        .bind(stream)
        .fetch_one(&mut *self.transaction)
        .await
        .map_err(|error| self.error(&format!("reading the version of stream `{stream}`"), error))
    }
}

#[async_trait]
impl Transaction for SqliteTransaction {
    async fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<EventMetadata>> {
        let current = self.stream_version(stream).await?;
        if let ExpectedVersion::Exact(expected) = expected
            && expected != current
        {
            return Err(Error::VersionConflict {
                stream: stream.to_owned(),
                expected,
                actual: current,
            });
        }
        let mut position = match self.last_position {
            Some(position) => position,
            None => sqlx::query_scalar::<_, i64>(&format!(
                "SELECT COALESCE(MAX(global_position), 0) FROM {EVENTS_TABLE}"
            ))
            .fetch_one(&mut *self.transaction)
            .await
            .map_err(|error| self.error("reading the last global position", error))?,
        };
        let category = category_of(stream);
        let hash = stream_hash(stream);
        let mut version = current;
        for event in &mut events {
            position += 1;
            version += 1;
            event.metadata.global_position = position;
            event.metadata.commit = position;
            event.metadata.version = version;
            event.metadata.stream = stream.to_owned();
        }
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let statement = format!(
                "INSERT INTO {EVENTS_TABLE} (global_position, id, stream, stream_hash, category, version, type_name, data, metadata, time) \
                 VALUES {rows}"
            );
            let query = chunk.iter().fold(sqlx::query(&statement), |query, event| {
                query
                    .bind(event.metadata.global_position)
                    .bind(event.metadata.id.as_str())
                    .bind(stream)
                    .bind(hash)
                    .bind(category)
                    .bind(event.metadata.version)
                    .bind(&event.metadata.type_name)
                    .bind(event.data.to_string())
                    .bind(sql::event_metadata(&event.metadata).to_string())
                    .bind(sql::sqlite_time(&event.metadata.time))
            });
            match query.execute(&mut *self.transaction).await {
                Ok(_) => {}
                // The unique (stream, version) constraint: another writer got there first.
                Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                    let first = chunk.first().map_or(current + 1, |e| e.metadata.version);
                    return Err(Error::VersionConflict {
                        stream: stream.to_owned(),
                        expected: first - 1,
                        actual: first,
                    });
                }
                Err(error) => {
                    return Err(self.error(&format!("appending to stream `{stream}`"), error));
                }
            }
        }
        self.last_position = Some(position);
        Ok(events.into_iter().map(|event| event.metadata).collect())
    }

    async fn get_json_row(&mut self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        let schema = self.schemas.get(table)?;
        let Some(statement) = select_by_id(&schema, id) else {
            return Ok(None);
        };
        let row = prepare(&statement)
            .fetch_optional(&mut *self.transaction)
            .await
            .map_err(|error| {
                db_error(
                    &self.url,
                    &format!("reading row `{id}` of table `{table}`"),
                    error,
                )
            })?;
        row.map(|row| decode_document(&schema, &row)).transpose()
    }

    async fn put_json_row(
        &mut self,
        table: &str,
        document: JsonRow,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let schema = self.schemas.get(table)?;
        if let Some(expected) = expected_version {
            // The write lock is held, so the version read here cannot change before the write.
            let actual = match select_version(&schema, &document.id) {
                None => -1,
                Some(statement) => prepare(&statement)
                    .fetch_optional(&mut *self.transaction)
                    .await
                    .map_err(|error| {
                        db_error(
                            &self.url,
                            &format!("reading row `{}` of table `{table}`", document.id),
                            error,
                        )
                    })?
                    .map(|row| row.try_get::<i64, _>(0))
                    .transpose()
                    .map_err(|error| db_error(&self.url, "reading a row version", error))?
                    .unwrap_or(-1),
            };
            if actual != expected {
                return Err(Error::VersionConflict {
                    stream: format!("{table}/{}", document.id),
                    expected,
                    actual,
                });
            }
        }
        let statement = sql::upsert(DIALECT, &schema, &document, false)?;
        prepare(&statement)
            .execute(&mut *self.transaction)
            .await
            .map_err(|error| {
                sql::unique_violation(&schema, &error).unwrap_or_else(|| {
                    db_error(
                        &self.url,
                        &format!("writing row `{}` of table `{table}`", document.id),
                        error,
                    )
                })
            })?;
        Ok(())
    }

    async fn remove_row(&mut self, table: &str, id: &str) -> Result<()> {
        let schema = self.schemas.get(table)?;
        let Some(key) = sql::key_value(&schema, id) else {
            return Ok(());
        };
        let mut statement = Statement::new(DIALECT, "");
        let placeholder = statement.param(key);
        statement.sql = format!(
            "DELETE FROM {} WHERE {} = {placeholder}",
            sql::quote(schema.name),
            sql::quote(schema.identifier)
        );
        prepare(&statement)
            .execute(&mut *self.transaction)
            .await
            .map_err(|error| {
                db_error(
                    &self.url,
                    &format!("removing row `{id}` of table `{table}`"),
                    error,
                )
            })?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let SqliteTransaction {
            transaction,
            _writer,
            url,
            ..
        } = *self;
        transaction
            .commit()
            .await
            .map_err(|error| db_error(&url, "committing", error))
    }
}

fn select_version(table: &TableSchema, id: &str) -> Option<Statement> {
    let mut statement = Statement::new(DIALECT, "");
    let key = statement.param(sql::key_value(table, id)?);
    statement.sql = format!(
        "SELECT {} FROM {} WHERE {} = {key}",
        sql::quote(sql::VERSION_COLUMN),
        sql::quote(table.name),
        sql::quote(table.identifier)
    );
    Some(statement)
}
