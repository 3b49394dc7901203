//! Committing a unit of work: events, aggregate rows and projection rows in one storage
//! transaction, then the event handlers.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use crate::context::{Context, RowWrite};
use crate::domain::Domain;
use crate::error::{Error, Result};
use crate::event::{AnyRecordedEvent, EventMetadata, RecordedEvent};
use crate::identifier::Identifier;
use crate::store::{ExpectedVersion, JsonRow, Transaction};

/// Commits a unit of work, then delivers its events to the event handlers; returns the
/// events as recorded.
///
/// In one transaction: aggregate rows (with their version check), new events (appended at
/// the version their aggregate was loaded at), then the projectors of those events, whose
/// rows are written last. Any failure drops the transaction, so nothing is stored.
///
/// Cancellation: until the final `COMMIT`, dropping this future drops the transaction,
/// which rolls back (every adapter's transaction is safe to drop at any await point). From
/// the `COMMIT` on, the work (commit, cache, delivery to the event handlers) is finished by a
/// task of its own if the caller stops waiting (a client that went away), so committed events
/// always reach their handlers. Inside an event handler, the events are queued behind the
/// events being delivered instead (breadth-first delivery, below).
pub(crate) async fn commit(ctx: &mut Context) -> Result<Vec<Arc<dyn AnyRecordedEvent>>> {
    commit_and(ctx, Delivery::EventHandlers).await
}

/// Commits a unit of work like [`commit`], without delivering its events to event handlers:
/// the testing DSL records a scenario's history, facts that already happened, this way.
pub(crate) async fn commit_history(ctx: &mut Context) -> Result<()> {
    commit_and(ctx, Delivery::Nobody).await.map(drop)
}

/// Who receives a commit's events once it is durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Delivery {
    EventHandlers,
    Nobody,
}

async fn commit_and(
    ctx: &mut Context,
    delivery: Delivery,
) -> Result<Vec<Arc<dyn AnyRecordedEvent>>> {
    let Some(prepared) = prepare(ctx).await? else {
        return Ok(Vec::new());
    };
    let Prepared {
        transaction,
        recorded,
        cached,
    } = prepared;
    let domain = ctx.domain.clone();
    let correlation_id = ctx.correlation_id.clone();
    // Read here, in the caller's task: the work below may finish in a task of its own.
    let delivering = DELIVERING.try_with(Delivering::clone).ok();
    crate::task::run_to_completion(async move {
        transaction.commit().await?;
        for (key, state, last_event) in cached {
            domain.cache().put_erased(key, state, last_event);
        }
        if delivery == Delivery::EventHandlers && !recorded.is_empty() {
            let batch = Batch {
                domain: domain.clone(),
                correlation_id,
                events: recorded.clone(),
                generation: delivering.as_ref().map_or(1, |scope| scope.generation + 1),
            };
            // Inside an event handler, the events queue behind the ones being delivered;
            // otherwise (or if that delivery has already ended) they are delivered here.
            let unqueued = match &delivering {
                Some(scope) => scope.queue.push(batch).err(),
                None => Some(batch),
            };
            if let Some(batch) = unqueued {
                deliver(batch).await;
            }
        }
        Ok(recorded)
    })
    .await
}

// Breadth-first delivery. The commit of a command (or of a unit of work by hand) that is not
// itself inside an event handler starts a delivery: a queue of committed batches of events,
// delivered in order, each handler inside a task-local scope naming the queue and the
// generation of the event it handles. A commit inside that scope (the handler's own unit of
// work, a command it issues with `ctx.process`, a unit of work it commits by hand) does not
// deliver its events: it appends them to the queue, one generation further, and returns. So
// events are delivered in the order they were committed, generation after generation, by one
// loop whose stack does not grow with the chain, and the delivery still ends before the
// outermost `process` returns (it runs inside that commit's `run_to_completion`). A task-local
// was chosen over returning events up to the loop because `ctx.process` and `Context::commit`
// are public and return the handler's output, not events; the scope reaches them unchanged.

tokio::task_local! {
    /// Set while an event handler runs: the delivery it is part of.
    static DELIVERING: Delivering;
}

/// The delivery an event handler runs in, and the generation of the event it handles.
#[derive(Clone)]
struct Delivering {
    queue: Arc<DeliveryQueue>,
    generation: usize,
}

/// The events of one commit, waiting for their event handlers.
struct Batch {
    /// The domain that committed them (a handler may process commands of another domain).
    domain: Domain,
    correlation_id: Identifier,
    events: Vec<Arc<dyn AnyRecordedEvent>>,
    /// 1 for the events of the command that started the request, n + 1 for the events
    /// committed by the handlers of generation n.
    generation: usize,
}

/// The batches a delivery has still to deliver, in commit order.
#[derive(Default)]
struct DeliveryQueue(std::sync::Mutex<QueueState>);

#[derive(Default)]
struct QueueState {
    pending: std::collections::VecDeque<Batch>,
    /// Set when the delivery found the queue empty and ended.
    closed: bool,
}

impl DeliveryQueue {
    fn state(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // Nothing panics while holding the lock; a poisoned queue is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a batch; gives it back if the delivery has already ended (a handler's commit
    /// that its handler stopped waiting for, finished in a task of its own after the rest).
    fn push(&self, batch: Batch) -> std::result::Result<(), Batch> {
        let mut state = self.state();
        if state.closed {
            return Err(batch);
        }
        state.pending.push_back(batch);
        Ok(())
    }

    /// The next batch, or `None` and the queue closed.
    fn pop(&self) -> Option<Batch> {
        let mut state = self.state();
        let next = state.pending.pop_front();
        state.closed = next.is_none();
        next
    }
}

/// Delivers a batch of committed events and every batch its handlers commit, breadth-first.
// Boxed: a delivery runs handlers, whose commits may (rarely, see `DeliveryQueue::push`)
// start a delivery of their own.
fn deliver(batch: Batch) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let queue = Arc::new(DeliveryQueue::default());
        let _ = queue.push(batch);
        while let Some(batch) = queue.pop() {
            run_event_handlers(&queue, batch).await;
        }
    })
}

/// A unit of work written to its open transaction, projectors included, but not committed.
struct Prepared {
    transaction: Box<dyn Transaction>,
    recorded: Vec<Arc<dyn AnyRecordedEvent>>,
    /// Event-sourced aggregates' new states, for the cache once committed (key, state, and
    /// the id of the last event applied).
    cached: Vec<(String, Arc<dyn Any + Send + Sync>, Identifier)>,
}

/// Writes a unit of work into a new transaction and runs the projectors; `None` when there
/// is nothing to write.
async fn prepare(ctx: &mut Context) -> Result<Option<Prepared>> {
    crate::context::ensure_not_projecting("committing a unit of work")?;
    let work = std::mem::take(&mut *ctx.work());
    if work.is_empty() {
        return Ok(None);
    }
    let domain = ctx.domain.clone();
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
    for change in &work.aggregates {
        if change.events.is_empty() {
            last_events.push(None);
            continue;
        }
        let mut records = Vec::with_capacity(change.events.len());
        for (offset, event) in change.events.iter().enumerate() {
            let info = registry.event_info(Any::type_id(event.as_any()), event.event_name())?;
            records.push(RecordedEvent {
                metadata: EventMetadata {
                    id: Identifier::generate(),
                    type_name: info.type_name.clone(),
                    stream: change.stream.clone(),
                    version: change.expected_version + 1 + offset as i64,
                    global_position: 0,
                    commit: 0,
                    time,
                    correlation_id: ctx.correlation_id.clone(),
                    causation_id: ctx.causation_id.clone(),
                },
                data: event.to_json()?,
            });
        }
        let expected = if change.event_sourced {
            ExpectedVersion::Exact(change.expected_version)
        } else {
            ExpectedVersion::Any
        };
        let stored = transaction
            .append(&change.stream, expected, records)
            .await?;
        last_events.push(stored.last().map(|metadata| metadata.id.clone()));
        for (event, stored) in change.events.iter().zip(stored) {
            recorded.push(event.record(stored));
        }
    }

    // Rows the handler wrote go in first, so projectors read them through the transaction.
    write_documents(transaction.as_mut(), work.documents).await?;
    // Projectors read and write through the open transaction.
    *ctx.transaction.lock().await = Some(transaction);
    let projected = crate::context::projecting(run_projectors(ctx, &recorded)).await;
    let Some(mut transaction) = ctx.transaction.lock().await.take() else {
        return Err(Error::storage("the unit of work lost its transaction"));
    };
    projected?;

    let projected = std::mem::take(&mut *ctx.work());
    write_documents(transaction.as_mut(), projected.documents).await?;

    let cached = work
        .aggregates
        .into_iter()
        .zip(last_events)
        .filter_map(
            |(change, last_event)| match (change.event_sourced, last_event) {
                (true, Some(last_event)) => Some((change.key, change.state, last_event)),
                _ => None,
            },
        )
        .collect();
    Ok(Some(Prepared {
        transaction,
        recorded,
        cached,
    }))
}

async fn write_documents(
    transaction: &mut dyn Transaction,
    documents: Vec<RowWrite>,
) -> Result<()> {
    for (table, id, document) in documents {
        match document {
            Some(row) => transaction.put_row(&table, id, row).await?,
            None => transaction.remove_row(&table, &id).await?,
        }
    }
    Ok(())
}

async fn run_projectors(ctx: &mut Context, events: &[Arc<dyn AnyRecordedEvent>]) -> Result<()> {
    let domain = ctx.domain.clone();
    for event in events {
        let Some(listeners) = domain
            .registry()
            .projectors
            .get(&Any::type_id(event.payload_any().as_any()))
        else {
            continue;
        };
        for listener in listeners {
            let span = tracing::debug_span!(
                "projector",
                projector = listener.name,
                method = listener.method,
                event = %event.metadata().type_name,
            );
            // Unwind safety (why `AssertUnwindSafe` is sound): after a panic, nothing the
            // projector may have left half written is used again. Its unit of work is
            // abandoned: the transaction is dropped, which rolls back, and `ctx` with it (its
            // `std` mutex recovers from poisoning and is discarded anyway); the registry and
            // cache it could reach are not written by projectors. State a projector keeps in
            // itself is its own to keep consistent, as in any tokio task, whose panics tokio
            // catches the same way.
            let result = AssertUnwindSafe(listener.call.call(
                listener.instance.as_ref(),
                event.as_ref(),
                ctx,
            ))
            .catch_unwind()
            .instrument(span)
            .await;
            if let Some(error) = failure(listener.name, result) {
                tracing::warn!(
                    projector = listener.name,
                    method = listener.method,
                    correlation_id = %ctx.correlation_id,
                    %error,
                    "projector failed; the unit of work is rolled back"
                );
                return Err(Error::handler_failed(
                    format!("{}::{}", listener.name, listener.method),
                    &format!("on {}", event.metadata().type_name),
                    error,
                ));
            }
        }
    }
    Ok(())
}

/// Runs the event handlers of a batch of committed events, each in its own unit of work,
/// inside the delivery's scope (so what they commit joins `queue`). A failure (an `Err` or a
/// panic) does not undo the command and does not stop the other handlers: it is logged with
/// its correlation id and counted. A batch past the domain's depth limit is not delivered:
/// that too is logged and counted, once, if any of its events has a handler.
async fn run_event_handlers(queue: &Arc<DeliveryQueue>, batch: Batch) {
    let Batch {
        domain,
        correlation_id,
        events,
        generation,
    } = batch;
    let handlers = &domain.registry().event_handlers;
    let limit = domain.event_handler_depth_limit();
    if generation > limit {
        let undelivered: Vec<&str> = events
            .iter()
            .filter(|event| handlers.contains_key(&Any::type_id(event.payload_any().as_any())))
            .map(|event| event.metadata().type_name.as_str())
            .collect();
        if !undelivered.is_empty() {
            domain.count_event_handler_failure();
            tracing::error!(
                correlation_id = %correlation_id,
                limit,
                events = ?undelivered,
                "event handler depth limit reached: these events are committed but not delivered \
                 to their event handlers (event handlers that trigger each other without end?)"
            );
        }
        return;
    }
    for event in &events {
        let Some(listeners) = handlers.get(&Any::type_id(event.payload_any().as_any())) else {
            continue;
        };
        for listener in listeners {
            let span = tracing::info_span!(
                "event_handler",
                handler = listener.name,
                method = listener.method,
                event = %event.metadata().type_name,
                correlation_id = %correlation_id,
            );
            let mut ctx = Context::new(
                domain.clone(),
                correlation_id.clone(),
                Some(event.metadata().id.clone()),
            );
            let scope = Delivering {
                queue: queue.clone(),
                generation,
            };
            // Unwind safety: as for projectors, a panicking handler's unit of work is
            // abandoned with its `ctx` (a transaction it had begun is rolled back, units of
            // work it committed through `ctx.process` stand, their events queued); the panic
            // is one more handler failure, and the next handler runs.
            let result = AssertUnwindSafe(DELIVERING.scope(scope, async {
                listener
                    .call
                    .call(listener.instance.as_ref(), event.as_ref(), &mut ctx)
                    .await?;
                // Commits, and queues its events behind the ones being delivered.
                commit(&mut ctx).await.map(drop)
            }))
            .catch_unwind()
            .instrument(span)
            .await;
            if let Some(error) = failure(listener.name, result) {
                domain.count_event_handler_failure();
                tracing::error!(
                    handler = listener.name,
                    method = listener.method,
                    event = %event.metadata().type_name,
                    correlation_id = %correlation_id,
                    %error,
                    "event handler failed after commit; the command stands"
                );
            }
        }
    }
}

/// What went wrong in a handler run under `catch_unwind`: its error (kept, so a domain error
/// inside stays findable), or its panic as a handler error.
fn failure(handler: &str, outcome: std::thread::Result<Result<()>>) -> Option<Error> {
    match outcome {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(panic) => Some(Error::handler(
            handler,
            format!("panicked: {}", crate::task::panic_message(&*panic)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn batch(generation: usize) -> Batch {
        let domain = Domain::builder("queue")
            .without_discovery()
            .database("memory")
            .build()
            .await
            .expect("an empty domain builds");
        Batch {
            domain,
            correlation_id: Identifier::generate(),
            events: Vec::new(),
            generation,
        }
    }

    #[tokio::test]
    async fn the_queue_delivers_in_commit_order_and_refuses_batches_once_it_has_ended() {
        let queue = DeliveryQueue::default();
        assert!(queue.push(batch(1).await).is_ok());
        assert!(queue.push(batch(2).await).is_ok());
        assert_eq!(queue.pop().map(|batch| batch.generation), Some(1));
        assert!(queue.push(batch(3).await).is_ok());
        assert_eq!(queue.pop().map(|batch| batch.generation), Some(2));
        assert_eq!(queue.pop().map(|batch| batch.generation), Some(3));
        assert!(queue.pop().is_none());
        // A late commit gets its batch back, to deliver it itself.
        let late = queue.push(batch(4).await);
        assert_eq!(late.err().map(|batch| batch.generation), Some(4));
    }
}
