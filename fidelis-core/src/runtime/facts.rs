//! Fact events: after the events of a unit of work are appended, each changed aggregate
//! declared with `fact_events` gets one `Fact<A>` event carrying its whole new state, in the
//! stream `<domain>::<aggregate>_fact-<id>`, in the same transaction.
//!
//! This runs inside [`crate::runtime::commit::prepare`] before the commit hooks rather than as
//! a hook: hooks add writes, while facts are events of the commit, which the inline
//! projectors (a hook) and the dispatcher must see with the others.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::error::Result;
use crate::model::event::{
    AnyRecordedEvent, EventMetadata, Extensions, Payload, Priority, RecordedEvent,
};
use crate::model::identifier::Identifier;
use crate::registry::Registry;
use crate::runtime::context::AggregateChange;
use crate::store::{ExpectedVersion, Transaction};

/// What the facts of a commit share with its events.
pub(crate) struct FactContext<'a> {
    pub(crate) time: DateTime<Utc>,
    pub(crate) correlation_id: &'a Identifier,
    pub(crate) causation_id: &'a Option<Identifier>,
    pub(crate) priority: Priority,
    /// The command's extensions, which the domain's event enrichers extend.
    pub(crate) extensions: &'a Extensions,
    pub(crate) enrichers: &'a [crate::runtime::options::EventEnricher],
}

/// Appends the fact of every changed aggregate that records facts, and adds them to
/// `recorded` (the commit's events, as recorded).
pub(crate) async fn record(
    registry: &Registry,
    changes: &[AggregateChange],
    transaction: &mut dyn Transaction,
    context: FactContext<'_>,
    recorded: &mut Vec<Arc<dyn AnyRecordedEvent>>,
) -> Result<()> {
    if registry.facts.is_empty() {
        return Ok(());
    }
    for change in changes {
        // Changed: new events, or a new row of a stored aggregate.
        if change.events.is_empty() && change.document.is_none() {
            continue;
        }
        let state = change.state.as_ref();
        let Some(fact) = registry.facts.get(&state.type_id()) else {
            continue;
        };
        let Some(event) = (fact.make)(state) else {
            continue;
        };
        let info = registry.event_info(fact.event, fact.event_name)?;
        let id = event
            .aggregate_id()
            .map_or_else(String::new, |id| id.as_str().to_owned());
        let stream = format!("{}-{id}", fact.category);
        let mut metadata = EventMetadata {
            id: Identifier::generate(),
            type_name: info.type_name.clone(),
            stream: stream.clone(),
            // The store numbers it after the stream's last fact.
            version: 0,
            global_position: 0,
            commit: 0,
            time: context.time,
            correlation_id: context.correlation_id.clone(),
            causation_id: context.causation_id.clone(),
            priority: context.priority,
            extensions: Extensions::new(),
        };
        metadata.extensions =
            crate::runtime::options::enrich_event(context.enrichers, &metadata, context.extensions);
        let record = RecordedEvent {
            metadata,
            payload: Payload::Typed(event.clone()),
        };
        let stored = transaction
            .append(&stream, ExpectedVersion::Any, vec![record])
            .await?;
        recorded.extend(stored.into_iter().map(|metadata| event.record(metadata)));
    }
    Ok(())
}
