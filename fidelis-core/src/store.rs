//! Storage ports: what an adapter (memory, SQLite, PostgreSQL) implements.
//!
//! One [`Storage`] holds both the event store (append with expected version, read a stream,
//! a category, or everything after a [`Cursor`] in the global order) and the document store
//! (rows of projections and state-stored aggregates), because a unit of work must commit
//! events and rows in one [`Transaction`].

pub(crate) mod connection;
pub mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

/// The PostgreSQL adapter (one SQL store over PostgreSQL's dialect, in `store/sql/`).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use super::sql::postgres::PostgresStorage;
}

/// The SQLite adapter (one SQL store over SQLite's dialect, in `store/sql/`).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use super::sql::sqlite::SqliteStorage;
}
pub mod system;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::model::error::{Error, Result};
use crate::model::event::{EventMetadata, RecordedEvent};
use crate::model::field::FieldDef;
use crate::model::query::QuerySpec;

/// A row of a projection or state-stored aggregate as JSON: its identity, version and
/// fields. Every adapter stores and reads rows in this form; see [`Row`] for the typed form.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonRow {
    /// The identity (primary key).
    pub id: String,
    /// Incremented on every write; used for optimistic concurrency of aggregates.
    pub version: i64,
    /// The fields, by name.
    pub data: Map<String, Value>,
}

mod sealed {
    /// Keeps [`TypedRow`](super::TypedRow) implemented by Fidelis alone.
    pub trait Sealed {}
    impl<T: serde::Serialize + Send + Sync + 'static> Sealed for T {}
}

/// A row as a typed value (a projection), so that an adapter that keeps rows in memory can
/// store and return it without a round trip through JSON.
///
/// Sealed: adapters receive and read typed rows, they do not implement the trait, and which
/// types Fidelis implements it for is not a promise of the API.
pub trait TypedRow: sealed::Sealed + Any + Send + Sync {
    /// The row's fields as JSON, for adapters that store JSON or columns.
    fn to_json(&self) -> Result<Map<String, Value>>;
    /// `self` as `Any`, to downcast to the projection type.
    fn as_any(&self) -> &dyn Any;
}

impl<T: serde::Serialize + Send + Sync + 'static> TypedRow for T {
    fn to_json(&self) -> Result<Map<String, Value>> {
        match serde_json::to_value(self) {
            Ok(Value::Object(data)) => Ok(data),
            Ok(_) => Err(Error::Serialization {
                what: std::any::type_name::<T>().to_owned(),
                message: "a row must serialize to a JSON object".to_owned(),
            }),
            Err(error) => Err(Error::Serialization {
                what: std::any::type_name::<T>().to_owned(),
                message: error.to_string(),
            }),
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A row as an adapter returns it: typed when the adapter kept the value it was given, JSON
/// otherwise.
#[derive(Clone)]
pub enum Row {
    /// The value written by [`Transaction::put_row`].
    Typed(Arc<dyn TypedRow>),
    /// Fields read back from storage.
    Json(JsonRow),
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Row::Typed(_) => f.write_str("Row::Typed(..)"),
            Row::Json(document) => f.debug_tuple("Row::Json").field(document).finish(),
        }
    }
}

/// The schema of one table, from an element's field definitions.
#[derive(Clone, Copy, Debug)]
pub struct TableSchema {
    /// The table's name: `<domain>_<element>` in snake case (`fidelis_account_summary`).
    pub name: &'static str,
    /// The element the rows are of (`AccountSummary`): unique violations name it.
    pub element: &'static str,
    /// The element's fields.
    pub fields: &'static [FieldDef],
    /// The identifier field.
    pub identifier: &'static str,
    /// The name earlier versions of Fidelis gave the table (`account_summary`, without the
    /// domain prefix). `setup` refuses to start beside such a table, with the statement that
    /// renames it, instead of silently creating an empty new one.
    pub former_name: Option<&'static str>,
    /// Secondary indexes, each the columns (field names) it orders by, in order. SQL stores
    /// create them at `setup` when missing (`<table>_<columns>_idx`); the memory store has
    /// no use for them.
    pub indexes: &'static [&'static [&'static str]],
}

impl TableSchema {
    /// The schema with these secondary indexes (see [`indexes`](Self::indexes)).
    pub const fn with_indexes(self, indexes: &'static [&'static [&'static str]]) -> Self {
        Self { indexes, ..self }
    }
}

/// The message of a unique violation, on every adapter.
pub const ALREADY_TAKEN: &str = "is already taken";

/// A unique violation as every adapter reports it: a validation error of the element on the
/// field (`invalid Member: email: is already taken`), so a handler or API turns it into a
/// message for the user like any other invalid field.
pub(crate) fn already_taken(element: &str, field: &str) -> Error {
    Error::Validation {
        element: element.to_owned(),
        errors: crate::model::error::ValidationError::field(field, ALREADY_TAKEN),
    }
}

pub use crate::model::event::Cursor;

/// A slice of the streams of a store, for readers that share the global order between
/// `count` workers: each stream belongs to exactly one partition (by [`stream_hash`]), so
/// each worker sees every event of its streams, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Partition {
    /// This partition, from 0 to `count - 1`.
    pub index: u32,
    /// How many partitions the streams are split into (at least 1).
    pub count: u32,
}

impl Partition {
    /// Whether a stream belongs to this partition.
    pub fn contains(&self, stream: &str) -> bool {
        partition_of(stream_hash(stream), self.count) == i64::from(self.index)
    }

    /// A usage error unless `index < count`.
    pub(crate) fn check(&self) -> Result<()> {
        if self.index < self.count {
            Ok(())
        } else {
            Err(Error::usage(format!(
                "partition {} of {} does not exist: a partition's index runs from 0 to count - 1",
                self.index, self.count
            )))
        }
    }
}

/// The partition of a stream hash among `count`: the non-negative remainder, which every
/// adapter computes the same way (`((hash % count) + count) % count` in SQL).
pub(crate) fn partition_of(hash: i64, count: u32) -> i64 {
    hash.rem_euclid(i64::from(count.max(1)))
}

/// The stable hash of a stream name that [`Partition`]s split streams by: FNV-1a 64 of the
/// name's UTF-8 bytes, as a signed 64-bit integer (the bits unchanged). Stores keep it beside
/// each event, so it must never change.
///
/// ```
/// use fidelis_core::store::stream_hash;
/// assert_eq!(stream_hash(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
/// assert_eq!(stream_hash("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
/// ```
pub fn stream_hash(stream: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = stream.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A read of the global order restricted to some categories and, optionally, one partition
/// of their streams ([`Storage::read_categories`]).
#[derive(Clone, Copy, Debug)]
pub struct GlobalRead<'a> {
    /// The categories to read (`fidelis::account`); none reads nothing.
    pub categories: &'a [&'a str],
    /// Events strictly after this cursor.
    pub after: Cursor,
    /// At most this many events.
    pub limit: usize,
    /// Only the streams of this partition, when given.
    pub partition: Option<Partition>,
}

/// How many events of some categories (and partition) come after a cursor, and the last of
/// them ([`Storage::backlog`]): a subscription's lag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// How many events come after the cursor (readable now).
    pub events: u64,
    /// The cursor of the last of them (`None` when there is none).
    pub last: Option<Cursor>,
}

/// A relay's claim on the oldest outbox rows of a domain
/// ([`Storage::claim_outbox`]; the rows are [`OutboxMessage`](system::OutboxMessage)s).
#[derive(Clone, Copy, Debug)]
pub struct OutboxClaim<'a> {
    /// The domain whose rows to claim.
    pub domain: &'a str,
    /// The relay claiming them (its engine's owner id).
    pub owner: &'a str,
    /// The time claims are compared with: one that ends at or before it has lapsed.
    pub now: chrono::DateTime<chrono::Utc>,
    /// Until when the new claims hold.
    pub until: chrono::DateTime<chrono::Utc>,
    /// At most this many rows.
    pub limit: usize,
}

/// Wake-ups after commits ([`Storage::commit_signal`]).
pub type CommitSignal = futures::stream::BoxStream<'static, ()>;

/// What the store must hold for an append to succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream's last version must be exactly this (`-1`: the stream must not exist).
    Exact(i64),
    /// Append whatever the stream holds (events of state-stored aggregates, whose row carries
    /// the version check).
    Any,
}

/// The events of one stream in [`Transaction::append_all`]: what
/// [`Transaction::append`] takes, as one value.
#[derive(Debug)]
pub struct StreamAppend {
    /// The stream appended to.
    pub stream: String,
    /// What the stream must hold for the append to succeed.
    pub expected: ExpectedVersion,
    /// The events, versioned on from the stream's last version.
    pub events: Vec<RecordedEvent>,
}

/// A storage adapter. Reads outside a transaction see committed data only.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// A short name for logs: `memory`, `sqlite`, `postgres`.
    fn kind(&self) -> &'static str;

    /// Creates missing tables; reports tables whose columns no longer match their fields.
    async fn setup(&self, tables: &[TableSchema]) -> Result<()>;

    /// Starts a transaction.
    async fn begin(&self) -> Result<Box<dyn Transaction>>;

    /// The events of a stream with version ≥ `from_version`, in order.
    async fn read_stream(&self, stream: &str, from_version: i64) -> Result<Vec<RecordedEvent>>;

    /// Calls `visit` with each event of a stream with version ≥ `from_version`, in order, and
    /// returns how many it visited; stops at the first error `visit` returns. Rehydration
    /// uses it so an adapter holding events in memory can lend them instead of copying; the
    /// default reads the stream with [`read_stream`](Self::read_stream).
    async fn visit_stream(
        &self,
        stream: &str,
        from_version: i64,
        visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> Result<()> + Send),
    ) -> Result<usize> {
        let events = self.read_stream(stream, from_version).await?;
        for event in &events {
            visit(event)?;
        }
        Ok(events.len())
    }

    /// Up to `limit` events of a category strictly after `after`, in global order (see
    /// [`read_all`](Self::read_all)).
    async fn read_category(
        &self,
        category: &str,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// Up to `limit` events strictly after `after`, in global order.
    ///
    /// Only events no running transaction can still precede are returned, so a reader that
    /// goes on from the last event's cursor never skips one. Where writers commit
    /// concurrently (PostgreSQL), an event committed while an older transaction still runs
    /// is returned once that one ends; [`settle`](Self::settle) waits for that.
    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// Up to `limit` events of some categories (of one partition of their streams, if
    /// given) strictly after a cursor, in global order, with the guarantee of
    /// [`read_all`](Self::read_all).
    async fn read_categories(&self, read: &GlobalRead<'_>) -> Result<Vec<RecordedEvent>>;

    /// How many events a [`read_categories`](Self::read_categories) from `read.after` would
    /// return without a limit (`read.limit` is ignored), and the last one's cursor. SQL
    /// stores answer with one `COUNT` (and one indexed read of the last event); the default
    /// reads the events in batches of 10,000.
    async fn backlog(&self, read: &GlobalRead<'_>) -> Result<Backlog> {
        let mut backlog = Backlog::default();
        let mut after = read.after;
        loop {
            let batch = self
                .read_categories(&GlobalRead {
                    after,
                    limit: 10_000,
                    ..*read
                })
                .await?;
            let Some(last) = batch.last() else {
                return Ok(backlog);
            };
            after = last.metadata.cursor();
            backlog.events += batch.len() as u64;
            backlog.last = Some(after);
        }
    }

    /// Every event of one request (its metadata's `correlation_id`), in global order: what a
    /// trace reads. SQL stores answer from an index on the correlation id; the default reads
    /// every event in batches of 10,000.
    async fn read_correlated(&self, correlation_id: &str) -> Result<Vec<RecordedEvent>> {
        let mut correlated = Vec::new();
        let mut after = Cursor::START;
        loop {
            let batch = self.read_all(after, 10_000).await?;
            let Some(last) = batch.last() else {
                return Ok(correlated);
            };
            after = last.metadata.cursor();
            correlated.extend(
                batch
                    .into_iter()
                    .filter(|event| event.metadata.correlation_id.as_str() == correlation_id),
            );
        }
    }

    /// Where the store keeps its data, for messages: the URL without its password on SQL
    /// stores (the default: [`kind`](Self::kind)).
    fn location(&self) -> String {
        self.kind().to_owned()
    }

    /// The cursor of the last event a reader of the global order may read now
    /// ([`Cursor::START`] when there is none).
    async fn head(&self) -> Result<Cursor>;

    /// Waits until every event committed before the call can be read in global order. Where
    /// writers commit concurrently (PostgreSQL), reads leave out events of transactions that
    /// committed while an older one still runs; this waits for those older transactions (up
    /// to a bound, then fails with a storage error naming what it waited for). Stores with
    /// one writer at a time return at once (the default).
    async fn settle(&self) -> Result<()> {
        Ok(())
    }

    /// The version of a stream's last event, `-1` when it has none.
    async fn stream_version(&self, stream: &str) -> Result<i64>;

    /// A signal of commits of events made by any process on this database (PostgreSQL:
    /// `LISTEN`, the commits sending `NOTIFY` in their transaction), so readers of the global
    /// order wake at once instead of polling. It may fire spuriously and fold several commits
    /// into one; it ends when the connection is lost. `None` (the default): the adapter has
    /// none, and readers poll.
    async fn commit_signal(&self) -> Result<Option<CommitSignal>> {
        Ok(None)
    }

    /// Claims, in one write, the outbox rows of `claim.domain` that the relay `claim.owner`
    /// may publish now: up to `claim.limit` rows in position order, leaving out rows another
    /// relay holds (its claim not lapsed) and every later row of their streams. Each claimed
    /// row gets `claimed_by`, `claimed_until` and its version moved by one; they are
    /// returned as stored (in any order). Two relays claiming at once never both claim a
    /// row, and the second sees the first's claims. `None` (the default): the adapter has
    /// no such write, and the relay claims row by row with version checks.
    async fn claim_outbox(&self, _claim: &OutboxClaim<'_>) -> Result<Option<Vec<JsonRow>>> {
        Ok(None)
    }

    /// One row.
    async fn get_json_row(&self, table: &str, id: &str) -> Result<Option<JsonRow>>;

    /// One row, typed if the adapter kept it typed (the default reads the [`JsonRow`]).
    async fn get_row(&self, table: &str, id: &str) -> Result<Option<Row>> {
        Ok(self.get_json_row(table, id).await?.map(Row::Json))
    }

    /// The rows matching a query, ordered and paged as it says.
    async fn query(&self, table: &str, query: &QuerySpec) -> Result<Vec<JsonRow>>;

    /// How many rows match a query's filters (order and paging are ignored).
    async fn count(&self, table: &str, query: &QuerySpec) -> Result<u64>;
}

/// A storage transaction: what a unit of work writes, committed at once or not at all.
/// Dropping it without [`Transaction::commit`] discards everything.
#[async_trait]
pub trait Transaction: Send {
    /// Appends events to one stream. Versions in `events` run on from the expected version;
    /// the store assigns global positions and returns the events' metadata as stored (the
    /// events themselves are moved into the store, not copied). Fails with
    /// [`Error::VersionConflict`] when the stream moved.
    async fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<RecordedEvent>,
    ) -> Result<Vec<EventMetadata>>;

    /// Appends to several streams, in order, as [`append`](Self::append) would one after the
    /// other (a stream named twice goes on from its first append): the events' global
    /// positions follow the order of `appends`, and the first stream whose expected version
    /// does not hold fails the whole call with [`Error::VersionConflict`] (the transaction
    /// must then be dropped: what it holds is not a consistent unit). Returns each append's
    /// metadata as stored, in the order given.
    ///
    /// The default calls `append` for each stream; the SQL adapters read every stream's
    /// version in one statement and insert every event in one (a unit of work's commit costs
    /// two round trips to the database, not two per stream).
    async fn append_all(&mut self, appends: Vec<StreamAppend>) -> Result<Vec<Vec<EventMetadata>>> {
        let mut stored = Vec::with_capacity(appends.len());
        for append in appends {
            stored.push(
                self.append(&append.stream, append.expected, append.events)
                    .await?,
            );
        }
        Ok(stored)
    }

    /// One row, as this transaction sees it.
    async fn get_json_row(&mut self, table: &str, id: &str) -> Result<Option<JsonRow>>;

    /// One row as this transaction sees it, typed if the adapter kept it typed.
    async fn get_row(&mut self, table: &str, id: &str) -> Result<Option<Row>> {
        Ok(self.get_json_row(table, id).await?.map(Row::Json))
    }

    /// Inserts or replaces a projection row given as a typed value (no version check). The
    /// default stores its JSON with [`put_json_row`](Self::put_json_row); the memory
    /// adapter keeps the value itself.
    async fn put_row(&mut self, table: &str, id: String, row: Arc<dyn TypedRow>) -> Result<()> {
        let data = row.to_json()?;
        self.put_json_row(
            table,
            JsonRow {
                id,
                version: 0,
                data,
            },
            None,
        )
        .await
    }

    /// Inserts or replaces a row. With `expected_version`, fails with a version conflict
    /// unless the stored row has that version (`-1`: the row must not exist). The stored
    /// version becomes `row.version`.
    async fn put_json_row(
        &mut self,
        table: &str,
        row: JsonRow,
        expected_version: Option<i64>,
    ) -> Result<()>;

    /// Deletes a row (no error when it does not exist).
    async fn remove_row(&mut self, table: &str, id: &str) -> Result<()>;

    /// Deletes rows (no error for those that do not exist). SQL stores delete them in one
    /// statement; the default removes them one by one.
    async fn remove_rows(&mut self, table: &str, ids: &[String]) -> Result<()> {
        for id in ids {
            self.remove_row(table, id).await?;
        }
        Ok(())
    }

    /// Asks the store to wake the readers listening for commits
    /// ([`Storage::commit_signal`]) once this transaction commits (PostgreSQL: `NOTIFY`,
    /// delivered at commit, and only if it commits). The engine's commits ask for it in
    /// asynchronous processing; the default does nothing (an adapter without a signal).
    async fn notify_commit(&mut self) -> Result<()> {
        Ok(())
    }

    /// Makes every write of the transaction durable and visible.
    async fn commit(self: Box<Self>) -> Result<()>;
}
