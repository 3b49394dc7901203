//! Snapshots of event-sourced aggregates: the state at a version, so that a cold load reads
//! the latest snapshot and only the events after it.
//!
//! One row per stream in the `fidelis_snapshots` system table ([`Snapshot`]), keyed by the
//! stream, holding the aggregate's fields as JSON, the version they include and the id of
//! the last event applied (a load checks that the store still holds that event at that
//! version before it trusts the snapshot, as it does for the aggregate cache).
//!
//! Snapshots are written
//! - after a commit that brings the events since the aggregate's latest snapshot to the
//!   threshold (the committed state, decided in `save_aggregate` where the type is known);
//! - by a cold load that replayed at least the threshold's events, or that found a snapshot
//!   it could not use (no longer decodes, or the stream no longer holds its last event);
//! - on demand ([`Domain::create_snapshot`], [`Domain::create_snapshots`]).
//!
//! Each is written in a transaction of its own, after the commit it follows: a snapshot that
//! cannot be written is logged and changes nothing else. Snapshots never change what a load
//! returns; they only shorten the replay.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::Utc;
use futures::future::BoxFuture;
use serde_json::Value;

use crate::model::element::Aggregate;
use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;
use crate::runtime::domain::Domain;
use crate::runtime::repository::{joined, load_current, storable};
use crate::runtime::temporal::event_sourced_named;
use crate::store::Cursor;
use crate::store::system::{self, Snapshot};

/// Serializes an aggregate's state given as `Any` (monomorphized per aggregate type).
type EncodeState = fn(&(dyn Any + Send + Sync)) -> Result<Value>;

/// Whether a unit of work's change of an event-sourced aggregate gets a snapshot once
/// committed.
#[derive(Clone, Copy)]
pub(crate) struct SnapshotPlan {
    /// The version of the latest snapshot known when the aggregate was loaded (`-1`: none).
    pub(crate) base: i64,
    /// Whether the events since `base` reach the threshold.
    pub(crate) due: bool,
    aggregate: &'static str,
    encode: EncodeState,
}

impl SnapshotPlan {
    /// The snapshot to write after the commit.
    pub(crate) fn snapshot(
        &self,
        stream: &str,
        version: i64,
        last_event: &Identifier,
        state: &Arc<dyn Any + Send + Sync>,
    ) -> DueSnapshot {
        DueSnapshot {
            stream: stream.to_owned(),
            aggregate: self.aggregate,
            version,
            last_event: last_event.clone(),
            state: Arc::clone(state),
            encode: self.encode,
        }
    }
}

/// A snapshot of a committed state, to write once the commit is durable.
pub(crate) struct DueSnapshot {
    stream: String,
    aggregate: &'static str,
    version: i64,
    last_event: Identifier,
    state: Arc<dyn Any + Send + Sync>,
    encode: EncodeState,
}

/// The snapshot threshold of `A` in this domain: its own, else the domain's (`0`: off).
pub(crate) fn threshold<A: Aggregate>(domain: &Domain) -> u64 {
    A::SNAPSHOT_THRESHOLD.unwrap_or_else(|| domain.snapshot_threshold())
}

/// Whether a commit that brings `A` to `version`, its latest snapshot being at `base`,
/// writes a snapshot.
pub(crate) fn plan<A: Aggregate>(domain: &Domain, base: i64, version: i64) -> SnapshotPlan {
    let threshold = threshold::<A>(domain);
    let since = u64::try_from(version.saturating_sub(base)).unwrap_or(0);
    SnapshotPlan {
        base,
        due: threshold > 0 && version >= 0 && since >= threshold,
        aggregate: A::NAME,
        encode: encode_erased::<A>,
    }
}

fn encode_erased<A: Aggregate>(state: &(dyn Any + Send + Sync)) -> Result<Value> {
    match state.downcast_ref::<A>() {
        Some(aggregate) => encode(aggregate),
        None => Err(Error::Serialization {
            what: A::NAME.to_owned(),
            message: "the committed state is not of the aggregate's type".to_owned(),
        }),
    }
}

fn encode<A: Aggregate>(aggregate: &A) -> Result<Value> {
    serde_json::to_value(aggregate).map_err(|error| Error::Serialization {
        what: format!("a snapshot of `{}`", A::NAME),
        message: error.to_string(),
    })
}

/// Writes the snapshots a commit made due; failures are logged, not returned (the commit
/// stands, and loads replay a few more events until the next snapshot).
pub(crate) async fn write_due(domain: &Domain, due: Vec<DueSnapshot>) {
    for snapshot in due {
        let written = async {
            let state = (snapshot.encode)(snapshot.state.as_ref())?;
            write(
                domain,
                row(
                    &snapshot.stream,
                    snapshot.aggregate,
                    snapshot.version,
                    &snapshot.last_event,
                    state,
                ),
                Overwrite::IfOlder,
            )
            .await
        }
        .await;
        match written {
            Ok(()) => tracing::debug!(
                stream = %snapshot.stream,
                version = snapshot.version,
                "snapshot written"
            ),
            Err(error) => tracing::warn!(
                stream = %snapshot.stream,
                version = snapshot.version,
                %error,
                "could not write the aggregate's snapshot; loads replay its events until the next one"
            ),
        }
    }
}

/// Writes a snapshot of an aggregate a cold load just rebuilt, and records it in the
/// aggregate's state; failures are logged (the load itself succeeded).
pub(crate) async fn write_loaded<A: Aggregate>(
    domain: &Domain,
    stream: &str,
    aggregate: &mut A,
    last_event: &Identifier,
    replace: bool,
) {
    let version = aggregate.meta().version();
    let overwrite = if replace {
        Overwrite::Always
    } else {
        Overwrite::IfOlder
    };
    let written = async {
        let state = encode(aggregate)?;
        write(
            domain,
            row(stream, A::NAME, version, last_event, state),
            overwrite,
        )
        .await
    }
    .await;
    match written {
        Ok(()) => {
            tracing::debug!(stream = %stream, version, "snapshot written by a cold load");
            aggregate.meta_mut().set_snapshot_version(version);
        }
        Err(error) => tracing::warn!(
            stream = %stream,
            version,
            %error,
            "could not write the aggregate's snapshot after a cold load"
        ),
    }
}

fn row(
    stream: &str,
    aggregate: &str,
    version: i64,
    last_event: &Identifier,
    state: Value,
) -> Snapshot {
    Snapshot {
        id: stream.to_owned(),
        aggregate: aggregate.to_owned(),
        version,
        last_event_id: last_event.as_str().to_owned(),
        state,
        taken_at: Utc::now(),
    }
}

/// Whether a snapshot replaces the stored one.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overwrite {
    /// Only when the stored one is older (or does not decode): two writers never move a
    /// stream's snapshot backwards.
    IfOlder,
    /// Always: the stored one was found unusable.
    Always,
}

async fn write(domain: &Domain, snapshot: Snapshot, overwrite: Overwrite) -> Result<()> {
    let mut transaction = domain.storage().begin().await?;
    if overwrite == Overwrite::IfOlder {
        // A row that does not decode as a snapshot is replaced like an older one.
        let stored = system::get_in::<Snapshot>(transaction.as_mut(), &snapshot.id)
            .await
            .ok()
            .flatten();
        if stored.is_some_and(|stored| stored.version >= snapshot.version) {
            return Ok(());
        }
    }
    system::put(transaction.as_mut(), snapshot).await?;
    transaction.commit().await
}

/// The latest snapshot of a stream, as a load can use it.
pub(crate) enum Latest<A> {
    /// None was taken.
    Missing,
    /// One that decodes as `A`.
    Found {
        aggregate: A,
        version: i64,
        last_event: Identifier,
    },
    /// One that no longer decodes (the aggregate's fields changed, or the row is corrupt):
    /// ignored with a warning, to be replaced.
    Unusable,
}

/// The latest snapshot of stream `stream`, for a load.
pub(crate) async fn latest<A: Aggregate>(domain: &Domain, stream: &str) -> Result<Latest<A>> {
    let stored = match system::get::<Snapshot>(domain.storage().as_ref(), stream).await {
        Ok(None) => return Ok(Latest::Missing),
        Ok(Some(snapshot)) => decode::<A>(snapshot),
        Err(error @ Error::Serialization { .. }) => Err(error),
        Err(error) => return Err(error),
    };
    match stored {
        Ok((version, aggregate, last_event)) => Ok(Latest::Found {
            aggregate,
            version,
            last_event,
        }),
        Err(error) => {
            tracing::warn!(
                stream = %stream,
                %error,
                "ignoring the aggregate's snapshot, which no longer decodes; replaying the stream \
                 and replacing it"
            );
            Ok(Latest::Unusable)
        }
    }
}

/// A snapshot row as `A` at its version, with the id of its last event.
fn decode<A: Aggregate>(snapshot: Snapshot) -> Result<(i64, A, Identifier)> {
    let what = || format!("the snapshot of stream `{}`", snapshot.id);
    if snapshot.aggregate != A::NAME {
        return Err(Error::Serialization {
            what: what(),
            message: format!(
                "it is a snapshot of `{}`, not `{}`",
                snapshot.aggregate,
                A::NAME
            ),
        });
    }
    if snapshot.version < 0 {
        return Err(Error::Serialization {
            what: what(),
            message: format!("version {} is not a stream version", snapshot.version),
        });
    }
    let mut aggregate: A =
        serde_json::from_value(snapshot.state.clone()).map_err(|error| Error::Serialization {
            what: what(),
            message: error.to_string(),
        })?;
    aggregate.meta_mut().set_version(snapshot.version);
    aggregate.meta_mut().set_snapshot_version(snapshot.version);
    Ok((
        snapshot.version,
        aggregate,
        Identifier::new(snapshot.last_event_id),
    ))
}

/// `event_store().latest_snapshot::<A>(id)`: a snapshot that does not decode is an error.
pub(crate) async fn latest_of<A: Aggregate>(domain: &Domain, id: &str) -> Result<Option<(i64, A)>> {
    let category = &event_sourced::<A>(domain)?.category;
    if !storable(id) {
        return Ok(None);
    }
    let stream = joined(category, '-', id);
    match system::get::<Snapshot>(domain.storage().as_ref(), &stream).await? {
        None => Ok(None),
        Some(snapshot) => {
            let (version, aggregate, _) = decode::<A>(snapshot)?;
            Ok(Some((version, aggregate)))
        }
    }
}

fn event_sourced<A: Aggregate>(domain: &Domain) -> Result<&crate::registry::AggregateInfo> {
    let info = domain.registry().aggregate_info::<A>()?;
    if info.event_sourced {
        Ok(info)
    } else {
        Err(Error::usage(format!(
            "`{}` is a state-stored aggregate: its row is its state, so it has no snapshots",
            A::NAME
        )))
    }
}

/// `domain.create_snapshot::<A>(id)`: a snapshot at the aggregate's current version.
pub(crate) async fn create<A: Aggregate>(domain: &Domain, id: &str) -> Result<i64> {
    let category = &event_sourced::<A>(domain)?.category;
    let not_found = || Error::NotFound {
        element: A::NAME.to_owned(),
        id: id.to_owned(),
    };
    if !storable(id) {
        return Err(not_found());
    }
    let stream = joined(category, '-', id);
    let loaded = load_current::<A>(domain, &stream, Identifier::new(id))
        .await?
        .ok_or_else(not_found)?;
    let mut aggregate = loaded.aggregate;
    let version = aggregate.meta().version();
    let state = encode(&aggregate)?;
    write(
        domain,
        row(&stream, A::NAME, version, &loaded.last_event, state),
        Overwrite::IfOlder,
    )
    .await?;
    aggregate.meta_mut().set_snapshot_version(version);
    domain.cache().put(stream, &aggregate, loaded.last_event);
    Ok(version)
}

/// `domain.create_snapshots::<A>()`: a snapshot of every aggregate of the type. The streams
/// are found by reading the category's events (the ports list no streams), so this reads
/// every event of the category once, then loads each aggregate.
pub(crate) async fn create_all<A: Aggregate>(domain: &Domain) -> Result<u64> {
    const BATCH: usize = 1_000;
    let category = event_sourced::<A>(domain)?.category.clone();
    let storage = domain.storage();
    storage.settle().await?;
    let mut streams = BTreeSet::new();
    let mut after = Cursor::START;
    loop {
        let batch = storage.read_category(&category, after, BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.metadata.cursor();
        let full = batch.len() == BATCH;
        streams.extend(batch.into_iter().map(|event| event.metadata.stream));
        if !full {
            break;
        }
    }
    let prefix = format!("{category}-");
    let mut written = 0;
    for stream in streams {
        if let Some(id) = stream.strip_prefix(&prefix) {
            create::<A>(domain, id).await?;
            written += 1;
        }
    }
    Ok(written)
}

/// `create_snapshot::<A>` without the type: what the registry keeps of each aggregate, so
/// that snapshots can be created by the aggregate's name.
pub(crate) type CreateNamedFn = for<'a> fn(&'a Domain, &'a str) -> BoxFuture<'a, Result<i64>>;
/// `create_snapshots::<A>` without the type.
pub(crate) type CreateAllNamedFn = for<'a> fn(&'a Domain) -> BoxFuture<'a, Result<u64>>;

/// The snapshot operations of one aggregate type, type-erased for by-name calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapshotOps {
    create: CreateNamedFn,
    create_all: CreateAllNamedFn,
}

impl SnapshotOps {
    /// The operations of aggregate `A`.
    pub(crate) fn of<A: Aggregate>() -> Self {
        Self {
            create: |domain, id| Box::pin(create::<A>(domain, id)),
            create_all: |domain| Box::pin(create_all::<A>(domain)),
        }
    }
}

/// `domain.create_snapshot_named(aggregate, id)`.
pub(crate) async fn create_named(domain: &Domain, aggregate: &str, id: &str) -> Result<i64> {
    let ops = event_sourced_named(domain, aggregate, "have snapshots")?.snapshots;
    (ops.create)(domain, id).await
}

/// `domain.create_snapshots_named(aggregate)`.
pub(crate) async fn create_all_named(domain: &Domain, aggregate: &str) -> Result<u64> {
    let ops = event_sourced_named(domain, aggregate, "have snapshots")?.snapshots;
    (ops.create_all)(domain).await
}
