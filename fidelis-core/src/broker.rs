//! The message broker port: what the outbox relay publishes to and what subscribers consume
//! from, for adapter authors. Fidelis ships [`MemoryBroker`] (in process, for tests and single
//! binaries); Redis Streams and NATS JetStream adapters are behind the `redis` and `nats`
//! features.
//!
//! A broker keeps one ordered stream of [`BrokerMessage`]s per name. Consumers read a stream
//! through a named consumer group: each message is delivered to one consumer of each group,
//! and delivered again until a consumer of the group [acknowledges](BrokerConsumer::ack) it.
//! Delivery is therefore at least once; a message's [`id`](BrokerMessage::id) is what makes a
//! repeat recognisable (the relay uses the event id, so a relay retried after a crash
//! publishes the same ids again).
//!
//! The adapters differ where their brokers do:
//!
//! - **Repeats.** [`MemoryBroker`] and NATS JetStream drop a message whose id is already on
//!   its stream (JetStream within its duplicate window, 2 minutes by default); Redis Streams
//!   cannot, so a republished message reaches consumers again with the same id, and a
//!   consumer must skip ids it has handled (Fidelis' subscribers do).
//! - **Redelivery.** An unacknowledged message is delivered again after the adapter's
//!   redelivery time (`redeliver_after` on Redis and memory, `ack_wait` on NATS), to any
//!   consumer of the group, with [`Delivery::attempt`] counting the deliveries.
//! - **Retention.** Redis keeps about `maxlen` entries per stream (1,000,000 by default) and
//!   trims older ones whether read or not; JetStream streams created here keep everything.
//! - **Outages.** A call while the server is away fails with [`Error::Broker`]; the adapters
//!   reconnect by themselves, so the caller retries with the same broker object.

mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "redis", feature = "nats"))]
mod url;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;

use crate::model::error::{Error, Result};

#[cfg(feature = "nats")]
pub use self::nats::NatsBroker;
#[cfg(feature = "redis")]
pub use self::redis::RedisBroker;
pub use memory::MemoryBroker;

/// The broker a URL names: `memory` (a new [`MemoryBroker`]), `redis://…` (a `RedisBroker`,
/// the `redis` feature) or `nats://…` (a `NatsBroker`, the `nats` feature); their
/// documentation lists the options a URL may carry as query parameters
/// (`redis://127.0.0.1:6379?maxlen=100000`). A URL of another scheme, or of a scheme whose
/// feature is off, is an [`Error::Configuration`] that says which; a server that cannot be
/// reached is an [`Error::Broker`] naming the URL without its password.
pub async fn connect(url: &str) -> Result<std::sync::Arc<dyn Broker>> {
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    match scheme {
        "memory" => Ok(std::sync::Arc::new(MemoryBroker::new())),
        #[cfg(feature = "redis")]
        "redis" => Ok(std::sync::Arc::new(RedisBroker::connect(url).await?)),
        #[cfg(not(feature = "redis"))]
        "redis" => Err(feature_off(scheme, "redis")),
        "rediss" => Err(Error::configuration(
            "a `rediss://` broker (Redis over TLS) is not supported; use `redis://`",
        )),
        #[cfg(feature = "nats")]
        "nats" | "tls" => Ok(std::sync::Arc::new(NatsBroker::connect(url).await?)),
        #[cfg(not(feature = "nats"))]
        "nats" | "tls" => Err(feature_off(scheme, "nats")),
        _ => Err(Error::Configuration {
            problems: vec![format!(
                "a broker URL of scheme `{scheme}` is not supported; use `redis://`, `nats://` or `memory`"
            )],
        }),
    }
}

/// `stream `a`` or `streams `a`, `b``, for errors about a batch.
#[cfg(feature = "redis")]
fn streams_of(messages: &[BrokerMessage]) -> String {
    let mut streams: Vec<&str> = messages.iter().map(|m| m.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let names: Vec<String> = streams.iter().map(|s| format!("`{s}`")).collect();
    match names.len() {
        1 => format!("stream {}", names[0]),
        _ => format!("streams {}", names.join(", ")),
    }
}

#[cfg(not(all(feature = "redis", feature = "nats")))]
fn feature_off(scheme: &str, feature: &str) -> Error {
    Error::Configuration {
        problems: vec![format!(
            "a `{scheme}://` broker needs fidelis-core's `{feature}` feature, which is off in this build"
        )],
    }
}

/// Header: the stable type name of a relayed event (`Fidelis.DepositMade.v1`).
pub const TYPE_HEADER: &str = "fidelis-type";
/// Header: the event store stream a relayed event was recorded in.
pub const STREAM_HEADER: &str = "fidelis-stream";
/// Header: the relayed event's version in its stream.
pub const VERSION_HEADER: &str = "fidelis-version";
/// Header: the relayed event's metadata, as JSON.
pub const METADATA_HEADER: &str = "fidelis-metadata";

/// One message on a broker stream: an event the relay publishes, or anything another system
/// put on a stream a subscriber reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerMessage {
    /// The message's identity: the event id for relayed events; for messages from other
    /// systems, the id their producer set (or the broker's own id for the entry). Repeats of
    /// a message carry the same id.
    pub id: String,
    /// The broker stream it is on (`fidelis.account` for the events of `fidelis::account-…`).
    pub stream: String,
    /// Key/values beside the payload (see the `*_HEADER` constants for those of relayed
    /// events).
    pub headers: BTreeMap<String, String>,
    /// The body, as the producer wrote it: the event's data as JSON for relayed events. It
    /// is not checked when received, so a malformed message from another system reaches
    /// [`json`](Self::json), which says what is wrong with it.
    pub payload: Vec<u8>,
}

impl BrokerMessage {
    /// A message with a JSON payload and no headers.
    pub fn json_message(
        id: impl Into<String>,
        stream: impl Into<String>,
        payload: &serde_json::Value,
    ) -> Self {
        BrokerMessage {
            id: id.into(),
            stream: stream.into(),
            headers: BTreeMap::new(),
            payload: payload.to_string().into_bytes(),
        }
    }

    /// The same message with one more header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// A header's value.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.get(key).map(String::as_str)
    }

    /// The payload decoded from JSON into `T`, or [`Error::Serialization`] naming the stream,
    /// the message and what is wrong.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.payload).map_err(|error| Error::Serialization {
            what: format!("message `{}` on broker stream `{}`", self.id, self.stream),
            message: error.to_string(),
        })
    }
}

/// A message handed to a consumer, to [acknowledge](BrokerConsumer::ack) once handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The message.
    pub message: BrokerMessage,
    /// How many times it has been delivered to this consumer group, this time included
    /// (1 the first time).
    pub attempt: u32,
    /// The broker's handle for the acknowledgement (a Redis entry id, a JetStream reply
    /// subject); only the consumer that received it reads it.
    pub receipt: String,
}

/// A message broker: ordered streams of messages, read through consumer groups.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// The broker's kind and address without a password, for errors and status
    /// (`redis://127.0.0.1:6379`, `memory`).
    fn describe(&self) -> String;

    /// Appends `messages` to their streams, in the order given (the relay passes each event
    /// stream's events in version order). Returns only when the broker has accepted every one;
    /// on an error, some may have been accepted and the caller publishes them all again (a
    /// broker that can de-duplicate drops the repeats by [`BrokerMessage::id`]; Redis cannot).
    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()>;

    /// A consumer of `stream` in consumer group `group`, creating the group (reading from the
    /// stream's beginning) if it does not exist yet.
    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>>;
}

/// One consumer in a consumer group.
#[async_trait]
pub trait BrokerConsumer: Send {
    /// Up to `max` messages: first those delivered to the group earlier and not acknowledged
    /// within the broker's redelivery time, then new ones. Waits up to `wait` when there are
    /// none, then returns an empty batch; it returns as soon as there is one, without waiting
    /// to fill the batch. A broker that is away is an [`Error::Broker`]; the next call tries
    /// again.
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;

    /// Acknowledges a delivery: the group is done with its message.
    async fn ack(&mut self, delivery: &Delivery) -> Result<()>;
}
