//! The system tables: what the runtime keeps beside events and projections (subscription
//! checkpoints, partition leases, snapshots, dead letters, the outbox, the command log,
//! idempotency keys and the broker messages subscribers handled).
//!
//! Each is a built-in schema on the same document machinery as projections: a typed row
//! ([`SystemRow`]) with field definitions, created by `setup` like any table, written through a
//! [`Transaction`] (so it commits with the events and rows it belongs to) and read back
//! through [`Storage`]. Every adapter stores them as it stores projection rows, so the
//! conformance suite's guarantees (exact numbers, unique keys, version checks, cancellation)
//! hold for them too, and a new adapter gets them for free.
//!
//! Their names start with `fidelis_` like the events table's, and are shared by every domain
//! of a database; a domain whose own tables would take one of these names is refused by
//! `build` (see [`RESERVED_TABLES`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::error::{Error, Result};
use crate::model::field::{FieldDef, FieldKind};
use crate::model::query::{CompareOp, Condition, IntoQueryValue, Order, QuerySpec};
use crate::store::{JsonRow, Row, Storage, TableSchema, Transaction};

/// A row of a system table: a typed value with its table's schema.
pub trait SystemRow: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The table the rows live in.
    const TABLE: TableSchema;
    /// The row's key (its `id` field).
    fn id(&self) -> &str;
}

/// The names of the tables Fidelis keeps for itself: the events table and the system tables.
pub const RESERVED_TABLES: &[&str] = &[
    "fidelis_events",
    Checkpoint::TABLE.name,
    Lease::TABLE.name,
    Snapshot::TABLE.name,
    DeadLetter::TABLE.name,
    OutboxMessage::TABLE.name,
    CommandLogEntry::TABLE.name,
    QueuedCommand::TABLE.name,
    IdempotencyKey::TABLE.name,
    ProcessState::TABLE.name,
    StepCommand::TABLE.name,
    SubscriberMessage::TABLE.name,
    // Reserved by earlier versions (never written): kept out of elements' reach.
    "fidelis_command_log",
];

/// The schemas of every system table, for `setup`.
pub fn schemas() -> [TableSchema; 11] {
    [
        Checkpoint::TABLE,
        Lease::TABLE,
        Snapshot::TABLE,
        DeadLetter::TABLE,
        OutboxMessage::TABLE,
        CommandLogEntry::TABLE,
        QueuedCommand::TABLE,
        IdempotencyKey::TABLE,
        ProcessState::TABLE,
        StepCommand::TABLE,
        SubscriberMessage::TABLE,
    ]
}

/// One row by key, as committed.
pub async fn get<R: SystemRow>(storage: &dyn Storage, id: &str) -> Result<Option<R>> {
    storage
        .get_row(R::TABLE.name, id)
        .await?
        .map(decode::<R>)
        .transpose()
}

/// One row by key, as the transaction sees it.
pub async fn get_in<R: SystemRow>(
    transaction: &mut dyn Transaction,
    id: &str,
) -> Result<Option<R>> {
    transaction
        .get_row(R::TABLE.name, id)
        .await?
        .map(decode::<R>)
        .transpose()
}

/// Inserts or replaces a row in the transaction.
pub async fn put<R: SystemRow>(transaction: &mut dyn Transaction, row: R) -> Result<()> {
    let id = row.id().to_owned();
    transaction.put_row(R::TABLE.name, id, Arc::new(row)).await
}

/// Inserts a row that must not exist yet, in the transaction: a version conflict if it does.
pub async fn insert<R: SystemRow>(transaction: &mut dyn Transaction, row: R) -> Result<()> {
    let data = match serde_json::to_value(&row) {
        Ok(Value::Object(data)) => data,
        Ok(_) | Err(_) => {
            return Err(Error::Serialization {
                what: format!("a row of system table {}", R::TABLE.name),
                message: "does not serialize to a JSON object".to_owned(),
            });
        }
    };
    let row = JsonRow {
        id: row.id().to_owned(),
        version: 0,
        data,
    };
    transaction.put_json_row(R::TABLE.name, row, Some(-1)).await
}

/// Removes a row in the transaction (no error when there is none).
pub async fn remove<R: SystemRow>(transaction: &mut dyn Transaction, id: &str) -> Result<()> {
    transaction.remove_row(R::TABLE.name, id).await
}

/// Removes rows in the transaction (no error for those that do not exist).
pub async fn remove_all<R: SystemRow>(
    transaction: &mut dyn Transaction,
    ids: &[String],
) -> Result<()> {
    transaction.remove_rows(R::TABLE.name, ids).await
}

/// The committed rows matching a query (built with [`field_eq`] and [`order_by`]).
pub async fn query<R: SystemRow>(storage: &dyn Storage, query: &QuerySpec) -> Result<Vec<R>> {
    storage
        .query(R::TABLE.name, query)
        .await?
        .into_iter()
        .map(|row| decode::<R>(Row::Json(row)))
        .collect()
}

/// A condition for [`query`]: `field = value`.
pub fn field_eq(field: &'static str, value: impl IntoQueryValue) -> Condition {
    Condition::Compare {
        field,
        op: CompareOp::Eq,
        value: value.into_query_value(),
    }
}

/// A sort key for [`query`], ascending or descending.
pub fn order_by(field: &'static str, descending: bool) -> Order {
    Order { field, descending }
}

fn decode<R: SystemRow>(row: Row) -> Result<R> {
    match row {
        Row::Typed(typed) => match typed.as_any().downcast_ref::<R>() {
            Some(row) => Ok(row.clone()),
            // Written as another type that encodes as `R` (the command log's entries are
            // written so): read through its JSON, as a SQL adapter would.
            None => serde_json::from_value(Value::Object(typed.to_json()?))
                .map_err(|error| corrupt::<R>(&error.to_string())),
        },
        Row::Json(JsonRow { data, .. }) => serde_json::from_value(Value::Object(data))
            .map_err(|error| corrupt::<R>(&error.to_string())),
    }
}

fn corrupt<R: SystemRow>(message: &str) -> Error {
    Error::Serialization {
        what: format!("a row of system table {}", R::TABLE.name),
        message: message.to_owned(),
    }
}

// ---- the tables --------------------------------------------------------------------------

const fn text(name: &'static str) -> FieldDef {
    FieldDef::new(name, FieldKind::String, "String")
}
const fn key() -> FieldDef {
    FieldDef {
        identifier: true,
        ..text("id")
    }
}
const fn optional_text(name: &'static str) -> FieldDef {
    FieldDef {
        required: false,
        ..FieldDef::new(name, FieldKind::String, "Option<String>")
    }
}
const fn integer(name: &'static str) -> FieldDef {
    FieldDef::new(name, FieldKind::Integer, "i64")
}
const fn time(name: &'static str) -> FieldDef {
    FieldDef::new(name, FieldKind::DateTime, "DateTime<Utc>")
}
const fn optional_time(name: &'static str) -> FieldDef {
    FieldDef {
        required: false,
        ..FieldDef::new(name, FieldKind::DateTime, "Option<DateTime<Utc>>")
    }
}
const fn boolean(name: &'static str) -> FieldDef {
    FieldDef::new(name, FieldKind::Boolean, "bool")
}
const fn json(name: &'static str) -> FieldDef {
    FieldDef::new(name, FieldKind::Dict, "serde_json::Value")
}
const fn optional_json(name: &'static str) -> FieldDef {
    FieldDef {
        required: false,
        ..FieldDef::new(name, FieldKind::Dict, "Option<serde_json::Value>")
    }
}
const fn list(name: &'static str) -> FieldDef {
    FieldDef::new(name, FieldKind::List, "Vec<String>")
}

const fn schema(
    name: &'static str,
    element: &'static str,
    fields: &'static [FieldDef],
) -> TableSchema {
    TableSchema {
        name,
        element,
        fields,
        identifier: "id",
        former_name: None,
        indexes: &[],
    }
}

/// How far a subscription (a projector, event handler, process manager…) has read the global
/// order, per partition. A projector's checkpoint is written in the transaction that writes
/// its rows, so rows and checkpoint move together.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// `<subscription>/<partition>`.
    pub id: String,
    /// The subscription's name.
    pub subscription: String,
    /// The partition (0 when the subscription is not partitioned).
    pub partition: i64,
    /// The last event read: its commit…
    pub commit: i64,
    /// …and its global position.
    pub position: i64,
    /// When the checkpoint last moved.
    pub updated_at: DateTime<Utc>,
}

impl Checkpoint {
    /// The key of a subscription's partition.
    pub fn key(subscription: &str, partition: i64) -> String {
        format!("{subscription}/{partition}")
    }
}

impl SystemRow for Checkpoint {
    const TABLE: TableSchema = schema(
        "fidelis_checkpoints",
        "Checkpoint",
        &[
            key(),
            text("subscription"),
            integer("partition"),
            integer("commit"),
            integer("position"),
            time("updated_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// A partition of a subscription held by one engine process until `expires_at`; the token
/// grows with every new holder, so a process that lost its lease cannot commit (fencing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Lease {
    /// `<subscription>/<partition>`.
    pub id: String,
    /// The subscription's name.
    pub subscription: String,
    /// The partition.
    pub partition: i64,
    /// The engine process holding it.
    pub owner: String,
    /// The fencing token.
    pub token: i64,
    /// When the lease lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl SystemRow for Lease {
    const TABLE: TableSchema = schema(
        "fidelis_leases",
        "Lease",
        &[
            key(),
            text("subscription"),
            integer("partition"),
            text("owner"),
            integer("token"),
            time("expires_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// An event-sourced aggregate's state at a version, so a load replays only what follows.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// The stream.
    pub id: String,
    /// The aggregate's type name.
    pub aggregate: String,
    /// The stream version the state includes.
    pub version: i64,
    /// The id of the last event applied.
    pub last_event_id: String,
    /// The state, as the aggregate serializes.
    pub state: Value,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

impl SystemRow for Snapshot {
    const TABLE: TableSchema = schema(
        "fidelis_snapshots",
        "Snapshot",
        &[
            key(),
            text("aggregate"),
            integer("version"),
            text("last_event_id"),
            json("state"),
            time("taken_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// An event a subscription gave up on after its retries: the real error, the attempts and
/// the times. Later events of the stream wait for it in that subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeadLetter {
    /// `<subscription>/<event id>`.
    pub id: String,
    /// The subscription that failed.
    pub subscription: String,
    /// Its partition.
    pub partition: i64,
    /// The event.
    pub event_id: String,
    /// The event's stream…
    pub stream: String,
    /// …and version in it.
    pub version: i64,
    /// The event's type name.
    pub type_name: String,
    /// The event's commit…
    pub commit: i64,
    /// …and global position.
    pub position: i64,
    /// The last error, in full.
    pub error: String,
    /// How many times it was tried.
    pub attempts: i64,
    /// The first failure.
    pub first_failed_at: DateTime<Utc>,
    /// The last failure.
    pub last_failed_at: DateTime<Utc>,
}

impl SystemRow for DeadLetter {
    const TABLE: TableSchema = schema(
        "fidelis_dead_letters",
        "DeadLetter",
        &[
            key(),
            text("subscription"),
            integer("partition"),
            text("event_id"),
            text("stream"),
            integer("version"),
            text("type_name"),
            integer("commit"),
            integer("position"),
            text("error"),
            integer("attempts"),
            time("first_failed_at"),
            time("last_failed_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// An event to publish to a broker, written in the transaction that commits it (only when
/// the domain has a broker, and only for published event types and fact events). The relay
/// deletes a row once the broker accepted it, so the table holds what is still to publish.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct OutboxMessage {
    /// The event's id (brokers de-duplicate on it).
    pub id: String,
    /// The domain that recorded it: each domain's relay publishes its own rows.
    pub domain: String,
    /// The event's stream…
    pub stream: String,
    /// …and version in it: the relay keeps each stream's order.
    pub version: i64,
    /// The event's global position: the relay publishes in this order.
    pub position: i64,
    /// The event's type name.
    pub type_name: String,
    /// The event's data.
    pub data: Value,
    /// The event's metadata.
    pub metadata: Value,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// The relay (engine owner id) publishing it now, if any…
    pub claimed_by: Option<String>,
    /// …until when its claim holds: past it, another relay may take the row over.
    pub claimed_until: Option<DateTime<Utc>>,
    /// Failed publish attempts.
    pub attempts: i64,
    /// The last publish error.
    pub last_error: Option<String>,
}

impl SystemRow for OutboxMessage {
    // The relay reads a domain's rows by position.
    const TABLE: TableSchema = schema(
        "fidelis_outbox",
        "OutboxMessage",
        &[
            key(),
            text("domain"),
            text("stream"),
            integer("version"),
            integer("position"),
            text("type_name"),
            json("data"),
            json("metadata"),
            time("created_at"),
            optional_text("claimed_by"),
            optional_time("claimed_until"),
            integer("attempts"),
            optional_text("last_error"),
        ],
    )
    .with_indexes(&[&["domain", "position"]]);
    fn id(&self) -> &str {
        &self.id
    }
}

/// A command the domain processed, written in the transaction that commits its events (so a
/// command that rolled back leaves no entry): who asked for what, and what it caused. The
/// causation links (`causation_id`, `events`) let a trace rebuild a request's tree.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct CommandLogEntry {
    /// The command's id (the causation id of its events).
    pub id: String,
    /// The domain that processed it.
    pub domain: String,
    /// The command's type name, `<Domain>.<Command>`.
    pub type_name: String,
    /// The command's data.
    pub data: Value,
    /// The request's correlation id.
    pub correlation_id: String,
    /// The event whose handler issued it (`None`: a command from outside).
    pub causation_id: Option<String>,
    /// Its lane: `normal` or `bulk`.
    pub priority: String,
    /// Its extensions (a JSON object).
    pub extensions: Value,
    /// The ids of the events it recorded, in order.
    pub events: Vec<String>,
    /// When it was received (submitted, or given to `process`).
    pub received_at: DateTime<Utc>,
    /// When it committed.
    pub processed_at: DateTime<Utc>,
}

impl SystemRow for CommandLogEntry {
    // A trace reads a request's commands by correlation id.
    const TABLE: TableSchema = schema(
        "fidelis_commands",
        "CommandLogEntry",
        &[
            key(),
            text("domain"),
            text("type_name"),
            json("data"),
            text("correlation_id"),
            optional_text("causation_id"),
            text("priority"),
            json("extensions"),
            list("events"),
            time("received_at"),
            time("processed_at"),
        ],
    )
    .with_indexes(&[&["correlation_id"]]);
    fn id(&self) -> &str {
        &self.id
    }
}

/// A command submitted (`domain.submit`) and not processed yet: the engine's queue. The row
/// goes in the transaction that commits the command's work (and its log entry); a command
/// that failed for good stays, `dead`, for its dead letter to replay or purge.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct QueuedCommand {
    /// The command's id.
    pub id: String,
    /// The domain it was submitted to.
    pub domain: String,
    /// The command's type name, `<Domain>.<Command>`.
    pub type_name: String,
    /// The command's data.
    pub data: Value,
    /// The request's correlation id.
    pub correlation_id: String,
    /// What caused it, if it was submitted on behalf of an event.
    pub causation_id: Option<String>,
    /// Its lane: `normal` or `bulk`.
    pub priority: String,
    /// Its extensions (a JSON object; the enrichers' already applied).
    pub extensions: Value,
    /// The client's idempotency key, if it gave one.
    pub idempotency_key: Option<String>,
    /// When it was submitted.
    pub submitted_at: DateTime<Utc>,
    /// `queued`, or `dead` once dead-lettered.
    pub status: String,
}

impl QueuedCommand {
    /// Waiting for the engine.
    pub const QUEUED: &'static str = "queued";
    /// Given up on: a dead letter of subscription `fidelis.commands` holds it.
    pub const DEAD: &'static str = "dead";
}

impl SystemRow for QueuedCommand {
    const TABLE: TableSchema = schema(
        "fidelis_command_queue",
        "QueuedCommand",
        &[
            key(),
            text("domain"),
            text("type_name"),
            json("data"),
            text("correlation_id"),
            optional_text("causation_id"),
            text("priority"),
            json("extensions"),
            optional_text("idempotency_key"),
            time("submitted_at"),
            text("status"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// A client's idempotency key, taken by the first command submitted with it (in the
/// transaction that queues the command; the key is the row's id, so a second submission
/// with the same key cannot take it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdempotencyKey {
    /// The key as the client sent it.
    pub id: String,
    /// The command that took it.
    pub command_id: String,
    /// The command's type name.
    pub type_name: String,
    /// When it was taken.
    pub created_at: DateTime<Utc>,
}

impl SystemRow for IdempotencyKey {
    const TABLE: TableSchema = schema(
        "fidelis_idempotency_keys",
        "IdempotencyKey",
        &[
            key(),
            text("command_id"),
            text("type_name"),
            time("created_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// The state of one process manager instance (see `#[process_manager]`): the state struct as
/// JSON, whether it is complete, and the events it has handled, with a version that every
/// step moves by one (a step that finds another version was overtaken and fails).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct ProcessState {
    /// `<domain>/<process manager>/<correlation key>`.
    pub id: String,
    /// The process manager's name.
    pub process: String,
    /// The correlation key of the instance.
    pub key: String,
    /// The state struct, as JSON.
    pub state: Value,
    /// Whether it is complete: later events are ignored.
    pub complete: bool,
    /// The ids of the events it handled last (a redelivered one is not handled twice).
    pub handled: Value,
    /// Moved by one on every step.
    pub version: i64,
    /// When the last step was stored.
    pub updated_at: DateTime<Utc>,
}

impl ProcessState {
    /// The key of an instance.
    pub fn key_of(domain: &str, process: &str, key: &str) -> String {
        format!("{domain}/{process}/{key}")
    }
}

impl SystemRow for ProcessState {
    const TABLE: TableSchema = schema(
        "fidelis_process_states",
        "ProcessState",
        &[
            key(),
            text("process"),
            text("key"),
            json("state"),
            boolean("complete"),
            json("handled"),
            integer("version"),
            time("updated_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// A command a process manager's step issued and committed: written in the transaction of
/// the command's own unit of work (so it stands or falls with the command's events), under
/// the id the step derived for it. A step run again (its event redelivered after a crash, or
/// retried after it failed) derives the same id, finds the row, and gets the recorded output
/// instead of processing the command a second time.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct StepCommand {
    /// The command's id, derived from the domain, process manager, instance, event and the
    /// command's place in the step.
    pub id: String,
    /// The process manager's name.
    pub process: String,
    /// The correlation key of the instance.
    pub key: String,
    /// The event whose step issued it.
    pub event_id: String,
    /// The command's type name.
    pub type_name: String,
    /// What its handler returned, as JSON (`null` for `()`); `None` when the output type has
    /// no serde encoding.
    pub output: Option<Value>,
    /// When it committed.
    pub created_at: DateTime<Utc>,
}

impl SystemRow for StepCommand {
    const TABLE: TableSchema = schema(
        "fidelis_process_commands",
        "StepCommand",
        &[
            key(),
            text("process"),
            text("key"),
            text("event_id"),
            text("type_name"),
            optional_json("output"),
            time("created_at"),
        ],
    );
    fn id(&self) -> &str {
        &self.id
    }
}

/// A broker message a subscriber (`#[subscriber]`) has handled or given up on, so that a
/// repeat of it (a redelivery, or the relay publishing again after a crash: Redis Streams
/// cannot de-duplicate) is acknowledged and skipped. It is written in the transaction of
/// the subscriber's own unit of work when it wrote anything, else right after the handler
/// returned.
///
/// The row of a dead-lettered message keeps its headers and payload, for the dead letter's
/// replay; a handled message's row keeps neither.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SubscriberMessage {
    /// `<domain>/<subscriber>/<message id>`.
    pub id: String,
    /// The domain of the subscriber.
    pub domain: String,
    /// The subscriber's name (its consumer group).
    pub subscriber: String,
    /// The message's id.
    pub message_id: String,
    /// The broker stream it came from.
    pub stream: String,
    /// `handled`, `dead` (a dead letter holds it) or `purged` (its dead letter was purged).
    pub status: String,
    /// Its headers, as a JSON object (`{}` once handled).
    pub headers: Value,
    /// Its payload as text (invalid UTF-8 replaced by U+FFFD; empty once handled).
    pub payload: String,
    /// When it was handled, dead-lettered or purged.
    pub updated_at: DateTime<Utc>,
}

impl SubscriberMessage {
    /// Handled: its repeats are skipped.
    pub const HANDLED: &'static str = "handled";
    /// Given up on: a dead letter of the subscriber holds it, and its repeats are skipped.
    pub const DEAD: &'static str = "dead";
    /// Its dead letter was purged: never handled, and its repeats are skipped.
    pub const PURGED: &'static str = "purged";

    /// The key of a subscriber's record of a message.
    pub fn key(domain: &str, subscriber: &str, message_id: &str) -> String {
        format!("{domain}/{subscriber}/{message_id}")
    }
}

impl SystemRow for SubscriberMessage {
    // A subscriber's status counts its handled messages.
    const TABLE: TableSchema = schema(
        "fidelis_subscriber_messages",
        "SubscriberMessage",
        &[
            key(),
            text("domain"),
            text("subscriber"),
            text("message_id"),
            text("stream"),
            text("status"),
            json("headers"),
            text("payload"),
            time("updated_at"),
        ],
    )
    .with_indexes(&[&["domain", "subscriber", "status"]]);
    fn id(&self) -> &str {
        &self.id
    }
}
