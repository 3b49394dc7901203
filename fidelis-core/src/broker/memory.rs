//! An in-process broker: streams in a map, consumer groups as a cursor plus the deliveries
//! not yet acknowledged. For tests and single binaries; it keeps nothing across restarts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Broker, BrokerConsumer, BrokerMessage, Delivery};
use crate::model::error::{Error, Result};

/// The redelivery time of a [`MemoryBroker`] unless [`MemoryBroker::redeliver_after`] says
/// otherwise.
const DEFAULT_REDELIVERY: Duration = Duration::from_secs(30);

/// A broker in memory. Clones share the streams.
///
/// Like JetStream, it de-duplicates on [`BrokerMessage::id`]: a message whose id is already on
/// its stream is accepted and not appended again. [`set_available`](Self::set_available)
/// makes it refuse every call, to test what happens while a broker is down.
#[derive(Clone)]
pub struct MemoryBroker {
    inner: Arc<Inner>,
}

struct Inner {
    streams: Mutex<HashMap<String, Stream>>,
    appended: Notify,
    available: AtomicBool,
    redelivery: Duration,
}

#[derive(Default)]
struct Stream {
    messages: Vec<BrokerMessage>,
    ids: HashSet<String>,
    groups: HashMap<String, Group>,
}

#[derive(Default)]
struct Group {
    /// The index of the next message no consumer of the group has received.
    next: usize,
    /// Delivered, not acknowledged: index → (last delivery, deliveries so far).
    pending: BTreeMap<usize, (Instant, u32)>,
}

impl Default for MemoryBroker {
    fn default() -> Self {
        MemoryBroker::new()
    }
}

impl MemoryBroker {
    /// An empty broker that redelivers unacknowledged messages after 30 seconds.
    pub fn new() -> Self {
        MemoryBroker::redeliver_after(DEFAULT_REDELIVERY)
    }

    /// An empty broker that redelivers a message not acknowledged within `redelivery`.
    pub fn redeliver_after(redelivery: Duration) -> Self {
        MemoryBroker {
            inner: Arc::new(Inner {
                streams: Mutex::new(HashMap::new()),
                appended: Notify::new(),
                available: AtomicBool::new(true),
                redelivery,
            }),
        }
    }

    /// Every message on `stream`, oldest first.
    pub fn messages(&self, stream: &str) -> Vec<BrokerMessage> {
        self.streams()
            .get(stream)
            .map(|stream| stream.messages.clone())
            .unwrap_or_default()
    }

    /// Makes the broker refuse (`false`) or accept (`true`) every call from now on.
    pub fn set_available(&self, available: bool) {
        self.inner.available.store(available, Ordering::SeqCst);
        self.inner.appended.notify_waiters();
    }

    fn check_available(&self) -> Result<()> {
        if self.inner.available.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Error::broker("memory", "the broker is unavailable"))
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, Stream>> {
        // A panic while holding the lock leaves the maps consistent (every update is one
        // insert or push), so a poisoned lock is still usable.
        self.inner
            .streams
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()> {
        self.check_available()?;
        {
            let mut streams = self.streams();
            for message in messages {
                let stream = streams.entry(message.stream.clone()).or_default();
                if stream.ids.insert(message.id.clone()) {
                    stream.messages.push(message.clone());
                }
            }
        }
        self.inner.appended.notify_waiters();
        Ok(())
    }

    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>> {
        self.check_available()?;
        self.streams()
            .entry(stream.to_owned())
            .or_default()
            .groups
            .entry(group.to_owned())
            .or_default();
        Ok(Box::new(MemoryConsumer {
            broker: self.clone(),
            stream: stream.to_owned(),
            group: group.to_owned(),
        }))
    }
}

struct MemoryConsumer {
    broker: MemoryBroker,
    stream: String,
    group: String,
}

impl MemoryConsumer {
    /// Takes up to `max` deliveries: redeliveries that are due, then new messages.
    fn take(&self, max: usize) -> Vec<Delivery> {
        let now = Instant::now();
        let redelivery = self.broker.inner.redelivery;
        let mut streams = self.broker.streams();
        let Some(stream) = streams.get_mut(&self.stream) else {
            return Vec::new();
        };
        let group = stream.groups.entry(self.group.clone()).or_default();
        let mut taken = Vec::new();
        for (&index, (delivered, attempts)) in group.pending.iter_mut() {
            if taken.len() == max {
                break;
            }
            if now.duration_since(*delivered) >= redelivery {
                *delivered = now;
                *attempts += 1;
                taken.push((index, *attempts));
            }
        }
        while taken.len() < max && group.next < stream.messages.len() {
            group.pending.insert(group.next, (now, 1));
            taken.push((group.next, 1));
            group.next += 1;
        }
        taken
            .into_iter()
            .map(|(index, attempt)| Delivery {
                message: stream.messages[index].clone(),
                attempt,
                receipt: index.to_string(),
            })
            .collect()
    }
}

#[async_trait]
impl BrokerConsumer for MemoryConsumer {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.broker.check_available()?;
            // Registered before looking, so a publish between the look and the wait wakes it.
            let appended = self.broker.inner.appended.notified();
            let taken = self.take(max);
            if !taken.is_empty() {
                return Ok(taken);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            // Wake for a publish, or in time for the next redelivery.
            let nap = (deadline - now).min(self.broker.inner.redelivery);
            let _ = tokio::time::timeout(nap, appended).await;
        }
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<()> {
        self.broker.check_available()?;
        let index: usize = delivery.receipt.parse().map_err(|_| {
            Error::broker(
                "memory",
                format!("`{}` is not a receipt of this broker", delivery.receipt),
            )
        })?;
        if let Some(stream) = self.broker.streams().get_mut(&self.stream)
            && let Some(group) = stream.groups.get_mut(&self.group)
        {
            group.pending.remove(&index);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn message(id: &str) -> BrokerMessage {
        BrokerMessage::json_message(id, "bank.account", &json!({ "id": id }))
    }

    #[tokio::test]
    async fn each_group_gets_every_message_once_and_repeats_are_dropped() {
        let broker = MemoryBroker::new();
        broker
            .publish(&[message("a"), message("b"), message("a")])
            .await
            .unwrap();
        assert_eq!(broker.messages("bank.account").len(), 2);
        for group in ["ledger", "audit"] {
            let mut consumer = broker.consumer("bank.account", group).await.unwrap();
            let batch = consumer.receive(10, Duration::ZERO).await.unwrap();
            let ids: Vec<_> = batch.iter().map(|d| d.message.id.as_str()).collect();
            assert_eq!(ids, ["a", "b"]);
            for delivery in &batch {
                consumer.ack(delivery).await.unwrap();
            }
            let again = consumer.receive(10, Duration::ZERO).await.unwrap();
            assert!(again.is_empty());
        }
    }

    #[tokio::test]
    async fn an_unacknowledged_message_is_delivered_again() {
        let broker = MemoryBroker::redeliver_after(Duration::from_millis(20));
        let mut consumer = broker.consumer("bank.account", "ledger").await.unwrap();
        broker.publish(&[message("a")]).await.unwrap();
        let first = consumer.receive(1, Duration::ZERO).await.unwrap();
        assert_eq!(first[0].attempt, 1);
        let second = consumer
            .receive(1, Duration::from_millis(500))
            .await
            .unwrap();
        assert_eq!(second[0].message.id, "a");
        assert_eq!(second[0].attempt, 2);
    }

    #[tokio::test]
    async fn a_waiting_consumer_wakes_for_a_publish() {
        let broker = MemoryBroker::new();
        let mut consumer = broker.consumer("bank.account", "ledger").await.unwrap();
        let publisher = broker.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            publisher.publish(&[message("a")]).await.unwrap();
        });
        let batch = consumer.receive(1, Duration::from_secs(5)).await.unwrap();
        assert_eq!(batch.len(), 1);
    }

    #[tokio::test]
    async fn an_unavailable_broker_refuses_and_loses_nothing() {
        let broker = MemoryBroker::new();
        broker.set_available(false);
        let error = broker.publish(&[message("a")]).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "broker error (memory): the broker is unavailable"
        );
        broker.set_available(true);
        broker.publish(&[message("a")]).await.unwrap();
        assert_eq!(broker.messages("bank.account").len(), 1);
    }

    #[test]
    fn a_malformed_payload_names_the_message() {
        let mut bad = message("x");
        bad.payload = b"{not json".to_vec();
        let error = bad.json::<serde_json::Value>().unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot decode message `x` on broker stream `bank.account`:"),
            "{error}"
        );
    }
}
