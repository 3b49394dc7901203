//! How one call processes or submits a command: [`ProcessOptions`] (correlation id,
//! priority, idempotency key, extensions), and what travels with a request from a command to
//! its events and on to the commands event handlers issue ([`Lineage`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::event::{EventMetadata, Extensions, Priority};
use crate::model::identifier::Identifier;

/// Options of one `domain.process_with(command, options)` or
/// `domain.submit_with(command, options)`.
///
/// ```
/// use fidelis_core::{Priority, ProcessOptions};
/// let options = ProcessOptions::new()
///     .correlation_id("import-2026-12")
///     .priority(Priority::Bulk)
///     .idempotency_key("row-1234")
///     .extension("tenant", "acme");
/// assert_eq!(options.get_priority(), Some(Priority::Bulk));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessOptions {
    pub(crate) correlation_id: Option<Identifier>,
    pub(crate) priority: Option<Priority>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) extensions: Extensions,
}

impl ProcessOptions {
    /// No options: what `process(command)` uses.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request's correlation id (by default: the command's own id, or, for a command an
    /// event handler issues, the id of the request it belongs to).
    pub fn correlation_id(mut self, id: impl Into<Identifier>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The lane of the command and of its events (by default [`Priority::Normal`], or, for a
    /// command an event handler issues, the priority of the event it handles).
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = Some(priority);
        self
    }

    /// A client's key for [`Domain::submit_with`](crate::Domain::submit_with): a second
    /// submission with the same key is not recorded again and answers with the first one's
    /// command id. (`process_with` does not queue, and ignores it.)
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Adds a key/value to the command's and its events' `metadata.extensions`; it wins over
    /// what the domain's enrichers add under the same key.
    pub fn extension(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extensions.insert(key.into(), value.into());
        self
    }

    /// The priority set, if any.
    pub fn get_priority(&self) -> Option<Priority> {
        self.priority
    }

    /// The correlation id set, if any.
    pub fn get_correlation_id(&self) -> Option<&Identifier> {
        self.correlation_id.as_ref()
    }

    /// The idempotency key set, if any.
    pub fn get_idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }

    /// The extensions set.
    pub fn get_extensions(&self) -> &Extensions {
        &self.extensions
    }
}

/// A command as the domain's command enrichers see it (`DomainBuilder::enrich_commands`),
/// and as the command log records it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandMetadata {
    /// The command's id.
    pub id: Identifier,
    /// Its type name, `<Domain>.<Command>` (`Fidelis.MakeDeposit`).
    pub type_name: String,
    /// The request's correlation id.
    pub correlation_id: Identifier,
    /// The event whose handler issued it (`None` for a command from outside).
    pub causation_id: Option<Identifier>,
    /// Its lane.
    pub priority: Priority,
    /// The extensions so far: the call's own and those inherited from its cause (enrichers
    /// cannot override these).
    pub extensions: Extensions,
    /// When it was received.
    pub time: DateTime<Utc>,
}

/// Adds key/values to every command's extensions (`DomainBuilder::enrich_commands`).
pub(crate) type CommandEnricher = Arc<dyn Fn(&CommandMetadata) -> Extensions + Send + Sync>;
/// Adds key/values to every event's extensions (`DomainBuilder::enrich_events`).
pub(crate) type EventEnricher = Arc<dyn Fn(&EventMetadata) -> Extensions + Send + Sync>;

/// What a unit of work passes on to the events it records and to the commands issued for
/// them: the request's priority and extensions.
#[derive(Clone, Debug, Default)]
pub(crate) struct Lineage {
    pub(crate) priority: Priority,
    pub(crate) extensions: Arc<Extensions>,
}

impl Lineage {
    /// What an event passes on to the unit of work of a handler that handles it.
    pub(crate) fn of_event(metadata: &EventMetadata) -> Self {
        Self {
            priority: metadata.priority,
            extensions: Arc::new(metadata.extensions.clone()),
        }
    }
}

/// The extensions of a command: the enrichers' in order (a later one wins), then `own` (the
/// call's and what it inherited), which wins over all of them.
pub(crate) fn enrich_command(
    enrichers: &[CommandEnricher],
    metadata: &CommandMetadata,
) -> Extensions {
    if enrichers.is_empty() {
        return metadata.extensions.clone();
    }
    let mut extensions = Extensions::new();
    for enricher in enrichers {
        extensions.extend(enricher(metadata));
    }
    extensions.extend(metadata.extensions.clone());
    extensions
}

/// The extensions of an event: the event enrichers' in order, then the command's (which win).
pub(crate) fn enrich_event(
    enrichers: &[EventEnricher],
    metadata: &EventMetadata,
    command: &Extensions,
) -> Extensions {
    if enrichers.is_empty() {
        return command.clone();
    }
    let mut extensions = Extensions::new();
    for enricher in enrichers {
        extensions.extend(enricher(metadata));
    }
    extensions.extend(command.clone());
    extensions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(own: Extensions) -> CommandMetadata {
        CommandMetadata {
            id: Identifier::new("c"),
            type_name: "T.C".into(),
            correlation_id: Identifier::new("c"),
            causation_id: None,
            priority: Priority::Normal,
            extensions: own,
            time: Utc::now(),
        }
    }

    #[test]
    fn later_enrichers_win_and_the_calls_own_win_over_all() {
        let first: CommandEnricher = Arc::new(|_| {
            let mut map = Extensions::new();
            map.insert("a".into(), json!(1));
            map.insert("b".into(), json!(1));
            map.insert("c".into(), json!(1));
            map
        });
        let second: CommandEnricher = Arc::new(|_| {
            let mut map = Extensions::new();
            map.insert("b".into(), json!(2));
            map.insert("c".into(), json!(2));
            map
        });
        let mut own = Extensions::new();
        own.insert("c".into(), json!("own"));
        let extensions = enrich_command(&[first, second], &meta(own));
        assert_eq!(
            Value::Object(extensions),
            json!({ "a": 1, "b": 2, "c": "own" })
        );
    }
}
