//! Repositories: load and save aggregates and projection rows, and query rows.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::element::{Aggregate, InvariantStage, Persisted, Projection, Queryable};
use crate::model::error::{Error, Result};
use crate::model::event::{EventMetadata, RecordedEvent};
use crate::model::identifier::Identifier;
use crate::model::query::{Filter, OrderBy, QuerySpec};
use crate::registry::EventInfo;
use crate::runtime::context::{AggregateChange, Context};
use crate::runtime::domain::Domain;
use crate::runtime::snapshot;
use crate::store::{JsonRow, Row};

/// The repository of `T` within a unit of work. Reads see the unit of work's own writes;
/// writes commit with it.
pub struct Repository<'a, T> {
    ctx: &'a mut Context,
    _element: PhantomData<fn() -> T>,
}

impl<'a, T: Persisted> Repository<'a, T> {
    pub(crate) fn new(ctx: &'a mut Context) -> Self {
        Self {
            ctx,
            _element: PhantomData,
        }
    }

    /// The unit of work it reads and writes.
    pub(crate) fn context(&self) -> &Context {
        self.ctx
    }

    /// The element with this id, or [`Error::NotFound`].
    pub async fn get(&self, id: impl AsRef<str>) -> Result<T> {
        let id = id.as_ref();
        self.find(id).await?.ok_or_else(|| Error::NotFound {
            element: T::NAME.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The element with this id, if it exists.
    pub async fn find(&self, id: impl AsRef<str>) -> Result<Option<T>> {
        let id = id.as_ref();
        if !storable(id) {
            return Ok(None);
        }
        T::load(self.ctx, Identifier::new(id)).await
    }

    /// Adds or updates the element: its new events and state commit with the unit of work.
    pub async fn add(&mut self, value: T) -> Result<()> {
        T::save(self.ctx, value).await
    }

    /// Removes a projection row (aggregates are not removed: close them with an event).
    pub async fn remove(&mut self, id: impl AsRef<str>) -> Result<()>
    where
        T: Projection,
    {
        let table = self
            .ctx
            .domain
            .registry()
            .projection_info::<T>()?
            .table
            .clone();
        self.ctx.work.rows.put(&table, id.as_ref().to_owned(), None);
        Ok(())
    }

    /// A query on the rows of a projection or state-stored aggregate.
    pub fn query(&self) -> Query<'_, T>
    where
        T: Queryable,
    {
        Query {
            domain: &self.ctx.domain,
            spec: QuerySpec::default(),
            _element: PhantomData,
        }
    }
}

/// The repository of `T` outside a handler: each `add` commits at once, through the same
/// pipeline as a command (projectors and event handlers run).
pub struct DomainRepository<T> {
    domain: Domain,
    _element: PhantomData<fn() -> T>,
}

impl<T: Persisted> DomainRepository<T> {
    pub(crate) fn new(domain: Domain) -> Self {
        Self {
            domain,
            _element: PhantomData,
        }
    }

    /// The domain it reads and writes.
    pub(crate) fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The element with this id, or [`Error::NotFound`].
    pub async fn get(&self, id: impl AsRef<str>) -> Result<T> {
        Context::reader(&self.domain)
            .repository::<T>()
            .get(id)
            .await
    }

    /// The element with this id, if it exists.
    pub async fn find(&self, id: impl AsRef<str>) -> Result<Option<T>> {
        Context::reader(&self.domain)
            .repository::<T>()
            .find(id)
            .await
    }

    /// Adds or updates the element and commits at once.
    pub async fn add(&self, value: T) -> Result<()> {
        let mut ctx = self.domain.unit_of_work();
        ctx.repository::<T>().add(value).await?;
        ctx.commit().await
    }

    /// Removes a projection row and commits at once.
    pub async fn remove(&self, id: impl AsRef<str>) -> Result<()>
    where
        T: Projection,
    {
        let mut ctx = self.domain.unit_of_work();
        ctx.repository::<T>().remove(id).await?;
        ctx.commit().await
    }

    /// A query on the rows of a projection or state-stored aggregate.
    pub fn query(&self) -> Query<'_, T>
    where
        T: Queryable,
    {
        Query {
            domain: &self.domain,
            spec: QuerySpec::default(),
            _element: PhantomData,
        }
    }
}

/// A query on the rows of a projection or state-stored aggregate: filters, order, paging.
#[must_use = "a query does nothing until `all`, `first` or `count` is awaited"]
pub struct Query<'a, T> {
    domain: &'a Domain,
    spec: QuerySpec,
    _element: PhantomData<fn() -> T>,
}

impl<T: Queryable> Query<'_, T> {
    /// Keeps rows matching the filter (every filter must match).
    pub fn filter(mut self, filter: Filter<T>) -> Self {
        self.spec.filters.push(filter.condition);
        self
    }

    /// Sorts by a field; later calls break ties of earlier ones.
    pub fn order_by(mut self, order: OrderBy<T>) -> Self {
        self.spec.order.push(order.order);
        self
    }

    /// At most `limit` rows.
    pub fn limit(mut self, limit: usize) -> Self {
        self.spec.limit = Some(limit);
        self
    }

    /// Skips the first `offset` rows.
    pub fn offset(mut self, offset: usize) -> Self {
        self.spec.offset = offset;
        self
    }

    /// The query as adapters receive it.
    pub fn spec(&self) -> &QuerySpec {
        &self.spec
    }

    /// Every matching row. Inside a unit of work, rows it wrote are not yet visible to
    /// queries (they are to `get`).
    pub async fn all(self) -> Result<Vec<T>> {
        let domain = self.domain;
        let table = domain.registry().table_of::<T>()?;
        let rows = domain.storage().query(table, &self.spec).await?;
        rows.into_iter()
            .map(|row| {
                let version = row.version;
                let mut value = decode_document::<T>(table, row)?;
                value.loaded_row(version);
                Ok(value)
            })
            .collect()
    }

    /// The first matching row.
    pub async fn first(self) -> Result<Option<T>> {
        Ok(self.limit(1).all().await?.into_iter().next())
    }

    /// How many rows match (order and paging are ignored).
    pub async fn count(self) -> Result<u64> {
        let domain = self.domain;
        let table = domain.registry().table_of::<T>()?;
        domain.storage().count(table, &self.spec).await
    }
}

/// Whether a text can be stored at all. No adapter holds text with a NUL character
/// (validation refuses it, as PostgreSQL cannot store it), so such an id names nothing: it is
/// answered as not found on every adapter instead of reaching the database.
pub(crate) fn storable(text: &str) -> bool {
    !text.contains('\0')
}

fn decode_document<T: Persisted>(table: &str, document: JsonRow) -> Result<T> {
    serde_json::from_value(Value::Object(document.data)).map_err(|error| Error::Serialization {
        what: format!("row `{}` of table `{table}`", document.id),
        message: error.to_string(),
    })
}

fn encode_document<T: Persisted>(value: &T, version: i64) -> Result<JsonRow> {
    match serde_json::to_value(value) {
        Ok(Value::Object(data)) => Ok(JsonRow {
            id: value.identity().into_string(),
            version,
            data,
        }),
        Ok(_) => Err(Error::Serialization {
            what: T::NAME.to_owned(),
            message: "did not serialize to a JSON object".to_owned(),
        }),
        Err(error) => Err(Error::Serialization {
            what: T::NAME.to_owned(),
            message: error.to_string(),
        }),
    }
}

/// Loads a projection row: this unit of work's own write, else the stored row. (Strategy of
/// `#[projection]`.)
pub async fn load_projection<P: Projection + Persisted>(
    ctx: &Context,
    id: Identifier,
) -> Result<Option<P>> {
    let table = &ctx.domain.registry().projection_info::<P>()?.table;
    let row = match ctx.work.rows.get(table, id.as_str()) {
        Some(written) => written.clone().map(Row::Typed),
        None => ctx.domain.storage().get_row(table, id.as_str()).await?,
    };
    row.map(|row| decode_row::<P>(table, id.as_str(), row))
        .transpose()
}

/// A projection from a row as an adapter or a unit of work holds it.
pub(crate) fn decode_row<P: Persisted>(table: &str, id: &str, row: Row) -> Result<P> {
    match row {
        // A row this process wrote is still the typed value: a clone, no JSON.
        Row::Typed(row) => match row.as_any().downcast_ref::<P>() {
            Some(value) => Ok(value.clone()),
            None => decode_document::<P>(
                table,
                JsonRow {
                    id: id.to_owned(),
                    version: 0,
                    data: row.to_json()?,
                },
            ),
        },
        Row::Json(document) => decode_document::<P>(table, document),
    }
}

/// Checks a projection row's fields before it is written.
pub(crate) fn validate_projection<P: Persisted>(value: &P) -> Result<()> {
    value.validate().map_err(|errors| Error::Validation {
        element: P::NAME.to_owned(),
        errors,
    })
}

/// Gives a state-stored aggregate decoded from a queried row its stored version, as
/// [`load_aggregate`] does. (`Queryable::loaded_row` of `#[aggregate]`.)
pub fn loaded_aggregate_row<A: Aggregate>(aggregate: &mut A, version: i64) {
    aggregate.meta_mut().set_version(version);
}

/// Records a projection row write. (Strategy of `#[projection]`.)
pub async fn save_projection<P: Projection + Persisted>(ctx: &mut Context, value: P) -> Result<()> {
    validate_projection(&value)?;
    let table = &ctx.domain.registry().projection_info::<P>()?.table;
    let id = value.identity().into_string();
    ctx.work.rows.put(table, id, Some(Arc::new(value)));
    Ok(())
}

/// Loads an aggregate: this unit of work's copy, else the cached state caught up with the
/// stream's newer events, else its latest snapshot and the events after it (or its row).
/// (Strategy of `#[aggregate]`.)
pub async fn load_aggregate<A: Aggregate>(ctx: &Context, id: Identifier) -> Result<Option<A>> {
    let registry = ctx.domain.registry();
    let info = registry.aggregate_info::<A>()?;
    let key = aggregate_key(info.event_sourced, &info.category, &info.table, id.as_str());
    if let Some(&index) = ctx.work.aggregate_index.get(&key) {
        return Ok(ctx.work.aggregates[index]
            .state
            .downcast_ref::<A>()
            .cloned());
    }
    if !info.event_sourced {
        let Some(document) = ctx
            .domain
            .storage()
            .get_json_row(&info.table, id.as_str())
            .await?
        else {
            return Ok(None);
        };
        let version = document.version;
        let mut aggregate = decode_document::<A>(&info.table, document)?;
        aggregate.meta_mut().set_version(version);
        return Ok(Some(aggregate));
    }
    Ok(load_current::<A>(&ctx.domain, &key, id)
        .await?
        .map(|loaded| loaded.aggregate))
}

/// An event-sourced aggregate as committed, with the id of the last event applied to it.
pub(crate) struct Loaded<A> {
    pub(crate) aggregate: A,
    pub(crate) last_event: Identifier,
}

/// Loads the committed state of the event-sourced aggregate of stream `key`: the cache
/// caught up, else the latest snapshot plus the events after it, else a replay. A cold load
/// that replayed at least the snapshot threshold's events, or found a snapshot it could not
/// use, writes a new snapshot.
pub(crate) async fn load_current<A: Aggregate>(
    domain: &Domain,
    key: &str,
    id: Identifier,
) -> Result<Option<Loaded<A>>> {
    if let Some((cached, last_event)) = domain.cache().get::<A>(key) {
        // Catch up from the cached version itself, not the one after it: the store must
        // still hold the event the cache applied last. If it does not (the history was
        // rewritten or truncated behind this process's back), the cache is dropped and the
        // stream replayed, so a corrupted history is reported instead of appended to.
        let anchor = (cached.meta().version(), last_event);
        match replay(domain, key, cached, Some(&anchor), Bound::End).await? {
            Replayed::Caught {
                aggregate,
                last,
                applied,
            } => {
                let last_event = last.map_or(anchor.1, |(id, _)| id);
                if applied > 0 {
                    domain
                        .cache()
                        .put(key.to_owned(), &aggregate, last_event.clone());
                }
                return Ok(Some(Loaded {
                    aggregate,
                    last_event,
                }));
            }
            Replayed::Stale => {
                tracing::warn!(
                    stream = %key,
                    cached_version = anchor.0,
                    "the stored stream no longer holds the last event this process applied; \
                     replaying it from the start"
                );
                domain.cache().remove(key);
            }
        }
    }

    let (start, anchor, mut replace) = match snapshot::latest::<A>(domain, key).await? {
        snapshot::Latest::Found {
            aggregate,
            version,
            last_event,
        } => (aggregate, Some((version, last_event)), false),
        snapshot::Latest::Missing => (A::blank(id.clone()), None, false),
        snapshot::Latest::Unusable => (A::blank(id.clone()), None, true),
    };
    let mut replayed = replay(domain, key, start, anchor.as_ref(), Bound::End).await?;
    if let (Replayed::Stale, Some((version, _))) = (&replayed, &anchor) {
        tracing::warn!(
            stream = %key,
            snapshot_version = version,
            "the stored stream no longer holds the last event of the aggregate's snapshot; \
             replaying it from the start and replacing the snapshot"
        );
        replace = true;
        replayed = replay(domain, key, A::blank(id), None, Bound::End).await?;
    }
    let Replayed::Caught {
        mut aggregate,
        last,
        applied,
    } = replayed
    else {
        // Not reached: a replay without an anchor is never stale.
        return Err(Error::storage(format!(
            "stream `{key}` changed while it was replayed"
        )));
    };
    let Some((last_event, _)) = last else {
        return Ok(None);
    };
    let threshold = snapshot::threshold::<A>(domain);
    if replace || (threshold > 0 && applied as u64 >= threshold) {
        snapshot::write_loaded(domain, key, &mut aggregate, &last_event, replace).await;
    }
    domain
        .cache()
        .put(key.to_owned(), &aggregate, last_event.clone());
    Ok(Some(Loaded {
        aggregate,
        last_event,
    }))
}

/// How far a replay reads a stream.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound {
    /// Every stored event.
    End,
    /// Events up to this version, included.
    Version(i64),
    /// Events up to the first one recorded after this time.
    Time(DateTime<Utc>),
}

impl Bound {
    fn admits(&self, metadata: &EventMetadata) -> bool {
        match *self {
            Bound::End => true,
            Bound::Version(version) => metadata.version <= version,
            Bound::Time(time) => metadata.time <= time,
        }
    }
}

pub(crate) enum Replayed<A> {
    /// The aggregate with the stored events applied (up to the bound).
    Caught {
        aggregate: A,
        /// The id and time of the last event read into it (the anchor included), if any.
        last: Option<(Identifier, DateTime<Utc>)>,
        /// How many events were applied (the anchor is not).
        applied: usize,
    },
    /// The stored stream does not hold the anchor event within the bound (see
    /// `load_current`).
    Stale,
}

/// Applies the stored events of stream `key` after `aggregate`'s version to it, up to
/// `bound`. With an anchor `(version, event id)`, the first stored event read must be exactly
/// that event (already applied, so skipped).
pub(crate) async fn replay<A: Aggregate>(
    domain: &Domain,
    key: &str,
    mut aggregate: A,
    anchor: Option<&(i64, Identifier)>,
    bound: Bound,
) -> Result<Replayed<A>> {
    let registry = domain.registry();
    let from = match anchor {
        Some(&(version, _)) => version,
        None => aggregate.meta().version() + 1,
    };
    let mut pending_anchor = anchor;
    let mut stale = false;
    let mut past_bound = false;
    let mut last: Option<(Identifier, DateTime<Utc>)> = None;
    let mut applied = 0;
    // Streams mostly repeat a few event types: remember the last lookup instead of hashing
    // the type name of every event of a long replay.
    let mut last_type: Option<&EventInfo> = None;
    let mut apply = |recorded: &RecordedEvent| -> Result<()> {
        let metadata = &recorded.metadata;
        if let Some((version, id)) = pending_anchor.take() {
            if metadata.version == *version && metadata.id == *id && bound.admits(metadata) {
                last = Some((metadata.id.clone(), metadata.time));
                return Ok(());
            }
            stale = true;
            return Err(Error::storage("stale anchor"));
        }
        if !bound.admits(metadata) {
            past_bound = true;
            return Err(Error::storage("past the bound"));
        }
        let event_info = match last_type {
            Some(info) if info.type_name == metadata.type_name => info,
            _ => {
                let info = registry.event_by_type_name(recorded)?;
                last_type = Some(info);
                info
            }
        };
        if event_info.aggregate != TypeId::of::<A>() {
            return Err(Error::Serialization {
                what: recorded.describe(),
                message: format!(
                    "the event belongs to `{}`, not `{}`",
                    event_info.aggregate_name,
                    A::NAME
                ),
            });
        }
        let event = event_info.decode(recorded)?;
        if metadata.version != aggregate.meta().version() + 1 {
            return Err(Error::Serialization {
                what: recorded.describe(),
                message: format!(
                    "expected version {} in the stream",
                    aggregate.meta().version() + 1
                ),
            });
        }
        (event_info.replay)(&mut aggregate, event.as_ref());
        last = Some((metadata.id.clone(), metadata.time));
        applied += 1;
        Ok(())
    };
    let visited = domain.storage().visit_stream(key, from, &mut apply).await;
    if stale || (visited.is_ok() && pending_anchor.is_some()) {
        return Ok(Replayed::Stale);
    }
    if !past_bound {
        visited?;
    }
    Ok(Replayed::Caught {
        aggregate,
        last,
        applied,
    })
}

/// Records an aggregate's new events and state in the unit of work. (Strategy of `#[aggregate]`.)
pub async fn save_aggregate<A: Aggregate>(ctx: &mut Context, mut aggregate: A) -> Result<()> {
    let registry = ctx.domain.registry();
    let info = registry.aggregate_info::<A>()?;
    if !info.event_sourced {
        // Stored aggregates change their fields directly, so their rules are checked here.
        let mut errors = aggregate.validate().err().unwrap_or_default();
        for invariant in A::invariants()
            .iter()
            .filter(|i| i.stage == InvariantStage::Post)
        {
            if let Err(error) = (invariant.check)(&aggregate) {
                errors.merge(error, None);
            }
        }
        if !errors.is_empty() {
            return Err(Error::Invariant {
                aggregate: A::NAME.to_owned(),
                errors,
            });
        }
    }
    let id = aggregate.id().clone();
    let key = aggregate_key(info.event_sourced, &info.category, &info.table, id.as_str());
    let loaded_version = aggregate.meta().loaded_version();
    if aggregate.meta().is_historical() {
        crate::runtime::temporal::check_current(ctx, &key, &aggregate).await?;
        aggregate.meta_mut().set_historical(false);
    }
    let events = aggregate.meta_mut().take_pending();
    let version = aggregate.meta().version();
    // Whether the committed state gets a snapshot: decided here, where the aggregate's type
    // is known, and marked in its state so the cache knows of the snapshot to come.
    let snapshot_base = match ctx.work.aggregate_index.get(&key) {
        Some(&index) => ctx.work.aggregates[index]
            .snapshot
            .as_ref()
            .map(|plan| plan.base),
        None => None,
    }
    .unwrap_or(aggregate.meta().snapshot_version());
    let snapshot = info.event_sourced.then(|| {
        let plan = snapshot::plan::<A>(&ctx.domain, snapshot_base, version);
        if plan.due {
            aggregate.meta_mut().set_snapshot_version(version);
        }
        plan
    });
    let stream = if info.event_sourced {
        key.clone()
    } else {
        joined(&info.category, '-', id.as_str())
    };
    let document = if info.event_sourced {
        None
    } else {
        Some(encode_document(&aggregate, loaded_version + 1)?)
    };

    let work = &mut ctx.work;
    match work.aggregate_index.get(&key).copied() {
        Some(index) => {
            let change = &mut work.aggregates[index];
            if change.version != loaded_version && info.event_sourced {
                return Err(Error::VersionConflict {
                    stream,
                    expected: loaded_version,
                    actual: change.version,
                });
            }
            change.events.extend(events);
            change.version = version;
            change.snapshot = snapshot;
            change.state = Arc::new(aggregate);
            if document.is_some() {
                change.document = document;
            }
        }
        None => {
            let index = work.aggregates.len();
            work.aggregate_index.insert(key.clone(), index);
            work.aggregates.push(AggregateChange {
                key,
                stream,
                event_sourced: info.event_sourced,
                table: info.table.clone(),
                expected_version: loaded_version,
                version,
                state: Arc::new(aggregate),
                document,
                events,
                snapshot,
            });
        }
    }
    Ok(())
}

pub(crate) fn aggregate_key(event_sourced: bool, category: &str, table: &str, id: &str) -> String {
    if event_sourced {
        joined(category, '-', id)
    } else {
        joined(table, '/', id)
    }
}

/// `a`, `separator`, `b` in one allocation: `format!` costs noticeably more on this path,
/// which every command takes twice (load and save).
pub(crate) fn joined(a: &str, separator: char, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + separator.len_utf8() + b.len());
    out.push_str(a);
    out.push(separator);
    out.push_str(b);
    out
}
