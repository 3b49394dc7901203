//! The contexts handlers receive, one per role, so that what a role may not do does not
//! compile: [`Context`] for command handlers (and units of work by hand),
//! [`EventHandlerContext`] for event handlers, [`ProjectorContext`] for projectors.

use crate::FastMap;
use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::model::element::{Handled, Persisted, ProjectionRow};
use crate::model::error::{Error, Result};
use crate::model::event::{AnyEvent, AnyRecordedEvent, EventMetadata, Extensions, Priority};
use crate::model::identifier::Identifier;
use crate::registry::Registry;
use crate::runtime::commit::CommandRecord;
use crate::runtime::domain::{Domain, Request};
use crate::runtime::options::{Lineage, ProcessOptions};
use crate::runtime::repository::Repository;
use crate::runtime::step_command::{self, StepScope};
use crate::store::{JsonRow, Row, Transaction, TypedRow};

/// The context of a command handler: one unit of work.
///
/// Handlers receive it as `ctx: &mut Context`; it gives repositories
/// (`ctx.repository::<Account>()`) and shared resources (`ctx.resource::<T>()`).
/// Everything written through it commits together, or nothing does.
///
/// It has no `process`: a command handler changes its own unit of work, and a version
/// conflict runs it again, so a command it issued would already have committed and would be
/// issued twice. Follow-up commands belong in an event handler, whose
/// [`EventHandlerContext::process`] runs after the commit.
///
/// Outside a handler, [`Domain::unit_of_work`] makes one; [`Context::commit`] then commits it.
pub struct Context {
    pub(crate) domain: Domain,
    pub(crate) correlation_id: Identifier,
    pub(crate) causation_id: Option<Identifier>,
    /// The priority and extensions its events get, and commands issued for them inherit.
    pub(crate) lineage: Lineage,
    /// The command this unit of work processes, for the command log and the queue.
    pub(crate) command: Option<Arc<CommandRecord>>,
    /// The record of a command a process manager's step issued, written with its events.
    pub(crate) step_command: Option<crate::store::system::StepCommand>,
    pub(crate) work: Work,
}

/// A projection row written (`Some`) or removed (`None`): table, id, row.
pub(crate) type RowWrite = (String, String, Option<Arc<dyn TypedRow>>);

/// Rows written (`Some`) or removed (`None`), in write order, each row once (its last write).
#[derive(Default)]
pub(crate) struct RowWrites {
    pub(crate) writes: Vec<RowWrite>,
    /// Table → id → index into `writes`, built only once there are more than
    /// [`SCANNED_WRITES`]: a command's projectors write a row or two, found by a scan without
    /// a map to build or an owned key per lookup; a batch (a rebuild, the engine) writes many.
    index: FastMap<String, FastMap<String, usize>>,
}

/// Up to this many writes, a row is found by a scan of `writes`.
const SCANNED_WRITES: usize = 8;

impl RowWrites {
    pub(crate) fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(crate) fn get(&self, table: &str, id: &str) -> Option<&Option<Arc<dyn TypedRow>>> {
        self.position(table, id).map(|index| &self.writes[index].2)
    }

    pub(crate) fn put(&mut self, table: &str, id: String, row: Option<Arc<dyn TypedRow>>) {
        if let Some(index) = self.position(table, &id) {
            self.writes[index].2 = row;
            return;
        }
        let index = self.writes.len();
        if index == SCANNED_WRITES {
            for (position, (table, id, _)) in self.writes.iter().enumerate() {
                self.index
                    .entry(table.clone())
                    .or_default()
                    .insert(id.clone(), position);
            }
        }
        if index >= SCANNED_WRITES {
            self.index
                .entry(table.to_owned())
                .or_default()
                .insert(id.clone(), index);
        }
        self.writes.push((table.to_owned(), id, row));
    }

    /// Where the row's write is in `writes`, if it was written.
    fn position(&self, table: &str, id: &str) -> Option<usize> {
        if self.writes.len() <= SCANNED_WRITES {
            self.writes
                .iter()
                .position(|(written_table, written_id, _)| {
                    written_table == table && written_id == id
                })
        } else {
            self.index.get(table)?.get(id).copied()
        }
    }

    /// Writes the rows into a transaction, in write order.
    pub(crate) async fn write_to(self, transaction: &mut dyn Transaction) -> Result<()> {
        for (table, id, row) in self.writes {
            match row {
                Some(row) => transaction.put_row(&table, id, row).await?,
                None => transaction.remove_row(&table, &id).await?,
            }
        }
        Ok(())
    }
}

/// What a unit of work has written so far.
#[derive(Default)]
pub(crate) struct Work {
    /// Changed aggregates, in the order they were first added.
    pub(crate) aggregates: Vec<AggregateChange>,
    /// Stream (or `table/id`) → index into `aggregates`.
    pub(crate) aggregate_index: FastMap<String, usize>,
    /// Projection rows written or removed by the handler.
    pub(crate) rows: RowWrites,
}

impl Work {
    pub(crate) fn is_empty(&self) -> bool {
        self.aggregates.is_empty() && self.rows.is_empty()
    }
}

/// One aggregate changed in a unit of work.
pub(crate) struct AggregateChange {
    /// Stream name (event-sourced) or `table/id` (stored).
    pub(crate) key: String,
    pub(crate) stream: String,
    pub(crate) event_sourced: bool,
    pub(crate) table: String,
    /// The version it was loaded at: what the store must still hold.
    pub(crate) expected_version: i64,
    /// Its version after this unit of work's events.
    pub(crate) version: i64,
    /// Its latest state (pending events drained), a clone of the aggregate type.
    pub(crate) state: Arc<dyn Any + Send + Sync>,
    /// The row to write (stored aggregates).
    pub(crate) document: Option<JsonRow>,
    /// New events, oldest first.
    pub(crate) events: Vec<Arc<dyn AnyEvent>>,
    /// Whether its committed state gets a snapshot (event-sourced aggregates).
    pub(crate) snapshot: Option<crate::runtime::snapshot::SnapshotPlan>,
}

impl Context {
    pub(crate) fn new(
        domain: Domain,
        correlation_id: Identifier,
        causation_id: Option<Identifier>,
    ) -> Self {
        Self {
            domain,
            correlation_id,
            causation_id,
            lineage: Lineage::default(),
            command: None,
            step_command: None,
            work: Work::default(),
        }
    }

    /// The unit of work of a handler of `event`: same correlation, the event as its cause,
    /// and the event's priority and extensions passed on.
    pub(crate) fn caused_by(domain: Domain, event: &EventMetadata) -> Self {
        Self {
            lineage: Lineage::of_event(event),
            ..Self::new(domain, event.correlation_id.clone(), Some(event.id.clone()))
        }
    }

    /// A context that only reads (`domain.repository::<T>().get(..)`): it writes nothing, so
    /// it needs no correlation id of its own.
    pub(crate) fn reader(domain: &Domain) -> Self {
        Self::new(domain.clone(), Identifier::default(), None)
    }

    /// The domain this unit of work belongs to. What goes through it (another command, a
    /// repository's `add`) is not part of this unit of work.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The correlation id shared by every message of this request.
    pub fn correlation_id(&self) -> &Identifier {
        &self.correlation_id
    }

    /// The message (command or event) that started this unit of work.
    pub fn causation_id(&self) -> Option<&Identifier> {
        self.causation_id.as_ref()
    }

    /// The priority this unit of work's events get.
    pub fn priority(&self) -> Priority {
        self.lineage.priority
    }

    /// The extensions this unit of work's events get (before the event enrichers').
    pub fn extensions(&self) -> &Extensions {
        &self.lineage.extensions
    }

    /// The repository of an aggregate or projection, reading this unit of work's own writes.
    ///
    /// It borrows the context: take one per call (`ctx.repository::<A>().get(..)`, then
    /// `ctx.repository::<A>().add(..)`) when a handler also uses other repositories or
    /// resources in between.
    pub fn repository<T: Persisted>(&mut self) -> Repository<'_, T> {
        Repository::new(self)
    }

    /// A shared resource registered with `Domain::builder(..).resource(value)`.
    pub fn resource<T: Any + Send + Sync>(&self) -> Result<&T> {
        self.domain.resource::<T>()
    }

    /// Commits everything written through this context (outside a handler; `process`
    /// commits its own), then runs the event handlers of the new events (in an event
    /// handler: queues them behind the events being delivered).
    pub async fn commit(self) -> Result<()> {
        crate::runtime::unit_of_work::commit(self).await.map(drop)
    }

    /// The events this context will commit, oldest first (for inspection before a commit).
    pub fn pending_events(&self) -> Vec<Arc<dyn AnyEvent>> {
        self.work
            .aggregates
            .iter()
            .flat_map(|change| change.events.iter().cloned())
            .collect()
    }
}

/// The context of an event handler: its own unit of work, run after the commit of the
/// event it handles.
///
/// Handlers receive it as `ctx: &mut EventHandlerContext`; it gives repositories and
/// resources as [`Context`] does, and [`process`](Self::process) to issue commands.
pub struct EventHandlerContext {
    pub(crate) unit: Context,
    /// The process manager step being run, if this is one: its commands get derived ids.
    pub(crate) step: Option<StepScope>,
}

impl EventHandlerContext {
    pub(crate) fn new(unit: Context) -> Self {
        Self { unit, step: None }
    }

    /// The domain the event was committed in.
    pub fn domain(&self) -> &Domain {
        &self.unit.domain
    }

    /// The correlation id shared by every message of this request.
    pub fn correlation_id(&self) -> &Identifier {
        &self.unit.correlation_id
    }

    /// The event being handled (the cause of what this handler writes).
    pub fn causation_id(&self) -> Option<&Identifier> {
        self.unit.causation_id.as_ref()
    }

    /// The repository of an aggregate or projection, in this handler's unit of work (it
    /// commits when the handler returns `Ok`).
    pub fn repository<T: Persisted>(&mut self) -> Repository<'_, T> {
        self.unit.repository()
    }

    /// A shared resource registered with `Domain::builder(..).resource(value)`.
    pub fn resource<T: Any + Send + Sync>(&self) -> Result<&T> {
        self.unit.resource()
    }

    /// The priority of the event being handled: the commands this handler issues inherit it.
    pub fn priority(&self) -> Priority {
        self.unit.lineage.priority
    }

    /// The extensions of the event being handled: the commands this handler issues inherit
    /// them.
    pub fn extensions(&self) -> &Extensions {
        &self.unit.lineage.extensions
    }

    /// Processes a command in its own unit of work, with this context's correlation id and
    /// the event as its causation; the command (and so its events) inherits the event's
    /// priority and extensions.
    ///
    /// The command's events are committed when this returns, but their event handlers run
    /// later: after the handlers of the events being delivered now (breadth-first, see
    /// [`DomainBuilder::event_handler_depth_limit`]), and still before the outermost
    /// `domain.process` returns.
    ///
    /// [`DomainBuilder::event_handler_depth_limit`]: crate::DomainBuilder::event_handler_depth_limit
    ///
    /// `O` is always the handler's output type, inferred from `C`: call it as
    /// `ctx.process(command).await`.
    // Shaped as `Domain::process` is, for one compile error on a command without a handler.
    pub fn process<C, O>(&self, command: C) -> BoxFuture<'_, Result<O>>
    where
        C: Handled<Output = O>,
        O: Send + 'static,
    {
        self.process_with(command, ProcessOptions::new())
    }

    /// [`process`](Self::process) with options: a priority or extensions set here win over
    /// the inherited ones (an extension given here is added to the inherited ones), and a
    /// correlation id set here starts a correlation of its own.
    pub fn process_with<C, O>(
        &self,
        command: C,
        options: ProcessOptions,
    ) -> BoxFuture<'_, Result<O>>
    where
        C: Handled<Output = O>,
        O: Send + 'static,
    {
        crate::runtime::process_manager::record_command(&command);
        Box::pin(async move {
            let mut extensions = (*self.unit.lineage.extensions).clone();
            extensions.extend(options.extensions);
            let request = Request {
                correlation_id: Some(
                    options
                        .correlation_id
                        .unwrap_or_else(|| self.unit.correlation_id.clone()),
                ),
                causation_id: self.unit.causation_id.clone(),
                priority: options.priority.unwrap_or(self.unit.lineage.priority),
                extensions,
                ..Request::default()
            };
            let Some(step) = &self.step else {
                let (output, _) = self.unit.domain.process_request(command, request).await?;
                return Ok(output);
            };
            // A process manager's step: the command is processed once across runs of the
            // step (see `runtime/step_command.rs`).
            let domain = &self.unit.domain;
            let record = step.next::<C>(domain.name());
            let id = record.id.clone();
            if let Some(output) =
                step_command::recorded::<C>(domain.storage().as_ref(), &id).await?
            {
                tracing::debug!(command = C::NAME, command_id = %id, "issued by an earlier run of this step; not processed again");
                return Ok(output);
            }
            let request = Request {
                command_id: Some(Identifier::from(id.as_str())),
                step_command: Some(record),
                ..request
            };
            match domain.process_request(command, request).await {
                Ok((output, _)) => Ok(output),
                // Another run of the step committed it meanwhile: its output stands.
                Err(error) => {
                    match step_command::recorded::<C>(domain.storage().as_ref(), &id).await {
                        Ok(Some(output)) => Ok(output),
                        _ => Err(error),
                    }
                }
            }
        })
    }
}

/// The context of a projector: the rows of projections, read and written through the
/// transaction of the commit being projected (or of a rebuild).
///
/// Projectors receive it as `ctx: &mut ProjectorContext<'_>`. It offers
/// [`repository`](Self::repository) for projections only: a projector runs inside a commit,
/// so loading aggregates, queries and commands are not offered (they do not compile).
/// What it writes commits with the events it projects, or not at all.
pub struct ProjectorContext<'a> {
    registry: &'a Registry,
    transaction: &'a mut dyn Transaction,
    /// Written rows, kept until the end of the batch: a row written by several events of the
    /// batch is written to storage once, and read back typed.
    rows: RowWrites,
}

impl<'a> ProjectorContext<'a> {
    pub(crate) fn new(registry: &'a Registry, transaction: &'a mut dyn Transaction) -> Self {
        Self {
            registry,
            transaction,
            rows: RowWrites::default(),
        }
    }

    /// The rows of projection `P`, as this transaction sees them.
    pub fn repository<P: ProjectionRow>(&mut self) -> ProjectionRepository<'_, 'a, P> {
        ProjectionRepository {
            ctx: self,
            _projection: PhantomData,
        }
    }

    /// Writes the rows the projectors wrote into the transaction.
    pub(crate) async fn finish(self) -> Result<()> {
        self.rows.write_to(self.transaction).await
    }
}

/// The rows of projection `P` in a projector: get, add and remove, through the open
/// transaction. Every method borrows it mutably (reads go through the transaction too).
pub struct ProjectionRepository<'c, 'a, P> {
    ctx: &'c mut ProjectorContext<'a>,
    _projection: PhantomData<fn() -> P>,
}

// `Persisted`, not `Projection`: `repository` alone asks for a projection, so a projector
// naming an aggregate gets one error there rather than another at each method call.
impl<'a, P: Persisted> ProjectionRepository<'_, 'a, P> {
    /// The row with this id, or [`Error::NotFound`].
    pub async fn get(&mut self, id: impl AsRef<str>) -> Result<P> {
        let id = id.as_ref();
        self.find(id).await?.ok_or_else(|| Error::NotFound {
            element: P::NAME.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The row with this id, if there is one.
    pub async fn find(&mut self, id: impl AsRef<str>) -> Result<Option<P>> {
        let id = id.as_ref();
        if !crate::runtime::repository::storable(id) {
            return Ok(None);
        }
        let table = self.table()?;
        let row = match self.ctx.rows.get(table, id) {
            Some(written) => written.clone().map(Row::Typed),
            None => self.ctx.transaction.get_row(table, id).await?,
        };
        row.map(|row| crate::runtime::repository::decode_row::<P>(table, id, row))
            .transpose()
    }

    /// Adds or replaces the row (it is validated first).
    pub async fn add(&mut self, value: P) -> Result<()> {
        crate::runtime::repository::validate_projection(&value)?;
        let table = self.table()?;
        let id = value.identity().into_string();
        self.ctx.rows.put(table, id, Some(Arc::new(value)));
        Ok(())
    }

    /// Removes the row (nothing happens when there is none).
    pub async fn remove(&mut self, id: impl AsRef<str>) -> Result<()> {
        let table = self.table()?;
        self.ctx.rows.put(table, id.as_ref().to_owned(), None);
        Ok(())
    }

    fn table(&self) -> Result<&'a str> {
        let registry: &'a Registry = self.ctx.registry;
        Ok(&registry.projection_info::<P>()?.table)
    }
}

/// What a `process` produced: the handler's output and the events it committed.
pub(crate) type Processed<T> = (T, Vec<Arc<dyn AnyRecordedEvent>>);

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u64) -> Option<Arc<dyn TypedRow>> {
        Some(Arc::new(serde_json::json!({ "n": n })))
    }

    fn written(writes: &RowWrites, table: &str, id: &str) -> Option<String> {
        writes.get(table, id).map(|row| match row {
            Some(row) => row.to_json().map_or_else(
                |error| error.to_string(),
                |row| serde_json::Value::Object(row).to_string(),
            ),
            None => "removed".to_owned(),
        })
    }

    #[test]
    fn row_writes_keep_the_last_write_of_each_row_in_first_write_order_past_the_scanned_few() {
        let mut writes = RowWrites::default();
        for n in 0..20 {
            writes.put(if n % 2 == 0 { "a" } else { "b" }, format!("{n}"), row(n));
            // Rewriting an earlier row, before and after the index is built.
            writes.put("a", "0".to_owned(), row(100 + n));
        }
        writes.put("b", "3".to_owned(), None);
        assert_eq!(writes.writes.len(), 20);
        assert_eq!(written(&writes, "a", "0").as_deref(), Some(r#"{"n":119}"#));
        assert_eq!(written(&writes, "b", "3").as_deref(), Some("removed"));
        assert_eq!(written(&writes, "a", "18").as_deref(), Some(r#"{"n":18}"#));
        assert_eq!(written(&writes, "b", "18"), None);
        let order: Vec<&str> = writes.writes.iter().map(|(_, id, _)| id.as_str()).collect();
        let expected: Vec<String> = (0..20).map(|n| n.to_string()).collect();
        assert_eq!(order, expected);
    }
}
