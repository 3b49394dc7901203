//! `events read|stats|search|history|trace`.

use std::collections::BTreeMap;

use fidelis_core::{Cursor, Domain, Payload, RecordedEvent};
use serde::Serialize;

use super::EventsCommand;
use crate::error::{CliError, Exit};
use crate::output::Output;

pub(super) async fn run(
    domain: &Domain,
    out: &Output,
    command: EventsCommand,
) -> Result<(), CliError> {
    match command {
        EventsCommand::Read {
            target,
            from,
            limit,
        } => read(domain, out, &target, from, limit).await,
        EventsCommand::Stats => stats(domain, out).await,
        EventsCommand::Search { type_name, limit } => search(domain, out, &type_name, limit).await,
        EventsCommand::History { aggregate, id } => history(domain, out, &aggregate, &id).await,
        EventsCommand::Trace { correlation_id } => trace(domain, out, &correlation_id).await,
    }
}

/// `events trace <correlation-id>`: the tree, one message per line, indented under its cause
/// (`--json`: the `Trace`); a correlation id nothing carries is not found (exit 4).
async fn trace(domain: &Domain, out: &Output, correlation_id: &str) -> Result<(), CliError> {
    let trace = domain.event_store().trace(correlation_id).await?;
    if trace.is_empty() {
        return Err(CliError::new(
            Exit::NotFound,
            format!("no command or event has correlation id `{correlation_id}`"),
        ));
    }
    if out.json() {
        return out.document(&trace);
    }
    for (depth, node) in trace.walk() {
        let indent = "  ".repeat(depth);
        let at = super::time(&node.time);
        let line = match (&node.stream, node.version) {
            (Some(stream), Some(version)) => format!(
                "{at}  {indent}event {} {stream}@{version}  {}",
                node.type_name, node.id
            ),
            _ => format!("{at}  {indent}command {}  {}", node.type_name, node.id),
        };
        out.line(&line);
    }
    Ok(())
}

/// `events history <Aggregate> <id>`: an unknown or state-stored aggregate is a usage error
/// (exit 2), an id without events is not found (exit 4).
async fn history(domain: &Domain, out: &Output, aggregate: &str, id: &str) -> Result<(), CliError> {
    let entries = domain.event_store().history_named(aggregate, id).await?;
    if entries.is_empty() {
        return Err(CliError::new(
            Exit::NotFound,
            format!("no events of {aggregate} `{id}`"),
        ));
    }
    if out.json() {
        return out.document(&entries);
    }
    out.table(
        &["version", "type", "time", "event id", "position"],
        entries.iter().map(|e| {
            vec![
                e.version.to_string(),
                e.type_name.clone(),
                super::time(&e.time),
                e.event_id.to_string(),
                e.global_position.to_string(),
            ]
        }),
    );
    Ok(())
}

/// What `events read` reads.
enum Target {
    Stream(String),
    Category(String),
}

/// A category (`fidelis::account`), an aggregate's name (`Account`), or a stream of a known
/// category (`fidelis::account-<id>`); anything else is an unknown name.
fn target(domain: &Domain, text: &str) -> Result<Target, CliError> {
    let aggregates = domain.registry().aggregates();
    if let Some(aggregate) = aggregates
        .iter()
        .find(|a| a.category == text || a.name == text)
    {
        return Ok(Target::Category(aggregate.category.clone()));
    }
    let known_stream = aggregates.iter().any(|a| {
        text.strip_prefix(a.category.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|id| !id.is_empty())
    });
    if known_stream {
        return Ok(Target::Stream(text.to_owned()));
    }
    let known: Vec<String> = aggregates
        .iter()
        .map(|a| format!("{} ({}, streams {}-<id>)", a.name, a.category, a.category))
        .collect();
    Err(CliError::unknown("stream or category", text, &known))
}

async fn read(
    domain: &Domain,
    out: &Output,
    target_text: &str,
    from: i64,
    limit: Option<usize>,
) -> Result<(), CliError> {
    let store = domain.event_store();
    let events: Vec<RecordedEvent> = match target(domain, target_text)? {
        Target::Stream(stream) => store
            .read_stream(&stream)
            .await?
            .into_iter()
            .filter(|e| e.metadata.version >= from)
            .collect(),
        Target::Category(category) => store
            .read_category(&category, Cursor::START)
            .await?
            .into_iter()
            .filter(|e| e.metadata.global_position >= from)
            .collect(),
    };
    let events: Vec<EventOut> = events
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(EventOut::of)
        .collect::<Result<_, _>>()?;
    print_events(out, &events)
}

async fn stats(domain: &Domain, out: &Output) -> Result<(), CliError> {
    let events = domain.event_store().read_all(Cursor::START).await?;
    let head = domain.storage_unchecked().head().await?;
    let mut categories = BTreeMap::<String, u64>::new();
    let mut types = BTreeMap::<String, u64>::new();
    for event in &events {
        *categories
            .entry(event.metadata.category().to_owned())
            .or_default() += 1;
        *types.entry(event.metadata.type_name.clone()).or_default() += 1;
    }
    if out.json() {
        let counts = |map: &BTreeMap<String, u64>, key: &str| -> Vec<serde_json::Value> {
            map.iter()
                .map(|(name, events)| serde_json::json!({ key: name, "events": events }))
                .collect()
        };
        return out.document(&serde_json::json!({
            "events": events.len(),
            "head": { "position": head.position, "commit": head.commit },
            "categories": counts(&categories, "category"),
            "types": counts(&types, "type"),
        }));
    }
    out.line(&format!(
        "{} events; head at global position {}",
        events.len(),
        head.position
    ));
    out.table(
        &["category", "events"],
        categories
            .iter()
            .map(|(name, count)| vec![name.clone(), count.to_string()]),
    );
    out.table(
        &["type", "events"],
        types
            .iter()
            .map(|(name, count)| vec![name.clone(), count.to_string()]),
    );
    Ok(())
}

async fn search(
    domain: &Domain,
    out: &Output,
    wanted: &str,
    limit: Option<usize>,
) -> Result<(), CliError> {
    let registry = domain.registry();
    let Some(event) = registry
        .events()
        .into_iter()
        .find(|e| e.name == wanted || e.type_name == wanted)
    else {
        let known: Vec<String> = registry
            .events()
            .iter()
            .map(|e| format!("{} ({})", e.name, e.type_name))
            .collect();
        return Err(CliError::unknown("event type", wanted, &known));
    };
    let events: Vec<EventOut> = domain
        .event_store()
        .read_all(Cursor::START)
        .await?
        .iter()
        .filter(|e| e.metadata.type_name == event.type_name)
        .take(limit.unwrap_or(usize::MAX))
        .map(EventOut::of)
        .collect::<Result<_, _>>()?;
    print_events(out, &events)
}

/// An event as the command line shows it.
#[derive(Serialize)]
struct EventOut {
    global_position: i64,
    stream: String,
    version: i64,
    type_name: String,
    time: chrono::DateTime<chrono::Utc>,
    id: String,
    correlation_id: String,
    causation_id: Option<String>,
    data: serde_json::Value,
}

impl EventOut {
    fn of(event: &RecordedEvent) -> Result<Self, CliError> {
        let metadata = &event.metadata;
        let data = match &event.payload {
            Payload::Typed(typed) => typed.to_json()?,
            Payload::Encoded(raw) => serde_json::from_str(raw.get()).map_err(|error| {
                CliError::new(
                    Exit::Failure,
                    format!(
                        "the data of event {} of {} is not JSON: {error}",
                        metadata.version, metadata.stream
                    ),
                )
            })?,
        };
        Ok(Self {
            global_position: metadata.global_position,
            stream: metadata.stream.clone(),
            version: metadata.version,
            type_name: metadata.type_name.clone(),
            time: metadata.time,
            id: metadata.id.to_string(),
            correlation_id: metadata.correlation_id.to_string(),
            causation_id: metadata.causation_id.as_ref().map(ToString::to_string),
            data,
        })
    }
}

fn print_events(out: &Output, events: &[EventOut]) -> Result<(), CliError> {
    if out.json() {
        return out.document(&events);
    }
    if events.is_empty() {
        out.line("No events.");
        return Ok(());
    }
    out.table(
        &["position", "stream", "version", "type", "time", "data"],
        events.iter().map(|e| {
            vec![
                e.global_position.to_string(),
                e.stream.clone(),
                e.version.to_string(),
                e.type_name.clone(),
                super::time(&e.time),
                super::cut(&e.data.to_string(), 80),
            ]
        }),
    );
    Ok(())
}
