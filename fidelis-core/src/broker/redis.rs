//! The Redis Streams adapter (the `redis` feature).
//!
//! A broker stream is a Redis stream of the same name. [`publish`](Broker::publish) appends one
//! entry per message with `XADD <stream> MAXLEN ~ <maxlen> *`, a batch in one pipeline; the
//! entry's fields are `id` (the message id), `payload` (the body, as bytes) and one
//! `header:<name>` field per header. A consumer group is a Redis consumer group (created from
//! the stream's start with `MKSTREAM`), each [`BrokerConsumer`] one Redis consumer in it with a
//! name of its own. New entries come from `XREADGROUP … >` (blocking up to the wait); entries
//! delivered and not acknowledged within the redelivery time are taken over with
//! `XAUTOCLAIM`, and their delivery count is the [`attempt`](Delivery::attempt).
//!
//! Redis does not de-duplicate: a message published twice (a relay retried after a crash) is
//! two entries with the same `id` field, and consumers see the repeat. Fidelis' subscribers
//! recognise repeated ids; consumers of other kinds must do the same.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimReply, StreamId, StreamInfoConsumersReply, StreamPendingCountReply,
    StreamReadReply,
};
use redis::{RedisError, Value};

use super::url::BrokerUrl;
use super::{Broker, BrokerConsumer, BrokerMessage, Delivery};
use crate::model::error::{Error, Result};

/// How many entries a stream keeps, about, unless the URL's `maxlen` says otherwise. Older
/// entries are trimmed as new ones arrive, read or not.
const DEFAULT_MAXLEN: u64 = 1_000_000;
/// How long a delivered entry may stay unacknowledged before another consumer of its group
/// takes it over, unless the URL's `redeliver_after` says otherwise.
const DEFAULT_REDELIVER_AFTER: Duration = Duration::from_secs(30);
/// How long a command may take to answer, unless the URL's `timeout` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A consumer of a group idle this long with nothing pending is a consumer of a process that
/// is gone: it is removed when a new consumer of the group starts. (A live one reads at least
/// every `redeliver_after`, and Redis recreates a removed consumer on its next read anyway.)
const PRUNE_IDLE_AFTER: Duration = Duration::from_secs(3_600);

/// The entry field holding the message id.
const ID_FIELD: &str = "id";
/// The entry field holding the payload.
const PAYLOAD_FIELD: &str = "payload";
/// The prefix of the entry fields holding headers.
const HEADER_PREFIX: &str = "header:";
/// The URL options this adapter reads.
const OPTIONS: [&str; 3] = ["maxlen", "redeliver_after", "timeout"];

/// A broker on Redis Streams. Connect with [`RedisBroker::connect`] or
/// [`broker::connect`](super::connect).
///
/// The URL is a Redis URL (`redis://[user:password@]host:port[/db]`, `rediss://` for TLS is not
/// built in) with optional query parameters:
///
/// - `maxlen`: how many entries each stream keeps, about (default 1,000,000). Trimming is by
///   count only, so a consumer group that falls further behind than that loses the oldest
///   entries it has not read (a pending entry that was trimmed is logged and dropped).
/// - `redeliver_after`: how long a delivery may stay unacknowledged before it is delivered
///   again (default `30s`).
/// - `timeout`: how long a command may take (default `5s`).
///
/// The publishing connection is shared by clones and reconnects by itself after the server
/// went away: a call while it is down fails with [`Error::Broker`], the next calls work again
/// once it is back. Each consumer has a connection of its own, since its blocking reads would
/// hold up everyone else's commands on a shared one.
#[derive(Clone)]
pub struct RedisBroker {
    client: redis::Client,
    connection: ConnectionManager,
    shown: String,
    maxlen: u64,
    redeliver_after: Duration,
    timeout: Duration,
}

impl RedisBroker {
    /// Connects to the Redis server at `url` (see the type's documentation for the options).
    /// An unreachable server is an [`Error::Broker`] naming the URL without its password.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut parsed = BrokerUrl::parse(url)?;
        let maxlen = parsed.take_number("maxlen")?.unwrap_or(DEFAULT_MAXLEN);
        let redeliver_after = parsed
            .take_duration("redeliver_after")?
            .unwrap_or(DEFAULT_REDELIVER_AFTER);
        let timeout = parsed.take_duration("timeout")?.unwrap_or(DEFAULT_TIMEOUT);
        let parsed = parsed.finish(&OPTIONS)?;
        let shown = parsed.shown.clone();
        let client = redis::Client::open(parsed.address.as_str()).map_err(|error| {
            Error::configuration(format!("the Redis URL `{shown}` is invalid: {error}"))
        })?;
        let connection = open(&client, Some(timeout))
            .await
            .map_err(|error| Error::broker_with(&shown, "cannot connect", error))?;
        tracing::debug!(broker = %shown, "connected to Redis");
        Ok(RedisBroker {
            client,
            connection,
            shown,
            maxlen,
            redeliver_after,
            timeout,
        })
    }

    /// How many entries each stream keeps, about.
    pub fn maxlen(&self) -> u64 {
        self.maxlen
    }

    /// How long a delivery may stay unacknowledged before it is delivered again.
    pub fn redeliver_after(&self) -> Duration {
        self.redeliver_after
    }

    fn error(&self, message: impl Into<String>, error: RedisError) -> Error {
        Error::broker_with(&self.shown, message, error)
    }
}

/// A reconnecting connection; `response_timeout` `None` for a consumer's, whose blocking reads
/// are bounded by the caller instead.
async fn open(
    client: &redis::Client,
    response_timeout: Option<Duration>,
) -> std::result::Result<ConnectionManager, RedisError> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(response_timeout)
        .set_connection_timeout(Some(Duration::from_secs(2)))
        // Give up on a reconnection after about a second: the caller's call fails and the
        // next call tries again, so a caller is never held for long while Redis is down.
        .set_number_of_retries(3)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_with_config(client.clone(), config).await
}

#[async_trait]
impl Broker for RedisBroker {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for message in messages {
            let command = pipe
                .cmd("XADD")
                .arg(&message.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.maxlen)
                .arg("*")
                .arg(ID_FIELD)
                .arg(&message.id)
                .arg(PAYLOAD_FIELD)
                .arg(&message.payload);
            for (name, value) in &message.headers {
                command.arg(format!("{HEADER_PREFIX}{name}")).arg(value);
            }
            command.ignore();
        }
        let mut connection = self.connection.clone();
        pipe.query_async::<()>(&mut connection)
            .await
            .map_err(|error| {
                self.error(
                    format!(
                        "cannot publish {} message(s) to {}",
                        messages.len(),
                        super::streams_of(messages)
                    ),
                    error,
                )
            })
    }

    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>> {
        let connection = open(&self.client, None).await.map_err(|error| {
            self.error(
                format!("cannot connect a consumer of stream `{stream}`"),
                error,
            )
        })?;
        let mut consumer = RedisConsumer {
            broker: self.clone(),
            connection,
            stream: stream.to_owned(),
            group: group.to_owned(),
            name: format!("fidelis-{}", uuid::Uuid::now_v7()),
            claim_cursor: "0-0".to_owned(),
        };
        consumer.create_group().await?;
        consumer.prune_idle_consumers().await;
        Ok(Box::new(consumer))
    }
}

/// One Redis consumer in a consumer group.
struct RedisConsumer {
    broker: RedisBroker,
    connection: ConnectionManager,
    stream: String,
    group: String,
    /// This consumer's name in its group.
    name: String,
    /// Where the next `XAUTOCLAIM` goes on scanning the group's pending entries.
    claim_cursor: String,
}

impl RedisConsumer {
    /// Creates the group (from the stream's start, and the stream if it is missing); an
    /// existing group is left as it is.
    async fn create_group(&mut self) -> Result<()> {
        let created = self
            .query::<()>(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(&self.stream)
                    .arg(&self.group)
                    .arg("0")
                    .arg("MKSTREAM"),
                Duration::ZERO,
            )
            .await;
        match created {
            Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
            Err(error) => Err(self.error("cannot create the consumer group", error)),
            Ok(()) => Ok(()),
        }
    }

    /// Removes the group's consumers that are long idle with nothing pending (each
    /// `consumer()` adds one with a name of its own, so restarts would pile them up). Only
    /// housekeeping: a failure is logged, not returned.
    async fn prune_idle_consumers(&mut self) {
        let idle_after = PRUNE_IDLE_AFTER.as_millis();
        let listed: std::result::Result<StreamInfoConsumersReply, _> = self
            .query(
                redis::cmd("XINFO")
                    .arg("CONSUMERS")
                    .arg(&self.stream)
                    .arg(&self.group),
                Duration::ZERO,
            )
            .await;
        let consumers = match listed {
            Ok(reply) => reply.consumers,
            Err(error) => {
                tracing::debug!(%error, stream = %self.stream, "cannot list the group's consumers");
                return;
            }
        };
        let gone: Vec<_> = consumers
            .into_iter()
            .filter(|c| c.pending == 0 && c.idle as u128 > idle_after && c.name != self.name)
            .collect();
        for gone in gone {
            let removed: std::result::Result<i64, _> = self
                .query(
                    redis::cmd("XGROUP")
                        .arg("DELCONSUMER")
                        .arg(&self.stream)
                        .arg(&self.group)
                        .arg(&gone.name),
                    Duration::ZERO,
                )
                .await;
            if let Err(error) = removed {
                tracing::debug!(%error, consumer = %gone.name, "cannot remove an idle consumer");
            }
        }
    }

    /// Runs a command on this consumer's connection, bounded by the broker's timeout plus
    /// `blocking` (how long the command itself may wait on the server).
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        command: &redis::Cmd,
        blocking: Duration,
    ) -> std::result::Result<T, RedisError> {
        let limit = self.broker.timeout + blocking;
        match tokio::time::timeout(limit, command.query_async(&mut self.connection)).await {
            Ok(result) => result,
            Err(_) => Err(timed_out(limit)),
        }
    }

    fn error(&self, what: &str, error: RedisError) -> Error {
        self.broker.error(
            format!("{what} (stream `{}`, group `{}`)", self.stream, self.group),
            error,
        )
    }

    /// Takes over up to `max` entries of the group delivered longer than the redelivery time
    /// ago and not acknowledged.
    async fn claim(&mut self, max: usize) -> Result<Vec<Delivery>> {
        let idle = u64::try_from(self.broker.redeliver_after.as_millis()).unwrap_or(u64::MAX);
        let reply: StreamAutoClaimReply = self
            .query(
                redis::cmd("XAUTOCLAIM")
                    .arg(&self.stream)
                    .arg(&self.group)
                    .arg(&self.name)
                    .arg(idle)
                    .arg(&self.claim_cursor)
                    .arg("COUNT")
                    .arg(max),
                Duration::ZERO,
            )
            .await
            .map_err(|error| self.error("cannot claim pending messages", error))?;
        self.claim_cursor = reply.next_stream_id;
        if !reply.deleted_ids.is_empty() {
            tracing::warn!(
                broker = %self.broker.shown,
                stream = %self.stream,
                group = %self.group,
                entries = ?reply.deleted_ids,
                "pending entries were trimmed from the stream before they were acknowledged; \
                 they are lost (raise `maxlen`)"
            );
        }
        if reply.claimed.is_empty() {
            return Ok(Vec::new());
        }
        // XAUTOCLAIM counted the delivery but does not say how many there were: XPENDING
        // does, one entry each (a range could hold this consumer's other pending entries).
        let mut counts_of = redis::pipe();
        for entry in &reply.claimed {
            counts_of
                .cmd("XPENDING")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1);
        }
        let limit = self.broker.timeout;
        let pending: Vec<StreamPendingCountReply> =
            match tokio::time::timeout(limit, counts_of.query_async(&mut self.connection)).await {
                Ok(result) => result,
                Err(_) => Err(timed_out(limit)),
            }
            .map_err(|error| self.error("cannot read the delivery counts", error))?;
        let counts: HashMap<String, usize> = pending
            .into_iter()
            .flat_map(|reply| reply.ids)
            .map(|entry| (entry.id, entry.times_delivered))
            .collect();
        Ok(reply
            .claimed
            .into_iter()
            .map(|entry| {
                let attempt = counts.get(&entry.id).copied().unwrap_or(2);
                self.delivery(entry, u32::try_from(attempt).unwrap_or(u32::MAX))
            })
            .collect())
    }

    /// Up to `max` entries no consumer of the group has received, waiting up to `block` for
    /// one when there are none (`None`: not waiting).
    async fn read_new(&mut self, max: usize, block: Option<Duration>) -> Result<Vec<Delivery>> {
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.name)
            .arg("COUNT")
            .arg(max);
        if let Some(block) = block {
            // BLOCK 0 would wait forever.
            let millis = u64::try_from(block.as_millis()).unwrap_or(u64::MAX).max(1);
            command.arg("BLOCK").arg(millis);
        }
        command.arg("STREAMS").arg(&self.stream).arg(">");
        let mut result = self
            .query::<Option<StreamReadReply>>(&command, block.unwrap_or_default())
            .await;
        if matches!(&result, Err(error) if error.code() == Some("NOGROUP")) {
            // The stream or the group went away (deleted, or a Redis without persistence
            // restarted): make them again, as `consumer` did, and read once more.
            tracing::warn!(
                broker = %self.broker.shown,
                stream = %self.stream,
                group = %self.group,
                "the consumer group is gone; creating it again"
            );
            self.create_group().await?;
            result = self
                .query::<Option<StreamReadReply>>(&command, block.unwrap_or_default())
                .await;
        }
        let reply = result.map_err(|error| self.error("cannot read new messages", error))?;
        Ok(reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| self.delivery(entry, 1))
            .collect())
    }

    fn delivery(&self, entry: StreamId, attempt: u32) -> Delivery {
        Delivery {
            message: message_of(&self.stream, &entry),
            attempt,
            receipt: entry.id,
        }
    }
}

#[async_trait]
impl BrokerConsumer for RedisConsumer {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut deliveries = self.claim(max).await?;
        if deliveries.len() < max {
            deliveries.extend(self.read_new(max - deliveries.len(), None).await?);
        }
        loop {
            let now = tokio::time::Instant::now();
            if !deliveries.is_empty() || now >= deadline {
                return Ok(deliveries);
            }
            // Block no longer than the redelivery time, so due redeliveries are not left
            // waiting behind a long wait for new entries.
            let block = (deadline - now).min(self.broker.redeliver_after);
            deliveries = self.read_new(max, Some(block)).await?;
            if deliveries.is_empty() {
                deliveries = self.claim(max).await?;
            }
        }
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<()> {
        self.query::<i64>(
            redis::cmd("XACK")
                .arg(&self.stream)
                .arg(&self.group)
                .arg(&delivery.receipt),
            Duration::ZERO,
        )
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

/// The error of a command that got no answer in time.
fn timed_out(limit: Duration) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no answer within {limit:?}"),
    ))
}

/// The message an entry holds. An entry written by another producer may lack Fidelis' fields:
/// its id is then the entry id, and its payload the entry's fields as a JSON object of
/// strings, so a subscriber can still read it.
fn message_of(stream: &str, entry: &StreamId) -> BrokerMessage {
    let mut id = None;
    let mut payload = None;
    let mut headers = BTreeMap::new();
    let mut others = serde_json::Map::new();
    for (field, value) in &entry.map {
        let bytes = bytes_of(value);
        if field == ID_FIELD {
            id = Some(String::from_utf8_lossy(&bytes).into_owned());
        } else if field == PAYLOAD_FIELD {
            payload = Some(bytes);
        } else if let Some(name) = field.strip_prefix(HEADER_PREFIX) {
            headers.insert(
                name.to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            );
        } else {
            others.insert(
                field.clone(),
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            );
        }
    }
    BrokerMessage {
        id: id.unwrap_or_else(|| entry.id.clone()),
        stream: stream.to_owned(),
        headers,
        payload: payload
            .unwrap_or_else(|| serde_json::Value::Object(others).to_string().into_bytes()),
    }
}

/// A field value's bytes (Redis sends stream fields as bulk strings).
fn bytes_of(value: &Value) -> Vec<u8> {
    match value {
        Value::BulkString(bytes) => bytes.clone(),
        Value::SimpleString(text) => text.clone().into_bytes(),
        Value::Int(number) => number.to_string().into_bytes(),
        other => format!("{other:?}").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_of_another_producer_is_readable() {
        let entry = StreamId {
            id: "1-0".into(),
            map: HashMap::from([
                ("kind".to_owned(), Value::BulkString(b"paid".to_vec())),
                ("amount".to_owned(), Value::BulkString(b"12".to_vec())),
            ]),
            milliseconds_elapsed_from_delivery: None,
            delivered_count: None,
        };
        let message = message_of("payflow", &entry);
        assert_eq!(message.id, "1-0");
        assert_eq!(
            message.json::<serde_json::Value>().unwrap(),
            serde_json::json!({ "kind": "paid", "amount": "12" })
        );
    }

    #[test]
    fn fidelis_fields_map_back_to_the_message() {
        let entry = StreamId {
            id: "1-0".into(),
            map: HashMap::from([
                ("id".to_owned(), Value::BulkString(b"e1".to_vec())),
                (
                    "payload".to_owned(),
                    Value::BulkString(b"{not json".to_vec()),
                ),
                (
                    "header:fidelis-type".to_owned(),
                    Value::BulkString(b"Bank.Paid.v1".to_vec()),
                ),
            ]),
            milliseconds_elapsed_from_delivery: None,
            delivered_count: None,
        };
        let message = message_of("bank", &entry);
        assert_eq!(message.id, "e1");
        assert_eq!(message.payload, b"{not json");
        assert_eq!(message.header("fidelis-type"), Some("Bank.Paid.v1"));
    }
}
