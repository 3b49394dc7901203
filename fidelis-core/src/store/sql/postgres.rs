//! What PostgreSQL does its own way: connecting, binding and decoding, the events table and
//! appends (the writing transaction's id), the global order's read condition, and waiting
//! for older transactions.

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;
use sqlx::postgres::{
    PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow, Postgres,
};
use sqlx::query::Query;
use sqlx::types::Json;
use sqlx::{ConnectOptions, Connection, Row};

use crate::model::error::{Error, Result};
use crate::model::event::{RecordedEvent, category_of};
use crate::model::field::FieldKind;
use crate::store::connection::{PoolOptions, redact};
use crate::store::sql::store::{db_error, dialect, sql_storage};
use crate::store::sql::{
    self, Dialect, EVENTS_TABLE, EventRow, ExistingColumn, Failure, On, SqlStore, SqlValue,
    Statement, Syntax,
};
use crate::store::{Cursor, JsonRow, TableSchema, stream_hash};

/// The oldest transaction still running (or the next to start): every transaction before it
/// has ended, so an event written by one is committed (and visible) or rolled back for good.
/// The channel commits notify (`Transaction::notify_commit`), in their transaction:
/// PostgreSQL delivers the notification when (and only if) the transaction commits, so a
/// listening engine wakes as soon as new events are readable. Only asynchronous processing
/// notifies: a `NOTIFY` serializes the commits of the transactions that send one (16
/// concurrent writers committed 2,800-3,200 commits/s without it, 1,200 with it, in
/// `tests/global_order.rs`). Notifications are database-wide, so the channel is named
/// after the schema of the events table (hashed: a channel name has at most 63 bytes), and
/// stores in other schemas do not wake each other.
const COMMIT_CHANNEL: &str = "'fidelis_' || left(md5(current_schema()), 16)";

const HORIZON: &str = "pg_snapshot_xmin(pg_current_snapshot())::text::bigint";
/// How long [`Storage::settle`](crate::store::Storage::settle) waits for older transactions
/// before it fails.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The advisory lock that serializes `setup` (concurrent `CREATE TABLE IF NOT EXISTS` race).
const SETUP_LOCK: i64 = 0x6669_6465_6c69_7302;
/// The class (first key) of the advisory locks a transaction takes on the rows it reads to
/// write (see `lock_row`).
const ROW_LOCK_CLASS: i32 = 0x6669_6401;

/// The PostgreSQL adapter: for production, and for several processes sharing one store.
///
/// - Transactions run at PostgreSQL's default isolation (READ COMMITTED).
/// - **Writers append concurrently.** An event's global position comes from an identity
///   column (rolled-back transactions leave gaps), and each event keeps the id of the
///   transaction that wrote it (`transaction_id`, `pg_current_xact_id()`). The global order
///   is `(transaction_id, global_position)` (an event's [`Cursor`]), and readers of it only
///   read events of transactions older than the oldest one still running
///   (`pg_snapshot_xmin(pg_current_snapshot())`). Why: transactions take positions in one
///   order and commit in another, so a reader that has read position 12 could otherwise miss
///   a position 11 committed after it (a subscription from a checkpoint would skip it
///   forever). Below the oldest running transaction nothing can still commit, so a cursor a
///   reader has passed is never preceded by a later event. The price: an event is readable in
///   global order once every transaction that began before its own has ended
///   ([`Storage::settle`](crate::store::Storage::settle) waits for that).
/// - The unique `(stream, version)` constraint enforces optimistic concurrency in the
///   database itself; its violation is a [`Error::VersionConflict`], as are deadlocks and
///   serialization failures (they are worth retrying). A unit of work's events, of every
///   stream, go in one `INSERT`, which checks each stream's expected version itself (its
///   `WHERE`; the versions are read before it only for appends that expect none).
/// - A stored aggregate's row is locked (`SELECT … FOR UPDATE`) while its version is checked;
///   a new row is written with a plain `INSERT`, so that two writers creating it cannot both
///   win.
/// - Text is compared and ordered with the "C" collation (code point order, as in memory),
///   whatever the database's locale. Times keep microseconds (PostgreSQL's precision).
/// - Tables go in the connection's current schema: use `options[search_path]=my_schema` in
///   the URL to keep them apart.
///
/// Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStorage {
    store: SqlStore<PostgresDialect>,
}

sql_storage!(PostgresStorage, PostgresDialect);

impl PostgresStorage {
    /// Connects to the database of a `postgres://…` URL (one connection is opened at once,
    /// so an unreachable server fails here). Call [`Storage::setup`](crate::store::Storage::setup) before use (a domain's
    /// `build` does).
    ///
    /// A refused connection, an unknown host or wrong credentials fail at once; only errors
    /// PostgreSQL calls transient (the server is starting up, too many connections) are
    /// retried until the connect timeout.
    pub async fn connect(url: &str, pool: &PoolOptions) -> Result<Self> {
        let shown: Arc<str> = redact(url).into();
        refuse_split_password(url, &shown)?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|error| {
                // A password with a raw `/`, `?` or `#` ends the URL's host part early.
                let hint = if url.contains('@') {
                    "; percent-encode `/`, `?`, `#` and `@` in the user name and password (`%2F`, `%3F`, `%23`, `%40`)"
                } else {
                    ""
                };
                Error::configuration(format!("invalid PostgreSQL URL `{shown}`: {error}{hint}"))
            })?
            .application_name("fidelis");
        let started = tokio::time::Instant::now();
        // sqlx's pool retries a refused connection until its deadline (it assumes a server
        // that is starting), so a server that is not running would only be reported as a
        // timeout. One direct attempt first reports such errors as they are.
        match tokio::time::timeout(pool.connect_timeout, options.connect()).await {
            Ok(Ok(connection)) => {
                if let Err(error) = connection.close().await {
                    tracing::debug!(url = %shown, %error, "closing the first connection");
                }
            }
            Ok(Err(error)) if is_transient_connect_error(&error) => {
                tracing::debug!(url = %shown, %error, "PostgreSQL is not ready; retrying until the connect timeout");
            }
            Ok(Err(error)) => return Err(connect_error(&shown, error)),
            Err(_) => return Err(connect_timed_out(&shown, pool.connect_timeout)),
        }
        let connecting = PgPoolOptions::new()
            .max_connections(pool.max_connections)
            .acquire_timeout(pool.acquire_timeout)
            .connect_with(options);
        let remaining = pool.connect_timeout.saturating_sub(started.elapsed());
        let pool = match tokio::time::timeout(remaining, connecting).await {
            Ok(Ok(pool)) => pool,
            Ok(Err(error)) => return Err(connect_error(&shown, error)),
            Err(_) => return Err(connect_timed_out(&shown, pool.connect_timeout)),
        };
        tracing::debug!(url = %shown, "postgres storage connected");
        Ok(Self {
            store: SqlStore::new(pool, shown, PostgresDialect),
        })
    }

    /// The connection pool, for SQL of your own (reports, maintenance). Write through units of
    /// work, not here.
    pub fn pool(&self) -> &PgPool {
        &self.store.pool
    }
}

/// What PostgreSQL does its own way.
pub(crate) struct PostgresDialect;

/// A transaction; dropping it rolls back (sqlx issues the `ROLLBACK`).
type PgTransaction = sqlx::Transaction<'static, Postgres>;

dialect!(PostgresDialect, decode_event, decode_document, transaction => &mut **transaction, {
    type Db = Postgres;
    type Tx = PgTransaction;
    const SYNTAX: Syntax = Syntax::Postgres;
    const KIND: &'static str = "postgres";
    const EVENT_COLUMNS: &'static str =
        "global_position, id, stream, version, type_name, data, metadata, time, transaction_id";
    const GLOBAL_ORDER: &'static str = "transaction_id, global_position";
    const CURSOR_COLUMNS: &'static str = "transaction_id, global_position";
    const GLOBAL_ORDER_DESC: &'static str = "transaction_id DESC, global_position DESC";
    const CORRELATION: &'static str = "(metadata->>'correlation_id')";
    const HEAD: &'static str = "SELECT transaction_id, global_position FROM fidelis_events \
         WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1";

    /// Starts a transaction on a connection of the pool.
    ///
    /// The `BEGIN` is finished by a task of its own if the caller is dropped meanwhile
    /// (`run_to_completion`): sqlx counts the transaction only once the server has answered,
    /// and a future dropped while waiting for that answer returned the connection to the pool
    /// inside a transaction that nothing would end (idle in transaction; the next unit of
    /// work on it would run inside it). Now the `Transaction` is always built; if the caller
    /// is gone, it is dropped in that task, which queues its `ROLLBACK`, and the pool flushes
    /// queued statements before it hands the connection out again. Once built, sqlx's
    /// transaction is safe to drop at any await point for the same reason: an interrupted
    /// statement's answer is read, then the `ROLLBACK` runs, before the connection is reused.
    /// (An abandoned `begin` still waits for its connection and opens and rolls back its
    /// transaction: sqlx offers no public way to begin an owned transaction on a connection
    /// acquired beforehand, which would let the caller's task do the waiting.)
    async fn begin(&self, pool: &PgPool, url: &Arc<str>) -> Result<PgTransaction> {
        let pool = pool.clone();
        let url = url.clone();
        crate::task::run_to_completion(async move {
            pool.begin()
                .await
                .map_err(|error| db_error(&url, "starting a transaction", error))
        })
        .await
    }

    async fn commit(transaction: PgTransaction) -> std::result::Result<(), sqlx::Error> {
        transaction.commit().await
    }

    async fn existing_columns(
        transaction: &mut PgTransaction,
        table: &str,
    ) -> std::result::Result<Vec<ExistingColumn>, sqlx::Error> {
        existing_columns(transaction, table).await
    }

    const LOCKS_READ_ROWS: bool = true;

    async fn lock_row(
        transaction: &mut PgTransaction,
        table: &str,
        id: &str,
    ) -> std::result::Result<(), sqlx::Error> {
        // A transaction-scoped advisory lock on the row's key rather than `FOR UPDATE`: it
        // also holds for a row that does not exist yet (two projectors creating one row; a
        // present row is locked by its read, `LOCKS_READ_ROWS`).
        // The two-key form keeps these apart from `SETUP_LOCK`'s one-key space.
        sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
            .bind(ROW_LOCK_CLASS)
            .bind(format!("{table}/{id}"))
            .execute(&mut **transaction)
            .await?;
        Ok(())
    }

    async fn lock_setup(transaction: &mut PgTransaction) -> std::result::Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(SETUP_LOCK)
            .execute(&mut **transaction)
            .await?;
        Ok(())
    }

    async fn setup_events(
        transaction: &mut PgTransaction,
        problems: &mut Vec<String>,
    ) -> std::result::Result<(), sqlx::Error> {
        let mut events = existing_columns(transaction, EVENTS_TABLE).await?;
        if events.is_empty() {
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS fidelis_events (\
                   global_position BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                   transaction_id BIGINT NOT NULL, \
                   id TEXT NOT NULL, stream TEXT NOT NULL, stream_hash BIGINT NOT NULL, category TEXT NOT NULL, \
                   version BIGINT NOT NULL, type_name TEXT NOT NULL, data JSON NOT NULL, metadata JSONB NOT NULL, \
                   time TIMESTAMPTZ NOT NULL, \
                   UNIQUE (stream, version))",
            )
            .execute(&mut **transaction)
            .await
            ?;
        } else {
            if upgrade_events_table(transaction, &events).await? {
                events = existing_columns(transaction, EVENTS_TABLE).await?;
            }
            sql::events_drift(Syntax::Postgres, &events, problems);
        }
        if problems.is_empty() {
            // The global order, of everything and within a category.
            for statement in [
                "CREATE INDEX IF NOT EXISTS fidelis_events_commit ON fidelis_events (transaction_id, global_position)",
                "CREATE INDEX IF NOT EXISTS fidelis_events_category_commit ON fidelis_events (category, transaction_id, global_position)",
                // A request's events, for traces.
                "CREATE INDEX IF NOT EXISTS fidelis_events_correlation ON fidelis_events ((metadata->>'correlation_id'))",
            ] {
                sqlx::query(statement).execute(&mut **transaction).await?;
            }
        }
        Ok(())
    }

    async fn insert_events(
        transaction: &mut PgTransaction,
        events: &mut [RecordedEvent],
        checks: &[(&str, i64)],
    ) -> std::result::Result<bool, Failure> {
        let mut ids = Vec::with_capacity(events.len());
        let mut streams = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        let mut categories = Vec::with_capacity(events.len());
        let mut versions = Vec::with_capacity(events.len());
        let mut type_names = Vec::with_capacity(events.len());
        let mut data = Vec::with_capacity(events.len());
        let mut metadata = Vec::with_capacity(events.len());
        let mut times = Vec::with_capacity(events.len());
        for event in events.iter() {
            let stream = event.metadata.stream.as_str();
            ids.push(event.metadata.id.as_str().to_owned());
            streams.push(stream.to_owned());
            hashes.push(stream_hash(stream));
            categories.push(category_of(stream).to_owned());
            versions.push(event.metadata.version);
            type_names.push(event.metadata.type_name.clone());
            // The event's JSON text, made here once (the store keeps no typed events), bound
            // as text so that the `json` column keeps it exactly.
            data.push(event.encoded().map_err(Failure::Data)?.into_owned());
            metadata.push(sql::event_metadata(&event.metadata).to_string());
            times.push(event.metadata.time);
        }
        // One statement for every event of every stream, whatever their number: each column
        // is one array parameter (PostgreSQL's limit of 65,535 parameters is never near).
        // The rows come out of `UNNEST` in order, so their positions (from the identity
        // column) follow the order of `events`. The version checks are the `WHERE`, one
        // condition for the whole statement (run once, with the indexed `MAX` of each
        // stream): they see what committed before the statement began, and a writer of the
        // same versions that commits later fails this `INSERT` on the unique
        // `(stream, version)` constraint, as it does after a read of the versions.
        let (checked_streams, checked_versions): (Vec<&str>, Vec<i64>) =
            checks.iter().copied().unzip();
        let stored = sqlx::query_as::<_, (String, i64, i64, i64)>(&format!(
            "INSERT INTO {EVENTS_TABLE} \
               (transaction_id, id, stream, stream_hash, category, version, type_name, data, metadata, time) \
             SELECT pg_current_xact_id()::text::bigint, e.id, e.stream, e.stream_hash, e.category, \
               e.version, e.type_name, e.data::json, e.metadata::jsonb, e.time \
             FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], \
               $7::text[], $8::text[], $9::timestamptz[]) \
               AS e(id, stream, stream_hash, category, version, type_name, data, metadata, time) \
             WHERE NOT EXISTS (SELECT 1 FROM UNNEST($10::text[], $11::bigint[]) AS c(stream, version) \
               WHERE (SELECT COALESCE(MAX(x.version), -1) FROM {EVENTS_TABLE} x WHERE x.stream = c.stream) <> c.version) \
             RETURNING stream, version, global_position, transaction_id"
        ))
        .bind(ids)
        .bind(streams)
        .bind(hashes)
        .bind(categories)
        .bind(versions)
        .bind(type_names)
        .bind(data)
        .bind(metadata)
        .bind(times)
        .bind(checked_streams)
        .bind(checked_versions)
        .fetch_all(&mut **transaction)
        .await?;
        if stored.is_empty() && !events.is_empty() {
            return Ok(false);
        }
        // `RETURNING` promises no order: each row finds its event by its key.
        let index: std::collections::HashMap<(&str, i64), usize> = events
            .iter()
            .enumerate()
            .map(|(index, event)| ((event.metadata.stream.as_str(), event.metadata.version), index))
            .collect();
        let mut positions = Vec::with_capacity(stored.len());
        for (stream, version, position, commit) in &stored {
            let Some(&at) = index.get(&(stream.as_str(), *version)) else {
                return Err(Failure::Data(Error::storage(format!(
                    "appending to stream `{stream}`: the database returned version {version}, which this append did not write"
                ))));
            };
            positions.push((at, *position, *commit));
        }
        drop(index);
        for (at, position, commit) in positions {
            if let Some(event) = events.get_mut(at) {
                event.metadata.global_position = position;
                event.metadata.commit = commit;
            }
        }
        Ok(true)
    }

    fn duplicate_stream(error: &dyn sqlx::error::DatabaseError) -> Option<String> {
        let detail = error
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?
            .detail()?;
        duplicate_stream(detail)
    }

    fn after(statement: &mut Statement, after: Cursor) -> String {
        let commit = statement.param(SqlValue::Int(after.commit));
        let position = statement.param(SqlValue::Int(after.position));
        // Only below the oldest running transaction (see `PostgresStorage`).
        format!(
            "transaction_id < {HORIZON} AND (transaction_id, global_position) > ({commit}, {position})"
        )
    }

    fn is_retryable(error: &sqlx::Error) -> bool {
        is_retryable(error)
    }

    async fn notify_commit(transaction: &mut PgTransaction) -> std::result::Result<(), sqlx::Error> {
        sqlx::query(&format!("SELECT pg_notify({COMMIT_CHANNEL}, '')"))
            .execute(&mut **transaction)
            .await
            .map(drop)
    }

    async fn commit_signal(
        &self,
        pool: &PgPool,
        url: &str,
    ) -> Result<Option<crate::store::CommitSignal>> {
        use futures::StreamExt;
        let failed =
            |error: sqlx::Error| Error::storage(format!("listening on `{}`: {error}", redact(url)));
        let channel: String = sqlx::query_scalar(&format!("SELECT {COMMIT_CHANNEL}"))
            .fetch_one(pool)
            .await
            .map_err(failed)?;
        let mut listener = sqlx::postgres::PgListener::connect_with(pool)
            .await
            .map_err(failed)?;
        listener.listen(&channel).await.map_err(failed)?;
        // Ends at the first error (a lost connection): the reader polls, then listens again.
        let signal = listener
            .into_stream()
            .take_while(|notification| futures::future::ready(notification.is_ok()))
            .map(drop);
        Ok(Some(signal.boxed()))
    }

    async fn settle(&self, pool: &PgPool, url: &str) -> Result<()> {
        let fail = |error| db_error(url, "waiting for older transactions", error);
        // The newest transaction that wrote events, and the oldest still running: readers
        // leave the events of the first out until the second is past it.
        let (newest, horizon) = sqlx::query_as::<_, (Option<i64>, i64)>(&format!(
            "SELECT MAX(transaction_id), {HORIZON} FROM {EVENTS_TABLE}"
        ))
        .fetch_one(pool)
        .await
        .map_err(fail)?;
        let Some(newest) = newest.filter(|newest| *newest >= horizon) else {
            return Ok(());
        };
        let started = tokio::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(50));
            let horizon = sqlx::query_scalar::<_, i64>(&format!("SELECT {HORIZON}"))
                .fetch_one(pool)
                .await
                .map_err(fail)?;
            if horizon > newest {
                return Ok(());
            }
            if started.elapsed() >= SETTLE_TIMEOUT {
                return Err(Error::storage(format!(
                    "waiting for older transactions on `{}`: events of transaction {newest} stay \
                     unreadable in global order after {SETTLE_TIMEOUT:?}, because transaction \
                     {horizon}, which began before it, is still running (find it in \
                     `pg_stat_activity`, column `backend_xid`)",
                    url
                )));
            }
        }
    }
});

/// The stream of a unique violation's detail, `Key (stream, version)=(<stream>, <version>)
/// already exists.` (PostgreSQL writes the key's values unquoted; the version, a number,
/// is last, so a stream holding `, ` still reads back whole.)
fn duplicate_stream(detail: &str) -> Option<String> {
    let key = detail
        .strip_prefix("Key (stream, version)=(")?
        .strip_suffix(") already exists.")?;
    let (stream, version) = key.rsplit_once(", ")?;
    version.parse::<i64>().ok()?;
    Some(stream.to_owned())
}

/// Errors PostgreSQL reports while a connection starts that a retry may cure:
/// `too_many_connections` (53300) and `cannot_connect_now` (57P03, starting up).
fn is_transient_connect_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => {
            matches!(error.code().as_deref(), Some("53300" | "57P03"))
        }
        _ => false,
    }
}

/// `cannot connect to PostgreSQL at …`, with a refused connection said in plain words.
fn connect_error(url: &str, error: sqlx::Error) -> Error {
    let reason = match &error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: nothing listens at that host and port (is the server running?)"
                .to_owned()
        }
        error => error.to_string(),
    };
    Error::storage_with(
        format!("cannot connect to PostgreSQL at `{url}`: {reason}"),
        error,
    )
}

fn connect_timed_out(url: &str, timeout: std::time::Duration) -> Error {
    Error::storage(format!(
        "cannot connect to PostgreSQL at `{url}`: timed out after {timeout:?}"
    ))
}

/// Connection parameters sqlx reads from a PostgreSQL URL (sqlx-postgres 0.8,
/// `options/parse.rs`); it logs any other one, key and value, as a warning.
const KNOWN_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Refuses a URL whose `password=` parameter is followed by a parameter PostgreSQL does not
/// know: most likely the rest of a password holding a raw `&` or `#`. sqlx would log that
/// "parameter" (a piece of the password) in a warning, so the URL never reaches it.
fn refuse_split_password(url: &str, shown: &str) -> Result<()> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(()); // sqlx reports the malformed URL (without logging its parts)
    };
    let mut after_password = false;
    for (key, _) in parsed.query_pairs() {
        let known = KNOWN_PARAMETERS.contains(&&*key) || key.starts_with("options[");
        if after_password && !known {
            return Err(Error::configuration(format!(
                "invalid PostgreSQL URL `{shown}`: a parameter after `password=` is not one \
                 PostgreSQL knows; if the password holds `&`, `#`, `+` or `=`, percent-encode \
                 them (`%26`, `%23`, `%2B`, `%3D`)"
            )));
        }
        after_password |= key == "password";
    }
    Ok(())
}

/// Deadlocks and serialization failures: another transaction won; retrying may succeed.
fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => matches!(error.code().as_deref(), Some("40P01" | "40001")),
        _ => false,
    }
}

fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    value: SqlValue,
) -> Query<'q, Postgres, PgArguments> {
    match value {
        // PostgreSQL types every parameter, NULLs included.
        SqlValue::Null(kind) => match kind {
            FieldKind::Identifier | FieldKind::String | FieldKind::Enum => {
                query.bind(None::<String>)
            }
            FieldKind::Integer => query.bind(None::<i64>),
            FieldKind::Float => query.bind(None::<f64>),
            #[cfg(feature = "decimal")]
            FieldKind::Decimal => query.bind(None::<rust_decimal::Decimal>),
            #[cfg(not(feature = "decimal"))]
            FieldKind::Decimal => query.bind(None::<String>),
            FieldKind::Boolean => query.bind(None::<bool>),
            FieldKind::DateTime => query.bind(None::<DateTime<Utc>>),
            FieldKind::Date => query.bind(None::<NaiveDate>),
            // Text, like a JSON value (see below): a cached statement's parameter keeps the
            // type it was first prepared with.
            FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict => {
                query.bind(None::<String>)
            }
        },
        SqlValue::Bool(b) => query.bind(b),
        SqlValue::Int(i) => query.bind(i),
        SqlValue::Float(f) => query.bind(f),
        #[cfg(feature = "decimal")]
        SqlValue::Decimal(d) => query.bind(d),
        SqlValue::Text(text) => query.bind(text),
        SqlValue::Time(time) => query.bind(time),
        SqlValue::Date(date) => query.bind(date),
        // Text, cast to `json` by its placeholder (see `Statement::param`).
        SqlValue::Json(value) => query.bind(sql::json_text(&value)),
    }
}

fn prepare(statement: &Statement) -> Query<'_, Postgres, PgArguments> {
    statement
        .params
        .iter()
        .cloned()
        .fold(sqlx::query(&statement.sql), bind)
}

/// Decodes a document row (the columns of [`sql::select_columns`]).
fn decode_document(table: &TableSchema, row: &PgRow) -> Result<JsonRow> {
    let mut values = Vec::with_capacity(table.fields.len());
    for (index, field) in table.fields.iter().enumerate() {
        let read = |error: sqlx::Error| Error::Serialization {
            what: format!(
                "column `{}` of {} of table `{}`",
                field.name,
                sql::row_name(table, row),
                table.name
            ),
            message: error.to_string(),
        };
        let value = match field.kind {
            FieldKind::Identifier | FieldKind::String => row
                .try_get::<Option<String>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, Value::String),
            FieldKind::Enum => match row.try_get::<Option<String>, _>(index).map_err(read)? {
                None => Value::Null,
                Some(text) => match crate::model::field::unknown_variant(&text, field) {
                    Some(message) => {
                        return Err(Error::Serialization {
                            what: format!(
                                "column `{}` of {} of table `{}`",
                                field.name,
                                sql::row_name(table, row),
                                table.name
                            ),
                            message,
                        });
                    }
                    None => Value::String(text),
                },
            },
            FieldKind::Integer => row
                .try_get::<Option<i64>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, Value::from),
            FieldKind::Float => row
                .try_get::<Option<f64>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, sql::float_json),
            #[cfg(feature = "decimal")]
            FieldKind::Decimal => row
                .try_get::<Option<rust_decimal::Decimal>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, |d| Value::String(d.to_string())),
            #[cfg(not(feature = "decimal"))]
            FieldKind::Decimal => return Err(sql::no_decimal_feature()),
            FieldKind::Boolean => row
                .try_get::<Option<bool>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, Value::Bool),
            FieldKind::DateTime => row
                .try_get::<Option<DateTime<Utc>>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, sql::time_json),
            FieldKind::Date => row
                .try_get::<Option<NaiveDate>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, |date| {
                    Value::String(date.format("%Y-%m-%d").to_string())
                }),
            FieldKind::List | FieldKind::Embedded | FieldKind::DataEnum | FieldKind::Dict => row
                .try_get::<Option<Json<Value>>, _>(index)
                .map_err(read)?
                .map_or(Value::Null, |json| json.0),
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
fn decode_event(row: &PgRow) -> Result<RecordedEvent> {
    // `try_get_unchecked`: the events table's column types were checked once, at setup
    // (`sql::events_drift`), so sqlx's type check of every value (a fifth of decoding an
    // event) is skipped; a value that does not decode is still an error.
    let position = row.try_get_unchecked::<i64, _>(0).map_err(|error| {
        sql::corrupt_event(
            "?",
            0,
            format!("column `global_position` is unreadable: {error}"),
        )
    })?;
    // Read once: the errors below name the stream, then the row takes it.
    let stream = row.try_get_unchecked::<String, _>(2).map_err(|error| {
        sql::corrupt_event(
            "?",
            position,
            format!("column `stream` is unreadable: {error}"),
        )
    })?;
    let column = |name: &str, error: sqlx::Error| {
        sql::corrupt_event(
            &stream,
            position,
            format!("column `{name}` is unreadable: {error}"),
        )
    };
    EventRow {
        position,
        id: row
            .try_get_unchecked(1)
            .map_err(|error| column("id", error))?,
        version: row
            .try_get_unchecked(3)
            .map_err(|error| column("version", error))?,
        type_name: row
            .try_get_unchecked(4)
            .map_err(|error| column("type_name", error))?,
        data: row
            .try_get_unchecked::<Json<Box<serde_json::value::RawValue>>, _>(5)
            .map_err(|error| column("data", error))?
            .0,
        metadata: row
            .try_get_unchecked::<Json<sql::StoredMetadata>, _>(6)
            .map_err(|error| column("metadata", error))?
            .0,
        time: row
            .try_get_unchecked(7)
            .map_err(|error| column("time", error))?,
        commit: row
            .try_get_unchecked(8)
            .map_err(|error| column("transaction_id", error))?,
        stream,
    }
    .into_event()
}

/// Brings an events table of an earlier version of Fidelis to this one's shape, in the
/// transaction of `setup`; returns whether it changed anything. Earlier versions assigned
/// positions under a lock, one transaction at a time: their events keep their order as
/// commit 0 (before every transaction id), and the position becomes an identity column that
/// goes on from the last one.
async fn upgrade_events_table(
    connection: &mut PgConnection,
    existing: &[ExistingColumn],
) -> std::result::Result<bool, sqlx::Error> {
    let has = |name: &str| existing.iter().any(|column| column.name == name);
    let mut changed = false;
    if !has("transaction_id") && has("global_position") {
        tracing::info!("adding column `transaction_id` to `{EVENTS_TABLE}`");
        let last = sqlx::query_scalar::<_, i64>(&format!(
            "SELECT COALESCE(MAX(global_position), 0) FROM {EVENTS_TABLE}"
        ))
        .fetch_one(&mut *connection)
        .await?;
        // `START WITH` takes no parameter; `last` is an integer read above.
        for statement in [
            format!(
                "ALTER TABLE {EVENTS_TABLE} ADD COLUMN transaction_id BIGINT NOT NULL DEFAULT 0"
            ),
            format!("ALTER TABLE {EVENTS_TABLE} ALTER COLUMN transaction_id DROP DEFAULT"),
            format!(
                "ALTER TABLE {EVENTS_TABLE} ALTER COLUMN global_position ADD GENERATED BY DEFAULT AS IDENTITY (START WITH {})",
                last + 1
            ),
            "DROP INDEX IF EXISTS fidelis_events_category".to_owned(),
        ] {
            sqlx::query(&statement).execute(&mut *connection).await?;
        }
        changed = true;
    }
    if !has("stream_hash") {
        tracing::info!("adding column `stream_hash` to `{EVENTS_TABLE}`");
        sqlx::query(&format!(
            "ALTER TABLE {EVENTS_TABLE} ADD COLUMN stream_hash BIGINT"
        ))
        .execute(&mut *connection)
        .await?;
        let streams: Vec<String> =
            sqlx::query_scalar(&format!("SELECT DISTINCT stream FROM {EVENTS_TABLE}"))
                .fetch_all(&mut *connection)
                .await?;
        for stream in streams {
            sqlx::query(&format!(
                "UPDATE {EVENTS_TABLE} SET stream_hash = $1 WHERE stream = $2"
            ))
            .bind(stream_hash(&stream))
            .bind(&stream)
            .execute(&mut *connection)
            .await?;
        }
        sqlx::query(&format!(
            "ALTER TABLE {EVENTS_TABLE} ALTER COLUMN stream_hash SET NOT NULL"
        ))
        .execute(&mut *connection)
        .await?;
        changed = true;
    }
    Ok(changed)
}

async fn existing_columns(
    connection: &mut PgConnection,
    table: &str,
) -> std::result::Result<Vec<ExistingColumn>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT column_name::text, data_type::text, is_nullable::text = 'NO' FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1",
    )
    .bind(table)
    .fetch_all(&mut *connection)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ExistingColumn {
                name: row.try_get(0)?,
                data_type: row.try_get(1)?,
                not_null: row.try_get(2)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::duplicate_stream;

    #[test]
    fn the_stream_of_a_duplicate_key() {
        let detail = |stream: &str| format!("Key (stream, version)=({stream}, 7) already exists.");
        assert_eq!(
            duplicate_stream(&detail("bank::account-1")).as_deref(),
            Some("bank::account-1")
        );
        assert_eq!(
            duplicate_stream(&detail("odd, (name)")).as_deref(),
            Some("odd, (name)")
        );
        assert_eq!(duplicate_stream("Key (id)=(x) already exists."), None);
        assert_eq!(
            duplicate_stream("Key (stream, version)=(s, x) already exists."),
            None
        );
    }
}
