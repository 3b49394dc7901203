//! Temporal queries: an event-sourced aggregate as it was at a version or a time
//! ([`Historical`]), and the history of its stream ([`HistoryEntry`]).
//!
//! A historical read replays the stream up to the version or time asked for (from the
//! latest snapshot when that is at or below it), reading only committed events: inside a
//! unit of work it does not see the unit of work's own writes. It is never cached.

use std::fmt;
use std::ops::Deref;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::model::element::Aggregate;
use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;
use crate::registry::AggregateInfo;
use crate::runtime::context::Context;
use crate::runtime::domain::Domain;
use crate::runtime::repository::{
    Bound, DomainRepository, Replayed, Repository, joined, load_aggregate, replay, storable,
};
use crate::runtime::snapshot;

/// An event-sourced aggregate as it was at a past version or time: it derefs to the
/// aggregate, read-only.
///
/// A `Historical<A>` is not an `A`, so it cannot be passed to a repository's `add`: the past
/// is not saved back by mistake. A clone of the aggregate inside it (`(*historical).clone()`)
/// is an old version, which `add` refuses with [`Error::VersionConflict`] unless the stream
/// has not moved since that version.
///
/// ```rust,standalone_crate
/// use fidelis_core::prelude::*;
///
/// #[event(part_of = Account)]
/// pub struct Deposited { pub account_id: Identifier, pub amount: i64 }
///
/// #[aggregate(event_sourced)]
/// pub struct Account { pub balance: i64 }
///
/// #[aggregate]
/// impl Account {
///     #[apply]
///     fn on_deposited(&mut self, event: &Deposited) { self.balance += event.amount; }
/// }
///
/// # #[tokio::main]
/// # async fn main() -> Result<()> {
/// let domain = Domain::builder("bank").discover_crate(module_path!()).build().await?;
/// let repo = domain.repository::<Account>();
/// let mut account = Account::create_new();
/// let id = account.id.clone();
/// for amount in [100, 50, 25] {
///     account.raise(Deposited { account_id: id.clone(), amount })?;
/// }
/// repo.add(account).await?;
///
/// let then = repo.get_at_version(&id, 1).await?;      // after the first two deposits
/// assert_eq!(then.balance, 150);
/// assert_eq!(then.version(), 1);
/// assert!(repo.get_at_version(&id, 3).await.unwrap_err().is_not_found());
///
/// let history = domain.event_store().history::<Account>(&id).await?;
/// assert_eq!(history.len(), 3);
/// assert_eq!(history[2].data["amount"], 25);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Historical<A> {
    aggregate: A,
    time: DateTime<Utc>,
}

impl<A: Aggregate> Historical<A> {
    /// The version of the last event it includes.
    pub fn version(&self) -> i64 {
        self.aggregate.meta().version()
    }

    /// When the last event it includes was recorded.
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }
}

impl<A> Deref for Historical<A> {
    type Target = A;

    fn deref(&self) -> &A {
        &self.aggregate
    }
}

impl<A: fmt::Debug> fmt::Debug for Historical<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Historical")
            .field("time", &self.time)
            .field("aggregate", &self.aggregate)
            .finish()
    }
}

/// One event of an aggregate's history ([`EventStore::history`](crate::EventStore::history)).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HistoryEntry {
    /// Its version in the stream, from 0.
    pub version: i64,
    /// Its stored type name (`Fidelis.DepositMade.v1`).
    pub type_name: String,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// Its id.
    pub event_id: Identifier,
    /// Its position among all events of the store.
    pub global_position: i64,
    /// The request it was part of.
    pub correlation_id: Identifier,
    /// The command or event that caused it.
    pub causation_id: Option<Identifier>,
    /// Its fields, as stored.
    pub data: Value,
}

impl<T: Aggregate> Repository<'_, T> {
    /// The aggregate as it was after the event of this version (the first event is version
    /// 0), from the committed events; [`Error::NotFound`] when the stream has no such
    /// version.
    pub async fn get_at_version(&self, id: impl AsRef<str>, version: i64) -> Result<Historical<T>> {
        load::<T>(&self.context().domain, id.as_ref(), Bound::Version(version)).await
    }

    /// The aggregate as it was at `time`: the events recorded up to then, from the
    /// committed events; [`Error::NotFound`] when its stream began after `time`.
    pub async fn get_as_of(
        &self,
        id: impl AsRef<str>,
        time: DateTime<Utc>,
    ) -> Result<Historical<T>> {
        load::<T>(&self.context().domain, id.as_ref(), Bound::Time(time)).await
    }
}

impl<T: Aggregate> DomainRepository<T> {
    /// The aggregate as it was after the event of this version (the first event is version
    /// 0); [`Error::NotFound`] when the stream has no such version. See [`Historical`].
    pub async fn get_at_version(&self, id: impl AsRef<str>, version: i64) -> Result<Historical<T>> {
        load::<T>(self.domain(), id.as_ref(), Bound::Version(version)).await
    }

    /// The aggregate as it was at `time`: the events recorded up to then (up to the first
    /// one recorded later, should clocks have disagreed); [`Error::NotFound`] when its
    /// stream began after `time`. See [`Historical`].
    pub async fn get_as_of(
        &self,
        id: impl AsRef<str>,
        time: DateTime<Utc>,
    ) -> Result<Historical<T>> {
        load::<T>(self.domain(), id.as_ref(), Bound::Time(time)).await
    }
}

fn stream_of<A: Aggregate>(domain: &Domain, id: &str) -> Result<String> {
    let info = domain.registry().aggregate_info::<A>()?;
    if !info.event_sourced {
        return Err(Error::usage(format!(
            "`{}` is a state-stored aggregate: only event-sourced aggregates keep a history",
            A::NAME
        )));
    }
    Ok(joined(&info.category, '-', id))
}

async fn load<A: Aggregate>(domain: &Domain, id: &str, bound: Bound) -> Result<Historical<A>> {
    let stream = stream_of::<A>(domain, id)?;
    let not_found = || Error::NotFound {
        element: A::NAME.to_owned(),
        id: match bound {
            Bound::Version(version) => format!("{id} at version {version}"),
            Bound::Time(time) => format!("{id} as of {}", time.to_rfc3339()),
            Bound::End => id.to_owned(),
        },
    };
    if !storable(id) || matches!(bound, Bound::Version(version) if version < 0) {
        return Err(not_found());
    }
    let blank = || A::blank(Identifier::new(id));
    // A snapshot helps when it is at or below the version asked for; for a time, the
    // replay checks that its last event is not later (else it starts over).
    let (start, anchor) = match snapshot::latest::<A>(domain, &stream).await? {
        snapshot::Latest::Found {
            aggregate,
            version,
            last_event,
        } if !matches!(bound, Bound::Version(target) if version > target) => {
            (aggregate, Some((version, last_event)))
        }
        _ => (blank(), None),
    };
    let mut replayed = replay(domain, &stream, start, anchor.as_ref(), bound).await?;
    if matches!(replayed, Replayed::Stale) {
        replayed = replay(domain, &stream, blank(), None, bound).await?;
    }
    let Replayed::Caught {
        mut aggregate,
        last: Some((_, time)),
        ..
    } = replayed
    else {
        return Err(not_found());
    };
    if matches!(bound, Bound::Version(version) if aggregate.meta().version() != version) {
        return Err(not_found());
    }
    aggregate.meta_mut().set_historical(true);
    Ok(Historical { aggregate, time })
}

/// Before a historical state is saved: the stream must still be at the version it was read
/// at, else [`Error::VersionConflict`] (an old state is never written over a newer one).
pub(crate) async fn check_current<A: Aggregate>(
    ctx: &Context,
    stream: &str,
    aggregate: &A,
) -> Result<()> {
    let expected = aggregate.meta().loaded_version();
    let actual = load_aggregate::<A>(ctx, aggregate.id().clone())
        .await?
        .map_or(-1, |current| current.meta().version());
    if actual == expected {
        Ok(())
    } else {
        Err(Error::VersionConflict {
            stream: stream.to_owned(),
            expected,
            actual,
        })
    }
}

/// `event_store().history::<A>(id)`.
pub(crate) async fn history<A: Aggregate>(domain: &Domain, id: &str) -> Result<Vec<HistoryEntry>> {
    let stream = stream_of::<A>(domain, id)?;
    read_history(domain, &stream, id).await
}

/// `event_store().history_named(aggregate, id)`.
pub(crate) async fn history_named(
    domain: &Domain,
    aggregate: &str,
    id: &str,
) -> Result<Vec<HistoryEntry>> {
    let info = event_sourced_named(domain, aggregate, "keep a history")?;
    let stream = joined(&info.category, '-', id);
    read_history(domain, &stream, id).await
}

/// The event-sourced aggregate named `name`; an unknown name or a state-stored aggregate is
/// an [`Error::Usage`] naming the event-sourced ones (`what`: what only they do).
pub(crate) fn event_sourced_named<'d>(
    domain: &'d Domain,
    name: &str,
    what: &str,
) -> Result<&'d AggregateInfo> {
    let aggregates = domain.registry().aggregates();
    let known = || {
        let names: Vec<&str> = aggregates
            .iter()
            .filter(|info| info.event_sourced)
            .map(|info| info.name)
            .collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    match aggregates.iter().find(|info| info.name == name) {
        Some(info) if info.event_sourced => Ok(info),
        Some(_) => Err(Error::usage(format!(
            "`{name}` is a state-stored aggregate: only event-sourced aggregates {what} \
             (event-sourced: {})",
            known()
        ))),
        None => Err(Error::usage(format!(
            "unknown aggregate `{name}`; known: {}",
            known()
        ))),
    }
}

/// The history of `stream`, the stream of the aggregate with this id.
async fn read_history(domain: &Domain, stream: &str, id: &str) -> Result<Vec<HistoryEntry>> {
    if !storable(id) {
        return Ok(Vec::new());
    }
    domain
        .storage()
        .read_stream(stream, 0)
        .await?
        .into_iter()
        .map(|event| {
            let data = event.data()?;
            let metadata = event.metadata;
            Ok(HistoryEntry {
                version: metadata.version,
                type_name: metadata.type_name,
                time: metadata.time,
                event_id: metadata.id,
                global_position: metadata.global_position,
                correlation_id: metadata.correlation_id,
                causation_id: metadata.causation_id,
                data,
            })
        })
        .collect()
}
