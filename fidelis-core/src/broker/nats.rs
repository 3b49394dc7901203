//! The NATS JetStream adapter (the `nats` feature).
//!
//! A broker stream is one JetStream stream holding one subject: the broker stream's name
//! (`fidelis.account`), and the stream is named after it with dots made underscores
//! (`fidelis_account`); both are created on first use. A message is published on the subject
//! with its headers as NATS headers and its id as `Nats-Msg-Id`, so JetStream drops a message
//! whose id it has seen within the stream's duplicate window. A consumer group is a durable
//! pull consumer named after the group, reading from the stream's start with explicit
//! acknowledgements; JetStream redelivers a message not acknowledged within `ack_wait`, and
//! the message's delivery count is the [`attempt`](Delivery::attempt).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue, NATS_MESSAGE_ID};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::{self, stream};
use async_trait::async_trait;
use futures::StreamExt;

use super::url::BrokerUrl;
use super::{Broker, BrokerConsumer, BrokerMessage, Delivery};
use crate::model::error::{Error, Result};

/// How long JetStream remembers message ids to drop repeats, unless the URL's
/// `duplicate_window` says otherwise (JetStream's own default).
const DEFAULT_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long a delivery may stay unacknowledged before it is delivered again, unless the URL's
/// `ack_wait` says otherwise.
const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a request or a publish acknowledgement may take, unless the URL's `timeout` says
/// otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many publishes may wait for their acknowledgement at once within one batch.
const PUBLISH_WINDOW: usize = 256;
/// How long past a pull's expiry its answer may take before the consumer stops waiting.
const PULL_GRACE: Duration = Duration::from_millis(500);
/// The URL options this adapter reads.
const OPTIONS: [&str; 3] = ["ack_wait", "duplicate_window", "timeout"];

/// A broker on NATS JetStream. Connect with [`NatsBroker::connect`] or
/// [`broker::connect`](super::connect).
///
/// The URL is a NATS URL (`nats://[user:password@]host:port`, `tls://` for TLS) with optional
/// query parameters:
///
/// - `duplicate_window`: how long JetStream remembers a message id to drop a repeat (default
///   `2m`). A relay that republishes later than that publishes a repeat that consumers see.
///   It applies to the streams this broker creates; an existing stream keeps its own.
/// - `ack_wait`: how long a delivery may stay unacknowledged before it is delivered again
///   (default `30s`); it applies to the consumer groups this broker creates. A group holds at
///   most 1,000 unacknowledged messages (JetStream's `max_ack_pending`): past that, it gets
///   no new ones until it acknowledges some or their `ack_wait` passes.
/// - `timeout`: how long a request or a publish acknowledgement may take (default `5s`).
///
/// The client reconnects by itself after the server went away: calls while it is down fail
/// with [`Error::Broker`] once their timeout passes, and work again once it is back.
#[derive(Clone)]
pub struct NatsBroker {
    context: jetstream::Context,
    shown: String,
    ack_wait: Duration,
    duplicate_window: Duration,
    /// The streams known to exist: broker stream name → subject.
    streams: Arc<Mutex<HashMap<String, String>>>,
}

impl NatsBroker {
    /// Connects to the NATS server at `url` (see the type's documentation for the options).
    /// An unreachable server is an [`Error::Broker`] naming the URL without its password.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut parsed = BrokerUrl::parse(url)?;
        let ack_wait = parsed
            .take_duration("ack_wait")?
            .unwrap_or(DEFAULT_ACK_WAIT);
        let duplicate_window = parsed
            .take_duration("duplicate_window")?
            .unwrap_or(DEFAULT_DUPLICATE_WINDOW);
        let timeout = parsed.take_duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
        let parsed = parsed.finish(&OPTIONS)?;
        let shown = parsed.shown.clone();
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            // Retry soon after an outage, at most every two seconds, forever: a relay or a
            // subscriber should pick up again quickly once the server is back.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64).saturating_mul(100).min(2_000))
            })
            .connect(parsed.address.as_str())
            .await
            .map_err(|error| Error::broker_with(&shown, "cannot connect", error))?;
        let context = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .build(client);
        tracing::debug!(broker = %shown, "connected to NATS");
        Ok(NatsBroker {
            context,
            shown,
            ack_wait,
            duplicate_window,
            streams: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn error(
        &self,
        message: impl Into<String>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::broker_with(&self.shown, message, error)
    }

    /// The JetStream stream of broker stream `name`, created if missing.
    async fn stream(&self, name: &str) -> Result<(stream::Stream, String)> {
        let subject = subject_of(name);
        let stream_name = subject.replace('.', "_");
        let mut stream = self
            .context
            .get_or_create_stream(stream::Config {
                name: stream_name.clone(),
                subjects: vec![subject.clone()],
                duplicate_window: self.duplicate_window,
                ..Default::default()
            })
            .await
            .map_err(|error| self.error(format!("cannot create stream `{stream_name}`"), error))?;
        let info = stream
            .info()
            .await
            .map_err(|error| self.error(format!("cannot read stream `{stream_name}`"), error))?;
        if !info.config.subjects.contains(&subject) {
            // Two broker stream names that differ only in characters JetStream does not
            // allow in stream names (`a.b`, `a_b`) would share a stream.
            return Err(Error::broker(
                &self.shown,
                format!(
                    "broker stream `{name}` needs JetStream stream `{stream_name}` for subject \
                     `{subject}`, but that stream holds {:?}; rename one of the two broker streams",
                    info.config.subjects
                ),
            ));
        }
        Ok((stream, subject))
    }

    /// The subject of broker stream `name`, creating its stream the first time.
    async fn subject(&self, name: &str) -> Result<String> {
        if let Some(subject) = self.known().get(name) {
            return Ok(subject.clone());
        }
        let (_, subject) = self.stream(name).await?;
        self.known().insert(name.to_owned(), subject.clone());
        Ok(subject)
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        // The map holds only complete inserts, so a poisoned lock is still usable.
        self.streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The NATS headers of `message`: its own, and its id as `Nats-Msg-Id`.
    fn headers(&self, message: &BrokerMessage) -> Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        for (name, value) in &message.headers {
            let bad = |what: &str| {
                Error::broker(
                    &self.shown,
                    format!(
                        "message `{}` has header `{name}`, whose {what} NATS cannot carry \
                         (no control characters, `:` or non-ASCII in names, no line breaks in \
                         values)",
                        message.id
                    ),
                )
            };
            let name = HeaderName::from_str(name).map_err(|_| bad("name"))?;
            let value = HeaderValue::from_str(value).map_err(|_| bad("value"))?;
            headers.insert(name, value);
        }
        let id = HeaderValue::from_str(&message.id).map_err(|_| {
            Error::broker(
                &self.shown,
                format!("message id `{}` cannot be a NATS header value", message.id),
            )
        })?;
        headers.insert(NATS_MESSAGE_ID, id);
        Ok(headers)
    }
}

#[async_trait]
impl Broker for NatsBroker {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()> {
        // Send a window of messages, then await their acknowledgements: the order is kept
        // (one connection, sent in turn) without a round trip per message.
        for window in messages.chunks(PUBLISH_WINDOW) {
            let mut acks = Vec::with_capacity(window.len());
            for message in window {
                let subject = self.subject(&message.stream).await?;
                let publish = jetstream::message::PublishMessage::build()
                    .payload(message.payload.clone().into())
                    .headers(self.headers(message)?);
                let ack = self
                    .context
                    .send_publish(subject, publish)
                    .await
                    .map_err(|error| {
                        self.error(
                            format!(
                                "cannot publish message `{}` to stream `{}`",
                                message.id, message.stream
                            ),
                            error,
                        )
                    })?;
                acks.push(ack);
            }
            for (ack, message) in acks.into_iter().zip(window) {
                let ack = ack.await.map_err(|error| {
                    self.error(
                        format!(
                            "message `{}` to stream `{}` was not acknowledged",
                            message.id, message.stream
                        ),
                        error,
                    )
                })?;
                if ack.duplicate {
                    tracing::debug!(
                        broker = %self.shown,
                        stream = %message.stream,
                        id = %message.id,
                        "JetStream dropped a repeated message"
                    );
                }
            }
        }
        Ok(())
    }

    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>> {
        let (jetstream_stream, _) = self.stream(stream).await?;
        let durable = durable_name_of(group);
        let consumer: PullConsumer = jetstream_stream
            .get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    deliver_policy: DeliverPolicy::All,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| {
                self.error(
                    format!("cannot create consumer `{durable}` of stream `{stream}`"),
                    error,
                )
            })?;
        Ok(Box::new(NatsConsumer {
            broker: self.clone(),
            consumer,
            stream: stream.to_owned(),
            group: group.to_owned(),
        }))
    }
}

/// A durable pull consumer: the consumer group.
struct NatsConsumer {
    broker: NatsBroker,
    consumer: PullConsumer,
    stream: String,
    group: String,
}

impl NatsConsumer {
    fn error(&self, what: &str, error: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.broker.error(
            format!("{what} (stream `{}`, group `{}`)", self.stream, self.group),
            error,
        )
    }

    /// Up to `max` messages, waiting up to `wait` for the first (`None`: what is there now).
    async fn pull(&self, max: usize, wait: Option<Duration>) -> Result<Vec<Delivery>> {
        let batch = match wait {
            None => self.consumer.fetch().max_messages(max).messages().await,
            Some(wait) => {
                self.consumer
                    .batch()
                    .max_messages(max)
                    .expires(wait)
                    .messages()
                    .await
            }
        };
        let mut batch = batch.map_err(|error| self.error("cannot pull messages", error))?;
        // JetStream holds a pull (even a no-wait one) past its expiry while the group is at its
        // limit of unacknowledged messages (`max_ack_pending`, 1,000 by default): stop
        // waiting then.
        let deadline = tokio::time::Instant::now() + wait.unwrap_or_default() + PULL_GRACE;
        let mut deliveries = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, batch.next()).await {
            // The batch yields boxed errors, which are not `Error` themselves.
            let message = message.map_err(|error| {
                self.error("cannot pull messages", std::io::Error::other(error))
            })?;
            deliveries.push(self.delivery(message)?);
        }
        Ok(deliveries)
    }

    fn delivery(&self, message: jetstream::Message) -> Result<Delivery> {
        let info = message.info().map_err(|error| {
            Error::broker(
                &self.broker.shown,
                format!(
                    "a message of stream `{}` has no JetStream delivery information: {error}",
                    self.stream
                ),
            )
        })?;
        let attempt = u32::try_from(info.delivered.max(1)).unwrap_or(u32::MAX);
        let sequence = info.stream_sequence;
        let receipt = message
            .reply
            .as_ref()
            .map(|reply| reply.to_string())
            .unwrap_or_default();
        let mut id = None;
        let mut headers = BTreeMap::new();
        if let Some(map) = &message.headers {
            for (name, values) in map.iter() {
                let name = name.to_string();
                let Some(value) = values.first() else {
                    continue;
                };
                if name == NATS_MESSAGE_ID.to_string() {
                    id = Some(value.as_str().to_owned());
                } else if !name.starts_with("Nats-") {
                    headers.insert(name, value.as_str().to_owned());
                }
            }
        }
        Ok(Delivery {
            message: BrokerMessage {
                // A message from a producer that set no id is known by its place in the stream.
                id: id.unwrap_or_else(|| sequence.to_string()),
                stream: self.stream.clone(),
                headers,
                payload: message.payload.to_vec(),
            },
            attempt,
            receipt,
        })
    }
}

#[async_trait]
impl BrokerConsumer for NatsConsumer {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let ready = self.pull(max, None).await?;
        if !ready.is_empty() || wait.is_zero() {
            return Ok(ready);
        }
        // Wait for one message only: a pull for more would wait out `wait` unless that many
        // came. Then take whatever else is there.
        let mut deliveries = self.pull(1, Some(wait)).await?;
        if !deliveries.is_empty() && max > 1 {
            deliveries.extend(self.pull(max - 1, None).await?);
        }
        Ok(deliveries)
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<()> {
        if delivery.receipt.is_empty() {
            return Err(Error::broker(
                &self.broker.shown,
                format!(
                    "message `{}` has no receipt to acknowledge",
                    delivery.message.id
                ),
            ));
        }
        // A request, not a plain publish: JetStream answers once the acknowledgement is
        // recorded, so an acknowledged message is not delivered again.
        self.broker
            .context
            .client()
            .request(delivery.receipt.clone(), "+ACK".into())
            .await
            .map(drop)
            .map_err(|error| {
                self.error(
                    &format!("cannot acknowledge message `{}`", delivery.message.id),
                    error,
                )
            })
    }
}

/// The subject of a broker stream: its name, with the characters NATS subjects cannot hold
/// (whitespace, wildcards, `$`, non-ASCII) and empty tokens made `_`.
fn subject_of(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let tokens: Vec<&str> = cleaned
        .split('.')
        .map(|token| if token.is_empty() { "_" } else { token })
        .collect();
    tokens.join(".")
}

/// A durable consumer's name for a group: JetStream names allow no `.`, wildcards or spaces.
fn durable_name_of(group: &str) -> String {
    let name: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "_".to_owned()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid_for_jetstream() {
        assert_eq!(subject_of("fidelis.account"), "fidelis.account");
        assert_eq!(subject_of("pay flow.>.x"), "pay_flow._.x");
        assert_eq!(subject_of(".a..b."), "_.a._.b._");
        assert_eq!(subject_of(""), "_");
        assert_eq!(durable_name_of("ledger.projector"), "ledger_projector");
        assert_eq!(durable_name_of("*"), "_");
    }
}
