//! The SQL store, written once over a [`Dialect`]: reads, documents, the transaction logic
//! (version checks, conflicts, unique violations) and setup. A dialect holds only what
//! differs between databases: how a transaction starts, how values bind and rows decode, the
//! events table and how events are appended, and the global order's read condition.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::{EVENTS_TABLE, ExistingColumn, Schemas, SqlValue, Statement, Syntax, TableStatements};
use crate::model::error::{Error, Result};
use crate::model::event::{EventMetadata, RecordedEvent};
use crate::model::query::QuerySpec;
use crate::store::{Cursor, ExpectedVersion, GlobalRead, JsonRow, StreamAppend, TableSchema};

/// Where a dialect runs a statement: on the pool (reads outside transactions) or in a
/// transaction.
pub(crate) enum On<'a, D: Dialect> {
    Pool(&'a sqlx::Pool<D::Db>),
    Tx(&'a mut D::Tx),
}

/// Why a statement failed: the database refused it, or a row it read does not decode.
pub(crate) enum Failure {
    Sql(sqlx::Error),
    Data(Error),
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Self {
        Failure::Sql(error)
    }
}

/// What differs between the SQL databases.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + Sized + 'static {
    /// sqlx's database.
    type Db: sqlx::Database;
    /// A write transaction.
    type Tx: Send;
    /// How statements are spelled (placeholders, column types).
    const SYNTAX: Syntax;
    /// [`Storage::kind`](crate::store::Storage::kind).
    const KIND: &'static str;
    /// The columns reads of events select, as [`events`](Self::events) decodes them.
    const EVENT_COLUMNS: &'static str;
    /// The `ORDER BY` of the global order.
    const GLOBAL_ORDER: &'static str;
    /// `SELECT commit, position` of the last event readers may reach (no row: none).
    const HEAD: &'static str;
    /// The columns of an event's cursor: its commit, then its position.
    const CURSOR_COLUMNS: &'static str;
    /// The `ORDER BY` of the global order, last first.
    const GLOBAL_ORDER_DESC: &'static str;
    /// The expression of an event's correlation id (indexed by `setup_events`).
    const CORRELATION: &'static str;

    /// Starts a write transaction (cancel-safe: see the dialects).
    async fn begin(&self, pool: &sqlx::Pool<Self::Db>, url: &Arc<str>) -> Result<Self::Tx>;
    /// Commits it.
    async fn commit(transaction: Self::Tx) -> std::result::Result<(), sqlx::Error>;
    /// Runs a statement and decodes its rows as events.
    async fn events(
        on: On<'_, Self>,
        statement: Statement,
    ) -> std::result::Result<Vec<RecordedEvent>, Failure>;
    /// Runs a statement and decodes its rows as documents of a table.
    async fn documents(
        on: On<'_, Self>,
        table: &TableSchema,
        statement: Statement,
    ) -> std::result::Result<Vec<JsonRow>, Failure>;
    /// Runs a statement and reads the integer columns of its first row, if any.
    async fn integers(
        on: On<'_, Self>,
        statement: Statement,
    ) -> std::result::Result<Option<Vec<Option<i64>>>, sqlx::Error>;
    /// Runs a statement; returns how many rows it changed.
    async fn execute(
        on: On<'_, Self>,
        statement: Statement,
    ) -> std::result::Result<u64, sqlx::Error>;
    /// The columns of a table, empty when there is no such table.
    async fn existing_columns(
        transaction: &mut Self::Tx,
        table: &str,
    ) -> std::result::Result<Vec<ExistingColumn>, sqlx::Error>;
    /// Creates the events table, or upgrades and checks an existing one (in `setup`'s
    /// transaction, after [`lock_setup`](Self::lock_setup)).
    async fn setup_events(
        transaction: &mut Self::Tx,
        problems: &mut Vec<String>,
    ) -> std::result::Result<(), sqlx::Error>;
    /// Keeps the transactions that read a row (present or not) to write it one after another,
    /// where the transaction does not already: without it, two projectors reading the same
    /// row at once would each write their own update over the other's (a lost update).
    async fn lock_row(
        _transaction: &mut Self::Tx,
        _table: &str,
        _id: &str,
    ) -> std::result::Result<(), sqlx::Error> {
        Ok(())
    }
    /// Whether [`TableStatements::select_for_update`](super::TableStatements) locks the row
    /// it reads (until the transaction ends), so that a present row needs no
    /// [`lock_row`](Self::lock_row).
    const LOCKS_READ_ROWS: bool = false;
    /// Keeps concurrent `setup`s apart, where the transaction does not already.
    async fn lock_setup(_transaction: &mut Self::Tx) -> std::result::Result<(), sqlx::Error> {
        Ok(())
    }
    /// Inserts events of one or more streams (their streams and versions set), in one
    /// statement where the database's parameter limit allows, and sets their positions and
    /// commit: positions increase in the order of `events`. Only if each stream of `checks`
    /// is at its version (its last event's, `-1` for none): otherwise nothing is written and
    /// the answer is `false`.
    async fn insert_events(
        transaction: &mut Self::Tx,
        events: &mut [RecordedEvent],
        checks: &[(&str, i64)],
    ) -> std::result::Result<bool, Failure>;
    /// The stream of the key a unique violation of `(stream, version)` names, when the
    /// database says (PostgreSQL does, in its detail).
    fn duplicate_stream(_error: &dyn sqlx::error::DatabaseError) -> Option<String> {
        None
    }
    /// The condition of events strictly after a cursor that readers of the global order may
    /// read now (with its parameters added to `statement`).
    fn after(statement: &mut Statement, after: Cursor) -> String;
    /// Deadlocks and serialization failures: another transaction won; retrying may succeed.
    fn is_retryable(_error: &sqlx::Error) -> bool {
        false
    }
    /// [`Storage::settle`](crate::store::Storage::settle).
    async fn settle(&self, _pool: &sqlx::Pool<Self::Db>, _url: &str) -> Result<()> {
        Ok(())
    }
    /// [`Transaction::notify_commit`](crate::store::Transaction::notify_commit).
    async fn notify_commit(_transaction: &mut Self::Tx) -> std::result::Result<(), sqlx::Error> {
        Ok(())
    }
    /// [`Storage::commit_signal`](crate::store::Storage::commit_signal).
    async fn commit_signal(
        &self,
        _pool: &sqlx::Pool<Self::Db>,
        _url: &str,
    ) -> Result<Option<crate::store::CommitSignal>> {
        Ok(None)
    }
}

/// The storage adapter of a dialect; the public adapters wrap it.
pub(crate) struct SqlStore<D: Dialect> {
    pub(crate) pool: sqlx::Pool<D::Db>,
    /// The URL without password, for messages.
    pub(crate) url: Arc<str>,
    pub(crate) dialect: Arc<D>,
    pub(super) schemas: Arc<Schemas>,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            url: self.url.clone(),
            dialect: self.dialect.clone(),
            schemas: self.schemas.clone(),
        }
    }
}

/// `<what> on <url>: <error>`, with a pool timeout said in plain words.
pub(crate) fn db_error(url: &str, what: &str, error: sqlx::Error) -> Error {
    match error {
        sqlx::Error::PoolTimedOut => Error::storage(format!(
            "{what} on `{url}`: timed out waiting for a connection; raise the pool size or the acquire timeout"
        )),
        error => Error::storage_with(format!("{what} on `{url}`: {error}"), error),
    }
}

pub(super) fn failed(url: &str, what: &str, failure: Failure) -> Error {
    match failure {
        Failure::Sql(error) => db_error(url, what, error),
        Failure::Data(error) => error,
    }
}

fn limit(limit: usize) -> SqlValue {
    SqlValue::Int(i64::try_from(limit).unwrap_or(i64::MAX))
}

fn first_integer(row: Option<Vec<Option<i64>>>) -> Option<i64> {
    row.and_then(|columns| columns.into_iter().next().flatten())
}

/// Events one statement of a stream read returns: a long stream is read in pages. The
/// `LIMIT` also keeps PostgreSQL on the `(stream, version)` index: without it, a stream that
/// holds most of the table was read by a sequential scan and a sort spilled to disk (about
/// 4 times slower at 10,000 events), and a page bounds what one read holds in memory.
const STREAM_PAGE: usize = 1_000;

fn read_stream_statement<D: Dialect>(stream: &str, from_version: i64) -> Statement {
    let mut statement = Statement::new(D::SYNTAX, "");
    let stream = statement.param(SqlValue::Text(stream.to_owned()));
    let version = statement.param(SqlValue::Int(from_version));
    let limit = statement.param(limit(STREAM_PAGE));
    statement.sql = format!(
        "SELECT {} FROM {EVENTS_TABLE} WHERE stream = {stream} AND version >= {version} ORDER BY version LIMIT {limit}",
        D::EVENT_COLUMNS
    );
    statement
}

/// Streams whose versions one statement reads: one parameter each, far below SQLite's
/// 32,766 and PostgreSQL's 65,535.
pub(super) const STREAMS_PER_READ: usize = 500;

/// One row: the version of each stream's last event (`-1` for none), in the order given. Each
/// column is the indexed `MAX` of [`stream_version_statement`].
fn stream_versions_statement<D: Dialect>(streams: &[&str]) -> Statement {
    let mut statement = Statement::new(D::SYNTAX, "");
    let columns: Vec<String> = streams
        .iter()
        .map(|stream| {
            let stream = statement.param(SqlValue::Text((*stream).to_owned()));
            format!(
                "(SELECT COALESCE(MAX(version), -1) FROM {EVENTS_TABLE} WHERE stream = {stream})"
            )
        })
        .collect();
    statement.sql = format!("SELECT {}", columns.join(", "));
    statement
}

/// The version of each stream's last event (`-1` for none), in the order given, read in one
/// statement (at most [`STREAMS_PER_READ`] streams).
pub(super) async fn read_stream_versions<D: Dialect>(
    transaction: &mut D::Tx,
    streams: &[&str],
) -> std::result::Result<Vec<i64>, sqlx::Error> {
    let versions = D::integers(On::Tx(transaction), stream_versions_statement::<D>(streams))
        .await?
        .unwrap_or_default();
    Ok((0..streams.len())
        .map(|index| versions.get(index).copied().flatten().unwrap_or(-1))
        .collect())
}

/// What [`SqlTransaction::append_all`] inserts.
struct Versioned {
    /// Each append's stream and version before it: what a conflict on it reports.
    bases: Vec<(String, i64)>,
    /// Each append's number of events.
    lengths: Vec<usize>,
    /// The events, with their versions set as appending one stream after the other would.
    events: Vec<RecordedEvent>,
}

/// The appends [`Versioned`], given their streams' versions; or the conflict of the first
/// append whose expected version is not its stream's.
fn versioned(appends: Vec<StreamAppend>, mut current: HashMap<String, i64>) -> Result<Versioned> {
    let mut bases = Vec::with_capacity(appends.len());
    let mut lengths = Vec::with_capacity(appends.len());
    let mut events = Vec::with_capacity(appends.iter().map(|a| a.events.len()).sum());
    for append in appends {
        let version = current.entry(append.stream.clone()).or_insert(-1);
        if let ExpectedVersion::Exact(expected) = append.expected
            && expected != *version
        {
            return Err(Error::VersionConflict {
                stream: append.stream,
                expected,
                actual: *version,
            });
        }
        bases.push((append.stream.clone(), *version));
        lengths.push(append.events.len());
        for mut event in append.events {
            *version += 1;
            event.metadata.version = *version;
            if event.metadata.stream != append.stream {
                event.metadata.stream.clone_from(&append.stream);
            }
            events.push(event);
        }
    }
    Ok(Versioned {
        bases,
        lengths,
        events,
    })
}

/// The conflict of the first append (stream, expected version, number of events) whose
/// expected version is not its stream's, given the streams' versions before them.
fn first_conflict(
    expectations: &[(String, ExpectedVersion, usize)],
    mut current: HashMap<String, i64>,
) -> Error {
    for (stream, expected, length) in expectations {
        let version = current.entry(stream.clone()).or_insert(-1);
        if let ExpectedVersion::Exact(expected) = *expected
            && expected != *version
        {
            return Error::VersionConflict {
                stream: stream.clone(),
                expected,
                actual: *version,
            };
        }
        *version += i64::try_from(*length).unwrap_or(i64::MAX);
    }
    // Versions only grow, so a failed check reads as a conflict above; should it not, it is
    // reported on the first stream, as a lost race is.
    let (stream, expected) =
        expectations
            .first()
            .map_or((String::new(), -1), |(stream, expected, _)| {
                let expected = match expected {
                    ExpectedVersion::Exact(expected) => *expected,
                    ExpectedVersion::Any => -1,
                };
                (stream.clone(), expected)
            });
    Error::VersionConflict {
        stream,
        expected,
        actual: expected + 1,
    }
}

/// `<streams>` in an error's what: one stream as a lone append names it.
fn named_streams(streams: &[&str]) -> String {
    match streams {
        [one] => format!("stream `{one}`"),
        many => format!(
            "streams {}",
            many.iter()
                .map(|stream| format!("`{stream}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn reading_versions(streams: &[&str]) -> String {
    format!("reading the version of {}", named_streams(streams))
}

fn appending(streams: &[&str]) -> String {
    format!("appending to {}", named_streams(streams))
}

fn stream_version_statement<D: Dialect>(stream: &str) -> Statement {
    let mut statement = Statement::new(D::SYNTAX, "");
    let stream = statement.param(SqlValue::Text(stream.to_owned()));
    statement.sql =
        format!("SELECT COALESCE(MAX(version), -1) FROM {EVENTS_TABLE} WHERE stream = {stream}");
    statement
}

/// The `WHERE` conditions of a read of the global order: events strictly after `after`, of
/// some categories (all when `None`), of one partition of the streams.
fn global_conditions<D: Dialect>(
    statement: &mut Statement,
    categories: Option<&[&str]>,
    after: Cursor,
    partition: Option<&crate::store::Partition>,
) -> String {
    let mut conditions = Vec::new();
    if let Some(categories) = categories {
        let placeholders: Vec<String> = categories
            .iter()
            .map(|category| statement.param(SqlValue::Text((*category).to_owned())))
            .collect();
        conditions.push(match placeholders.as_slice() {
            [one] => format!("category = {one}"),
            many => format!("category IN ({})", many.join(", ")),
        });
    }
    conditions.push(D::after(statement, after));
    if let Some(partition) = partition {
        conditions.push(super::partition_condition(partition));
    }
    conditions.join(" AND ")
}

/// A read of the global order (see [`global_conditions`]), at most `limit` events.
fn global_read<D: Dialect>(
    categories: Option<&[&str]>,
    after: Cursor,
    limit_to: usize,
    partition: Option<&crate::store::Partition>,
) -> Statement {
    let mut statement = Statement::new(D::SYNTAX, "");
    let conditions = global_conditions::<D>(&mut statement, categories, after, partition);
    let limit = statement.param(limit(limit_to));
    statement.sql = format!(
        "SELECT {} FROM {EVENTS_TABLE} WHERE {conditions} ORDER BY {} LIMIT {limit}",
        D::EVENT_COLUMNS,
        D::GLOBAL_ORDER
    );
    statement
}

/// A cached statement of one row, by its key.
fn by_key<D: Dialect>(statements: &TableStatements, sql: &str, id: &str) -> Option<Statement> {
    let key = super::key_value(&statements.schema, id)?;
    Some(Statement::with(D::SYNTAX, sql, vec![key]))
}

impl<D: Dialect> SqlStore<D> {
    pub(crate) fn new(pool: sqlx::Pool<D::Db>, url: Arc<str>, dialect: D) -> Self {
        Self {
            pool,
            url,
            dialect: Arc::new(dialect),
            schemas: Arc::default(),
        }
    }

    fn on(&self) -> On<'_, D> {
        On::Pool(&self.pool)
    }

    pub(crate) async fn setup(&self, tables: &[TableSchema]) -> Result<()> {
        super::check_schemas(tables)?;
        let mut transaction = self.dialect.begin(&self.pool, &self.url).await?;
        let fail = |error| db_error(&self.url, "setting up tables", error);
        D::lock_setup(&mut transaction).await.map_err(fail)?;
        let mut problems = Vec::new();
        D::setup_events(&mut transaction, &mut problems)
            .await
            .map_err(fail)?;
        for table in tables {
            let existing = D::existing_columns(&mut transaction, table.name)
                .await
                .map_err(fail)?;
            if existing.is_empty() {
                if let Some(former_name) = table.former_name {
                    let former = D::existing_columns(&mut transaction, former_name)
                        .await
                        .map_err(fail)?;
                    if let Some(problem) = super::former_table(D::SYNTAX, table, &former) {
                        problems.push(problem);
                        continue;
                    }
                }
                let create = Statement::new(D::SYNTAX, super::create_table(D::SYNTAX, table));
                D::execute(On::Tx(&mut transaction), create)
                    .await
                    .map_err(fail)?;
            } else {
                super::drift(D::SYNTAX, table, &existing, &mut problems);
            }
        }
        if !problems.is_empty() {
            return Err(Error::Configuration { problems });
        }
        // Once every table has its columns (an index on a missing one would fail).
        for create in tables.iter().flat_map(super::create_indexes) {
            D::execute(On::Tx(&mut transaction), Statement::new(D::SYNTAX, create))
                .await
                .map_err(fail)?;
        }
        D::commit(transaction).await.map_err(fail)?;
        self.schemas.insert(D::SYNTAX, tables);
        Ok(())
    }

    pub(crate) async fn begin(&self) -> Result<SqlTransaction<D>> {
        Ok(SqlTransaction {
            transaction: self.dialect.begin(&self.pool, &self.url).await?,
            url: self.url.clone(),
            schemas: self.schemas.clone(),
        })
    }

    pub(crate) async fn read_stream(
        &self,
        stream: &str,
        from_version: i64,
    ) -> Result<Vec<RecordedEvent>> {
        let mut events = Vec::new();
        self.read_stream_pages(stream, from_version, &mut |page| {
            events.extend(page);
            Ok(())
        })
        .await?;
        Ok(events)
    }

    /// Calls `visit` with each event of `stream` from `from_version` on, in order, a page at
    /// a time; returns how many it visited.
    pub(crate) async fn visit_stream(
        &self,
        stream: &str,
        from_version: i64,
        visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> Result<()> + Send),
    ) -> Result<usize> {
        self.read_stream_pages(stream, from_version, &mut |page| {
            page.iter().try_for_each(&mut *visit)
        })
        .await
    }

    /// Reads `stream` from `from_version` in pages of [`STREAM_PAGE`] events, handing each to
    /// `page`; returns how many events it read. Versions are consecutive, so the next page
    /// starts after the last version read; a short page is the last.
    async fn read_stream_pages(
        &self,
        stream: &str,
        from_version: i64,
        page: &mut (dyn FnMut(Vec<RecordedEvent>) -> Result<()> + Send),
    ) -> Result<usize> {
        let mut from = from_version;
        let mut read = 0;
        loop {
            let events = D::events(self.on(), read_stream_statement::<D>(stream, from))
                .await
                .map_err(|failure| {
                    failed(&self.url, &format!("reading stream `{stream}`"), failure)
                })?;
            let count = events.len();
            let Some(last) = events.last().map(|event| event.metadata.version) else {
                return Ok(read);
            };
            read += count;
            page(events)?;
            if count < STREAM_PAGE {
                return Ok(read);
            }
            from = last + 1;
        }
    }

    pub(crate) async fn read_category(
        &self,
        category: &str,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let statement = global_read::<D>(Some(&[category]), after, limit, None);
        D::events(self.on(), statement).await.map_err(|failure| {
            failed(
                &self.url,
                &format!("reading category `{category}`"),
                failure,
            )
        })
    }

    pub(crate) async fn read_correlated(&self, correlation_id: &str) -> Result<Vec<RecordedEvent>> {
        let mut statement = Statement::new(D::SYNTAX, "");
        let id = statement.param(SqlValue::Text(correlation_id.to_owned()));
        statement.sql = format!(
            "SELECT {} FROM {EVENTS_TABLE} WHERE {} = {id} ORDER BY {}",
            D::EVENT_COLUMNS,
            D::CORRELATION,
            D::GLOBAL_ORDER
        );
        D::events(self.on(), statement).await.map_err(|failure| {
            failed(
                &self.url,
                &format!("reading the events of correlation id `{correlation_id}`"),
                failure,
            )
        })
    }

    pub(crate) async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<RecordedEvent>> {
        let statement = global_read::<D>(None, after, limit, None);
        D::events(self.on(), statement)
            .await
            .map_err(|failure| failed(&self.url, "reading all events", failure))
    }

    pub(crate) async fn read_categories(
        &self,
        read: &GlobalRead<'_>,
    ) -> Result<Vec<RecordedEvent>> {
        if let Some(partition) = &read.partition {
            partition.check()?;
        }
        if read.categories.is_empty() {
            return Ok(Vec::new());
        }
        let statement = global_read::<D>(
            Some(read.categories),
            read.after,
            read.limit,
            read.partition.as_ref(),
        );
        D::events(self.on(), statement)
            .await
            .map_err(|failure| failed(&self.url, "reading categories", failure))
    }

    /// One `COUNT` over the read's conditions, and the cursor of the last event by the
    /// global order's index (the read's `limit` is ignored).
    pub(crate) async fn backlog(&self, read: &GlobalRead<'_>) -> Result<crate::store::Backlog> {
        if let Some(partition) = &read.partition {
            partition.check()?;
        }
        if read.categories.is_empty() {
            return Ok(crate::store::Backlog::default());
        }
        let fail = |error| db_error(&self.url, "counting the events after a checkpoint", error);
        let mut count = Statement::new(D::SYNTAX, "");
        let conditions = global_conditions::<D>(
            &mut count,
            Some(read.categories),
            read.after,
            read.partition.as_ref(),
        );
        count.sql = format!("SELECT COUNT(*) FROM {EVENTS_TABLE} WHERE {conditions}");
        let events =
            first_integer(D::integers(self.on(), count).await.map_err(fail)?).unwrap_or_default();
        if events == 0 {
            return Ok(crate::store::Backlog::default());
        }
        let mut last = Statement::new(D::SYNTAX, "");
        let conditions = global_conditions::<D>(
            &mut last,
            Some(read.categories),
            read.after,
            read.partition.as_ref(),
        );
        last.sql = format!(
            "SELECT {} FROM {EVENTS_TABLE} WHERE {conditions} ORDER BY {} LIMIT 1",
            D::CURSOR_COLUMNS,
            D::GLOBAL_ORDER_DESC
        );
        let last = match D::integers(self.on(), last).await.map_err(fail)?.as_deref() {
            Some([Some(commit), Some(position)]) => Some(Cursor {
                commit: *commit,
                position: *position,
            }),
            _ => None,
        };
        Ok(crate::store::Backlog {
            events: u64::try_from(events).unwrap_or_default(),
            last,
        })
    }

    pub(crate) async fn head(&self) -> Result<Cursor> {
        let row = D::integers(self.on(), Statement::new(D::SYNTAX, D::HEAD))
            .await
            .map_err(|error| db_error(&self.url, "reading the head of the global order", error))?;
        Ok(match row.as_deref() {
            Some([Some(commit), Some(position)]) => Cursor {
                commit: *commit,
                position: *position,
            },
            _ => Cursor::START,
        })
    }

    pub(crate) async fn settle(&self) -> Result<()> {
        self.dialect.settle(&self.pool, &self.url).await
    }

    pub(crate) async fn stream_version(&self, stream: &str) -> Result<i64> {
        let row = D::integers(self.on(), stream_version_statement::<D>(stream))
            .await
            .map_err(|error| {
                db_error(
                    &self.url,
                    &format!("reading the version of stream `{stream}`"),
                    error,
                )
            })?;
        Ok(first_integer(row).unwrap_or(-1))
    }

    pub(crate) async fn get_json_row(&self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        get_json_row(self.on(), &self.schemas, &self.url, table, id).await
    }

    pub(crate) async fn query(&self, table: &str, query: &QuerySpec) -> Result<Vec<JsonRow>> {
        let statements = self.schemas.get(table)?;
        let statement = super::select(D::SYNTAX, &statements.schema, query, false)?;
        D::documents(self.on(), &statements.schema, statement)
            .await
            .map_err(|failure| failed(&self.url, &format!("querying table `{table}`"), failure))
    }

    pub(crate) async fn count(&self, table: &str, query: &QuerySpec) -> Result<u64> {
        let statements = self.schemas.get(table)?;
        let statement = super::select(D::SYNTAX, &statements.schema, query, true)?;
        let row = D::integers(self.on(), statement).await.map_err(|error| {
            db_error(
                &self.url,
                &format!("counting rows of table `{table}`"),
                error,
            )
        })?;
        Ok(u64::try_from(first_integer(row).unwrap_or_default()).unwrap_or_default())
    }
}

async fn get_json_row<D: Dialect>(
    on: On<'_, D>,
    schemas: &Schemas,
    url: &str,
    table: &str,
    id: &str,
) -> Result<Option<JsonRow>> {
    let statements = schemas.get(table)?;
    let Some(statement) = by_key::<D>(&statements, &statements.select_by_id, id) else {
        return Ok(None);
    };
    let mut rows = D::documents(on, &statements.schema, statement)
        .await
        .map_err(|failure| {
            failed(
                url,
                &format!("reading row `{id}` of table `{table}`"),
                failure,
            )
        })?;
    Ok(rows.pop())
}

/// A deadlock or serialization failure on a row a transaction reads to write: another
/// writer won; worth retrying.
fn row_conflict(table: &str, id: &str) -> Error {
    Error::VersionConflict {
        stream: format!("{table}/{id}"),
        expected: -1,
        actual: -1,
    }
}

/// A transaction of a [`SqlStore`]; dropping it rolls back.
pub(crate) struct SqlTransaction<D: Dialect> {
    transaction: D::Tx,
    url: Arc<str>,
    schemas: Arc<Schemas>,
}

impl<D: Dialect> SqlTransaction<D> {
    fn error(&self, what: &str, error: sqlx::Error) -> Error {
        db_error(&self.url, what, error)
    }

    pub(crate) async fn notify_commit(&mut self) -> Result<()> {
        match D::notify_commit(&mut self.transaction).await {
            Ok(()) => Ok(()),
            Err(error) => Err(self.error("notifying commit listeners", error)),
        }
    }

    pub(crate) async fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<RecordedEvent>,
    ) -> Result<Vec<EventMetadata>> {
        let append = StreamAppend {
            stream: stream.to_owned(),
            expected,
            events,
        };
        Ok(self
            .append_all(vec![append])
            .await?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    /// [`Transaction::append_all`](crate::store::Transaction::append_all): every event in one
    /// `INSERT` (chunked where the database limits its parameters), and each stream's version
    /// check as [`append`](Self::append) made it alone. When every stream's first append
    /// expects an exact version, the `INSERT` checks the versions itself (on PostgreSQL, in
    /// the same statement: one round trip less per unit of work), and the versions are read
    /// only to report a conflict; otherwise they are read first, in one statement.
    pub(crate) async fn append_all(
        &mut self,
        appends: Vec<StreamAppend>,
    ) -> Result<Vec<Vec<EventMetadata>>> {
        let expectations: Vec<(String, ExpectedVersion, usize)> = appends
            .iter()
            .map(|append| (append.stream.clone(), append.expected, append.events.len()))
            .collect();
        let mut streams: Vec<&str> = Vec::new();
        let mut checks: Vec<(&str, i64)> = Vec::new();
        let mut exact = true;
        for (stream, expected, _) in &expectations {
            if !streams.contains(&stream.as_str()) {
                streams.push(stream);
                match expected {
                    ExpectedVersion::Exact(expected) => checks.push((stream, *expected)),
                    ExpectedVersion::Any => exact = false,
                }
            }
        }
        let has_events = expectations.iter().any(|(_, _, length)| *length > 0);
        // Without events there is no `INSERT` to check the versions.
        let checked_in_insert = exact && has_events;
        let current = if checked_in_insert {
            checks
                .iter()
                .map(|(stream, version)| ((*stream).to_owned(), *version))
                .collect()
        } else {
            self.stream_versions(&streams).await?
        };
        if !checked_in_insert {
            checks.clear();
        }
        let Versioned {
            bases,
            lengths,
            mut events,
        } = versioned(appends, current)?;
        if !events.is_empty() {
            match D::insert_events(&mut self.transaction, &mut events, &checks).await {
                Ok(true) => {}
                // A stream is not at the version its append expects: the versions read now
                // name it (as a read before would have).
                Ok(false) => {
                    let current = self.stream_versions(&streams).await?;
                    return Err(first_conflict(&expectations, current));
                }
                Err(failure) => return Err(self.append_failed(&bases, failure)),
            }
        }
        let mut events = events.into_iter().map(|event| event.metadata);
        Ok(lengths
            .into_iter()
            .map(|length| events.by_ref().take(length).collect())
            .collect())
    }

    /// The version of each stream's last event (`-1` for none), one statement per
    /// [`STREAMS_PER_READ`] streams.
    async fn stream_versions(&mut self, streams: &[&str]) -> Result<HashMap<String, i64>> {
        let mut current: HashMap<String, i64> = HashMap::with_capacity(streams.len());
        for chunk in streams.chunks(STREAMS_PER_READ) {
            let versions = read_stream_versions::<D>(&mut self.transaction, chunk)
                .await
                .map_err(|error| db_error(&self.url, &reading_versions(chunk), error))?;
            for (stream, version) in chunk.iter().zip(versions) {
                current.insert((*stream).to_owned(), version);
            }
        }
        Ok(current)
    }

    /// The error of a failed `INSERT` of events. The unique `(stream, version)` constraint, or
    /// a deadlock: another writer won, a [`Error::VersionConflict`] on the stream whose key
    /// the database names (the first stream when it names none).
    fn append_failed(&self, bases: &[(String, i64)], failure: Failure) -> Error {
        let conflict = |stream: &str| {
            let (stream, current) = bases
                .iter()
                .find(|(name, _)| name == stream)
                .or(bases.first())
                .map_or((stream, -1), |(name, current)| (name.as_str(), *current));
            Error::VersionConflict {
                stream: stream.to_owned(),
                expected: current,
                actual: current + 1,
            }
        };
        match failure {
            Failure::Sql(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                let stream = D::duplicate_stream(error.as_ref()).unwrap_or_default();
                conflict(&stream)
            }
            Failure::Sql(error) if D::is_retryable(&error) => conflict(""),
            failure => {
                let mut streams: Vec<&str> = Vec::new();
                for (stream, _) in bases {
                    if !streams.contains(&stream.as_str()) {
                        streams.push(stream);
                    }
                }
                failed(&self.url, &appending(&streams), failure)
            }
        }
    }

    pub(crate) async fn get_json_row(&mut self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        // Where the database locks the rows it reads (PostgreSQL: `FOR UPDATE`, which waits
        // for the row's lock holder and then reads its last committed version), a present
        // row is locked by its read, one statement. An absent row cannot be locked so: it is
        // locked by its key (`lock_row`), then read again, still `FOR UPDATE` (a writer that
        // created the row meanwhile, or holds it locked, is waited for).
        if D::LOCKS_READ_ROWS
            && let Some(row) = self.get_row_for_update(table, id).await?
        {
            return Ok(Some(row));
        }
        // Locked before it is read, so the read sees the last committed write of whoever held
        // the lock before (each statement reads the latest committed data).
        match D::lock_row(&mut self.transaction, table, id).await {
            Ok(()) => {}
            Err(error) if D::is_retryable(&error) => return Err(row_conflict(table, id)),
            Err(error) => {
                return Err(self.error(&format!("locking row `{id}` of table `{table}`"), error));
            }
        }
        self.get_row_for_update(table, id).await
    }

    /// The row, read with [`TableStatements::select_for_update`](super::TableStatements).
    async fn get_row_for_update(&mut self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        let statements = self.schemas.get(table)?;
        let Some(statement) = by_key::<D>(&statements, &statements.select_for_update, id) else {
            return Ok(None);
        };
        match D::documents(On::Tx(&mut self.transaction), &statements.schema, statement).await {
            Ok(mut rows) => Ok(rows.pop()),
            Err(Failure::Sql(error)) if D::is_retryable(&error) => Err(row_conflict(table, id)),
            Err(failure) => Err(failed(
                &self.url,
                &format!("reading row `{id}` of table `{table}`"),
                failure,
            )),
        }
    }

    pub(crate) async fn put_json_row(
        &mut self,
        table: &str,
        document: JsonRow,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let statements = self.schemas.get(table)?;
        let conflict = |expected: i64, actual: i64| Error::VersionConflict {
            stream: format!("{table}/{}", document.id),
            expected,
            actual,
        };
        if let Some(expected) = expected_version {
            // The row stays locked until the transaction ends (PostgreSQL: `FOR UPDATE`;
            // SQLite: the one writer), so its version cannot change between this check and
            // the write.
            let actual = match by_key::<D>(&statements, &statements.version_by_id, &document.id) {
                None => -1,
                Some(statement) => {
                    match D::integers(On::Tx(&mut self.transaction), statement).await {
                        Ok(row) => first_integer(row).unwrap_or(-1),
                        Err(error) if D::is_retryable(&error) => {
                            return Err(conflict(expected, expected + 1));
                        }
                        Err(error) => {
                            return Err(self.error(
                                &format!("reading row `{}` of table `{table}`", document.id),
                                error,
                            ));
                        }
                    }
                }
            };
            if actual != expected {
                return Err(conflict(expected, actual));
            }
        }
        let insert_only = expected_version == Some(-1);
        let sql = if insert_only {
            &statements.insert
        } else {
            &statements.upsert
        };
        let values = super::row_values(&statements.schema, &document)?;
        let statement = Statement::with(D::SYNTAX, sql, values);
        match D::execute(On::Tx(&mut self.transaction), statement).await {
            Ok(_) => Ok(()),
            // Another writer created the row since the check above.
            Err(sqlx::Error::Database(error))
                if insert_only
                    && error.is_unique_violation()
                    && error.constraint().is_some_and(|c| c.ends_with("_pkey")) =>
            {
                Err(conflict(-1, 0))
            }
            Err(error) if D::is_retryable(&error) => {
                let expected = expected_version.unwrap_or(document.version - 1);
                Err(conflict(expected, expected + 1))
            }
            // Another row holds a `#[field(unique)]` value (committed, or written by a
            // transaction this write waited for): the field's validation error.
            Err(error) => Err(
                super::unique_violation(&statements.schema, &error).unwrap_or_else(|| {
                    self.error(
                        &format!("writing row `{}` of table `{table}`", document.id),
                        error,
                    )
                }),
            ),
        }
    }

    pub(crate) async fn remove_row(&mut self, table: &str, id: &str) -> Result<()> {
        let statements = self.schemas.get(table)?;
        let Some(statement) = by_key::<D>(&statements, &statements.delete, id) else {
            return Ok(());
        };
        D::execute(On::Tx(&mut self.transaction), statement)
            .await
            .map_err(|error| {
                self.error(&format!("removing row `{id}` of table `{table}`"), error)
            })?;
        Ok(())
    }

    /// One `DELETE` per 500 rows (within any database's limit of bind parameters).
    pub(crate) async fn remove_rows(&mut self, table: &str, ids: &[String]) -> Result<()> {
        let statements = self.schemas.get(table)?;
        let schema = &statements.schema;
        for chunk in ids.chunks(500) {
            let mut statement = Statement::new(D::SYNTAX, "");
            let placeholders: Vec<String> = chunk
                .iter()
                .filter_map(|id| super::key_value(schema, id))
                .map(|key| statement.param(key))
                .collect();
            if placeholders.is_empty() {
                continue;
            }
            statement.sql = format!(
                "DELETE FROM {} WHERE {} IN ({})",
                super::quote(schema.name),
                super::quote(schema.identifier),
                placeholders.join(", ")
            );
            D::execute(On::Tx(&mut self.transaction), statement)
                .await
                .map_err(|error| {
                    self.error(
                        &format!("removing {} rows of table `{table}`", chunk.len()),
                        error,
                    )
                })?;
        }
        Ok(())
    }

    pub(crate) async fn commit(self) -> Result<()> {
        let SqlTransaction {
            transaction, url, ..
        } = self;
        D::commit(transaction)
            .await
            .map_err(|error| db_error(&url, "committing", error))
    }
}

/// Implements `Debug` (showing the URL without its password) and
/// [`Storage`](crate::store::Storage) for a public adapter `$storage` that wraps a
/// [`SqlStore`] in its field `store`, and [`Transaction`](crate::store::Transaction) for
/// [`SqlTransaction`] of its dialect.
macro_rules! sql_storage {
    ($storage:ty, $dialect:ty) => {
        impl std::fmt::Debug for $storage {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($storage))
                    .field("url", &self.store.url)
                    .finish_non_exhaustive()
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Storage for $storage {
            fn kind(&self) -> &'static str {
                <$dialect as crate::store::sql::Dialect>::KIND
            }
            async fn setup(&self, tables: &[crate::store::TableSchema]) -> crate::Result<()> {
                self.store.setup(tables).await
            }
            async fn begin(&self) -> crate::Result<Box<dyn crate::store::Transaction>> {
                Ok(Box::new(self.store.begin().await?))
            }
            async fn read_stream(
                &self,
                stream: &str,
                from_version: i64,
            ) -> crate::Result<Vec<crate::RecordedEvent>> {
                self.store.read_stream(stream, from_version).await
            }
            async fn visit_stream(
                &self,
                stream: &str,
                from_version: i64,
                visit: &mut (
                         dyn for<'e> FnMut(&'e crate::RecordedEvent) -> crate::Result<()> + Send
                     ),
            ) -> crate::Result<usize> {
                self.store.visit_stream(stream, from_version, visit).await
            }
            async fn read_category(
                &self,
                category: &str,
                after: crate::store::Cursor,
                limit: usize,
            ) -> crate::Result<Vec<crate::RecordedEvent>> {
                self.store.read_category(category, after, limit).await
            }
            async fn read_all(
                &self,
                after: crate::store::Cursor,
                limit: usize,
            ) -> crate::Result<Vec<crate::RecordedEvent>> {
                self.store.read_all(after, limit).await
            }
            async fn read_categories(
                &self,
                read: &crate::store::GlobalRead<'_>,
            ) -> crate::Result<Vec<crate::RecordedEvent>> {
                self.store.read_categories(read).await
            }
            async fn read_correlated(
                &self,
                correlation_id: &str,
            ) -> crate::Result<Vec<crate::RecordedEvent>> {
                self.store.read_correlated(correlation_id).await
            }
            async fn backlog(
                &self,
                read: &crate::store::GlobalRead<'_>,
            ) -> crate::Result<crate::store::Backlog> {
                self.store.backlog(read).await
            }
            async fn head(&self) -> crate::Result<crate::store::Cursor> {
                self.store.head().await
            }
            fn location(&self) -> String {
                format!("`{}`", self.store.url)
            }
            async fn settle(&self) -> crate::Result<()> {
                self.store.settle().await
            }
            async fn commit_signal(&self) -> crate::Result<Option<crate::store::CommitSignal>> {
                self.store
                    .dialect
                    .commit_signal(&self.store.pool, &self.store.url)
                    .await
            }
            async fn stream_version(&self, stream: &str) -> crate::Result<i64> {
                self.store.stream_version(stream).await
            }
            async fn get_json_row(
                &self,
                table: &str,
                id: &str,
            ) -> crate::Result<Option<crate::store::JsonRow>> {
                self.store.get_json_row(table, id).await
            }
            async fn query(
                &self,
                table: &str,
                query: &crate::model::query::QuerySpec,
            ) -> crate::Result<Vec<crate::store::JsonRow>> {
                self.store.query(table, query).await
            }
            async fn count(
                &self,
                table: &str,
                query: &crate::model::query::QuerySpec,
            ) -> crate::Result<u64> {
                self.store.count(table, query).await
            }
            async fn claim_outbox(
                &self,
                claim: &crate::store::OutboxClaim<'_>,
            ) -> crate::Result<Option<Vec<crate::store::JsonRow>>> {
                self.store.claim_outbox(claim).await
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Transaction for crate::store::sql::store::SqlTransaction<$dialect> {
            async fn append(
                &mut self,
                stream: &str,
                expected: crate::store::ExpectedVersion,
                events: Vec<crate::RecordedEvent>,
            ) -> crate::Result<Vec<crate::EventMetadata>> {
                crate::store::sql::store::SqlTransaction::append(self, stream, expected, events)
                    .await
            }
            async fn append_all(
                &mut self,
                appends: Vec<crate::store::StreamAppend>,
            ) -> crate::Result<Vec<Vec<crate::EventMetadata>>> {
                crate::store::sql::store::SqlTransaction::append_all(self, appends).await
            }
            async fn get_json_row(
                &mut self,
                table: &str,
                id: &str,
            ) -> crate::Result<Option<crate::store::JsonRow>> {
                crate::store::sql::store::SqlTransaction::get_json_row(self, table, id).await
            }
            async fn put_json_row(
                &mut self,
                table: &str,
                row: crate::store::JsonRow,
                expected_version: Option<i64>,
            ) -> crate::Result<()> {
                crate::store::sql::store::SqlTransaction::put_json_row(
                    self,
                    table,
                    row,
                    expected_version,
                )
                .await
            }
            async fn remove_row(&mut self, table: &str, id: &str) -> crate::Result<()> {
                crate::store::sql::store::SqlTransaction::remove_row(self, table, id).await
            }
            async fn remove_rows(&mut self, table: &str, ids: &[String]) -> crate::Result<()> {
                crate::store::sql::store::SqlTransaction::remove_rows(self, table, ids).await
            }
            async fn notify_commit(&mut self) -> crate::Result<()> {
                crate::store::sql::store::SqlTransaction::notify_commit(self).await
            }
            async fn commit(self: Box<Self>) -> crate::Result<()> {
                crate::store::sql::store::SqlTransaction::commit(*self).await
            }
        }
    };
}
pub(crate) use sql_storage;

/// Implements [`Dialect`] for `$dialect` with the items given, plus the statement runners
/// (`events`, `documents`, `integers`, `execute`), which read the same for every database:
/// `$decode_event` and `$decode_document` decode rows, and `$tx => $executor` reaches the
/// connection of a transaction. (One macro for the whole impl: `#[async_trait]` must see the
/// runners' `async fn`s expanded.)
macro_rules! dialect {
    ($dialect:ty, $decode_event:path, $decode_document:path, $tx:ident => $executor:expr, { $($items:tt)* }) => {
        #[async_trait::async_trait]
        impl Dialect for $dialect {
        $($items)*
        async fn events(
            on: On<'_, Self>,
            statement: Statement,
        ) -> std::result::Result<Vec<RecordedEvent>, Failure> {
            let query = prepare(&statement);
            let rows = match on {
                On::Pool(pool) => query.fetch_all(pool).await,
                On::Tx($tx) => query.fetch_all($executor).await,
            }?;
            rows.iter()
                .map($decode_event)
                .collect::<Result<_>>()
                .map_err(Failure::Data)
        }

        async fn documents(
            on: On<'_, Self>,
            table: &TableSchema,
            statement: Statement,
        ) -> std::result::Result<Vec<JsonRow>, Failure> {
            let query = prepare(&statement);
            let rows = match on {
                On::Pool(pool) => query.fetch_all(pool).await,
                On::Tx($tx) => query.fetch_all($executor).await,
            }?;
            rows.iter()
                .map(|row| $decode_document(table, row))
                .collect::<Result<_>>()
                .map_err(Failure::Data)
        }

        async fn integers(
            on: On<'_, Self>,
            statement: Statement,
        ) -> std::result::Result<Option<Vec<Option<i64>>>, sqlx::Error> {
            let query = prepare(&statement);
            let row = match on {
                On::Pool(pool) => query.fetch_optional(pool).await,
                On::Tx($tx) => query.fetch_optional($executor).await,
            }?;
            row.map(|row| {
                (0..row.len())
                    .map(|index| row.try_get::<Option<i64>, _>(index))
                    .collect()
            })
            .transpose()
        }

        async fn execute(
            on: On<'_, Self>,
            statement: Statement,
        ) -> std::result::Result<u64, sqlx::Error> {
            let query = prepare(&statement);
            let done = match on {
                On::Pool(pool) => query.execute(pool).await,
                On::Tx($tx) => query.execute($executor).await,
            }?;
            Ok(done.rows_affected())
        }
        }
    };
}
pub(crate) use dialect;
