//! What SQLite does its own way: connecting, binding and decoding, the events table and
//! appends, and starting a write transaction.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::model::error::{Error, Result};
use crate::model::event::{RecordedEvent, category_of};
use crate::model::field::FieldKind;
use crate::store::connection::{PoolOptions, redact};
use crate::store::sql::store::{
    STREAMS_PER_READ, db_error, dialect, read_stream_versions, sql_storage,
};
use crate::store::sql::{
    self, Dialect, EVENTS_TABLE, EventRow, ExistingColumn, Failure, On, SqlStore, SqlValue,
    Statement, Syntax,
};
use crate::store::{Cursor, JsonRow, TableSchema, stream_hash};

/// Events per `INSERT`: SQLite binds at most 32,766 parameters to a statement, 10 per event.
const EVENTS_PER_INSERT: usize = 3_000;

/// The SQLite adapter: an embedded database file, for laptops and single-process services.
///
/// - The file is opened in WAL mode (readers never block the writer) with `synchronous =
///   NORMAL` (a commit survives a crash of the process; a power loss may lose the last
///   commits, never corrupt the file) and a busy timeout, so that several processes can share
///   it.
/// - SQLite has one writer at a time. Transactions start with `BEGIN IMMEDIATE`, which takes
///   the write lock at once: a deferred transaction that read first and wrote later could
///   deadlock with another writer (`SQLITE_BUSY` without waiting). Within the process, write
///   transactions also queue on an async mutex, so they wait in order instead of polling the
///   busy handler.
/// - Global positions are assigned in the transaction (the last position + 1) while it holds
///   the write lock, so they are gapless and commit in order: an event's commit (its
///   [`Cursor`]) is its position. A unit of work's events, of every stream, go in one
///   multi-row `INSERT` (of up to 3,000 events: SQLite's parameter limit).
/// - Times are stored as RFC 3339 text with nanoseconds (fixed width, so text order is time
///   order), dates as `YYYY-MM-DD`, JSON as text.
///
/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct SqliteStorage {
    store: SqlStore<SqliteDialect>,
}

sql_storage!(SqliteStorage, SqliteDialect);

impl SqliteStorage {
    /// Opens (creating it if missing) the database of a `sqlite://path` or `sqlite::memory:`
    /// URL. Call [`Storage::setup`](crate::store::Storage::setup) before use (a domain's `build` does). A URL without a
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
            .collation(
                sql::DECIMAL_COLLATION,
                crate::model::query::compare_decimal_text,
            )
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
            store: SqlStore::new(
                pool,
                shown,
                SqliteDialect {
                    writer: Arc::new(Mutex::new(())),
                },
            ),
        })
    }

    /// The connection pool, for SQL of your own (reports, maintenance). Write through units of
    /// work, not here.
    pub fn pool(&self) -> &SqlitePool {
        &self.store.pool
    }
}

/// What SQLite does its own way.
pub(crate) struct SqliteDialect {
    /// Write transactions of this process, one at a time.
    writer: Arc<Mutex<()>>,
}

/// A write transaction: holds SQLite's write lock (and this process' writer mutex) until it
/// commits or is dropped (which rolls back).
pub(crate) struct SqliteTransaction {
    // Declared first so that it is dropped (rolled back) before the mutex is released.
    transaction: sqlx::Transaction<'static, Sqlite>,
    _writer: OwnedMutexGuard<()>,
    /// The last global position, once read in this transaction.
    last_position: Option<i64>,
}

dialect!(SqliteDialect, decode_event, decode_document, transaction => &mut *transaction.transaction, {
    type Db = Sqlite;
    type Tx = SqliteTransaction;
    const SYNTAX: Syntax = Syntax::Sqlite;
    const KIND: &'static str = "sqlite";
    // The commit is the position: one writer commits in position order.
    const EVENT_COLUMNS: &'static str =
        "global_position, id, stream, version, type_name, data, metadata, time, global_position";
    const GLOBAL_ORDER: &'static str = "global_position";
    const CURSOR_COLUMNS: &'static str = "global_position, global_position";
    const GLOBAL_ORDER_DESC: &'static str = "global_position DESC";
    const CORRELATION: &'static str = "json_extract(metadata, '$.correlation_id')";
    const HEAD: &'static str = "SELECT global_position, global_position FROM fidelis_events \
         ORDER BY global_position DESC LIMIT 1";

    async fn begin(&self, pool: &SqlitePool, url: &Arc<str>) -> Result<SqliteTransaction> {
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
        let pool = pool.clone();
        let url = url.clone();
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
            last_position: None,
        })
    }

    async fn commit(transaction: SqliteTransaction) -> std::result::Result<(), sqlx::Error> {
        let SqliteTransaction {
            transaction,
            _writer,
            ..
        } = transaction;
        transaction.commit().await
    }

    async fn existing_columns(
        transaction: &mut SqliteTransaction,
        table: &str,
    ) -> std::result::Result<Vec<ExistingColumn>, sqlx::Error> {
        existing_columns(&mut transaction.transaction, table).await
    }

    async fn setup_events(
        transaction: &mut SqliteTransaction,
        problems: &mut Vec<String>,
    ) -> std::result::Result<(), sqlx::Error> {
        let connection = &mut *transaction.transaction;
        let mut events = existing_columns(connection, EVENTS_TABLE).await?;
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
                sqlx::query(statement).execute(&mut *connection).await?;
            }
        } else {
            if !events.iter().any(|column| column.name == "stream_hash") {
                add_stream_hash(connection).await?;
                events = existing_columns(connection, EVENTS_TABLE).await?;
            }
            sql::events_drift(Syntax::Sqlite, &events, problems);
        }
        if problems.is_empty() {
            // A request's events, for traces (also on tables made before traces existed).
            sqlx::query(
                "CREATE INDEX IF NOT EXISTS fidelis_events_correlation \
                 ON fidelis_events (json_extract(metadata, '$.correlation_id'))",
            )
            .execute(&mut *connection)
            .await?;
        }
        Ok(())
    }

    async fn insert_events(
        transaction: &mut SqliteTransaction,
        events: &mut [RecordedEvent],
        checks: &[(&str, i64)],
    ) -> std::result::Result<bool, Failure> {
        // Under the write lock nothing changes between this read and the `INSERT` (and a
        // read costs no round trip).
        for chunk in checks.chunks(STREAMS_PER_READ) {
            let streams: Vec<&str> = chunk.iter().map(|(stream, _)| *stream).collect();
            let versions = read_stream_versions::<Self>(transaction, &streams).await?;
            if chunk.iter().zip(versions).any(|((_, expected), version)| *expected != version) {
                return Ok(false);
            }
        }
        // Under the write lock: the last position is this transaction's to go on from.
        let mut position = match transaction.last_position {
            Some(position) => position,
            None => {
                sqlx::query_scalar::<_, i64>(&format!(
                    "SELECT COALESCE(MAX(global_position), 0) FROM {EVENTS_TABLE}"
                ))
                .fetch_one(&mut *transaction.transaction)
                .await?
            }
        };
        for event in events.iter_mut() {
            position += 1;
            event.metadata.global_position = position;
            event.metadata.commit = position;
        }
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            let statement = format!(
                "INSERT INTO {EVENTS_TABLE} (global_position, id, stream, stream_hash, category, version, type_name, data, metadata, time) \
                 VALUES {rows}"
            );
            // Each event's JSON text, made here once (the store keeps no typed events).
            let data = chunk
                .iter()
                .map(|event| event.encoded().map(std::borrow::Cow::into_owned))
                .collect::<Result<Vec<String>>>()
                .map_err(Failure::Data)?;
            let query = chunk.iter().zip(data).fold(sqlx::query(&statement), |query, (event, data)| {
                let stream = event.metadata.stream.as_str();
                query
                    .bind(event.metadata.global_position)
                    .bind(event.metadata.id.as_str())
                    .bind(stream)
                    .bind(stream_hash(stream))
                    .bind(category_of(stream))
                    .bind(event.metadata.version)
                    .bind(&event.metadata.type_name)
                    .bind(data)
                    .bind(sql::event_metadata(&event.metadata).to_string())
                    .bind(sql::sqlite_time(&event.metadata.time))
            });
            query.execute(&mut *transaction.transaction).await?;
        }
        transaction.last_position = Some(position);
        Ok(true)
    }

    fn after(statement: &mut Statement, after: Cursor) -> String {
        let first = statement.param(SqlValue::Int(sql::first_position_after(after)));
        format!("global_position >= {first}")
    }
});

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
                Some(text) => match crate::model::field::unknown_variant(&text, field) {
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

/// Decodes an event row (the columns of [`Dialect::EVENT_COLUMNS`]).
fn decode_event(row: &SqliteRow) -> Result<RecordedEvent> {
    let position = row.try_get::<i64, _>(0).unwrap_or_default();
    // Read once: the errors below name the stream, then the row takes it.
    let stream = row.try_get::<String, _>(2).map_err(|error| {
        sql::corrupt_event(
            "?",
            position,
            format!("column `stream` is unreadable: {error}"),
        )
    })?;
    let corrupt = |message: String| sql::corrupt_event(&stream, position, message);
    let column =
        |name: &str, error: sqlx::Error| corrupt(format!("column `{name}` is unreadable: {error}"));
    let text = |name: &str, index: usize| -> Result<String> {
        row.try_get::<String, _>(index)
            .map_err(|error| column(name, error))
    };
    let time_text = text("time", 7)?;
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
        version: row.try_get(3).map_err(|error| column("version", error))?,
        type_name: row.try_get(4).map_err(|error| column("type_name", error))?,
        data: serde_json::value::RawValue::from_string(text("data", 5)?)
            .map_err(|error| corrupt(format!("malformed JSON in column `data`: {error}")))?,
        metadata: serde_json::from_str(&text("metadata", 6)?)
            .map_err(|error| corrupt(format!("column `metadata` does not decode: {error}")))?,
        time: time.with_timezone(&Utc),
        commit: row
            .try_get(8)
            .map_err(|error| column("global_position", error))?,
        stream,
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
