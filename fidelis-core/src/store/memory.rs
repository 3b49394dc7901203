//! The in-memory adapter: the default, for tests and laptops. Nothing survives the process.
//!
//! Reads share a lock; a transaction holds it exclusively from `begin` to `commit`, so units
//! of work commit one after another (their handlers still run concurrently, before `begin`).
//! Streams and categories are indexed, so a command's cost does not grow with the store.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};

use crate::error::{Error, Result};
use crate::event::{RecordedEvent, category_of};
use crate::query::{QuerySpec, eval};
use crate::store::{Document, ExpectedVersion, Storage, TableSchema, Transaction};

#[derive(Default)]
struct State {
    /// Every event; position `p` is at index `p - 1`.
    events: Vec<RecordedEvent>,
    /// Stream → indices into `events`, in version order.
    streams: HashMap<String, Vec<usize>>,
    /// Category → indices into `events`, in position order.
    categories: HashMap<String, Vec<usize>>,
    /// Table → id → row.
    tables: HashMap<String, HashMap<String, Document>>,
}

impl State {
    fn stream_version(&self, stream: &str) -> i64 {
        self.streams
            .get(stream)
            .map_or(-1, |indices| indices.len() as i64 - 1)
    }

    fn push(&mut self, event: RecordedEvent) {
        let index = self.events.len();
        // Look up before inserting: the stream and category names are copied only for a new
        // stream or category, not for every event.
        let stream = &event.metadata.stream;
        match self.streams.get_mut(stream) {
            Some(indices) => indices.push(index),
            None => {
                self.streams.insert(stream.clone(), vec![index]);
            }
        }
        let category = category_of(stream);
        match self.categories.get_mut(category) {
            Some(indices) => indices.push(index),
            None => {
                self.categories.insert(category.to_owned(), vec![index]);
            }
        }
        self.events.push(event);
    }

    fn after(&self, indices: &[usize], from_position: i64, limit: usize) -> Vec<RecordedEvent> {
        // Positions are index + 1, so the first index at or after `from_position` is found by
        // binary search over the (sorted) index list.
        let first = usize::try_from(from_position.max(1) - 1).unwrap_or(0);
        let start = indices.partition_point(|&index| index < first);
        indices[start..]
            .iter()
            .take(limit)
            .map(|&index| self.events[index].clone())
            .collect()
    }
}

/// The in-memory storage adapter.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    state: Arc<RwLock<State>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn setup(&self, tables: &[TableSchema]) -> Result<()> {
        let mut state = self.state.write().await;
        for table in tables {
            state.tables.entry(table.name.to_owned()).or_default();
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        let guard = self.state.clone().write_owned().await;
        Ok(Box::new(MemoryTransaction {
            state: guard,
            events: Vec::new(),
            versions: HashMap::new(),
            documents: HashMap::new(),
        }))
    }

    async fn read_stream(&self, stream: &str, from_version: i64) -> Result<Vec<RecordedEvent>> {
        let state = self.state.read().await;
        let Some(indices) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let skip = usize::try_from(from_version.max(0)).unwrap_or(0);
        Ok(indices
            .iter()
            .skip(skip)
            .map(|&index| state.events[index].clone())
            .collect())
    }

    async fn read_category(
        &self,
        category: &str,
        from_position: i64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let state = self.state.read().await;
        Ok(state
            .categories
            .get(category)
            .map_or_else(Vec::new, |indices| {
                state.after(indices, from_position, limit)
            }))
    }

    async fn read_all(&self, from_position: i64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let state = self.state.read().await;
        let first = usize::try_from(from_position.max(1) - 1).unwrap_or(0);
        Ok(state
            .events
            .iter()
            .skip(first)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn stream_version(&self, stream: &str) -> Result<i64> {
        Ok(self.state.read().await.stream_version(stream))
    }

    async fn get_document(&self, table: &str, id: &str) -> Result<Option<Document>> {
        Ok(self
            .state
            .read()
            .await
            .tables
            .get(table)
            .and_then(|rows| rows.get(id))
            .cloned())
    }

    async fn query(&self, table: &str, query: &QuerySpec) -> Result<Vec<Document>> {
        let state = self.state.read().await;
        let Some(rows) = state.tables.get(table) else {
            return Ok(Vec::new());
        };
        let mut found: Vec<&Document> = rows
            .values()
            .filter(|row| eval::matches(&row.data, query))
            .collect();
        // Ties are broken by id so that paging is stable, as with a primary key in SQL.
        found.sort_by(|a, b| eval::order(&a.data, &b.data, query).then_with(|| a.id.cmp(&b.id)));
        Ok(found
            .into_iter()
            .skip(query.offset)
            .take(query.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn count(&self, table: &str, query: &QuerySpec) -> Result<u64> {
        let state = self.state.read().await;
        let Some(rows) = state.tables.get(table) else {
            return Ok(0);
        };
        Ok(rows
            .values()
            .filter(|row| eval::matches(&row.data, query))
            .count() as u64)
    }
}

struct MemoryTransaction {
    state: OwnedRwLockWriteGuard<State>,
    /// Appended events, not yet in `state`.
    events: Vec<RecordedEvent>,
    /// Stream versions after this transaction's appends.
    versions: HashMap<String, i64>,
    /// Written (`Some`) or removed (`None`) rows, by table, then id (nested so that a
    /// lookup borrows the table and id instead of building an owned key).
    documents: HashMap<String, HashMap<String, Option<Document>>>,
}

impl MemoryTransaction {
    fn current_document_ref(&self, table: &str, id: &str) -> Option<&Document> {
        match self.documents.get(table).and_then(|rows| rows.get(id)) {
            Some(written) => written.as_ref(),
            None => self.state.tables.get(table).and_then(|rows| rows.get(id)),
        }
    }

    fn current_document(&self, table: &str, id: &str) -> Option<Document> {
        self.current_document_ref(table, id).cloned()
    }

    fn write(&mut self, table: &str, id: String, document: Option<Document>) {
        match self.documents.get_mut(table) {
            Some(rows) => {
                rows.insert(id, document);
            }
            None => {
                self.documents
                    .insert(table.to_owned(), HashMap::from([(id, document)]));
            }
        }
    }
}

#[async_trait]
impl Transaction for MemoryTransaction {
    async fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>> {
        let current = match self.versions.get(stream) {
            Some(version) => *version,
            None => self.state.stream_version(stream),
        };
        if let ExpectedVersion::Exact(expected) = expected
            && expected != current
        {
            return Err(Error::VersionConflict {
                stream: stream.to_owned(),
                expected,
                actual: current,
            });
        }
        let mut position = (self.state.events.len() + self.events.len()) as i64;
        let mut version = current;
        for event in &mut events {
            position += 1;
            version += 1;
            event.metadata.global_position = position;
            event.metadata.version = version;
            if event.metadata.stream != stream {
                event.metadata.stream = stream.to_owned();
            }
        }
        match self.versions.get_mut(stream) {
            Some(current) => *current = version,
            None => {
                self.versions.insert(stream.to_owned(), version);
            }
        }
        self.events.extend(events.iter().cloned());
        Ok(events)
    }

    async fn get_document(&mut self, table: &str, id: &str) -> Result<Option<Document>> {
        Ok(self.current_document(table, id))
    }

    async fn put_document(
        &mut self,
        table: &str,
        document: Document,
        expected_version: Option<i64>,
    ) -> Result<()> {
        if let Some(expected) = expected_version {
            let actual = self
                .current_document_ref(table, &document.id)
                .map_or(-1, |row| row.version);
            if actual != expected {
                return Err(Error::VersionConflict {
                    stream: format!("{table}/{}", document.id),
                    expected,
                    actual,
                });
            }
        }
        self.write(table, document.id.clone(), Some(document));
        Ok(())
    }

    async fn remove_document(&mut self, table: &str, id: &str) -> Result<()> {
        self.write(table, id.to_owned(), None);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let MemoryTransaction {
            mut state,
            events,
            documents,
            ..
        } = *self;
        for event in events {
            state.push(event);
        }
        for (table, written) in documents {
            let rows = state.tables.entry(table).or_default();
            for (id, document) in written {
                match document {
                    Some(document) => rows.insert(id, document),
                    None => rows.remove(&id),
                };
            }
        }
        Ok(())
    }
}
