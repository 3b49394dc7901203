//! The one projector runner: runs the registered projectors of a batch of recorded events
//! through an open transaction. A live commit runs it as a commit hook; the engine and
//! projection rebuilds run the same function on the batches they read.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tracing::Instrument;

use crate::model::error::{Error, Result};
use crate::model::event::AnyRecordedEvent;
use crate::registry::Registry;
use crate::runtime::context::ProjectorContext;
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
    run_projectors_of(registry, transaction, events, None).await
}

/// [`run_projectors`], restricted to the projector named `only` when given (the engine runs
/// each projector in a subscription of its own).
pub(crate) async fn run_projectors_of(
    registry: &Registry,
    transaction: &mut dyn Transaction,
    events: &[Arc<dyn AnyRecordedEvent>],
    only: Option<&str>,
) -> Result<()> {
    run_projectors_where(registry, transaction, events, &|name| {
        only.is_none_or(|only| only == name)
    })
    .await
}

/// [`run_projectors`], restricted to the projectors whose name `keep` accepts (a rebuild runs
/// the projectors of one projection).
pub(crate) async fn run_projectors_where(
    registry: &Registry,
    transaction: &mut dyn Transaction,
    events: &[Arc<dyn AnyRecordedEvent>],
    keep: &(dyn Fn(&str) -> bool + Sync),
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
            if !keep(listener.name) {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[crate::aggregate(event_sourced, crate = crate)]
    pub struct Till {
        pub total: i64,
    }

    #[crate::event(part_of = Till, crate = crate)]
    pub struct Rang {
        pub till_id: Identifier,
        pub amount: i64,
    }

    #[crate::aggregate(crate = crate)]
    impl Till {
        #[apply]
        fn on_rang(&mut self, event: &Rang) {
            self.total += event.amount;
        }
    }

    #[crate::projection(crate = crate)]
    pub struct Takings {
        #[field(identifier)]
        pub till_id: Identifier,
        pub total: i64,
        pub sales: i64,
    }

    /// Sums the takings of a till; a negative amount is refused as a version conflict.
    pub struct TakingsProjector;

    #[crate::projector(for = Takings, aggregates = [Till], crate = crate)]
    impl TakingsProjector {
        #[on(Rang)]
        async fn on_rang(event: &Event<Rang>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
            if event.amount < 0 {
                return Err(Error::VersionConflict {
                    stream: "takings".into(),
                    expected: 0,
                    actual: 1,
                });
            }
            let mut rows = ctx.repository::<Takings>();
            let mut row = rows.find(&event.till_id).await?.unwrap_or(Takings {
                till_id: event.till_id.clone(),
                total: 0,
                sales: 0,
            });
            row.total += event.amount;
            row.sales += 1;
            rows.add(row).await
        }
    }

    async fn domain() -> Domain {
        Domain::builder("runner")
            .without_discovery()
            .register::<Till>()
            .register::<Rang>()
            .register::<Takings>()
            .register::<TakingsProjector>()
            .database("memory")
            .build()
            .await
            .expect("the test domain builds")
    }

    /// Recorded events as a read of the store gives them, not as a commit made them.
    fn batch(
        domain: &Domain,
        till: &Identifier,
        amounts: &[i64],
    ) -> Vec<Arc<dyn AnyRecordedEvent>> {
        let stream = domain
            .event_store()
            .stream_of::<Till>(till)
            .expect("Till is registered");
        amounts
            .iter()
            .enumerate()
            .map(|(version, &amount)| {
                let metadata = EventMetadata {
                    id: Identifier::generate(),
                    type_name: "Runner.Rang.v1".into(),
                    stream: stream.clone(),
                    version: version as i64,
                    global_position: version as i64 + 1,
                    commit: version as i64 + 1,
                    time: Utc::now(),
                    correlation_id: Identifier::generate(),
                    causation_id: None,
                    priority: Default::default(),
                    extensions: Default::default(),
                };
                let event = Rang {
                    till_id: till.clone(),
                    amount,
                };
                Arc::new(Event::new(event, metadata)) as Arc<dyn AnyRecordedEvent>
            })
            .collect()
    }

    #[tokio::test]
    async fn the_runner_projects_a_batch_through_the_transaction_it_is_given() {
        let domain = domain().await;
        let till = Identifier::generate();
        let mut transaction = domain.storage().begin().await.unwrap();
        run_projectors(
            domain.registry(),
            transaction.as_mut(),
            &batch(&domain, &till, &[10, 20, 30]),
        )
        .await
        .unwrap();
        // Each event read the row the one before it wrote, within the batch.
        transaction.commit().await.unwrap();
        let row = domain.repository::<Takings>().get(&till).await.unwrap();
        assert_eq!((row.total, row.sales), (60, 3));
    }

    #[tokio::test]
    async fn a_failing_projector_stops_the_batch_with_its_error_kept_as_the_source() {
        let domain = domain().await;
        let till = Identifier::generate();
        let mut transaction = domain.storage().begin().await.unwrap();
        let error = run_projectors(
            domain.registry(),
            transaction.as_mut(),
            &batch(&domain, &till, &[10, -1, 30]),
        )
        .await
        .unwrap_err();
        assert!(error.is_version_conflict(), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("handler TakingsProjector::on_rang failed: on Runner.Rang.v1:"),
            "{error}"
        );
        drop(transaction);
        assert!(
            domain
                .repository::<Takings>()
                .find(&till)
                .await
                .unwrap()
                .is_none()
        );
    }
}
