//! The broker conformance suite, run against the memory broker, Redis Streams and NATS
//! JetStream: publish order is kept; each consumer group gets every message and groups are
//! independent; an acknowledged message is not delivered again, an unacknowledged one is,
//! with attempt 2; a republished id is dropped by the brokers that de-duplicate (memory, NATS)
//! and shown as a repeat with the same id by Redis; headers and a malformed payload arrive
//! intact; and a broker taken away mid-run (a TCP proxy cut) fails publishes with
//! `Error::Broker` naming its URL, then works again with the same broker object once it is
//! back, losing nothing it had accepted.
//!
//! Redis and NATS run when `FIDELIS_TEST_REDIS_URL` / `FIDELIS_TEST_NATS_URL` were set when
//! the tests were built (otherwise they are listed as ignored); set but unreachable fails.

#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use fidelis_core::Error;
use fidelis_core::Identifier;
use fidelis_core::broker::{
    Broker, BrokerConsumer, BrokerMessage, Delivery, MemoryBroker, TYPE_HEADER,
};
use serde_json::json;

#[path = "support/proxy.rs"]
mod proxy;
use proxy::Proxy;

/// How long the brokers under test wait before delivering an unacknowledged message again.
const REDELIVERY: Duration = Duration::from_millis(800);
/// How long a check waits for what it expects before failing.
const PATIENCE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Memory,
    Redis,
    Nats,
}

/// The broker one check runs against.
struct Target {
    kind: Kind,
    /// The server's URL (Redis and NATS).
    url: String,
    /// The memory broker the check's brokers share.
    memory: MemoryBroker,
}

impl Target {
    fn memory() -> Target {
        Target {
            kind: Kind::Memory,
            url: "memory".into(),
            memory: MemoryBroker::redeliver_after(REDELIVERY),
        }
    }

    fn server(kind: Kind, variable: &str) -> Option<Target> {
        let Ok(url) = std::env::var(variable) else {
            eprintln!("SKIPPED: {variable} is unset, so this broker test did not run");
            return None;
        };
        Some(Target {
            kind,
            url,
            memory: MemoryBroker::new(),
        })
    }

    /// A broker on this target, with a short redelivery time.
    async fn broker(&self) -> Arc<dyn Broker> {
        self.broker_at(&self.url).await
    }

    async fn broker_at(&self, url: &str) -> Arc<dyn Broker> {
        self.broker_redelivering(url, REDELIVERY).await
    }

    /// A broker on this target that delivers again after `redelivery`.
    async fn broker_redelivering(&self, url: &str, redelivery: Duration) -> Arc<dyn Broker> {
        let millis = redelivery.as_millis();
        let url = match self.kind {
            Kind::Memory if redelivery == REDELIVERY => return Arc::new(self.memory.clone()),
            Kind::Memory => return Arc::new(MemoryBroker::redeliver_after(redelivery)),
            Kind::Redis => with_options(url, &format!("redeliver_after={millis}ms&timeout=2s")),
            Kind::Nats => with_options(url, &format!("ack_wait={millis}ms&timeout=2s")),
        };
        fidelis_core::broker::connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{url} is set but cannot be reached: {error}"))
    }

    /// Whether the broker drops a message whose id is already on its stream.
    fn deduplicates(&self) -> bool {
        self.kind != Kind::Redis
    }
}

/// `url` with query parameters added.
fn with_options(url: &str, options: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{options}")
}

/// `url` with its `host:port` replaced by `address`.
fn with_address(url: &str, address: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, tail) = rest
        .find(['/', '?'])
        .map_or((rest, ""), |at| rest.split_at(at));
    let credentials = authority
        .rsplit_once('@')
        .map_or(String::new(), |(credentials, _)| format!("{credentials}@"));
    format!("{scheme}://{credentials}{address}{tail}")
}

/// `host:port` of `url`.
fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, address)| address)
        .to_owned()
}

fn unique_stream() -> String {
    format!("test.{}", Identifier::generate().as_str().replace('-', ""))
}

fn message(stream: &str, id: &str) -> BrokerMessage {
    BrokerMessage::json_message(id, stream, &json!({ "id": id }))
}

fn ids(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.message.id.clone()).collect()
}

/// Receives until `count` deliveries came (acknowledging each if `ack`), or fails after
/// [`PATIENCE`].
async fn receive_n(consumer: &mut dyn BrokerConsumer, count: usize, ack: bool) -> Vec<Delivery> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut received = Vec::new();
    while received.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {count} messages arrived: {:?}",
            received.len(),
            ids(&received)
        );
        let batch = consumer
            .receive(count - received.len(), Duration::from_millis(500))
            .await
            .expect("receive");
        for delivery in batch {
            if ack {
                consumer.ack(&delivery).await.expect("ack");
            }
            received.push(delivery);
        }
    }
    received
}

/// Asserts that nothing arrives for a while (longer than the redelivery time).
async fn assert_nothing_arrives(consumer: &mut dyn BrokerConsumer) {
    let deadline = tokio::time::Instant::now() + REDELIVERY * 2 + Duration::from_millis(500);
    while tokio::time::Instant::now() < deadline {
        let batch = consumer
            .receive(10, Duration::from_millis(300))
            .await
            .expect("receive");
        assert!(batch.is_empty(), "unexpected deliveries: {:?}", ids(&batch));
    }
}

async fn publish_order_is_kept(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    let first: Vec<_> = (0..40)
        .map(|i| message(&stream, &format!("m{i:02}")))
        .collect();
    broker.publish(&first).await.expect("publish a batch");
    for i in 40..50 {
        broker
            .publish(&[message(&stream, &format!("m{i:02}"))])
            .await
            .expect("publish one");
    }
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    let received = receive_n(consumer.as_mut(), 50, true).await;
    let expected: Vec<_> = (0..50).map(|i| format!("m{i:02}")).collect();
    assert_eq!(ids(&received), expected);
    assert!(received.iter().all(|d| d.attempt == 1));
}

async fn each_group_gets_every_message_and_groups_are_independent(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    let mut ledger = broker.consumer(&stream, "ledger").await.expect("consumer");
    let mut audit = broker.consumer(&stream, "audit").await.expect("consumer");
    let batch: Vec<_> = (0..5).map(|i| message(&stream, &format!("m{i}"))).collect();
    broker.publish(&batch).await.expect("publish");
    // The ledger acknowledges; the audit group does not, and gets its messages again.
    let to_ledger = receive_n(ledger.as_mut(), 5, true).await;
    let to_audit = receive_n(audit.as_mut(), 5, false).await;
    assert_eq!(ids(&to_ledger), ["m0", "m1", "m2", "m3", "m4"]);
    assert_eq!(ids(&to_audit), ["m0", "m1", "m2", "m3", "m4"]);
    let again = receive_n(audit.as_mut(), 5, true).await;
    assert_eq!(ids(&again), ["m0", "m1", "m2", "m3", "m4"]);
    assert!(again.iter().all(|d| d.attempt == 2), "{again:?}");
    assert_nothing_arrives(ledger.as_mut()).await;
    // A group created later still reads the stream from its start.
    let mut late = broker.consumer(&stream, "late").await.expect("consumer");
    assert_eq!(ids(&receive_n(late.as_mut(), 5, true).await).len(), 5);
}

async fn two_consumers_of_one_group_share_its_messages(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    let mut first = broker.consumer(&stream, "ledger").await.expect("consumer");
    let mut second = broker.consumer(&stream, "ledger").await.expect("consumer");
    broker
        .publish(&[message(&stream, "a"), message(&stream, "b")])
        .await
        .expect("publish");
    let taken = receive_n(first.as_mut(), 1, true).await;
    let rest = receive_n(second.as_mut(), 1, true).await;
    let mut all = [ids(&taken), ids(&rest)].concat();
    all.sort();
    assert_eq!(all, ["a", "b"]);
    assert_nothing_arrives(first.as_mut()).await;
}

async fn an_acknowledged_message_is_not_delivered_again(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    broker
        .publish(&[message(&stream, "a")])
        .await
        .expect("publish");
    let received = receive_n(consumer.as_mut(), 1, true).await;
    assert_eq!(ids(&received), ["a"]);
    assert_nothing_arrives(consumer.as_mut()).await;
}

async fn an_unacknowledged_message_is_delivered_again_with_attempt_2(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    let sent = message(&stream, "a").with_header(TYPE_HEADER, "Bank.DepositMade.v1");
    broker
        .publish(std::slice::from_ref(&sent))
        .await
        .expect("publish");
    let first = receive_n(consumer.as_mut(), 1, false).await;
    assert_eq!(first[0].attempt, 1);
    let second = receive_n(consumer.as_mut(), 1, false).await;
    assert_eq!(second[0].message, sent);
    assert_eq!(second[0].attempt, 2);
    consumer.ack(&second[0]).await.expect("ack the redelivery");
    assert_nothing_arrives(consumer.as_mut()).await;
}

async fn receive_keeps_to_its_wait_with_many_unacknowledged(target: &Target) {
    // A long redelivery time, so a receive that overstays its wait is not rescued by one.
    let broker = target
        .broker_redelivering(&target.url, Duration::from_secs(60))
        .await;
    let stream = unique_stream();
    // More than JetStream's default limit of unacknowledged messages per group (1,000).
    let batch: Vec<_> = (0..1_100)
        .map(|i| message(&stream, &format!("m{i}")))
        .collect();
    broker.publish(&batch).await.expect("publish");
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    let mut held = 0;
    for _ in 0..3 {
        held += consumer
            .receive(500, Duration::ZERO)
            .await
            .expect("receive")
            .len();
    }
    assert!(held >= 1_000, "only {held} delivered");
    for _ in 0..2 {
        let started = std::time::Instant::now();
        consumer
            .receive(10, Duration::from_millis(300))
            .await
            .expect("receive");
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(2),
            "a receive of 300ms took {took:?}"
        );
    }
}

async fn a_republished_id_is_dropped_or_shown_as_a_repeat(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    broker
        .publish(&[message(&stream, "a"), message(&stream, "b")])
        .await
        .expect("publish");
    // A relay retried after a crash publishes the same ids again.
    broker
        .publish(&[message(&stream, "b")])
        .await
        .expect("publish the repeat");
    broker
        .publish(&[message(&stream, "c")])
        .await
        .expect("publish");
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    if target.deduplicates() {
        let received = receive_n(consumer.as_mut(), 3, true).await;
        assert_eq!(ids(&received), ["a", "b", "c"]);
        assert_nothing_arrives(consumer.as_mut()).await;
    } else {
        let received = receive_n(consumer.as_mut(), 4, true).await;
        assert_eq!(ids(&received), ["a", "b", "b", "c"]);
        assert_eq!(received[1].message, received[2].message);
        assert_ne!(received[1].receipt, received[2].receipt);
    }
}

async fn headers_and_a_malformed_payload_arrive_intact(target: &Target) {
    let broker = target.broker().await;
    let stream = unique_stream();
    let mut bad = message(&stream, "bad")
        .with_header(TYPE_HEADER, "Payflow.Paid.v1")
        .with_header("x-tenant", "acme");
    bad.payload = b"{\"amount\": 12,".to_vec();
    let mut binary = message(&stream, "binary");
    binary.payload = vec![0, 159, 146, 150, 255, b'\n', b'\r'];
    broker
        .publish(&[bad.clone(), binary.clone()])
        .await
        .expect("publish");
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    let received = receive_n(consumer.as_mut(), 2, true).await;
    assert_eq!(received[0].message, bad);
    assert_eq!(received[1].message, binary);
    let error = received[0]
        .message
        .json::<serde_json::Value>()
        .expect_err("a malformed payload");
    assert!(
        error.to_string().starts_with(&format!(
            "cannot decode message `bad` on broker stream `{stream}`: EOF while parsing"
        )),
        "{error}"
    );
}

async fn a_broker_down_mid_run_fails_then_recovers_losing_nothing(target: &Target) {
    // The memory broker is taken away by `set_available`, the servers by a proxy cut.
    let proxy = match target.kind {
        Kind::Memory => None,
        _ => Some(Proxy::start(address_of(&target.url)).await),
    };
    let url = proxy.as_ref().map_or(target.url.clone(), |proxy| {
        with_address(&target.url, &proxy.address().to_string())
    });
    let broker = target.broker_at(&url).await;
    let described = broker.describe();
    assert!(!described.contains('?'), "{described}");
    let stream = unique_stream();
    let mut consumer = broker.consumer(&stream, "ledger").await.expect("consumer");
    broker
        .publish(&[message(&stream, "m1"), message(&stream, "m2")])
        .await
        .expect("publish before the outage");
    // m1 is acknowledged, m2 received and not yet acknowledged when the broker goes.
    let m1 = receive_n(consumer.as_mut(), 1, true).await;
    assert_eq!(ids(&m1), ["m1"]);
    let m2 = receive_n(consumer.as_mut(), 1, false).await;
    assert_eq!(ids(&m2), ["m2"]);

    match &proxy {
        Some(proxy) => proxy.cut().await,
        None => target.memory.set_available(false),
    }
    let error = broker
        .publish(&[message(&stream, "m3")])
        .await
        .expect_err("a publish while the broker is down fails");
    match &error {
        Error::Broker { broker, .. } => assert_eq!(broker, &described),
        other => panic!("expected Error::Broker, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with(&format!("broker error ({described}): ")),
        "{error}"
    );
    if target.kind != Kind::Memory {
        assert!(described.contains(&proxy.as_ref().unwrap().address().to_string()));
    }

    match &proxy {
        Some(proxy) => proxy.restore(),
        None => target.memory.set_available(true),
    }
    // The same broker object reconnects: the relay's retry publishes m3 again, then m4.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match broker.publish(&[message(&stream, "m3")]).await {
            Ok(()) => break,
            Err(error) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still failing after the broker came back: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    broker
        .publish(&[message(&stream, "m4")])
        .await
        .expect("publish after the outage");

    // The consumer goes on too: m2 again (never acknowledged), m3 and m4; not m1. A
    // receive may still fail while its own connection comes back.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while !(seen.contains(&"m2".to_owned())
        && seen.contains(&"m3".to_owned())
        && seen.contains(&"m4".to_owned()))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "after the outage only {seen:?} arrived"
        );
        let Ok(batch) = consumer.receive(10, Duration::from_millis(500)).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for delivery in batch {
            if consumer.ack(&delivery).await.is_ok() {
                seen.push(delivery.message.id.clone());
            }
        }
    }
    assert!(!seen.contains(&"m1".to_owned()), "{seen:?}");
    assert_nothing_arrives(consumer.as_mut()).await;
}

async fn a_bad_url_is_refused_with_the_reason(target: &Target) {
    let (url, expected) = match target.kind {
        Kind::Memory => return,
        Kind::Redis => (
            with_options(&target.url, "max_len=5"),
            "has unknown option(s) `max_len`; the options are `maxlen`, `redeliver_after`, `timeout`",
        ),
        Kind::Nats => (
            with_options(&target.url, "ack_wait=5"),
            "has `ack_wait=5`; `ack_wait` must be a duration such as `500ms`, `30s` or `2m`",
        ),
    };
    let error = fidelis_core::broker::connect(&url)
        .await
        .err()
        .expect("a bad option is refused");
    assert!(matches!(error, Error::Configuration { .. }), "{error:?}");
    assert!(error.to_string().contains(expected), "{error}");
    // Nothing listens on port 9 (discard): an unreachable server names the URL.
    let unreachable = with_address(&target.url, "127.0.0.1:9");
    let error = fidelis_core::broker::connect(&with_options(&unreachable, "timeout=1s"))
        .await
        .err()
        .expect("an unreachable server is refused");
    let Error::Broker { broker, .. } = &error else {
        panic!("expected Error::Broker, got {error:?}");
    };
    assert!(broker.contains("127.0.0.1:9"), "{error}");
    assert!(!broker.contains("timeout"), "{error}");
}

/// `on_every_broker!(check, …)`: a module per check with a `memory`, `redis` and `nats` test.
macro_rules! on_every_broker {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$check(&Target::memory()).await;
            }
            #[cfg_attr(not(fidelis_redis), ignore = "set FIDELIS_TEST_REDIS_URL to run the Redis tests")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                let Some(target) = Target::server(Kind::Redis, "FIDELIS_TEST_REDIS_URL") else { return };
                super::$check(&target).await;
            }
            #[cfg_attr(not(fidelis_nats), ignore = "set FIDELIS_TEST_NATS_URL to run the NATS tests")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn nats() {
                let Some(target) = Target::server(Kind::Nats, "FIDELIS_TEST_NATS_URL") else { return };
                super::$check(&target).await;
            }
        }
    )*};
}

on_every_broker!(
    publish_order_is_kept,
    each_group_gets_every_message_and_groups_are_independent,
    two_consumers_of_one_group_share_its_messages,
    an_acknowledged_message_is_not_delivered_again,
    an_unacknowledged_message_is_delivered_again_with_attempt_2,
    a_republished_id_is_dropped_or_shown_as_a_repeat,
    receive_keeps_to_its_wait_with_many_unacknowledged,
    headers_and_a_malformed_payload_arrive_intact,
    a_broker_down_mid_run_fails_then_recovers_losing_nothing,
    a_bad_url_is_refused_with_the_reason,
);

#[test]
fn urls_are_rewritten_for_the_proxy() {
    assert_eq!(
        with_address("redis://u:p@cache:6379/2?x=1", "127.0.0.1:7"),
        "redis://u:p@127.0.0.1:7/2?x=1"
    );
    assert_eq!(address_of("nats://127.0.0.1:4222"), "127.0.0.1:4222");
    assert_eq!(address_of("redis://u:p@cache:6379/2"), "cache:6379");
}
