//! The context of one unit of work: what a handler reads and writes through.

use crate::FastMap;
use std::any::Any;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;

use crate::domain::Domain;
use crate::element::{Handled, Persisted};
use crate::error::{Error, Result};
use crate::event::{AnyEvent, AnyRecordedEvent};
use crate::identifier::Identifier;
use crate::repository::Repository;
use crate::store::{JsonRow, Transaction, TypedRow};

/// The context of one unit of work.
///
/// Handlers receive it as `ctx: &mut Context`; it gives repositories
/// (`ctx.repository::<Account>()`), shared resources (`ctx.resource::<T>()`) and, in event
/// handlers, `ctx.process(command)`. Everything written through it commits together, or
/// nothing does.
///
/// Outside a handler, [`Domain::unit_of_work`] makes one; [`Context::commit`] then commits it.
pub struct Context {
    pub(crate) domain: Domain,
    pub(crate) correlation_id: Identifier,
    pub(crate) causation_id: Option<Identifier>,
    pub(crate) work: Mutex<Work>,
    /// Set while projectors run, inside the commit: reads go through the open transaction.
    pub(crate) transaction: tokio::sync::Mutex<Option<Box<dyn Transaction>>>,
}

/// A projection row written (`Some`) or removed (`None`): table, id, row.
pub(crate) type RowWrite = (String, String, Option<Arc<dyn TypedRow>>);

/// What a unit of work has written so far.
#[derive(Default)]
pub(crate) struct Work {
    /// Changed aggregates, in the order they were first added.
    pub(crate) aggregates: Vec<AggregateChange>,
    /// Stream (or `table/id`) → index into `aggregates`.
    pub(crate) aggregate_index: FastMap<String, usize>,
    /// Written (`Some`) or removed (`None`) projection rows, in write order.
    pub(crate) documents: Vec<RowWrite>,
    /// (table, id) → index into `documents`.
    pub(crate) document_index: FastMap<(String, String), usize>,
}

impl Work {
    pub(crate) fn is_empty(&self) -> bool {
        self.aggregates.is_empty() && self.documents.is_empty()
    }

    pub(crate) fn written_row(&self, table: &str, id: &str) -> Option<&Option<Arc<dyn TypedRow>>> {
        self.document_index
            .get(&(table.to_owned(), id.to_owned()))
            .map(|&index| &self.documents[index].2)
    }

    pub(crate) fn write_row(
        &mut self,
        table: &str,
        id: String,
        document: Option<Arc<dyn TypedRow>>,
    ) {
        let key = (table.to_owned(), id.clone());
        match self.document_index.get(&key) {
            Some(&index) => self.documents[index].2 = document,
            None => {
                self.document_index.insert(key, self.documents.len());
                self.documents.push((table.to_owned(), id, document));
            }
        }
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
            work: Mutex::new(Work::default()),
            transaction: tokio::sync::Mutex::new(None),
        }
    }

    /// A context that only reads (`domain.repository::<T>().get(..)`): it writes nothing, so
    /// it needs no correlation id of its own.
    pub(crate) fn reader(domain: &Domain) -> Self {
        Self::new(domain.clone(), Identifier::default(), None)
    }

    /// The domain this unit of work belongs to.
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

    /// The repository of an aggregate or projection, reading this unit of work's own writes.
    pub fn repository<T: Persisted>(&self) -> Repository<'_, T> {
        Repository::new(self)
    }

    /// A shared resource registered with `Domain::builder(..).resource(value)`.
    pub fn resource<T: Any + Send + Sync>(&self) -> Result<&T> {
        self.domain.resource::<T>()
    }

    /// Processes a command in its own unit of work, with this context's correlation id and
    /// this context's cause (in an event handler: the event) as its causation.
    ///
    /// In an event handler, the command's events are committed when this returns, but their
    /// event handlers run later: after the handlers of the events being delivered now
    /// (breadth-first, see [`DomainBuilder::event_handler_depth_limit`]), and still before
    /// the outermost `domain.process` returns.
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
        Box::pin(async move {
            let (output, _) = self
                .domain
                .process_traced(
                    command,
                    Some(self.correlation_id.clone()),
                    self.causation_id.clone(),
                )
                .await?;
            Ok(output)
        })
    }

    /// Commits everything written through this context (outside a handler; `process`
    /// commits its own), then runs the event handlers of the new events (in an event
    /// handler: queues them behind the events being delivered, as `process` does).
    pub async fn commit(mut self) -> Result<()> {
        crate::unit_of_work::commit(&mut self).await.map(drop)
    }

    /// The events this context will commit, oldest first (for inspection before a commit).
    pub fn pending_events(&self) -> Vec<Arc<dyn AnyEvent>> {
        self.work()
            .aggregates
            .iter()
            .flat_map(|change| change.events.iter().cloned())
            .collect()
    }

    pub(crate) fn work(&self) -> MutexGuard<'_, Work> {
        // A poisoned lock means a handler panicked mid-write; the unit of work is abandoned
        // anyway, so its data is still the best there is.
        self.work
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

tokio::task_local! {
    /// Set while the projectors of a commit run: the storage transaction is open then (the
    /// memory adapter holds its write lock), so anything that would go to storage around it
    /// would wait for itself.
    static PROJECTING: ();
}

/// Runs the projectors of a commit, marked as such for [`ensure_not_projecting`].
pub(crate) async fn projecting<T>(work: impl std::future::Future<Output = T>) -> T {
    PROJECTING.scope((), work).await
}

/// Refuses what cannot work inside a projector (loading aggregates, queries, commands, other
/// units of work), instead of letting it wait forever for the commit it is part of.
pub(crate) fn ensure_not_projecting(what: &str) -> Result<()> {
    if PROJECTING.try_with(|_| ()).is_ok() {
        return Err(Error::usage(format!(
            "{what} is not available in a projector: projectors run inside the commit and may only get, add and remove rows of projections through their `ctx`"
        )));
    }
    Ok(())
}

/// What a `process` produced: the handler's output and the events it committed.
pub(crate) type Processed<T> = (T, Vec<Arc<dyn AnyRecordedEvent>>);
