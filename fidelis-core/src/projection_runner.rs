//! The one projector runner: runs the registered projectors of a batch of recorded events
//! through an open transaction. A live commit runs it as a commit hook; the engine and
//! projection rebuilds run the same function on the batches they read.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;

use crate::context::ProjectorContext;
use crate::error::{Error, Result};
use crate::event::AnyRecordedEvent;
use crate::registry::Registry;
use crate::store::Transaction;

/// Runs the projectors of `events`, in event order and, per event, in registration order,
/// reading and writing rows through `transaction`; the rows they wrote are in `transaction`
/// when this returns `Ok`. The first failure (an error or a panic) stops the batch and is
/// returned as [`Error::Handler`] naming the projector and the event, with the projector's
/// own error as its source (so [`Error::is_version_conflict`] and [`Error::domain`] see
/// through it). The caller then drops `transaction`, which rolls back.
pub(crate) async fn run_projectors(
    registry: &Registry,
    transaction: &mut dyn Transaction,
    events: &[Arc<dyn AnyRecordedEvent>],
) -> Result<()> {
    let mut ctx = ProjectorContext::new(registry, transaction);
    for event in events {
        let Some(listeners) = registry
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
            // projector may have left half written is used again: the batch stops here and
            // `ctx`, with the rows it buffered, is dropped; the caller drops the transaction,
            // which rolls back. The registry is only read. State a projector keeps in itself
            // is its own to keep consistent, as in any tokio task, whose panics tokio catches
            // the same way.
            let result = AssertUnwindSafe(listener.call.call(
                listener.instance.as_ref(),
                event.as_ref(),
                &mut ctx,
            ))
            .catch_unwind()
            .instrument(span)
            .await;
            if let Some(error) = crate::task::handler_failure(listener.name, result) {
                tracing::warn!(
                    projector = listener.name,
                    method = listener.method,
                    correlation_id = %event.metadata().correlation_id,
                    %error,
                    "projector failed; its transaction is rolled back"
                );
                return Err(Error::handler_failed(
                    format!("{}::{}", listener.name, listener.method),
                    &format!("on {}", event.metadata().type_name),
                    error,
                ));
            }
        }
    }
    ctx.finish().await
}
