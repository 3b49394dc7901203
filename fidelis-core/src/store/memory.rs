//! The in-memory adapter: the default, for tests and laptops. Nothing survives the process.
//!
//! Streams and categories are indexed, so a command's cost does not grow with the store.
//! Events are kept as the typed values units of work raised ([`Payload::Typed`]): a replay
//! shares them, nothing is encoded to or decoded from JSON unless a reader asks for it.
//!
//! [`Payload::Typed`]: crate::model::event::Payload::Typed
//!
//! Concurrency: no lock is held while a transaction runs (its unit of work's projectors
//! included). A transaction records its appends and row writes, reads the committed state
//! (under a short shared lock) overlaid with its own writes, and at `commit` takes the store's
//! lock exclusively only to check what it relied on and apply its writes, in one step:
//!
//! - an append with an expected version needs the stream still at the version it was appended
//!   on, else [`Error::VersionConflict`] with the stream's actual version;
//! - a row written with an expected version (a stored aggregate) needs that version still;
//! - a row the transaction read and then wrote (a projector's get-and-update) must not have
//!   been written by another commit since the read, else a version conflict on `table/id`
//!   (retried like any other; its versions are the store's commit numbers, as projection rows
//!   carry no version of their own). Rows written without reading them first (and removals)
//!   are last-writer-wins, as an upsert is in SQL;
//! - unique values are checked again against the committed ones (below).
//!
//! The same checks run early, when the append or write is made, so a doomed unit of work fails
//! fast; the check at commit is the one that counts. A transaction dropped at any point leaves
//! nothing behind: it touched nothing shared.
//!
//! Global positions are assigned at commit, under the lock, in commit order: positions stay
//! gapless (a rolled-back transaction takes none) and a reader of the global order never sees
//! a position before a lower one. The positions (and, for appends without an expected version,
//! the stream versions) that `append` returns are the ones the events take if no other
//! transaction commits events first; the events are stored with the final ones.
//!
//! `#[field(unique)]` is enforced as SQL enforces a non-deferred `UNIQUE` constraint: each
//! write is checked against the rows the transaction sees (its own writes included), a row
//! rewritten with its own value does not conflict with itself, and absent (null) values never
//! conflict. Committed values are indexed per table, so the check does not scan the table.

use crate::FastMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::sync::RwLock;

use crate::model::error::{Error, Result};
use crate::model::event::{EventMetadata, RecordedEvent, category_of};
use crate::model::query::{QuerySpec, eval};
use serde_json::{Map, Value};

use crate::store::{
    Cursor, ExpectedVersion, GlobalRead, JsonRow, Row, Storage, TableSchema, Transaction, TypedRow,
    already_taken,
};

#[derive(Default)]
struct State {
    /// Every event; position `p` is at index `p - 1`.
    events: Vec<RecordedEvent>,
    /// Stream → indices into `events`, in version order.
    streams: FastMap<String, Vec<usize>>,
    /// Category → indices into `events`, in position order.
    categories: FastMap<String, Vec<usize>>,
    /// Table → id → row.
    tables: FastMap<String, FastMap<String, StoredRow>>,
    /// Table → its fields, for the order of decimal fields (kept as text).
    fields: FastMap<String, &'static [crate::model::field::FieldDef]>,
    /// Table → the committed values of its unique fields (tables with such fields only).
    unique: FastMap<String, UniqueIndex>,
    /// How many transactions have committed: each row records the commit that wrote it.
    commits: u64,
}

/// The values of one row's unique fields, in the order of [`UniqueIndex::fields`]: the JSON
/// text of each present value, `None` for an absent (null) one.
type UniqueValues = Vec<Option<String>>;

/// The committed values of a table's unique fields.
struct UniqueIndex {
    /// The element the rows are of, for the error.
    element: &'static str,
    /// The unique fields (the identifier is unique by being the key).
    fields: Vec<&'static str>,
    /// Per field: value → id of the row that holds it.
    owners: Vec<FastMap<String, String>>,
    /// Id → its values.
    values: FastMap<String, UniqueValues>,
}

impl UniqueIndex {
    fn new(table: &TableSchema) -> Option<Self> {
        let fields: Vec<&'static str> = table
            .fields
            .iter()
            .filter(|field| field.unique && field.name != table.identifier)
            .map(|field| field.name)
            .collect();
        (!fields.is_empty()).then(|| Self {
            element: table.element,
            owners: vec![FastMap::default(); fields.len()],
            fields,
            values: FastMap::default(),
        })
    }

    fn values_of(&self, row: Option<&StoredRow>) -> Result<UniqueValues> {
        let Some(row) = row else {
            return Ok(vec![None; self.fields.len()]);
        };
        let json = row.json()?;
        Ok(self
            .fields
            .iter()
            .map(|field| match json.get(*field) {
                None | Some(Value::Null) => None,
                Some(value) => Some(value.to_string()),
            })
            .collect())
    }

    fn remove(&mut self, id: &str) {
        let Some(old) = self.values.remove(id) else {
            return;
        };
        for (owners, value) in self.owners.iter_mut().zip(old) {
            if let Some(value) = value
                && owners.get(&value).is_some_and(|owner| owner == id)
            {
                owners.remove(&value);
            }
        }
    }

    fn insert(&mut self, id: &str, values: UniqueValues) {
        for (owners, value) in self.owners.iter_mut().zip(&values) {
            if let Some(value) = value {
                owners.insert(value.clone(), id.to_owned());
            }
        }
        if values.iter().any(Option::is_some) {
            self.values.insert(id.to_owned(), values);
        }
    }
}

/// The unique values a transaction wrote to one table: they are checked against each other
/// and against the committed ones not rewritten by the transaction.
#[derive(Default)]
struct PendingUnique {
    /// Per field: value → id of the row written with it.
    owners: Vec<FastMap<String, String>>,
    /// Id → its values as written (all `None` for a removed row).
    values: FastMap<String, UniqueValues>,
}

/// A row as the memory adapter keeps it: the typed value a unit of work wrote, or a JSON
/// document. A typed row's JSON is made once, when a query or a JSON read first needs it, so
/// a projector's get-and-update never goes through JSON.
struct StoredRow {
    version: i64,
    /// The commit that wrote it (`State::commits` then); 0 until committed.
    commit: u64,
    typed: Option<Arc<dyn TypedRow>>,
    json: OnceLock<Map<String, Value>>,
}

impl StoredRow {
    fn typed(row: Arc<dyn TypedRow>) -> Self {
        Self {
            version: 0,
            commit: 0,
            typed: Some(row),
            json: OnceLock::new(),
        }
    }

    fn document(document: JsonRow) -> Self {
        Self {
            version: document.version,
            commit: 0,
            typed: None,
            json: OnceLock::from(document.data),
        }
    }

    fn json(&self) -> Result<&Map<String, Value>> {
        if let Some(json) = self.json.get() {
            return Ok(json);
        }
        let json = match &self.typed {
            Some(row) => row.to_json()?,
            None => Map::new(),
        };
        Ok(self.json.get_or_init(|| json))
    }

    fn to_document(&self, id: &str) -> Result<JsonRow> {
        Ok(JsonRow {
            id: id.to_owned(),
            version: self.version,
            data: self.json()?.clone(),
        })
    }

    fn to_row(&self, id: &str) -> Result<Row> {
        match &self.typed {
            Some(row) => Ok(Row::Typed(row.clone())),
            None => Ok(Row::Json(self.to_document(id)?)),
        }
    }
}

/// The rows of a table that match a query, in its order (ties broken by id, as a primary key
/// would in SQL), paged.
fn select<'a>(
    rows: impl Iterator<Item = (&'a String, &'a StoredRow)>,
    fields: &[crate::model::field::FieldDef],
    query: &QuerySpec,
) -> Result<Vec<(&'a String, &'a Map<String, Value>)>> {
    let mut found = Vec::new();
    for (id, row) in rows {
        let json = row.json()?;
        if eval::matches(json, query) {
            found.push((id, json));
        }
    }
    found.sort_by(|(a_id, a), (b_id, b)| {
        eval::order_with_fields(a, b, query, fields).then_with(|| a_id.cmp(b_id))
    });
    Ok(found)
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

    /// The indices (sorted) of the events strictly after `after`, at most `limit`, that
    /// `keep` accepts.
    fn after<'i>(
        &'i self,
        indices: &'i [usize],
        after: Cursor,
        limit: usize,
        keep: impl Fn(&RecordedEvent) -> bool + 'i,
    ) -> impl Iterator<Item = usize> + 'i {
        // One writer: an event's cursor is (position, position) and position is index + 1, so
        // cursors increase with the index and the first one after `after` is found by binary
        // search over the (sorted) index list.
        let start = indices.partition_point(|&index| cursor_at(index) <= after);
        let events = &self.events;
        indices[start..]
            .iter()
            .copied()
            .filter(move |&index| keep(&events[index]))
            .take(limit)
    }
}

/// The cursor of the event at `index` in [`State::events`].
fn cursor_at(index: usize) -> Cursor {
    let position = index as i64 + 1;
    Cursor {
        commit: position,
        position,
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
        let state = &mut *state;
        for table in tables {
            let rows = state.tables.entry(table.name.to_owned()).or_default();
            state.fields.insert(table.name.to_owned(), table.fields);
            match UniqueIndex::new(table) {
                Some(mut index) => {
                    for (id, row) in rows.iter() {
                        let values = index.values_of(Some(row))?;
                        index.insert(id, values);
                    }
                    state.unique.insert(table.name.to_owned(), index);
                }
                None => {
                    state.unique.remove(table.name);
                }
            }
        }
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn Transaction>> {
        Ok(Box::new(MemoryTransaction {
            state: self.state.clone(),
            events: Vec::new(),
            streams: FastMap::default(),
            rows: Vec::new(),
            unique: FastMap::default(),
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

    async fn visit_stream(
        &self,
        stream: &str,
        from_version: i64,
        visit: &mut (dyn for<'e> FnMut(&'e RecordedEvent) -> Result<()> + Send),
    ) -> Result<usize> {
        // The events are lent under the read lock: a replay copies nothing.
        let state = self.state.read().await;
        let Some(indices) = state.streams.get(stream) else {
            return Ok(0);
        };
        let skip = usize::try_from(from_version.max(0)).unwrap_or(0);
        let mut visited = 0;
        for &index in indices.iter().skip(skip) {
            visit(&state.events[index])?;
            visited += 1;
        }
        Ok(visited)
    }

    async fn read_category(
        &self,
        category: &str,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let state = self.state.read().await;
        let Some(indices) = state.categories.get(category) else {
            return Ok(Vec::new());
        };
        Ok(state
            .after(indices, after, limit, |_| true)
            .map(|index| state.events[index].clone())
            .collect())
    }

    async fn read_all(&self, after: Cursor, limit: usize) -> Result<Vec<RecordedEvent>> {
        let state = self.state.read().await;
        let first = state
            .events
            .partition_point(|event| event.metadata.cursor() <= after);
        Ok(state.events[first..].iter().take(limit).cloned().collect())
    }

    async fn read_correlated(&self, correlation_id: &str) -> Result<Vec<RecordedEvent>> {
        let state = self.state.read().await;
        Ok(state
            .events
            .iter()
            .filter(|event| event.metadata.correlation_id.as_str() == correlation_id)
            .cloned()
            .collect())
    }

    async fn read_categories(&self, read: &GlobalRead<'_>) -> Result<Vec<RecordedEvent>> {
        if let Some(partition) = &read.partition {
            partition.check()?;
        }
        let keep = |event: &RecordedEvent| {
            read.partition
                .is_none_or(|partition| partition.contains(&event.metadata.stream))
        };
        let state = self.state.read().await;
        // The first `limit` of each category, merged: the first `limit` of all are among them.
        let mut indices: Vec<usize> = Vec::new();
        for category in read
            .categories
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            if let Some(of_category) = state.categories.get(*category) {
                indices.extend(state.after(of_category, read.after, read.limit, keep));
            }
        }
        indices.sort_unstable();
        indices.truncate(read.limit);
        Ok(indices
            .into_iter()
            .map(|index| state.events[index].clone())
            .collect())
    }

    async fn backlog(&self, read: &GlobalRead<'_>) -> Result<crate::store::Backlog> {
        if let Some(partition) = &read.partition {
            partition.check()?;
        }
        let keep = |event: &RecordedEvent| {
            read.partition
                .is_none_or(|partition| partition.contains(&event.metadata.stream))
        };
        let state = self.state.read().await;
        // Counted over the indices: no event is copied.
        let mut backlog = crate::store::Backlog::default();
        let mut last = None;
        for category in read
            .categories
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
        {
            if let Some(of_category) = state.categories.get(*category) {
                for index in state.after(of_category, read.after, usize::MAX, keep) {
                    backlog.events += 1;
                    last = last.max(Some(index));
                }
            }
        }
        backlog.last = last.map(cursor_at);
        Ok(backlog)
    }

    async fn head(&self) -> Result<Cursor> {
        let state = self.state.read().await;
        Ok(state
            .events
            .last()
            .map_or(Cursor::START, |event| event.metadata.cursor()))
    }

    async fn stream_version(&self, stream: &str) -> Result<i64> {
        Ok(self.state.read().await.stream_version(stream))
    }

    async fn get_json_row(&self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        let state = self.state.read().await;
        match state.tables.get(table).and_then(|rows| rows.get(id)) {
            Some(row) => row.to_document(id).map(Some),
            None => Ok(None),
        }
    }

    async fn get_row(&self, table: &str, id: &str) -> Result<Option<Row>> {
        let state = self.state.read().await;
        match state.tables.get(table).and_then(|rows| rows.get(id)) {
            Some(row) => row.to_row(id).map(Some),
            None => Ok(None),
        }
    }

    async fn query(&self, table: &str, query: &QuerySpec) -> Result<Vec<JsonRow>> {
        let state = self.state.read().await;
        let Some(rows) = state.tables.get(table) else {
            return Ok(Vec::new());
        };
        let fields = state.fields.get(table).copied().unwrap_or_default();
        let found = select(rows.iter(), fields, query)?;
        let mut documents = Vec::new();
        for (id, _) in found
            .into_iter()
            .skip(query.offset)
            .take(query.limit.unwrap_or(usize::MAX))
        {
            documents.push(rows[id].to_document(id)?);
        }
        Ok(documents)
    }

    async fn count(&self, table: &str, query: &QuerySpec) -> Result<u64> {
        let state = self.state.read().await;
        let Some(rows) = state.tables.get(table) else {
            return Ok(0);
        };
        let unpaged = QuerySpec {
            order: Vec::new(),
            ..query.clone()
        };
        Ok(select(rows.iter(), &[], &unpaged)?.len() as u64)
    }
}

/// A transaction: what it wrote and what it relied on, applied at `commit` (see the module
/// documentation). It holds no lock between calls.
struct MemoryTransaction {
    state: Arc<RwLock<State>>,
    /// Appended events, not yet in `state`, in append order.
    events: Vec<RecordedEvent>,
    /// The streams appended to.
    streams: FastMap<String, Appended>,
    /// The rows read or written, by table, then id. A transaction touches a few tables, so
    /// they are found by a scan, without building an owned key.
    rows: Vec<(String, FastMap<String, Touched>)>,
    /// Unique values written, by table (tables with unique fields only).
    unique: FastMap<String, PendingUnique>,
}

/// A stream a transaction appended to.
struct Appended {
    /// The stream's committed version when the transaction first appended to it.
    base: i64,
    /// Whether an append expected a version: then the stream must still be at `base` at
    /// commit.
    checked: bool,
    /// Its version after the transaction's appends.
    version: i64,
}

/// A row a transaction read or wrote.
#[derive(Default)]
struct Touched {
    /// What the transaction relies on in the committed row, checked again at commit.
    check: Option<RowCheck>,
    /// `Some(Some(row))` written, `Some(None)` removed, `None` only read.
    write: Option<Option<StoredRow>>,
}

/// What a written row must still be at commit.
#[derive(Clone, Copy)]
enum RowCheck {
    /// The committed row's version (`-1`: no row), for a write with an expected version.
    Version(i64),
    /// The commit that wrote the row as read (`None`: there was no row), for a write after a
    /// read.
    Unchanged(Option<u64>),
}

/// The number a commit is reported as in a version conflict (`-1`: no row).
fn commit_number(commit: Option<u64>) -> i64 {
    commit.map_or(-1, |commit| i64::try_from(commit).unwrap_or(i64::MAX))
}

/// Whether a row `id` of a transaction may not hold `value` in unique field `field`: another
/// row holds it, among the transaction's writes or the committed rows it did not rewrite.
fn taken(
    index: &UniqueIndex,
    pending: &PendingUnique,
    field: usize,
    value: &str,
    id: &str,
) -> bool {
    let by_pending = pending
        .owners
        .get(field)
        .and_then(|owners| owners.get(value))
        .is_some_and(|owner| owner != id);
    // A committed owner this transaction rewrote holds another value now. (Checked even when
    // the transaction wrote the value before: another commit may have taken it since.)
    let by_committed = index
        .owners
        .get(field)
        .and_then(|owners| owners.get(value))
        .is_some_and(|owner| owner != id && !pending.values.contains_key(owner));
    by_pending || by_committed
}

impl MemoryTransaction {
    /// The transaction's own write of a row: `Some(None)` when it removed the row, `None`
    /// when it did not write it.
    fn written(&self, table: &str, id: &str) -> Option<Option<&StoredRow>> {
        let (_, rows) = self.rows.iter().find(|(name, _)| name == table)?;
        rows.get(id)?.write.as_ref().map(Option::as_ref)
    }

    fn touch(&mut self, table: &str, id: String) -> &mut Touched {
        let index = match self.rows.iter().position(|(name, _)| name == table) {
            Some(index) => index,
            None => {
                self.rows.push((table.to_owned(), FastMap::default()));
                self.rows.len() - 1
            }
        };
        self.rows[index].1.entry(id).or_default()
    }

    /// A row as this transaction sees it, through `convert`; a committed row read is recorded,
    /// so that writing it later requires it unchanged at commit.
    async fn read<T>(
        &mut self,
        table: &str,
        id: &str,
        convert: impl Fn(&StoredRow) -> Result<T>,
    ) -> Result<Option<T>> {
        if let Some(written) = self.written(table, id) {
            return written.map(convert).transpose();
        }
        let (row, commit) = {
            let state = self.state.read().await;
            match state.tables.get(table).and_then(|rows| rows.get(id)) {
                Some(row) => (Some(convert(row)?), Some(row.commit)),
                None => (None, None),
            }
        };
        self.touch(table, id.to_owned()).check = Some(RowCheck::Unchanged(commit));
        Ok(row)
    }

    /// Records a write; `check` is what it relies on in the committed row, unless an earlier
    /// read or write of the row already relies on something.
    fn write(&mut self, table: &str, id: String, row: Option<StoredRow>, check: Option<RowCheck>) {
        let touched = self.touch(table, id);
        if touched.check.is_none() {
            touched.check = check;
        }
        touched.write = Some(row);
    }

    /// Checks a write against the table's unique fields and records its values; a value
    /// another row holds (as this transaction sees it) is the field's validation error.
    async fn check_unique(&mut self, table: &str, id: &str, row: Option<&StoredRow>) -> Result<()> {
        let state = self.state.read().await;
        let Some(index) = state.unique.get(table) else {
            return Ok(());
        };
        let values = index.values_of(row)?;
        let pending = self
            .unique
            .entry(table.to_owned())
            .or_insert_with(|| PendingUnique {
                owners: vec![FastMap::default(); index.fields.len()],
                values: FastMap::default(),
            });
        for (field, value) in values.iter().enumerate() {
            if let Some(value) = value
                && taken(index, pending, field, value, id)
            {
                return Err(already_taken(index.element, index.fields[field]));
            }
        }
        if let Some(old) = pending.values.remove(id) {
            for (owners, value) in pending.owners.iter_mut().zip(old) {
                if let Some(value) = value
                    && owners.get(&value).is_some_and(|owner| owner == id)
                {
                    owners.remove(&value);
                }
            }
        }
        for (owners, value) in pending.owners.iter_mut().zip(&values) {
            if let Some(value) = value {
                owners.insert(value.clone(), id.to_owned());
            }
        }
        pending.values.insert(id.to_owned(), values);
        Ok(())
    }

    /// Whether committing would change nothing (the transaction only read).
    fn is_read_only(&self) -> bool {
        self.events.is_empty()
            && self
                .rows
                .iter()
                .all(|(_, rows)| rows.values().all(|touched| touched.write.is_none()))
    }
}

/// Checks, under the store's exclusive lock, everything a transaction relied on: its appends'
/// expected versions, its rows' versions or unchanged state, its unique values.
fn validate(
    state: &State,
    streams: &FastMap<String, Appended>,
    rows: &[(String, FastMap<String, Touched>)],
    unique: &FastMap<String, PendingUnique>,
) -> Result<()> {
    for (stream, appended) in streams {
        let actual = state.stream_version(stream);
        if appended.checked && actual != appended.base {
            return Err(Error::VersionConflict {
                stream: stream.clone(),
                expected: appended.base,
                actual,
            });
        }
    }
    for (table, touched) in rows {
        let committed = state.tables.get(table);
        for (id, touched) in touched {
            let (Some(_), Some(check)) = (&touched.write, touched.check) else {
                continue;
            };
            let row = committed.and_then(|rows| rows.get(id));
            let (expected, actual) = match check {
                RowCheck::Version(expected) => (expected, row.map_or(-1, |row| row.version)),
                RowCheck::Unchanged(read) => (
                    commit_number(read),
                    commit_number(row.map(|row| row.commit)),
                ),
            };
            if expected != actual {
                return Err(Error::VersionConflict {
                    stream: format!("{table}/{id}"),
                    expected,
                    actual,
                });
            }
        }
    }
    for (table, pending) in unique {
        let Some(index) = state.unique.get(table) else {
            continue;
        };
        for (id, values) in &pending.values {
            for (field, value) in values.iter().enumerate() {
                if let Some(value) = value
                    && taken(index, pending, field, value, id)
                {
                    return Err(already_taken(index.element, index.fields[field]));
                }
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Transaction for MemoryTransaction {
    async fn append(
        &mut self,
        stream: &str,
        expected: ExpectedVersion,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<EventMetadata>> {
        // What the store holds now (a short shared lock): the base of a first append to the
        // stream, and where the provisional positions start.
        let (committed_version, committed_events) = {
            let state = self.state.read().await;
            (state.stream_version(stream), state.events.len())
        };
        let current = self
            .streams
            .get(stream)
            .map_or(committed_version, |appended| appended.version);
        if let ExpectedVersion::Exact(expected) = expected
            && expected != current
        {
            return Err(Error::VersionConflict {
                stream: stream.to_owned(),
                expected,
                actual: current,
            });
        }
        let mut position = (committed_events + self.events.len()) as i64;
        let mut version = current;
        for event in &mut events {
            position += 1;
            version += 1;
            event.metadata.global_position = position;
            event.metadata.commit = position;
            event.metadata.version = version;
            if event.metadata.stream != stream {
                event.metadata.stream = stream.to_owned();
            }
        }
        let checked = matches!(expected, ExpectedVersion::Exact(_));
        match self.streams.get_mut(stream) {
            Some(appended) => {
                appended.version = version;
                appended.checked |= checked;
            }
            None => {
                self.streams.insert(
                    stream.to_owned(),
                    Appended {
                        base: current,
                        checked,
                        version,
                    },
                );
            }
        }
        let metadata = events.iter().map(|event| event.metadata.clone()).collect();
        self.events.extend(events);
        Ok(metadata)
    }

    async fn get_json_row(&mut self, table: &str, id: &str) -> Result<Option<JsonRow>> {
        self.read(table, id, |row| row.to_document(id)).await
    }

    async fn get_row(&mut self, table: &str, id: &str) -> Result<Option<Row>> {
        self.read(table, id, |row| row.to_row(id)).await
    }

    async fn put_row(&mut self, table: &str, id: String, row: Arc<dyn TypedRow>) -> Result<()> {
        let row = StoredRow::typed(row);
        self.check_unique(table, &id, Some(&row)).await?;
        self.write(table, id, Some(row), None);
        Ok(())
    }

    async fn put_json_row(
        &mut self,
        table: &str,
        document: JsonRow,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let mut check = None;
        if let Some(expected) = expected_version {
            let actual = match self.written(table, &document.id) {
                Some(written) => written.map_or(-1, |row| row.version),
                None => {
                    let state = self.state.read().await;
                    // Not written by this transaction: the committed row must keep this
                    // version until commit.
                    check = Some(RowCheck::Version(expected));
                    state
                        .tables
                        .get(table)
                        .and_then(|rows| rows.get(&document.id))
                        .map_or(-1, |row| row.version)
                }
            };
            if actual != expected {
                return Err(Error::VersionConflict {
                    stream: format!("{table}/{}", document.id),
                    expected,
                    actual,
                });
            }
        }
        let id = document.id.clone();
        let row = StoredRow::document(document);
        self.check_unique(table, &id, Some(&row)).await?;
        self.write(table, id, Some(row), check);
        Ok(())
    }

    async fn remove_row(&mut self, table: &str, id: &str) -> Result<()> {
        self.check_unique(table, id, None).await?;
        self.write(table, id.to_owned(), None, None);
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        if self.is_read_only() {
            return Ok(());
        }
        let MemoryTransaction {
            state,
            events,
            streams,
            rows,
            unique,
        } = *self;
        // From here on nothing awaits but the lock: the checks and writes below happen at
        // once or (if this future is dropped while waiting) not at all.
        let mut state = state.write().await;
        let state = &mut *state;
        validate(state, &streams, &rows, &unique)?;

        state.commits += 1;
        let commit = state.commits;
        // Appends without an expected version run on from the stream's version now, which
        // other commits may have moved since (those with one were checked unmoved above).
        let shifts: FastMap<&str, i64> = streams
            .iter()
            .filter(|(_, appended)| !appended.checked)
            .filter_map(|(stream, appended)| {
                let shift = state.stream_version(stream) - appended.base;
                (shift != 0).then_some((stream.as_str(), shift))
            })
            .collect();
        for mut event in events {
            event.metadata.global_position = state.events.len() as i64 + 1;
            event.metadata.commit = event.metadata.global_position;
            if let Some(shift) = shifts.get(event.metadata.stream.as_str()) {
                event.metadata.version += shift;
            }
            state.push(event);
        }
        // Every old value goes before any new one is taken: a row may take a value another
        // row of this transaction gave up.
        for (table, pending) in unique {
            if let Some(index) = state.unique.get_mut(&table) {
                for id in pending.values.keys() {
                    index.remove(id);
                }
                for (id, values) in pending.values {
                    index.insert(&id, values);
                }
            }
        }
        for (table, touched) in rows {
            let mut writes = touched
                .into_iter()
                .filter_map(|(id, touched)| Some((id, touched.write?)))
                .peekable();
            if writes.peek().is_none() {
                continue;
            }
            let stored = state.tables.entry(table).or_default();
            for (id, row) in writes {
                match row {
                    Some(mut row) => {
                        row.commit = commit;
                        stored.insert(id, row);
                    }
                    None => {
                        stored.remove(&id);
                    }
                }
            }
        }
        Ok(())
    }
}
