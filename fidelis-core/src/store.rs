//! Storage ports: what an adapter (memory, SQLite, PostgreSQL) implements.
//!
//! One [`Storage`] holds both the event store (append with expected version, read a stream,
//! a category, or everything from a global position) and the document store (rows of
//! projections and state-stored aggregates), because a unit of work must commit events and
//! rows in one [`Transaction`].

pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod system;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::event::{EventMetadata, RecordedEvent};
use crate::field::FieldDef;
use crate::query::QuerySpec;

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
}

/// The message of a unique violation, on every adapter.
pub const ALREADY_TAKEN: &str = "is already taken";

/// A unique violation as every adapter reports it: a validation error of the element on the
/// field (`invalid Member: email: is already taken`), so a handler or API turns it into a
/// message for the user like any other invalid field.
pub(crate) fn already_taken(element: &str, field: &str) -> Error {
    Error::Validation {
        element: element.to_owned(),
        errors: crate::error::ValidationError::field(field, ALREADY_TAKEN),
    }
}

/// What the store must hold for an append to succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream's last version must be exactly this (`-1`: the stream must not exist).
    Exact(i64),
    /// Append whatever the stream holds (events of state-stored aggregates, whose row carries
    /// the version check).
    Any,
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

    /// Up to `limit` events of a category with global position ≥ `from_position`, in order.
    async fn read_category(
        &self,
        category: &str,
        from_position: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// Up to `limit` events with global position ≥ `from_position`, in order.
    async fn read_all(&self, from_position: i64, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// The version of a stream's last event, `-1` when it has none.
    async fn stream_version(&self, stream: &str) -> Result<i64>;

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

    /// Makes every write of the transaction durable and visible.
    async fn commit(self: Box<Self>) -> Result<()>;
}
