//! Projection rebuilds, and where each projection (and each of its versions) stands.
//!
//! A rebuild replays every event of the categories its projectors listen to, in global
//! order, through those projectors into a fresh table (an in-memory store of its own, so the
//! live table is not touched while it runs), then swaps the rows in, in one transaction of
//! the live store, together with the projectors' checkpoints. A projector error fails the
//! rebuild before the swap: the live rows stay as they were.
//!
//! Concurrent writes. The swap transaction first takes the projectors' checkpoints (on
//! PostgreSQL their rows are locked, so no engine batch of these projectors commits until the
//! swap does; on SQLite the transaction is the one writer), replays the events committed
//! since the rebuild last read (the tail), then replaces the rows and moves the checkpoints to
//! the last event it replayed. So in asynchronous processing the engine goes on from exactly
//! where the rebuilt rows stand: nothing is applied twice or skipped, whether the engine runs
//! in this process or another. In synchronous processing, projectors write in each command's
//! commit: on SQLite (one writer) the swap is exact too, but on PostgreSQL and in memory a
//! command that commits after the tail is read and before the swap commits has its rows
//! replaced by the rebuild's. Rebuild a synchronous projection while no commands run, or
//! rebuild in asynchronous processing.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::error::{Error, Result};
use crate::model::event::{AnyRecordedEvent, RecordedEvent};
use crate::model::query::QuerySpec;
use crate::registry::{ProjectionInfo, SubscriberInfo};
use crate::runtime::domain::Domain;
use crate::store::memory::MemoryStorage;
use crate::store::system::{self, Checkpoint, DeadLetter};
use crate::store::{Cursor, GlobalRead, Row, Storage, Transaction};

/// How many events a rebuild reads and projects at a time.
const BATCH: usize = 1_000;

/// How many times the swap is tried again after a version conflict with a concurrent writer
/// (the in-memory store reports one when an engine batch committed meanwhile).
const SWAP_ATTEMPTS: u32 = 5;

/// What a rebuild did ([`Domain::rebuild_projection`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RebuildReport {
    /// The projection rebuilt.
    pub projection: String,
    /// Its table.
    pub table: String,
    /// Events read from its projectors' categories.
    pub events_read: u64,
    /// Events at least one of its projectors handles, each applied once.
    pub events_applied: u64,
    /// Events of types none of its projectors handles.
    pub skipped: u64,
    /// The rows of the rebuilt table.
    pub rows: u64,
    /// The last event applied: the projectors' checkpoints were moved to it with the rows.
    pub position: Cursor,
    /// How long the rebuild took.
    pub elapsed: Duration,
}

/// Where a running rebuild stands, given to the progress callback after each batch
/// ([`Domain::rebuild_projection_with`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Events read so far.
    pub events_read: u64,
    /// Events applied so far.
    pub events_applied: u64,
    /// The global position of the last event read.
    pub position: i64,
    /// The global position of the store's last event when the rebuild started: with
    /// `position`, an estimate of how far it is (other categories' events take positions
    /// too, so the rebuild may end before reaching it).
    pub head: i64,
}

/// Where a projection stands ([`Domain::projection_status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// Its version (`#[projection(version = N)]`).
    pub version: u32,
    /// The table of this version.
    pub table: String,
    /// Rows in that table.
    pub rows: u64,
    /// Its projectors, each with its checkpoint (the engine's, in asynchronous processing).
    pub projectors: Vec<ProjectorStatus>,
    /// Checkpoints of its projectors for other versions of the projection, kept by
    /// processes that run (or ran) them: the previous version, still serving while this one
    /// catches up, or a newer one.
    pub other_versions: Vec<ProjectorStatus>,
}

/// Where one projector of one version of a projection stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectorStatus {
    /// The projector's name.
    pub projector: String,
    /// The projection version its checkpoint is for.
    pub version: u32,
    /// Its checkpoint ([`Cursor::START`] when it has none).
    pub position: Cursor,
    /// Events of its categories after the checkpoint (of its most behind partition).
    pub lag: u64,
    /// Whether it has read everything readable now (`lag == 0`).
    pub caught_up: bool,
}

impl Domain {
    /// Rebuilds projection `P` from every event of its projectors' aggregates, then swaps the
    /// rows in with the projectors' checkpoints (see
    /// [`rebuild_projection_with`](Self::rebuild_projection_with)).
    pub async fn rebuild_projection<P: crate::Projection>(&self) -> Result<RebuildReport> {
        self.rebuild_projection_with::<P>(|_| {}).await
    }

    /// Rebuilds projection `P`, calling `progress` after each batch of events.
    ///
    /// Every event of the categories its projectors listen to is read in global order
    /// (upcast as any read is) and run through its projectors into a fresh table; events of
    /// types none of them handles are counted as skipped. Then, in one transaction of the
    /// live store, the table's rows are replaced and the projectors' checkpoints move to
    /// the last event applied (their dead letters go: the rebuild applied those events).
    /// A projector error, or an event that cannot be decoded, fails the rebuild and leaves
    /// the live rows and checkpoints as they were.
    ///
    /// Writes made meanwhile: the swap first takes the projectors' checkpoints (locking
    /// their rows on PostgreSQL; SQLite has one writer), replays the events committed since
    /// the last read, then swaps. In asynchronous processing that is exact: the engine goes
    /// on from the rebuilt rows, applying nothing twice. In synchronous processing it is
    /// exact on SQLite; on PostgreSQL and in memory a command committing during the swap
    /// has its rows replaced by the rebuild's, so rebuild while no commands run.
    ///
    /// ```rust,standalone_crate
    /// use fidelis_core::prelude::*;
    ///
    /// #[event(part_of = Till)]
    /// pub struct Rang { pub till_id: Identifier, pub amount: i64 }
    ///
    /// #[aggregate(event_sourced)]
    /// pub struct Till { pub total: i64 }
    ///
    /// #[aggregate]
    /// impl Till {
    ///     #[apply]
    ///     fn rang(&mut self, event: &Rang) { self.total += event.amount; }
    /// }
    ///
    /// #[projection]
    /// pub struct Takings { #[field(identifier)] pub till_id: Identifier, pub total: i64 }
    ///
    /// #[derive(Default)]
    /// pub struct TakingsProjector;
    ///
    /// #[projector(for = Takings, aggregates = [Till])]
    /// impl TakingsProjector {
    ///     #[on(Rang)]
    ///     async fn rang(&self, event: &Event<Rang>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
    ///         let mut rows = ctx.repository::<Takings>();
    ///         let mut row = rows.find(&event.till_id).await?
    ///             .unwrap_or(Takings { till_id: event.till_id.clone(), total: 0 });
    ///         row.total += event.amount;
    ///         rows.add(row).await
    ///     }
    /// }
    ///
    /// #[tokio::main]
    /// async fn main() -> Result<()> {
    ///     let domain = Domain::builder("shop").discover_crate(module_path!()).build().await?;
    ///     let mut till = Till::create_new();
    ///     till.raise(Rang { till_id: till.id.clone(), amount: 5 })?;
    ///     let mut unit = domain.unit_of_work();
    ///     unit.repository::<Till>().add(till).await?;
    ///     unit.commit().await?;
    ///
    ///     let report = domain
    ///         .rebuild_projection_with::<Takings>(|progress| {
    ///             tracing::info!(read = progress.events_read, "rebuilding");
    ///         })
    ///         .await?;
    ///     assert_eq!((report.events_applied, report.rows), (1, 1));
    ///     Ok(())
    /// }
    /// ```
    pub async fn rebuild_projection_with<P: crate::Projection>(
        &self,
        progress: impl FnMut(&RebuildProgress) + Send,
    ) -> Result<RebuildReport> {
        let info = self.registry().projection_info::<P>()?;
        rebuild(self, TypeId::of::<P>(), info, progress).await
    }

    /// Rebuilds the projection named `name` (its Rust name, `AccountSummary`), for tools
    /// that take the name as text. An unknown name is a usage error listing the known ones.
    pub async fn rebuild_projection_named(&self, name: &str) -> Result<RebuildReport> {
        self.rebuild_projection_named_with(name, |_| {}).await
    }

    /// [`rebuild_projection_named`](Self::rebuild_projection_named), calling `progress`
    /// after each batch.
    pub async fn rebuild_projection_named_with(
        &self,
        name: &str,
        progress: impl FnMut(&RebuildProgress) + Send,
    ) -> Result<RebuildReport> {
        let (type_id, info) = self.projection_named(name)?;
        rebuild(self, type_id, info, progress).await
    }

    /// The names of the domain's projections, sorted.
    pub fn projection_names(&self) -> Vec<&'static str> {
        self.registry()
            .projections()
            .into_iter()
            .map(|p| p.name)
            .collect()
    }

    /// Where each projection stands: its version, table and rows, its projectors'
    /// checkpoints and lag, and the checkpoints other versions of it keep in this database.
    pub async fn projection_status(&self) -> Result<Vec<ProjectionStatus>> {
        let storage = self.storage().as_ref();
        let mut statuses = Vec::new();
        let mut projections: Vec<(TypeId, &ProjectionInfo)> = self
            .registry()
            .projections
            .iter()
            .map(|(id, info)| (*id, info))
            .collect();
        projections.sort_by_key(|(_, info)| info.name);
        for (type_id, info) in projections {
            let mut projectors = Vec::new();
            let mut other_versions = Vec::new();
            for subscriber in projectors_of(self, type_id) {
                let checkpoints = system::query::<Checkpoint>(
                    storage,
                    &QuerySpec {
                        filters: vec![system::field_eq("subscription", subscriber.name.to_owned())],
                        ..QuerySpec::default()
                    },
                )
                .await?;
                let mut by_version: BTreeMap<u32, Cursor> =
                    BTreeMap::from([(info.version, Cursor::START)]);
                let mut checkpoint_seen = std::collections::BTreeSet::new();
                for checkpoint in checkpoints {
                    let Some(version) = checkpoint_version(subscriber.name, &checkpoint.id) else {
                        continue;
                    };
                    let at = Cursor {
                        commit: checkpoint.commit,
                        position: checkpoint.position,
                    };
                    // A version's position is that of its most behind partition.
                    let entry = by_version.entry(version).or_insert(at);
                    if checkpoint_seen.insert(version) {
                        *entry = at;
                    } else {
                        *entry = (*entry).min(at);
                    }
                }
                for (version, position) in by_version {
                    let lag = lag(storage, subscriber, position).await?;
                    let status = ProjectorStatus {
                        projector: subscriber.name.to_owned(),
                        version,
                        position,
                        lag,
                        caught_up: lag == 0,
                    };
                    if version == info.version {
                        projectors.push(status);
                    } else {
                        other_versions.push(status);
                    }
                }
            }
            statuses.push(ProjectionStatus {
                name: info.name.to_owned(),
                version: info.version,
                table: info.table.clone(),
                rows: storage.count(&info.table, &QuerySpec::default()).await?,
                projectors,
                other_versions,
            });
        }
        Ok(statuses)
    }

    fn projection_named(&self, name: &str) -> Result<(TypeId, &ProjectionInfo)> {
        self.registry()
            .projections
            .iter()
            .find(|(_, info)| info.name == name)
            .map(|(id, info)| (*id, info))
            .ok_or_else(|| {
                Error::usage(format!(
                    "domain `{}` has no projection `{name}`; its projections: {}",
                    self.name(),
                    self.projection_names().join(", ")
                ))
            })
    }
}

/// The version a checkpoint key (`<projector>[@v<N>]/<partition>`) of `projector` is for.
fn checkpoint_version(projector: &str, key: &str) -> Option<u32> {
    let (name, _partition) = key.rsplit_once('/')?;
    let rest = name.strip_prefix(projector)?;
    if rest.is_empty() {
        return Some(1);
    }
    rest.strip_prefix("@v")?.parse().ok()
}

fn projectors_of(domain: &Domain, projection: TypeId) -> Vec<&SubscriberInfo> {
    domain
        .registry()
        .subscribers
        .iter()
        .filter(|s| s.projector && s.projection == Some(projection))
        .collect()
}

async fn lag(storage: &dyn Storage, subscriber: &SubscriberInfo, after: Cursor) -> Result<u64> {
    let categories: Vec<&str> = subscriber.categories.iter().map(String::as_str).collect();
    let backlog = storage
        .backlog(&GlobalRead {
            categories: &categories,
            after,
            limit: 0,
            partition: None,
        })
        .await?;
    Ok(backlog.events)
}

/// The replay of one projection into a scratch store.
struct Replay<'d> {
    domain: &'d Domain,
    projectors: Vec<&'d SubscriberInfo>,
    categories: Vec<&'d str>,
    scratch: MemoryStorage,
    after: Cursor,
    read: u64,
    applied: u64,
}

impl Replay<'_> {
    /// How many partitions the engine splits this projector's streams into.
    fn partitions(&self, projector: &SubscriberInfo) -> u32 {
        self.domain
            .engine_shared()
            .subscription(&projector.checkpoint)
            .map_or(1, |subscription| subscription.partitions())
    }

    fn keeps(&self, name: &str) -> bool {
        self.projectors.iter().any(|p| p.name == name)
    }

    /// Reads and applies the next batch; `false` when none is left.
    async fn step(&mut self) -> Result<bool> {
        let storage = self.domain.storage();
        let events = storage
            .read_categories(&GlobalRead {
                categories: &self.categories,
                after: self.after,
                limit: BATCH,
                partition: None,
            })
            .await?;
        let Some(last) = events.last().map(|e| e.metadata.cursor()) else {
            return Ok(false);
        };
        let mut batch = Vec::with_capacity(events.len());
        for recorded in &events {
            if let Some(event) = self.decode(recorded)? {
                batch.push(event);
            }
        }
        self.read += events.len() as u64;
        self.applied += batch.len() as u64;
        let mut transaction = self.scratch.begin().await?;
        crate::runtime::projection_runner::run_projectors_where(
            self.domain.registry(),
            transaction.as_mut(),
            &batch,
            &|name| self.keeps(name),
        )
        .await?;
        transaction.commit().await?;
        self.after = last;
        Ok(true)
    }

    /// The event to apply, `None` when none of the projectors handles its type. An event
    /// that cannot be decoded fails the rebuild: skipping it would drop its effect silently.
    fn decode(&self, recorded: &RecordedEvent) -> Result<Option<Arc<dyn AnyRecordedEvent>>> {
        let registry = self.domain.registry();
        let event = registry
            .event_by_type_name(recorded)
            .and_then(|info| info.decode(recorded))?;
        let handled = registry
            .projectors
            .get(&Any::type_id(event.as_any()))
            .is_some_and(|listeners| listeners.iter().any(|l| self.keeps(l.name)));
        Ok(handled.then(|| event.record(recorded.metadata.clone())))
    }

    /// Catches up with the tail inside `transaction` (which holds the checkpoints), then
    /// replaces the live rows with the rebuilt ones and moves the checkpoints.
    async fn swap(&mut self, table: &str, transaction: &mut dyn Transaction) -> Result<u64> {
        for projector in &self.projectors {
            // Taken first: on PostgreSQL this locks the checkpoints' rows, so an engine batch
            // of this projector waits for the swap (and one in flight finishes first).
            for partition in 0..self.partitions(projector) {
                let key = Checkpoint::key(&projector.checkpoint, i64::from(partition));
                system::get_in::<Checkpoint>(transaction, &key).await?;
            }
        }
        while self.step().await? {}
        let live = self
            .domain
            .storage()
            .query(table, &QuerySpec::default())
            .await?;
        // Every live row goes before the rebuilt ones are written, so a unique value that
        // moved from one row to another never meets itself.
        for row in live {
            transaction.remove_row(table, &row.id).await?;
        }
        let rebuilt = self.scratch.query(table, &QuerySpec::default()).await?;
        for row in &rebuilt {
            match self.scratch.get_row(table, &row.id).await? {
                Some(Row::Typed(typed)) => {
                    transaction.put_row(table, row.id.clone(), typed).await?;
                }
                Some(Row::Json(json)) => transaction.put_json_row(table, json, None).await?,
                None => {}
            }
        }
        let storage = self.domain.storage().as_ref();
        for projector in &self.projectors {
            // Every partition has seen every event up to `after`.
            for partition in 0..self.partitions(projector) {
                system::put(
                    transaction,
                    Checkpoint {
                        id: Checkpoint::key(&projector.checkpoint, i64::from(partition)),
                        subscription: projector.name.to_owned(),
                        partition: i64::from(partition),
                        commit: self.after.commit,
                        position: self.after.position,
                        updated_at: chrono::Utc::now(),
                    },
                )
                .await?;
            }
            let letters = system::query::<DeadLetter>(
                storage,
                &QuerySpec {
                    filters: vec![system::field_eq(
                        "subscription",
                        projector.checkpoint.clone(),
                    )],
                    ..QuerySpec::default()
                },
            )
            .await?;
            for letter in letters {
                system::remove::<DeadLetter>(transaction, &letter.id).await?;
            }
        }
        Ok(rebuilt.len() as u64)
    }
}

async fn rebuild(
    domain: &Domain,
    projection: TypeId,
    info: &ProjectionInfo,
    mut progress: impl FnMut(&RebuildProgress) + Send,
) -> Result<RebuildReport> {
    let started = Instant::now();
    let projectors = projectors_of(domain, projection);
    if projectors.is_empty() {
        return Err(Error::usage(format!(
            "projection `{}` has no projector in domain `{}`: nothing rebuilds its rows",
            info.name,
            domain.name()
        )));
    }
    let mut categories: Vec<&str> = projectors
        .iter()
        .flat_map(|p| p.categories.iter().map(String::as_str))
        .collect();
    categories.sort_unstable();
    categories.dedup();
    let scratch = MemoryStorage::new();
    scratch
        .setup(&crate::runtime::domain::table_schemas(domain.registry()))
        .await?;
    let storage = domain.storage();
    storage.settle().await?;
    let head = storage.head().await?.position;
    let mut replay = Replay {
        domain,
        projectors,
        categories,
        scratch,
        after: Cursor::START,
        read: 0,
        applied: 0,
    };
    tracing::info!(projection = info.name, table = %info.table, head, "rebuild started");
    while replay.step().await? {
        progress(&RebuildProgress {
            events_read: replay.read,
            events_applied: replay.applied,
            position: replay.after.position,
            head,
        });
    }
    let mut attempt = 1;
    let rows = loop {
        let mut transaction = storage.begin().await?;
        let swapped = match replay.swap(&info.table, transaction.as_mut()).await {
            Ok(rows) => transaction.commit().await.map(|()| rows),
            Err(error) => Err(error),
        };
        match swapped {
            Ok(rows) => break rows,
            Err(error) if error.is_version_conflict() && attempt < SWAP_ATTEMPTS => {
                tracing::debug!(projection = info.name, %error, "rebuild swap raced a writer; again");
                attempt += 1;
            }
            Err(error) => return Err(error),
        }
    };
    let report = RebuildReport {
        projection: info.name.to_owned(),
        table: info.table.clone(),
        events_read: replay.read,
        events_applied: replay.applied,
        skipped: replay.read - replay.applied,
        rows,
        position: replay.after,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        projection = info.name,
        events_read = report.events_read,
        events_applied = report.events_applied,
        skipped = report.skipped,
        rows = report.rows,
        elapsed = ?report.elapsed,
        "rebuild swapped in"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::checkpoint_version;

    #[test]
    fn checkpoint_keys_name_their_version() {
        assert_eq!(checkpoint_version("P", "P/0"), Some(1));
        assert_eq!(checkpoint_version("P", "P@v2/0"), Some(2));
        assert_eq!(checkpoint_version("P", "PQ/0"), None);
        assert_eq!(checkpoint_version("P", "Q/0"), None);
    }
}
