//! Committing a unit of work: its aggregate rows, events and projection rows, plus what the
//! commit hooks add, in one storage transaction.
//!
//! A commit knows nothing of who is told afterwards (that is [`crate::runtime::dispatch`]): it writes,
//! runs the hooks, commits and returns what it committed. Each hook adds writes to the same
//! transaction: inline projectors today; checkpoints, the command log, outbox rows,
//! snapshots and process-manager state fit the same trait without changing the commit.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use crate::model::error::Result;

use crate::model::event::{AnyRecordedEvent, EventMetadata, Extensions, Payload, RecordedEvent};
use crate::model::identifier::Identifier;
use crate::runtime::command_log::LoggedData;
use crate::runtime::context::Context;
use crate::runtime::domain::Domain;
use crate::runtime::options::{CommandMetadata, enrich_event};
use crate::store::system::{self, CommandLogEntry, QueuedCommand, SystemRow};
use crate::store::{ExpectedVersion, JsonRow, StreamAppend, Transaction};

/// What a commit hook is told about the commit it joins. (Hooks to come add what they need
/// here: the command log, the command's id.)
pub(crate) struct Commit<'a> {
    /// The domain committing.
    pub(crate) domain: &'a Domain,
    /// The events the unit of work appended, as recorded (global positions included).
    pub(crate) events: &'a [Arc<dyn AnyRecordedEvent>],
}

/// Adds writes to a unit of work's transaction after its own writes, before the commit. An
/// error rolls the whole unit of work back. Hooks run in the order they are registered
/// ([`Domain`] holds them).
#[async_trait]
pub(crate) trait CommitHook: Send + Sync + 'static {
    /// Names the hook in logs.
    fn name(&self) -> &'static str;

    /// Writes through `transaction`, which holds the unit of work's writes so far.
    async fn on_commit(&self, commit: &Commit<'_>, transaction: &mut dyn Transaction)
    -> Result<()>;
}

/// The projectors of a commit's events, run inside it: their rows commit with the events.
pub(crate) struct InlineProjectors;

#[async_trait]
impl CommitHook for InlineProjectors {
    fn name(&self) -> &'static str {
        "inline projectors"
    }

    async fn on_commit(
        &self,
        commit: &Commit<'_>,
        transaction: &mut dyn Transaction,
    ) -> Result<()> {
        crate::runtime::projection_runner::run_projectors(
            commit.domain.registry(),
            transaction,
            commit.events,
        )
        .await
    }
}

/// The command a unit of work processes: its log entry (when the domain records commands)
/// and the queue row it came from (when it was submitted), written with its events.
pub(crate) struct CommandRecord {
    pub(crate) metadata: Arc<CommandMetadata>,
    /// The command itself, kept typed for its log entry, when the domain records commands.
    pub(crate) logged: Option<Arc<dyn LoggedData>>,
    /// The version of the queue row it was read at, when the engine dispatches it.
    pub(crate) queued: Option<i64>,
}

impl CommandRecord {
    /// Whether it has anything to write.
    pub(crate) fn writes(&self) -> bool {
        self.logged.is_some() || self.queued.is_some()
    }

    /// Writes the log entry and takes the command off the queue, in the unit of work's
    /// transaction: both stand or fall with its events.
    async fn write(
        &self,
        domain: &Domain,
        events: &[Arc<dyn AnyRecordedEvent>],
        time: chrono::DateTime<Utc>,
        transaction: &mut dyn Transaction,
    ) -> Result<()> {
        let metadata = &self.metadata;
        if let Some(version) = self.queued {
            // The version check locks the row (PostgreSQL: `FOR UPDATE`) and fails if another
            // engine already processed the command, so it is processed once.
            let id = metadata.id.as_str();
            let Some(row) = transaction
                .get_json_row(QueuedCommand::TABLE.name, id)
                .await?
            else {
                return Err(already_processed(id));
            };
            transaction
                .put_json_row(
                    QueuedCommand::TABLE.name,
                    JsonRow {
                        version: version + 1,
                        ..row
                    },
                    Some(version),
                )
                .await?;
            system::remove::<QueuedCommand>(transaction, id).await?;
        }
        let Some(logged) = &self.logged else {
            return Ok(());
        };
        // Written as a `CommandLogEntry` encodes, read back as one (see `command_log`).
        let entry = logged.clone().entry(
            metadata.clone(),
            domain.shared_name(),
            events
                .iter()
                .map(|event| event.metadata().id.clone())
                .collect(),
            time,
        );
        transaction
            .put_row(CommandLogEntry::TABLE.name, metadata.id.to_string(), entry)
            .await
    }
}

/// The error of a queued command another engine processed first.
pub(crate) fn already_processed(id: &str) -> crate::model::error::Error {
    crate::model::error::Error::usage(format!(
        "submitted command `{id}` is no longer queued: it was processed (or purged) meanwhile"
    ))
}

/// A unit of work written to its open transaction, hooks included, but not committed.
/// Dropping it rolls everything back.
pub(crate) struct Prepared {
    transaction: Box<dyn Transaction>,
    committed: Committed,
    /// The commit may have written outbox rows (the domain has a broker and the unit of work
    /// events): once it is durable, this process's relay is woken, in either processing mode,
    /// instead of finding them at its next poll.
    wakes_relay: bool,
}

/// What a commit stored.
pub(crate) struct Committed {
    /// The events, as recorded.
    pub(crate) events: Vec<Arc<dyn AnyRecordedEvent>>,
    /// Event-sourced aggregates' new states, for the cache: key, state, and the id of the
    /// last event applied to it.
    pub(crate) states: Vec<(String, Arc<dyn Any + Send + Sync>, Identifier)>,
    /// The snapshots to write once the commit is durable.
    pub(crate) snapshots: Vec<crate::runtime::snapshot::DueSnapshot>,
}

impl Prepared {
    /// The transaction, for writes that must commit with the unit of work (the engine
    /// moves an event handler's checkpoint in it).
    pub(crate) fn transaction(&mut self) -> &mut dyn Transaction {
        self.transaction.as_mut()
    }

    /// Commits the transaction: from here on, everything it holds is durable.
    pub(crate) async fn commit(self) -> Result<Committed> {
        self.transaction.commit().await?;
        if self.wakes_relay {
            crate::engine::wake_engines();
        }
        Ok(self.committed)
    }
}

/// Writes a unit of work into a new transaction and runs `hooks` on it; `None` when there is
/// nothing to write. Cancel-safe: dropped at any await point, the transaction rolls back.
///
/// In one transaction, in this order: the state-stored aggregates' rows (with their version
/// check), the new events (appended at the version their aggregate was loaded at), the
/// projection rows the handler wrote, then each hook's writes.
pub(crate) async fn prepare(
    unit: Context,
    hooks: &[Arc<dyn CommitHook>],
) -> Result<Option<Prepared>> {
    let Context {
        domain,
        correlation_id,
        causation_id,
        lineage,
        command,
        step_command,
        work,
    } = unit;
    // A command that changed nothing still commits its log entry (or leaves the queue, or
    // records that its process manager's step issued it).
    if work.is_empty() && command.is_none() && step_command.is_none() {
        return Ok(None);
    }
    let registry = domain.registry();
    let mut transaction = domain.storage().begin().await?;
    let time = Utc::now();
    let mut recorded: Vec<Arc<dyn AnyRecordedEvent>> = Vec::new();
    // Per aggregate change, the id of its last new event: the cache's proof of what it applied.
    let mut last_events: Vec<Option<Identifier>> = Vec::with_capacity(work.aggregates.len());

    // Locks are taken in one order, whatever order the handler touched its aggregates in:
    // first the stored aggregates' rows, sorted by table and id, then the appends. (Writing
    // each aggregate in turn let two units of work lock a stored row and the append lock in
    // opposite orders and deadlock.)
    let mut stored: Vec<_> = work
        .aggregates
        .iter()
        .filter_map(|change| Some((change, change.document.as_ref()?)))
        .collect();
    stored.sort_by(|(a, a_row), (b, b_row)| (&a.table, &a_row.id).cmp(&(&b.table, &b_row.id)));
    for (change, document) in stored {
        let document = JsonRow {
            version: change.expected_version + 1,
            ..document.clone()
        };
        transaction
            .put_json_row(&change.table, document, Some(change.expected_version))
            .await?;
    }
    // Every aggregate's events in one append (two statements on SQL stores, whatever the
    // number of streams), in the order the handler touched the aggregates.
    let mut appends = Vec::new();
    for change in &work.aggregates {
        if change.events.is_empty() {
            continue;
        }
        let mut records = Vec::with_capacity(change.events.len());
        for (offset, event) in change.events.iter().enumerate() {
            let info = registry.event_info(Any::type_id(event.as_any()), event.event_name())?;
            let mut metadata = EventMetadata {
                id: Identifier::generate(),
                type_name: info.type_name.clone(),
                stream: change.stream.clone(),
                version: change.expected_version + 1 + offset as i64,
                global_position: 0,
                commit: 0,
                time,
                correlation_id: correlation_id.clone(),
                causation_id: causation_id.clone(),
                priority: lineage.priority,
                extensions: Extensions::new(),
            };
            metadata.extensions =
                enrich_event(domain.event_enrichers(), &metadata, &lineage.extensions);
            records.push(RecordedEvent {
                metadata,
                payload: Payload::Typed(event.clone()),
            });
        }
        let expected = if change.event_sourced {
            ExpectedVersion::Exact(change.expected_version)
        } else {
            ExpectedVersion::Any
        };
        appends.push(StreamAppend {
            stream: change.stream.clone(),
            expected,
            events: records,
        });
    }
    // The facts of the changed aggregates are events of this commit, appended after its
    // events in the same call: projectors and event handlers receive them with the others.
    let facts = crate::runtime::facts::appends(
        registry,
        &work.aggregates,
        crate::runtime::facts::FactContext {
            time,
            correlation_id: &correlation_id,
            causation_id: &causation_id,
            priority: lineage.priority,
            extensions: &lineage.extensions,
            enrichers: domain.event_enrichers(),
        },
    )?;
    let mut fact_events = Vec::with_capacity(facts.len());
    for fact in facts {
        appends.push(fact.append);
        fact_events.push(fact.event);
    }
    let mut stored = if appends.is_empty() {
        Vec::new()
    } else {
        transaction.append_all(appends).await?
    }
    .into_iter();
    for change in &work.aggregates {
        if change.events.is_empty() {
            last_events.push(None);
            continue;
        }
        let stored = stored.next().unwrap_or_default();
        last_events.push(stored.last().map(|metadata| metadata.id.clone()));
        for (event, stored) in change.events.iter().zip(stored) {
            recorded.push(event.record(stored));
        }
    }
    for (event, stored) in fact_events.iter().zip(stored) {
        recorded.extend(stored.into_iter().map(|metadata| event.record(metadata)));
    }
    // The handler's rows go in before the hooks, so projectors read them.
    work.rows.write_to(transaction.as_mut()).await?;
    if let Some(command) = &command {
        command
            .write(&domain, &recorded, time, transaction.as_mut())
            .await?;
    }
    if let Some(step_command) = step_command {
        crate::runtime::step_command::record(transaction.as_mut(), step_command).await?;
    }

    let commit = Commit {
        domain: &domain,
        events: &recorded,
    };
    for hook in hooks {
        tracing::trace!(hook = hook.name(), "commit hook");
        hook.on_commit(&commit, transaction.as_mut()).await?;
    }

    let mut snapshots = Vec::new();
    let states = work
        .aggregates
        .into_iter()
        .zip(last_events)
        .filter_map(
            |(change, last_event)| match (change.event_sourced, last_event) {
                (true, Some(last_event)) => {
                    if let Some(plan) = change.snapshot.filter(|plan| plan.due) {
                        snapshots.push(plan.snapshot(
                            &change.stream,
                            change.version,
                            &last_event,
                            &change.state,
                        ));
                    }
                    Some((change.key, change.state, last_event))
                }
                _ => None,
            },
        )
        .collect();
    let wakes_relay = domain.broker().is_some() && !recorded.is_empty();
    Ok(Some(Prepared {
        transaction,
        wakes_relay,
        committed: Committed {
            events: recorded,
            states,
            snapshots,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::error::Error;
    use crate::store::Row;

    /// Writes a row of its own, after checking that the rows written before it are in the
    /// transaction; fails at the end if told to.
    struct Probe {
        name: &'static str,
        sees: &'static [&'static str],
        fail: bool,
    }

    #[async_trait]
    impl CommitHook for Probe {
        fn name(&self) -> &'static str {
            self.name
        }

        async fn on_commit(
            &self,
            _commit: &Commit<'_>,
            transaction: &mut dyn Transaction,
        ) -> Result<()> {
            for earlier in self.sees {
                let row = transaction.get_row("probe", earlier).await?;
                assert!(row.is_some(), "{} does not see {earlier}", self.name);
            }
            let row = Arc::new(serde_json::json!({ "by": self.name }));
            transaction
                .put_row("probe", self.name.to_owned(), row)
                .await?;
            if self.fail {
                return Err(Error::storage(format!("{} refuses", self.name)));
            }
            Ok(())
        }
    }

    async fn unit_of_work() -> Context {
        let domain = Domain::builder("hooks")
            .without_discovery()
            .database("memory")
            .build()
            .await
            .expect("an empty domain builds");
        let mut unit = domain.unit_of_work();
        let row = Arc::new(serde_json::json!({ "by": "the handler" }));
        unit.work.rows.put("probe", "handler".to_owned(), Some(row));
        unit
    }

    async fn stored(domain: &Domain, id: &str) -> Option<Row> {
        domain.storage().get_row("probe", id).await.unwrap()
    }

    #[tokio::test]
    async fn hooks_run_in_order_after_the_unit_of_works_writes_and_commit_with_them() {
        let unit = unit_of_work().await;
        let domain = unit.domain.clone();
        let hooks: Vec<Arc<dyn CommitHook>> = vec![
            Arc::new(Probe {
                name: "first",
                sees: &["handler"],
                fail: false,
            }),
            Arc::new(Probe {
                name: "second",
                sees: &["handler", "first"],
                fail: false,
            }),
        ];
        let prepared = prepare(unit, &hooks)
            .await
            .unwrap()
            .expect("there are writes");
        prepared.commit().await.unwrap();
        for id in ["handler", "first", "second"] {
            assert!(stored(&domain, id).await.is_some(), "{id} is committed");
        }
    }

    #[tokio::test]
    async fn a_failing_hook_rolls_back_the_whole_unit_of_work() {
        let unit = unit_of_work().await;
        let domain = unit.domain.clone();
        let hooks: Vec<Arc<dyn CommitHook>> = vec![
            Arc::new(Probe {
                name: "first",
                sees: &["handler"],
                fail: false,
            }),
            Arc::new(Probe {
                name: "second",
                sees: &["handler", "first"],
                fail: true,
            }),
        ];
        let Err(error) = prepare(unit, &hooks).await else {
            panic!("the failing hook fails the commit");
        };
        assert!(error.to_string().contains("second refuses"), "{error}");
        for id in ["handler", "first", "second"] {
            assert!(stored(&domain, id).await.is_none(), "{id} is rolled back");
        }
    }
}
