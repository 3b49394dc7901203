//! Fact events: with the events of a unit of work, each changed aggregate declared with
//! `fact_events` gets one `Fact<A>` event carrying its whole new state, in the stream
//! `<domain>::<aggregate>_fact-<id>`, appended in the same call as the events (one
//! statement on the SQL stores).
//!
//! This runs inside [`crate::runtime::commit::prepare`] before the commit hooks rather than as
//! a hook: hooks add writes, while facts are events of the commit, which the inline
//! projectors (a hook) and the dispatcher must see with the others.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::model::error::Result;
use crate::model::event::{AnyEvent, EventMetadata, Extensions, Payload, Priority, RecordedEvent};
use crate::model::identifier::Identifier;
use crate::registry::Registry;
use crate::runtime::context::AggregateChange;
use crate::store::{ExpectedVersion, StreamAppend};

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

/// A fact to append: its stream append, and the typed event to record it as once stored.
pub(crate) struct FactAppend {
    pub(crate) append: StreamAppend,
    pub(crate) event: Arc<dyn AnyEvent>,
}

/// The fact of every changed aggregate that records facts, to append with the commit's
/// events (in the same `append_all`, after them, so they take the later positions).
pub(crate) fn appends(
    registry: &Registry,
    changes: &[AggregateChange],
    context: FactContext<'_>,
) -> Result<Vec<FactAppend>> {
    let mut facts = Vec::new();
    if registry.facts.is_empty() {
        return Ok(facts);
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
        facts.push(FactAppend {
            append: StreamAppend {
                stream,
                expected: ExpectedVersion::Any,
                events: vec![record],
            },
            event,
        });
    }
    Ok(facts)
}
