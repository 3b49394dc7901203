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
    let limit = limit.unwrap_or(usize::MAX);
    let mut events = Vec::new();
    match target(domain, target_text)? {
        Target::Stream(stream) => {
            let storage = domain.storage_unchecked();
            for event in storage
                .read_stream(&stream, from.max(0))
                .await?
                .iter()
                .take(limit)
            {
                events.push(EventOut::of(event)?);
            }
        }
        Target::Category(category) => {
            each_event(domain, Some(&category), |event| {
                if event.metadata.global_position >= from {
                    events.push(EventOut::of(event)?);
                }
                Ok(events.len() < limit)
            })
            .await?;
        }
    }
    print_events(out, &events)
}

/// Calls `visit` with each event of a category (of every category: `None`) in global order,
/// read in batches so a large store is never held in memory, until `visit` returns `false`.
async fn each_event(
    domain: &Domain,
    category: Option<&str>,
    mut visit: impl FnMut(&RecordedEvent) -> Result<bool, CliError>,
) -> Result<(), CliError> {
    const BATCH: usize = 1_000;
    let storage = domain.storage_unchecked();
    storage.settle().await?;
    let mut after = Cursor::START;
    loop {
        let batch = match category {
            Some(category) => storage.read_category(category, after, BATCH).await?,
            None => storage.read_all(after, BATCH).await?,
        };
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.metadata.cursor();
        for event in &batch {
            if !visit(event)? {
                return Ok(());
            }
        }
    }
}

async fn stats(domain: &Domain, out: &Output) -> Result<(), CliError> {
    let head = domain.storage_unchecked().head().await?;
    let mut total = 0_u64;
    let mut categories = BTreeMap::<String, u64>::new();
    let mut types = BTreeMap::<String, u64>::new();
    each_event(domain, None, |event| {
        total += 1;
        *categories
            .entry(event.metadata.category().to_owned())
            .or_default() += 1;
        *types.entry(event.metadata.type_name.clone()).or_default() += 1;
        Ok(true)
    })
    .await?;
    if out.json() {
        let counts = |map: &BTreeMap<String, u64>, key: &str| -> Vec<serde_json::Value> {
            map.iter()
                .map(|(name, events)| serde_json::json!({ key: name, "events": events }))
                .collect()
        };
        return out.document(&serde_json::json!({
            "events": total,
            "head": { "position": head.position, "commit": head.commit },
            "categories": counts(&categories, "category"),
            "types": counts(&types, "type"),
        }));
    }
    out.line(&format!(
        "{total} events; head at global position {}",
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
    let limit = limit.unwrap_or(usize::MAX);
    let mut events = Vec::new();
    // Only the event's own category holds events of its type.
    let category = registry
        .aggregates()
        .iter()
        .find(|aggregate| aggregate.name == event.aggregate_name)
        .map(|aggregate| aggregate.category.clone());
    each_event(domain, category.as_deref(), |e| {
        if e.metadata.type_name == event.type_name {
            events.push(EventOut::of(e)?);
        }
        Ok(events.len() < limit)
    })
    .await?;
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
