//! Traces: the causal forest of one request (correlation id), from the command log and the
//! events. A command's children are the events it recorded; an event's children are the
//! commands its handlers and process managers issued (their causation id is the event's id).
//! Roots are the messages whose cause is not in the trace: the commands that came from
//! outside, and events whose command was not logged (`record_commands(false)`, or written
//! before the command log existed).

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::model::error::Result;
use crate::model::event::RecordedEvent;
use crate::model::query::QuerySpec;
use crate::runtime::domain::Domain;
use crate::store::system::{self, CommandLogEntry};

/// The causal forest of one correlation id: see
/// [`EventStore::trace`](crate::EventStore::trace).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trace {
    /// The correlation id traced.
    pub correlation_id: String,
    /// The messages nothing in the trace caused, in the order they happened, each with what
    /// it caused.
    pub roots: Vec<TraceNode>,
}

/// Whether a [`TraceNode`] is a command or an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// A command from the command log.
    Command,
    /// A stored event.
    Event,
}

/// One message of a [`Trace`], with the messages it caused.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceNode {
    /// Command or event.
    pub kind: TraceKind,
    /// The message's id.
    pub id: String,
    /// Its type name (`Fidelis.MakeDeposit`, `Fidelis.DepositMade.v1`).
    pub type_name: String,
    /// An event's stream (`None` for commands).
    pub stream: Option<String>,
    /// An event's version in its stream (`None` for commands).
    pub version: Option<i64>,
    /// When it happened: a command's processing, an event's recording.
    pub time: DateTime<Utc>,
    /// Its data.
    pub data: Value,
    /// What it caused, in the order it happened.
    pub children: Vec<TraceNode>,
}

impl Trace {
    /// Every message of the trace, depth first, with its depth (roots at 0).
    pub fn walk(&self) -> Vec<(usize, &TraceNode)> {
        fn visit<'t>(node: &'t TraceNode, depth: usize, out: &mut Vec<(usize, &'t TraceNode)>) {
            out.push((depth, node));
            for child in &node.children {
                visit(child, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        for root in &self.roots {
            visit(root, 0, &mut out);
        }
        out
    }

    /// How many messages the trace holds.
    pub fn len(&self) -> usize {
        self.walk().len()
    }

    /// Whether the trace is empty (no command or event has this correlation id).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }
}

/// One line per message, indented by depth: `command Fidelis.MakeDeposit <id>` and
/// `event Fidelis.DepositMade.v1 fidelis::account-<id>@3 <id>`.
impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (depth, node) in self.walk() {
            let indent = "  ".repeat(depth);
            match node.kind {
                TraceKind::Command => {
                    writeln!(f, "{indent}command {} {}", node.type_name, node.id)?;
                }
                TraceKind::Event => writeln!(
                    f,
                    "{indent}event {} {}@{} {}",
                    node.type_name,
                    node.stream.as_deref().unwrap_or_default(),
                    node.version.unwrap_or_default(),
                    node.id
                )?,
            }
        }
        Ok(())
    }
}

/// A message before it is placed in the forest: its node (without children), its cause, and
/// where it falls in time.
struct Message {
    node: TraceNode,
    cause: Option<String>,
    /// Commands sort by when they were received, events by their place in the global order;
    /// between the two, time decides.
    order: (DateTime<Utc>, i64),
}

/// `event_store().trace(correlation_id)`.
pub(crate) async fn trace(domain: &Domain, correlation_id: &str) -> Result<Trace> {
    let storage = domain.storage();
    storage.settle().await?;
    let events = storage.read_correlated(correlation_id).await?;
    let query = QuerySpec {
        filters: vec![system::field_eq(
            "correlation_id",
            correlation_id.to_owned(),
        )],
        ..Default::default()
    };
    let commands: Vec<CommandLogEntry> =
        system::query::<CommandLogEntry>(storage.as_ref(), &query).await?;

    let mut messages = Vec::with_capacity(events.len() + commands.len());
    for command in commands {
        messages.push(Message {
            order: (command.received_at, 0),
            cause: command.causation_id,
            node: TraceNode {
                kind: TraceKind::Command,
                id: command.id,
                type_name: command.type_name,
                stream: None,
                version: None,
                time: command.processed_at,
                data: command.data,
                children: Vec::new(),
            },
        });
    }
    for event in events {
        messages.push(event_message(event)?);
    }
    messages.sort_by(|a, b| {
        a.order
            .cmp(&b.order)
            .then_with(|| a.node.id.cmp(&b.node.id))
    });
    Ok(Trace {
        correlation_id: correlation_id.to_owned(),
        roots: forest(messages),
    })
}

fn event_message(event: RecordedEvent) -> Result<Message> {
    let data = event.data()?;
    let metadata = event.metadata;
    Ok(Message {
        order: (metadata.time, metadata.global_position),
        cause: metadata.causation_id.map(|id| id.to_string()),
        node: TraceNode {
            kind: TraceKind::Event,
            id: metadata.id.to_string(),
            type_name: metadata.type_name,
            stream: Some(metadata.stream),
            version: Some(metadata.version),
            time: metadata.time,
            data,
            children: Vec::new(),
        },
    })
}

/// Places each message under its cause; messages whose cause is not among them are roots.
/// Each message appears once, so even a causation cycle (which the runtime never writes)
/// cannot loop.
fn forest(messages: Vec<Message>) -> Vec<TraceNode> {
    let ids: HashSet<String> = messages.iter().map(|m| m.node.id.clone()).collect();
    let mut children: HashMap<String, Vec<TraceNode>> = HashMap::new();
    let mut roots = Vec::new();
    let mut nodes: Vec<(Option<String>, TraceNode)> = Vec::with_capacity(messages.len());
    for message in messages {
        let cause = message
            .cause
            .filter(|cause| ids.contains(cause) && *cause != message.node.id);
        nodes.push((cause, message.node));
    }
    let mut placed = HashSet::new();
    // Attach leaves first: walk in reverse time order so a node's children are complete
    // before the node itself is attached to its own cause.
    for (cause, mut node) in nodes.into_iter().rev() {
        if !placed.insert(node.id.clone()) {
            continue;
        }
        if let Some(mut own) = children.remove(&node.id) {
            own.reverse();
            node.children = own;
        }
        match cause {
            Some(cause) => children.entry(cause).or_default().push(node),
            None => roots.push(node),
        }
    }
    // Children of a cause that came after them in time (clock skew between processes) are
    // still in the map: they become roots rather than disappear.
    for (_, orphans) in children {
        roots.extend(orphans);
    }
    roots.reverse();
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, cause: Option<&str>, at: i64) -> Message {
        Message {
            order: (DateTime::<Utc>::from_timestamp(at, 0).unwrap(), 0),
            cause: cause.map(str::to_owned),
            node: TraceNode {
                kind: TraceKind::Event,
                id: id.to_owned(),
                type_name: "T".into(),
                stream: Some("s-1".into()),
                version: Some(0),
                time: DateTime::<Utc>::from_timestamp(at, 0).unwrap(),
                data: Value::Null,
                children: Vec::new(),
            },
        }
    }

    fn shape(nodes: &[TraceNode]) -> String {
        nodes
            .iter()
            .map(|node| {
                if node.children.is_empty() {
                    node.id.clone()
                } else {
                    format!("{}({})", node.id, shape(&node.children))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn messages_hang_under_their_causes_in_time_order() {
        let roots = forest(vec![
            message("c1", None, 1),
            message("e1", Some("c1"), 2),
            message("e2", Some("c1"), 3),
            message("c2", Some("e1"), 4),
            message("e3", Some("c2"), 5),
            message("c3", None, 6),
        ]);
        assert_eq!(shape(&roots), "c1(e1(c2(e3)) e2) c3");
    }

    #[test]
    fn a_message_whose_cause_is_missing_is_a_root() {
        let roots = forest(vec![
            message("e1", Some("unlogged-command"), 1),
            message("e2", Some("e1"), 2),
        ]);
        assert_eq!(shape(&roots), "e1(e2)");
    }

    #[test]
    fn a_cycle_does_not_loop_or_lose_messages() {
        let roots = forest(vec![message("a", Some("b"), 1), message("b", Some("a"), 2)]);
        let total: usize = Trace {
            correlation_id: "x".into(),
            roots,
        }
        .len();
        assert_eq!(total, 2);
    }
}
