//! Recorded events: an event together with the metadata the store gave it.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::element::DomainEvent;
use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;

/// Where and when an event was recorded, and what caused it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The event's own id.
    pub id: Identifier,
    /// The stable type name, `<Domain>.<Event>.v<N>` (`Fidelis.DepositMade.v1`).
    pub type_name: String,
    /// The stream, `<domain>::<aggregate>-<id>` (`fidelis::account-0193…`).
    pub stream: String,
    /// Position in the stream, from 0.
    pub version: i64,
    /// Position among all events of the store, from 1 (0 until the store assigns it). Positions
    /// increase within a stream; the global order is that of [`cursor`](Self::cursor).
    pub global_position: i64,
    /// The place of the transaction that recorded the event in the store's commit order (0
    /// until the store assigns it): the global position on stores with one writer (memory,
    /// SQLite), the transaction id on PostgreSQL.
    #[serde(default)]
    pub commit: i64,
    /// When the event was raised.
    pub time: DateTime<Utc>,
    /// The id shared by every message that one request caused.
    pub correlation_id: Identifier,
    /// The message (command or event) that caused this one.
    pub causation_id: Option<Identifier>,
    /// The lane of the request that raised it ([`Priority::Normal`] unless a command said
    /// otherwise); commands that event handlers issue for it keep it.
    #[serde(default)]
    pub priority: Priority,
    /// Key/values of the request (a call's `ProcessOptions::extension`, and what the
    /// domain's enrichers added); they travel on to the commands handlers issue for it, and
    /// to their events. Empty in events stored before extensions existed.
    #[serde(default)]
    pub extensions: Extensions,
}

/// Key/values that travel with a request, in [`EventMetadata::extensions`]: a JSON object.
pub type Extensions = serde_json::Map<String, serde_json::Value>;

/// The lane a command and its events travel in. The engine dispatches submitted commands of
/// the [`Bulk`](Priority::Bulk) lane only while no [`Normal`](Priority::Normal) one is
/// waiting, so a migration or a backfill never delays interactive traffic.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Interactive work: the default.
    #[default]
    Normal,
    /// Work that may wait for the normal lane to be empty.
    Bulk,
}

impl Priority {
    /// `"normal"` or `"bulk"`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::Bulk => "bulk",
        }
    }

    /// The priority stored as `name` (`"normal"`, `"bulk"`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "normal" => Some(Priority::Normal),
            "bulk" => Some(Priority::Bulk),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventMetadata {
    /// The stream's category: the part of the stream name before the first `-`.
    pub fn category(&self) -> &str {
        category_of(&self.stream)
    }

    /// The event's place in the store's global order: read after it to go on from it.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            commit: self.commit,
            position: self.global_position,
        }
    }
}

/// The category of a Message-DB-style stream name (`fidelis::account-1` → `fidelis::account`).
pub(crate) fn category_of(stream: &str) -> &str {
    stream
        .split_once('-')
        .map_or(stream, |(category, _)| category)
}

/// An event's data as it travels between the runtime and a store: the typed event, for
/// stores that keep events in memory (no JSON at all), or its JSON text, for stores that
/// write bytes (encoded once at append, decoded once, straight into the event type).
#[derive(Clone)]
pub enum Payload {
    /// The event as the aggregate raised it.
    Typed(Arc<dyn AnyEvent>),
    /// The event's JSON text, as a store wrote or read it.
    Encoded(Box<RawValue>),
}

impl Payload {
    /// The JSON text of a value (an event's data given as JSON).
    pub fn json(data: &serde_json::Value) -> Self {
        match serde_json::value::to_raw_value(data) {
            Ok(raw) => Payload::Encoded(raw),
            // Not reached: a `Value` always serializes (its keys are text, its numbers
            // finite). Kept as `null` rather than a panic on a path users call.
            Err(_) => Payload::Encoded(RawValue::NULL.to_owned()),
        }
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Typed(event) => f.debug_tuple("Typed").field(event).finish(),
            Payload::Encoded(text) => f.debug_tuple("Encoded").field(&text.get()).finish(),
        }
    }
}

/// An event as stored: metadata plus its data, typed or encoded (see [`Payload`]). What the
/// event store reads and writes.
#[derive(Clone, Debug)]
pub struct RecordedEvent {
    /// Where and when it was recorded.
    pub metadata: EventMetadata,
    /// The event's data.
    pub payload: Payload,
}

impl RecordedEvent {
    /// An event with its data given as JSON (tests, tools that write events by hand).
    pub fn from_json(metadata: EventMetadata, data: &serde_json::Value) -> Self {
        Self {
            metadata,
            payload: Payload::json(data),
        }
    }

    /// The event's fields as JSON, encoded on demand when the store kept the typed event.
    pub fn data(&self) -> Result<serde_json::Value> {
        match &self.payload {
            Payload::Typed(event) => event.to_json(),
            Payload::Encoded(text) => {
                serde_json::from_str(text.get()).map_err(|error| self.serialization(error))
            }
        }
    }

    /// The event's JSON text: what a store that writes bytes stores (borrowed when the event
    /// already is text).
    pub fn encoded(&self) -> Result<Cow<'_, str>> {
        match &self.payload {
            Payload::Typed(event) => event.to_json_text().map(Cow::Owned),
            Payload::Encoded(text) => Ok(Cow::Borrowed(text.get())),
        }
    }

    /// Decodes the data as `E`, with an error naming the stream and position: a clone of the
    /// typed event, or a decoding of its JSON text straight into `E`.
    pub fn decode<E: DomainEvent>(&self) -> Result<E> {
        match &self.payload {
            Payload::Typed(event) => match event.as_any().downcast_ref::<E>() {
                Some(event) => Ok(event.clone()),
                // Another type under the same name (two domains sharing a store): through
                // its JSON, as a store that writes bytes would.
                None => E::deserialize(event.to_json()?).map_err(|error| self.serialization(error)),
            },
            Payload::Encoded(text) => {
                serde_json::from_str(text.get()).map_err(|error| self.serialization(error))
            }
        }
    }

    fn serialization(&self, error: serde_json::Error) -> Error {
        Error::Serialization {
            what: self.describe(),
            message: error.to_string(),
        }
    }

    /// `event <type> at <stream> version <v> (position <p>)`, for error messages.
    pub fn describe(&self) -> String {
        format!(
            "event {} at {} version {} (global position {})",
            self.metadata.type_name,
            self.metadata.stream,
            self.metadata.version,
            self.metadata.global_position
        )
    }
}

/// Equal when the metadata and the data (as JSON) are: a typed event equals its encoding.
impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        if self.metadata != other.metadata {
            return false;
        }
        if let (Payload::Typed(a), Payload::Typed(b)) = (&self.payload, &other.payload)
            && Arc::ptr_eq(a, b)
        {
            return true;
        }
        match (self.data(), other.data()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

/// The serialized form: `{ "metadata": …, "data": … }`, the data as JSON.
#[derive(Serialize, Deserialize)]
struct RecordedEventForm<M, D> {
    metadata: M,
    data: D,
}

impl Serialize for RecordedEvent {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        let data = self.data().map_err(serde::ser::Error::custom)?;
        RecordedEventForm {
            metadata: &self.metadata,
            data,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for RecordedEvent {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let form =
            RecordedEventForm::<EventMetadata, serde_json::Value>::deserialize(deserializer)?;
        Ok(Self::from_json(form.metadata, &form.data))
    }
}

/// A typed recorded event, as projectors and event handlers receive it: it derefs to the
/// event `E` and carries its [`EventMetadata`].
///
/// ```
/// use fidelis_core::prelude::*;
/// # #[aggregate]
/// # pub struct Account { pub balance: i64 }
/// # #[event(part_of = Account)]
/// # pub struct DepositMade { pub account_id: Identifier, pub amount: i64 }
///
/// # pub struct Ledger;
/// # #[event_handler(part_of = Account)]
/// # impl Ledger {
/// #[handle(DepositMade)]
/// async fn on_deposit_made(event: &Event<DepositMade>, ctx: &mut EventHandlerContext) -> Result<()> {
///     let amount = event.amount;                 // a field of DepositMade
///     let when = event.metadata().time;          // its metadata
///     tracing::info!(amount, %when, correlation = %ctx.correlation_id(), "deposit");
///     Ok(())
/// }
/// # }
/// ```
#[derive(Clone, PartialEq)]
pub struct Event<E> {
    metadata: EventMetadata,
    payload: E,
}

impl<E> Event<E> {
    /// Pairs an event with its metadata.
    pub fn new(payload: E, metadata: EventMetadata) -> Self {
        Self { metadata, payload }
    }

    /// Where and when the event was recorded.
    pub fn metadata(&self) -> &EventMetadata {
        &self.metadata
    }

    /// The event itself.
    pub fn payload(&self) -> &E {
        &self.payload
    }

    /// Unwraps the event.
    pub fn into_payload(self) -> E {
        self.payload
    }
}

impl<E> Deref for Event<E> {
    type Target = E;
    fn deref(&self) -> &E {
        &self.payload
    }
}

impl<E: fmt::Debug> fmt::Debug for Event<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("type_name", &self.metadata.type_name)
            .field("stream", &self.metadata.stream)
            .field("version", &self.metadata.version)
            .field("payload", &self.payload)
            .finish()
    }
}

/// A type-erased event of any type, as aggregates hold their pending events.
pub trait AnyEvent: Any + Send + Sync + fmt::Debug {
    /// The event's Rust name (`DepositMade`).
    fn event_name(&self) -> &'static str;
    /// The event's data as JSON.
    fn to_json(&self) -> Result<serde_json::Value>;
    /// The event's data as JSON text.
    fn to_json_text(&self) -> Result<String>;
    /// `self` as `Any`, to downcast.
    fn as_any(&self) -> &dyn Any;
    /// The id of the aggregate it happened to, if the event names it.
    fn aggregate_id(&self) -> Option<Identifier>;
    /// Wraps the event with its metadata into a typed [`Event<E>`], erased again.
    fn record(&self, metadata: EventMetadata) -> Arc<dyn AnyRecordedEvent>;
}

impl<E: DomainEvent> AnyEvent for E {
    fn event_name(&self) -> &'static str {
        E::NAME
    }
    fn to_json(&self) -> Result<serde_json::Value> {
        serde_json::to_value(self).map_err(|error| Error::Serialization {
            what: format!("event {}", E::NAME),
            message: error.to_string(),
        })
    }
    fn to_json_text(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|error| Error::Serialization {
            what: format!("event {}", E::NAME),
            message: error.to_string(),
        })
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn aggregate_id(&self) -> Option<Identifier> {
        DomainEvent::aggregate_id(self).cloned()
    }
    fn record(&self, metadata: EventMetadata) -> Arc<dyn AnyRecordedEvent> {
        Arc::new(Event::new(self.clone(), metadata))
    }
}

/// A type-erased [`Event<E>`], as the unit of work hands events to projectors and handlers.
pub trait AnyRecordedEvent: Any + Send + Sync + fmt::Debug {
    /// The event's metadata.
    fn metadata(&self) -> &EventMetadata;
    /// The payload, erased.
    fn payload_any(&self) -> &dyn AnyEvent;
    /// `self` as `Any`, to downcast to `Event<E>`.
    fn as_any(&self) -> &dyn Any;
}

impl<E: DomainEvent> AnyRecordedEvent for Event<E> {
    fn metadata(&self) -> &EventMetadata {
        &self.metadata
    }
    fn payload_any(&self) -> &dyn AnyEvent {
        &self.payload
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl dyn AnyRecordedEvent {
    /// The typed event, if it is an `E`.
    pub fn downcast<E: DomainEvent>(&self) -> Option<&Event<E>> {
        self.as_any().downcast_ref::<Event<E>>()
    }
}

/// A place in a store's global order of events, which is the order of `(commit, position)`.
///
/// Readers of the global order (subscriptions, projections catching up) keep the cursor of
/// the last event they handled and read [`after`](crate::store::Storage::read_all) it. Stores with one
/// writer at a time (memory, SQLite) commit in position order, so there `commit ==
/// position`. On PostgreSQL, writers commit concurrently: `commit` is the id of the writing
/// transaction and `position` a sequence that may have gaps (rolled-back transactions), and
/// reads return only events no running transaction can still precede, so a reader that
/// passed a cursor never misses an event committed later.
///
/// ```
/// use fidelis_core::store::Cursor;
/// let first = Cursor { commit: 1, position: 1 };
/// assert!(Cursor::START < first);
/// assert!(first < Cursor { commit: 1, position: 2 });
/// assert!(Cursor { commit: 1, position: 9 } < Cursor { commit: 2, position: 3 });
/// ```
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Cursor {
    /// The committing transaction's place in the store's commit order.
    pub commit: i64,
    /// The event's global position.
    pub position: i64,
}

impl Cursor {
    /// Before every event: reading after it reads from the beginning.
    pub const START: Cursor = Cursor {
        commit: 0,
        position: 0,
    };
}
