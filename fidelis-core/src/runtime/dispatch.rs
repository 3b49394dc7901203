//! Delivering committed events to their listeners: the [`Dispatcher`] a domain holds, and
//! the synchronous one it has today, which runs the event handlers breadth-first before the
//! outermost `process` returns. (The engine adds an asynchronous one behind the same trait.)

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use crate::model::event::AnyRecordedEvent;
use crate::model::identifier::Identifier;
use crate::runtime::context::{Context, EventHandlerContext};
use crate::runtime::domain::Domain;

/// Delivers the events of a commit to their listeners. The commit runs the returned future
/// to its end even if its caller stops waiting (see `task::run_to_completion`), so a
/// dispatcher's delivery does not depend on the caller staying alive.
pub(crate) trait Dispatcher: Send + Sync + 'static {
    fn dispatch(&self, batch: Batch) -> BoxFuture<'static, ()>;
}

/// The events of one commit, for their listeners.
pub(crate) struct Batch {
    /// The domain that committed them (a handler may process commands of another domain).
    pub(crate) domain: Domain,
    pub(crate) correlation_id: Identifier,
    pub(crate) events: Vec<Arc<dyn AnyRecordedEvent>>,
    /// Where the commit happened.
    pub(crate) origin: Origin,
}

/// The delivery a commit happened in, if it happened in an event handler. Read in the
/// committing task ([`Origin::current`]), before the work that may finish in a task of its own.
pub(crate) struct Origin(Option<Delivering>);

impl Origin {
    /// The delivery the calling task is part of.
    pub(crate) fn current() -> Self {
        Self(DELIVERING.try_with(Delivering::clone).ok())
    }
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
pub(crate) struct Delivering {
    queue: Arc<DeliveryQueue>,
    generation: usize,
}

/// Runs the event handlers of committed events in the committing task, breadth-first, up to
/// the domain's depth limit.
pub(crate) struct SyncDispatcher;

impl Dispatcher for SyncDispatcher {
    fn dispatch(&self, batch: Batch) -> BoxFuture<'static, ()> {
        let Batch {
            domain,
            correlation_id,
            events,
            origin,
        } = batch;
        let queued = Queued {
            domain,
            correlation_id,
            events,
            generation: origin.0.as_ref().map_or(1, |scope| scope.generation + 1),
        };
        // Inside an event handler, the events queue behind the ones being delivered;
        // otherwise (or if that delivery has already ended) they are delivered here.
        let unqueued = match &origin.0 {
            Some(scope) => scope.queue.push(queued).err(),
            None => Some(queued),
        };
        match unqueued {
            Some(queued) => deliver(queued),
            None => Box::pin(async {}),
        }
    }
}

/// A batch waiting in a delivery's queue.
struct Queued {
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
    pending: std::collections::VecDeque<Queued>,
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
    fn push(&self, batch: Queued) -> std::result::Result<(), Queued> {
        let mut state = self.state();
        if state.closed {
            return Err(batch);
        }
        state.pending.push_back(batch);
        Ok(())
    }

    /// The next batch, or `None` and the queue closed.
    fn pop(&self) -> Option<Queued> {
        let mut state = self.state();
        let next = state.pending.pop_front();
        state.closed = next.is_none();
        next
    }
}

/// Delivers a batch of committed events and every batch its handlers commit, breadth-first.
// Boxed: a delivery runs handlers, whose commits may (rarely, see `DeliveryQueue::push`)
// start a delivery of their own.
fn deliver(batch: Queued) -> BoxFuture<'static, ()> {
    Box::pin(async move {
        let queue = Arc::new(DeliveryQueue::default());
        let _ = queue.push(batch);
        while let Some(batch) = queue.pop() {
            run_event_handlers(&queue, batch).await;
        }
    })
}

/// Runs the event handlers of a batch of committed events, each in its own unit of work,
/// inside the delivery's scope (so what they commit joins `queue`). A failure (an `Err` or a
/// panic) does not undo the command and does not stop the other handlers: it is logged with
/// its correlation id and counted. A batch past the domain's depth limit is not delivered:
/// that too is logged and counted, once, if any of its events has a handler.
async fn run_event_handlers(queue: &Arc<DeliveryQueue>, batch: Queued) {
    let Queued {
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
            let mut ctx =
                EventHandlerContext::new(Context::caused_by(domain.clone(), event.metadata()));
            let scope = Delivering {
                queue: queue.clone(),
                generation,
            };
            // Unwind safety: a panicking handler's unit of work is abandoned with its `ctx`
            // (nothing of it is stored; units of work it committed through `ctx.process`
            // stand, their events queued); the panic is one more handler failure, and the
            // next handler runs.
            let result = AssertUnwindSafe(DELIVERING.scope(scope, async {
                listener
                    .call
                    .call(listener.instance.as_ref(), event.as_ref(), &mut ctx)
                    .await?;
                // Commits, and queues its events behind the ones being delivered.
                crate::runtime::unit_of_work::commit(ctx.unit)
                    .await
                    .map(drop)
            }))
            .catch_unwind()
            .instrument(span)
            .await;
            if let Some(error) = crate::task::handler_failure(listener.name, result) {
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn batch(generation: usize) -> Queued {
        let domain = Domain::builder("queue")
            .without_discovery()
            .database("memory")
            .build()
            .await
            .expect("an empty domain builds");
        Queued {
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
