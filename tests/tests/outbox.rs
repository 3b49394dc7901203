//! The outbox and its relay (DESIGN §8.7), on every adapter: the events of published types
//! and fact events are written to the outbox in the transaction of the events (a rolled-back
//! command leaves none; a domain without a broker writes none), and the engine relays them
//! to the broker exactly once each, in each stream's order, with the event id as message id.
//! A broker that is down holds nothing up: commands commit, the relay's status shows the
//! error and the backlog, and everything arrives once the broker is back. A relay that
//! published but could not record it publishes the same ids again, which the broker
//! de-duplicates. On PostgreSQL, two engines relaying at once keep every stream's order.
//! Against the real Redis and NATS, a broker taken away mid-run (a TCP proxy cut, then
//! restored) loses nothing and repeats nothing.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fidelis_core::broker::{
    Broker, BrokerConsumer, BrokerMessage, METADATA_HEADER, MemoryBroker, STREAM_HEADER,
    TYPE_HEADER, VERSION_HEADER,
};
use fidelis_core::prelude::*;
use fidelis_core::store::system::{self, OutboxMessage, SystemRow};
use fidelis_core::store::{JsonRow, OutboxClaim};
use fidelis_core::{DomainBuilder, Error, Processing, RecordedEvent};

mod support;
use support::{Backend, on_every_adapter};
#[path = "support/proxy.rs"]
mod proxy;
use proxy::Proxy;

#[aggregate(event_sourced, fact_events)]
pub struct Account {
    pub holder: String,
    pub balance: i64,
}

#[event(part_of = Account, published)]
pub struct AccountOpened {
    pub account_id: Identifier,
    pub holder: String,
}

#[event(part_of = Account, published)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: i64,
}

/// Internal bookkeeping: never leaves the bounded context.
#[event(part_of = Account)]
pub struct NoteAdded {
    pub account_id: Identifier,
    pub note: String,
}

#[command(part_of = Account)]
pub struct Open {
    pub holder: String,
}

#[command(part_of = Account)]
pub struct Deposit {
    pub account_id: Identifier,
    pub amount: i64,
}

#[command(part_of = Account)]
pub struct AddNote {
    pub account_id: Identifier,
    pub note: String,
}

/// Raises a published event, then fails: nothing of it may be committed.
#[command(part_of = Account)]
pub struct DepositThenFail {
    pub account_id: Identifier,
}

#[aggregate]
impl Account {
    #[handle(Open, create)]
    fn open(command: Open) -> Result<Self> {
        let mut account = Self::create_new();
        account.raise(AccountOpened {
            account_id: account.id.clone(),
            holder: command.holder,
        })?;
        Ok(account)
    }

    #[handle(Deposit)]
    fn deposit(&mut self, command: Deposit) -> Result<()> {
        self.raise(DepositMade {
            account_id: self.id.clone(),
            amount: command.amount,
        })
    }

    #[handle(AddNote)]
    fn add_note(&mut self, command: AddNote) -> Result<()> {
        self.raise(NoteAdded {
            account_id: self.id.clone(),
            note: command.note,
        })
    }

    #[handle(DepositThenFail)]
    fn deposit_then_fail(&mut self, _command: DepositThenFail) -> Result<()> {
        self.raise(DepositMade {
            account_id: self.id.clone(),
            amount: 1,
        })?;
        Err(ValidationError::field("amount", "refused after raising").into())
    }

    #[apply]
    fn on_opened(&mut self, event: &AccountOpened) {
        self.holder = event.holder.clone();
    }

    #[apply]
    fn on_deposit(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }

    #[apply]
    fn on_note(&mut self, _event: &NoteAdded) {}
}

const EVENTS: &str = "bank.account";
const FACTS: &str = "bank.account_fact";

fn builder(processing: Processing) -> DomainBuilder {
    Domain::builder("bank")
        .discover_crate(module_path!())
        .processing(processing)
}

async fn open(domain: &Domain, holder: &str) -> Identifier {
    domain
        .process(Open {
            holder: holder.into(),
        })
        .await
        .expect("the account opens")
}

async fn deposit(domain: &Domain, account: &Identifier, amount: i64) {
    domain
        .process(Deposit {
            account_id: account.clone(),
            amount,
        })
        .await
        .expect("the deposit commits");
}

/// The events of an account's stream and of its fact stream, as stored.
async fn stored(domain: &Domain, account: &Identifier) -> (Vec<RecordedEvent>, Vec<RecordedEvent>) {
    let store = domain.event_store();
    let stream = store.stream_of::<Account>(account).unwrap();
    let events = store.read_stream(&stream).await.unwrap();
    let facts = store
        .read_stream(&format!("bank::account_fact-{account}"))
        .await
        .unwrap();
    (events, facts)
}

async fn outbox_rows(domain: &Domain) -> Vec<OutboxMessage> {
    system::query::<OutboxMessage>(domain.storage_unchecked().as_ref(), &Default::default())
        .await
        .unwrap()
}

/// The broker's messages of one event stream, in broker order.
fn messages_of(broker: &MemoryBroker, topic: &str, stream: &str) -> Vec<BrokerMessage> {
    broker
        .messages(topic)
        .into_iter()
        .filter(|message| message.header(STREAM_HEADER) == Some(stream))
        .collect()
}

async fn published_events_arrive_once_in_stream_order(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        let broker = MemoryBroker::new();
        let domain = backend
            .build(builder(processing).broker_adapter(broker.clone()))
            .await;
        let ada = open(&domain, "Ada").await;
        let bob = open(&domain, "Bob").await;
        for amount in 1..=5 {
            deposit(&domain, &ada, amount).await;
            deposit(&domain, &bob, amount * 10).await;
        }
        domain
            .process(AddNote {
                account_id: ada.clone(),
                note: "vip".into(),
            })
            .await
            .unwrap();
        let engine = domain.engine();
        engine.run_until_idle().await.unwrap();
        engine.run_until_idle().await.unwrap();

        for account in [&ada, &bob] {
            let (events, facts) = stored(&domain, account).await;
            let stream = &events[0].metadata.stream;
            let expected: Vec<&RecordedEvent> = events
                .iter()
                .filter(|event| !event.metadata.type_name.ends_with("NoteAdded.v1"))
                .collect();
            let got = messages_of(&broker, EVENTS, stream);
            assert_eq!(
                got.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
                expected
                    .iter()
                    .map(|e| e.metadata.id.as_str())
                    .collect::<Vec<_>>(),
                "{processing:?}: every published event of {stream} once, in version order, \
                 and the unpublished NoteAdded never"
            );
            for (message, event) in got.iter().zip(&expected) {
                assert_eq!(
                    message.header(TYPE_HEADER),
                    Some(event.metadata.type_name.as_str())
                );
                assert_eq!(
                    message.header(VERSION_HEADER),
                    Some(event.metadata.version.to_string().as_str())
                );
                let payload: serde_json::Value = message.json().unwrap();
                assert_eq!(payload["account_id"], serde_json::json!(account.as_str()));
                let metadata: serde_json::Value =
                    serde_json::from_str(message.header(METADATA_HEADER).unwrap()).unwrap();
                assert_eq!(
                    metadata["id"],
                    serde_json::json!(event.metadata.id.as_str())
                );
            }
            let fact_stream = &facts[0].metadata.stream;
            let got_facts = messages_of(&broker, FACTS, fact_stream);
            assert_eq!(
                got_facts.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
                facts
                    .iter()
                    .map(|e| e.metadata.id.as_str())
                    .collect::<Vec<_>>(),
                "{processing:?}: every fact event arrives, in order"
            );
            let last: serde_json::Value = got_facts.last().unwrap().json().unwrap();
            assert!(
                last["balance"].is_number(),
                "a fact carries the state: {last}"
            );
        }
        assert!(
            outbox_rows(&domain).await.is_empty(),
            "published rows are deleted"
        );
        let status = engine
            .relay_status()
            .await
            .unwrap()
            .expect("a broker is configured");
        assert_eq!(status.broker, "memory");
        assert_eq!(status.pending, 0);
        assert_eq!(status.oldest_pending, Duration::ZERO);
        // 2 opened + 10 deposits, and a fact for each of the 13 commits.
        assert_eq!(status.published, 12 + 13, "{processing:?}");
        assert_eq!(status.failures, 0);
        assert_eq!(status.last_error, None);
    }
}

async fn rolled_back_commands_and_brokerless_domains_write_no_outbox_row(backend: &Backend) {
    let broker = MemoryBroker::new();
    let domain = backend
        .build(builder(Processing::Sync).broker_adapter(broker.clone()))
        .await;
    let ada = open(&domain, "Ada").await;
    let before = outbox_rows(&domain).await.len();
    assert_eq!(before, 2, "AccountOpened and its fact");
    let error = domain
        .process(DepositThenFail {
            account_id: ada.clone(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Validation { .. }), "{error}");
    assert_eq!(
        outbox_rows(&domain).await.len(),
        before,
        "the rolled-back command wrote no outbox row"
    );
    domain.engine().run_until_idle().await.unwrap();
    assert_eq!(broker.messages(EVENTS).len(), 1, "only AccountOpened");

    // The same elements without a broker: nothing goes to the outbox, and there is no relay.
    let quiet = backend.build(builder(Processing::Sync)).await;
    assert!(quiet.broker().is_none());
    let bob = open(&quiet, "Bob").await;
    deposit(&quiet, &bob, 5).await;
    assert!(
        outbox_rows(&quiet).await.is_empty(),
        "no broker, no outbox rows"
    );
    assert_eq!(quiet.engine().relay_status().await.unwrap(), None);
}

async fn a_broker_outage_holds_nothing_up(backend: &Backend) {
    let broker = MemoryBroker::new();
    let domain = backend
        .build(builder(Processing::Async).broker_adapter(broker.clone()))
        .await;
    let engine = domain.engine();
    broker.set_available(false);
    let ada = open(&domain, "Ada").await;
    for amount in 1..=3 {
        deposit(&domain, &ada, amount).await;
    }
    engine
        .run_until_idle()
        .await
        .expect("a broker outage is no engine error");
    let status = engine.relay_status().await.unwrap().unwrap();
    assert_eq!(status.pending, 8, "4 events and 4 facts wait");
    assert!(status.oldest_pending > Duration::ZERO);
    assert_eq!(status.published, 0);
    assert!(status.failures >= 1);
    let last_error = status.last_error.expect("the broker's error is kept");
    assert!(
        last_error.contains("the broker is unavailable"),
        "{last_error}"
    );
    let rows = outbox_rows(&domain).await;
    assert!(
        rows.iter()
            .all(|row| row.attempts >= 1 && row.last_error.as_deref() == Some(last_error.as_str())),
        "each row keeps its attempts and last error: {rows:?}"
    );
    assert!(
        rows.iter().all(|row| row.claimed_by.is_none()),
        "claims are given back"
    );

    // Commands go on committing meanwhile.
    deposit(&domain, &ada, 4).await;
    engine.run_until_idle().await.unwrap();
    assert_eq!(engine.relay_status().await.unwrap().unwrap().pending, 10);

    broker.set_available(true);
    engine.run_until_idle().await.unwrap();
    let (events, facts) = stored(&domain, &ada).await;
    assert_eq!(
        broker
            .messages(EVENTS)
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        events
            .iter()
            .map(|e| e.metadata.id.as_str())
            .collect::<Vec<_>>(),
        "everything arrives once, in order, once the broker is back"
    );
    assert_eq!(broker.messages(FACTS).len(), facts.len());
    let status = engine.relay_status().await.unwrap().unwrap();
    assert_eq!(
        (status.pending, status.published, status.failures),
        (0, 10, 0)
    );
}

/// Forwards to a [`MemoryBroker`], recording every id it is asked to publish; while `fail` is
/// set, it reports an error after the inner broker accepted the messages (a relay killed
/// between the publish and the deletion of its rows).
#[derive(Clone, Default)]
struct AcceptsThenFails {
    inner: MemoryBroker,
    fail: Arc<AtomicBool>,
    asked: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Broker for AcceptsThenFails {
    fn describe(&self) -> String {
        "accepts-then-fails".into()
    }

    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()> {
        self.asked
            .lock()
            .unwrap()
            .extend(messages.iter().map(|m| m.id.clone()));
        self.inner.publish(messages).await?;
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::broker(
                "accepts-then-fails",
                "connection reset after the write",
            ));
        }
        Ok(())
    }

    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>> {
        self.inner.consumer(stream, group).await
    }
}

async fn a_relay_failing_after_the_publish_repeats_the_same_ids(backend: &Backend) {
    let broker = AcceptsThenFails::default();
    broker.fail.store(true, Ordering::SeqCst);
    let domain = backend
        .build(builder(Processing::Sync).broker_adapter(broker.clone()))
        .await;
    let ada = open(&domain, "Ada").await;
    deposit(&domain, &ada, 7).await;
    let engine = domain.engine();
    engine.run_until_idle().await.unwrap();
    let first: Vec<String> = broker.asked.lock().unwrap().clone();
    assert_eq!(
        first.len(),
        4,
        "2 events and 2 facts, accepted by the broker"
    );
    assert_eq!(
        outbox_rows(&domain).await.len(),
        4,
        "…but still pending here"
    );

    broker.fail.store(false, Ordering::SeqCst);
    engine.run_until_idle().await.unwrap();
    let asked = broker.asked.lock().unwrap().clone();
    assert_eq!(
        asked[4..],
        first[..],
        "the repeat publishes the same ids, in the same order"
    );
    let (events, _) = stored(&domain, &ada).await;
    assert_eq!(
        broker
            .inner
            .messages(EVENTS)
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        events
            .iter()
            .map(|e| e.metadata.id.as_str())
            .collect::<Vec<_>>(),
        "the broker de-duplicated the repeat: each event once, nothing lost"
    );
    assert_eq!(broker.inner.messages(FACTS).len(), 2);
    assert!(outbox_rows(&domain).await.is_empty());
}

/// A relay that died holding a claim (its process killed mid-batch): the stream of the
/// claimed row waits whole until the claim lapses, other streams go on, and then everything
/// arrives in order.
async fn a_dead_relays_claim_holds_its_stream_until_it_lapses(backend: &Backend) {
    let broker = MemoryBroker::new();
    let domain = backend
        .build(builder(Processing::Sync).broker_adapter(broker.clone()))
        .await;
    let ada = open(&domain, "Ada").await;
    deposit(&domain, &ada, 1).await;
    let bob = open(&domain, "Bob").await;
    let (ada_events, _) = stored(&domain, &ada).await;
    let storage = domain.storage_unchecked();
    let first = system::get::<OutboxMessage>(storage.as_ref(), ada_events[0].metadata.id.as_str())
        .await
        .unwrap()
        .expect("Ada's opening is in the outbox");
    let lapses =
        fidelis_core::chrono::Utc::now() + fidelis_core::chrono::Duration::milliseconds(600);
    let mut transaction = storage.begin().await.unwrap();
    system::put(
        transaction.as_mut(),
        OutboxMessage {
            claimed_by: Some("dead-host:1:0000".to_owned()),
            claimed_until: Some(lapses),
            ..first
        },
    )
    .await
    .unwrap();
    transaction.commit().await.unwrap();

    let engine = domain.engine();
    engine.run_until_idle().await.unwrap();
    let (ada_stream, bob_stream) = (
        &ada_events[0].metadata.stream,
        format!("bank::account-{bob}"),
    );
    assert!(
        messages_of(&broker, EVENTS, ada_stream).is_empty(),
        "Ada's stream waits for the claimed row, its later deposit too"
    );
    assert_eq!(
        messages_of(&broker, EVENTS, &bob_stream).len(),
        1,
        "Bob's goes on"
    );
    assert_eq!(engine.relay_status().await.unwrap().unwrap().pending, 2);

    tokio::time::sleep(Duration::from_millis(700)).await;
    engine.run_until_idle().await.unwrap();
    assert_eq!(
        messages_of(&broker, EVENTS, ada_stream)
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        ada_events
            .iter()
            .map(|e| e.metadata.id.as_str())
            .collect::<Vec<_>>(),
        "once the claim lapsed, the stream arrives whole and in order"
    );
    assert!(outbox_rows(&domain).await.is_empty());
}

async fn a_running_engine_relays_and_retries_with_backoff(backend: &Backend) {
    let broker = MemoryBroker::new();
    let domain = backend
        .build(builder(Processing::Async).broker_adapter(broker.clone()))
        .await;
    let engine = domain.engine();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn({
        let engine = engine.clone();
        async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let ada = open(&domain, "Ada").await;
    wait_for(|| broker.messages(EVENTS).len() == 1).await;
    broker.set_available(false);
    deposit(&domain, &ada, 1).await;
    deposit(&domain, &ada, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = engine.relay_status().await.unwrap().unwrap();
    assert_eq!(status.pending, 4, "two deposits and their facts wait");
    assert!(status.failures >= 1, "{status:?}");
    broker.set_available(true);
    wait_for(|| broker.messages(EVENTS).len() == 3).await;
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let (events, _) = stored(&domain, &ada).await;
    assert_eq!(
        broker
            .messages(EVENTS)
            .iter()
            .map(|m| m.id.as_str())
            .collect::<Vec<_>>(),
        events
            .iter()
            .map(|e| e.metadata.id.as_str())
            .collect::<Vec<_>>()
    );
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not done within 10 s");
}

on_every_adapter!(
    published_events_arrive_once_in_stream_order,
    rolled_back_commands_and_brokerless_domains_write_no_outbox_row,
    a_broker_outage_holds_nothing_up,
    a_relay_failing_after_the_publish_repeats_the_same_ids,
    a_dead_relays_claim_holds_its_stream_until_it_lapses,
    a_running_engine_relays_and_retries_with_backoff,
    relays_claim_batches_apart,
);

/// The outbox rows as stored, in position order, with their versions.
async fn stored_rows(domain: &Domain) -> Vec<(OutboxMessage, i64)> {
    let rows = domain
        .storage_unchecked()
        .query(OutboxMessage::TABLE.name, &Default::default())
        .await
        .unwrap();
    let mut rows: Vec<(OutboxMessage, i64)> = rows
        .into_iter()
        .map(|row| {
            let version = row.version;
            (
                serde_json::from_value(serde_json::Value::Object(row.data)).unwrap(),
                version,
            )
        })
        .collect();
    rows.sort_by_key(|(row, _)| row.position);
    rows
}

fn ids_of(rows: &[JsonRow]) -> Vec<String> {
    let mut rows: Vec<&JsonRow> = rows.iter().collect();
    rows.sort_by_key(|row| row.data["position"].as_i64());
    rows.into_iter().map(|row| row.id.clone()).collect()
}

/// The batched claim of SQL stores ([`Storage::claim_outbox`], one statement) with two
/// relays and more: the first takes the oldest rows; the second leaves them and every later
/// row of their streams and takes the rest (its own claims again on a second call); a third
/// finds nothing free until the claims lapse, then takes everything, each row's version
/// moved once more; of relays claiming at once, one takes the rows and the others see it.
async fn relays_claim_batches_apart(backend: &Backend) {
    use fidelis_core::chrono::{Duration as Span, Utc};
    let domain = backend
        .build(builder(Processing::Sync).broker_adapter(MemoryBroker::new()))
        .await;
    let ada = open(&domain, "Ada").await;
    let bob = open(&domain, "Bob").await;
    deposit(&domain, &ada, 1).await;
    deposit(&domain, &bob, 2).await;
    deposit(&domain, &ada, 3).await;
    let rows = stored_rows(&domain).await;
    assert_eq!(rows.len(), 10, "5 events and their facts");
    let storage = domain.storage_unchecked();
    let now = Utc::now();
    let claim = |owner: &'static str, limit: usize, now| OutboxClaim {
        domain: "bank",
        owner,
        now,
        until: now + Span::seconds(60),
        limit,
    };
    let Some(first) = storage
        .claim_outbox(&claim("relay-a", 3, now))
        .await
        .unwrap()
    else {
        assert!(
            backend.is_memory(),
            "SQL stores claim in one statement; memory claims row by row in the relay"
        );
        return;
    };
    let oldest: Vec<String> = rows[..3].iter().map(|(row, _)| row.id.clone()).collect();
    assert_eq!(ids_of(&first), oldest, "the oldest rows, by position");
    for claimed in &first {
        let (before, version) = rows.iter().find(|(row, _)| row.id == claimed.id).unwrap();
        assert_eq!(claimed.version, version + 1, "a claim moves the version");
        assert_eq!(claimed.data["claimed_by"], "relay-a");
        assert_eq!(claimed.data["attempts"], before.attempts);
    }
    let held: Vec<&str> = rows[..3]
        .iter()
        .map(|(row, _)| row.stream.as_str())
        .collect();
    let rest: Vec<String> = rows[3..]
        .iter()
        .filter(|(row, _)| !held.contains(&row.stream.as_str()))
        .map(|(row, _)| row.id.clone())
        .collect();
    assert!(!rest.is_empty() && rest.len() < 7, "{rest:?}");
    let second = storage
        .claim_outbox(&claim("relay-b", 100, now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ids_of(&second),
        rest,
        "the second relay leaves the first's rows and the later rows of their streams"
    );
    let again = storage
        .claim_outbox(&claim("relay-b", 100, now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids_of(&again), rest, "a relay takes its own claims again");
    let third = storage
        .claim_outbox(&claim("relay-c", 100, now))
        .await
        .unwrap()
        .unwrap();
    assert!(third.is_empty(), "everything is held: {third:?}");
    let later = now + Span::seconds(120);
    let lapsed = storage
        .claim_outbox(&claim("relay-c", 100, later))
        .await
        .unwrap()
        .unwrap();
    let all: Vec<String> = rows.iter().map(|(row, _)| row.id.clone()).collect();
    assert_eq!(ids_of(&lapsed), all, "lapsed claims are taken over");
    let versions: Vec<i64> = stored_rows(&domain).await.iter().map(|(_, v)| *v).collect();
    // relay-a's rows twice (a, c), relay-b's three times (b, b, c), the others once (c).
    let expected: Vec<i64> = rows
        .iter()
        .map(|(row, version)| {
            version
                + if oldest.contains(&row.id) {
                    2
                } else if rest.contains(&row.id) {
                    3
                } else {
                    1
                }
        })
        .collect();
    assert_eq!(versions, expected, "one version per claim");

    // Relays claiming at once (the claims above lapsed): one after another, so the first
    // takes everything, and the others see its claims and take nothing.
    let latest = later + Span::seconds(120);
    let claimers: Vec<_> = ["relay-1", "relay-2", "relay-3", "relay-4"]
        .into_iter()
        .map(|owner| {
            let storage = storage.clone();
            tokio::spawn(async move {
                let claim = OutboxClaim {
                    domain: "bank",
                    owner,
                    now: latest,
                    until: latest + Span::seconds(60),
                    limit: 100,
                };
                (owner, storage.claim_outbox(&claim).await.unwrap().unwrap())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for claimer in claimers {
        let (owner, claimed) = claimer.await.unwrap();
        if !claimed.is_empty() {
            assert_eq!(ids_of(&claimed), all, "{owner} took part of the rows");
            winners.push(owner);
        }
    }
    assert_eq!(winners.len(), 1, "rows claimed twice: {winners:?}");
    for (row, _) in stored_rows(&domain).await {
        assert_eq!(row.claimed_by.as_deref(), Some(winners[0]));
    }
}

/// A [`MemoryBroker`] that takes 0–50 ms to accept a publish, so that two relays' publishes
/// overlap and one that overtook another's earlier events would be seen.
#[derive(Clone, Default)]
struct SlowBroker {
    inner: MemoryBroker,
}

#[async_trait]
impl Broker for SlowBroker {
    fn describe(&self) -> String {
        "slow".into()
    }

    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()> {
        let delay = rand::random_range(0..50);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.inner.publish(messages).await
    }

    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>> {
        self.inner.consumer(stream, group).await
    }
}

/// Two engines (two domains on one database, as two processes would be) relay at once while
/// commands commit, through a slow broker: each stream's events reach the broker complete
/// and in version order.
#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_relaying_at_once_keep_each_streams_order() {
    let Some(backend) = Backend::postgres("two_engines_relaying_at_once").await else {
        return;
    };
    let slow = SlowBroker::default();
    let broker = slow.inner.clone();
    let build = || {
        backend.build(
            builder(Processing::Async)
                .broker_adapter(slow.clone())
                .engine_lease(Duration::from_secs(2)),
        )
    };
    let (first, second) = (build().await, build().await);
    assert_ne!(first.engine().owner(), second.engine().owner());
    let mut accounts = Vec::new();
    for index in 0..6 {
        accounts.push(open(&first, &format!("holder {index}")).await);
    }
    let (stop, _) = tokio::sync::watch::channel(false);
    let engines: Vec<_> = [&first, &second]
        .into_iter()
        .map(|domain| {
            let engine = domain.engine();
            let mut stopped = stop.subscribe();
            tokio::spawn(async move {
                engine
                    .run(async move {
                        let _ = stopped.changed().await;
                    })
                    .await
            })
        })
        .collect();
    // Writers on both domains, each stream written by one of them at a time.
    let per_account = 15;
    let writers: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(index, account)| {
            let domain = if index % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let account = account.clone();
            tokio::spawn(async move {
                for amount in 1..=per_account {
                    deposit(&domain, &account, amount).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    let total = accounts.len() * (1 + per_account as usize);
    wait_for(|| broker.messages(EVENTS).len() == total).await;
    let _ = stop.send(true);
    for engine in engines {
        engine.await.unwrap().unwrap();
    }
    let relayed = |domain: &Domain| {
        let engine = domain.engine();
        async move { engine.relay_status().await.unwrap().unwrap().published }
    };
    let (a, b) = (relayed(&first).await, relayed(&second).await);
    eprintln!("relayed by the first engine: {a}, by the second: {b}");
    let mut by_stream: HashMap<String, Vec<i64>> = HashMap::new();
    for message in broker.messages(EVENTS) {
        by_stream
            .entry(message.header(STREAM_HEADER).unwrap().to_owned())
            .or_default()
            .push(message.header(VERSION_HEADER).unwrap().parse().unwrap());
    }
    assert_eq!(by_stream.len(), accounts.len());
    for (stream, versions) in &by_stream {
        let expected: Vec<i64> = (0..=per_account).collect();
        assert_eq!(
            versions, &expected,
            "{stream}: complete and in version order"
        );
    }
    assert!(outbox_rows(&first).await.is_empty());
    backend.finish().await;
}

#[tokio::test]
async fn a_broker_this_build_cannot_reach_fails_build_with_a_configuration_error() {
    for (url, expected) in [
        (
            "kafka://127.0.0.1:9092",
            "a broker URL of scheme `kafka` is not supported",
        ),
        (
            "redis://127.0.0.1:6379",
            "needs fidelis-core's `redis` feature",
        ),
        (
            "nats://127.0.0.1:4222",
            "needs fidelis-core's `nats` feature",
        ),
    ] {
        // A build with the `redis` or `nats` feature on connects instead.
        if fidelis_core::broker::connect(url).await.is_ok() {
            continue;
        }
        let error = builder(Processing::Sync)
            .database("memory")
            .broker(url)
            .build()
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} builds"));
        assert!(
            matches!(error, Error::Configuration { .. }),
            "{url}: {error}"
        );
        assert!(error.to_string().contains(expected), "{url}: {error}");
    }
    let domain = builder(Processing::Sync)
        .database("memory")
        .broker("memory")
        .build()
        .await
        .unwrap();
    assert_eq!(domain.broker().unwrap().describe(), "memory");
    assert_eq!(OutboxMessage::TABLE.name, "fidelis_outbox");
}

/// The relay against a real broker (Redis Streams, NATS JetStream) taken away mid-run: a TCP
/// proxy between the domain and the server is cut while commands commit, then restored. Every
/// published event reaches a consumer group once, in its stream's order.
async fn a_real_broker_taken_away_mid_run_loses_nothing(url: &str) {
    let server = url.split_once("://").map_or(url, |(_, rest)| rest);
    let proxy = Proxy::start(server.split(['/', '?']).next().unwrap_or(server).to_owned()).await;
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    let domain = builder(Processing::Sync)
        .database("memory")
        .broker(format!("{scheme}://{}", proxy.address()))
        .build()
        .await
        .expect("the domain connects through the proxy");
    // A consumer group of this run's own, straight to the server: it reads the stream from
    // its start, so it also sees earlier runs' messages, which are filtered out by stream.
    let direct = fidelis_core::broker::connect(url).await.unwrap();
    let group = format!("outage-{}", Identifier::generate());
    let mut consumer = direct.consumer(EVENTS, &group).await.unwrap();
    let engine = domain.engine();

    let account = open(&domain, "Ada").await;
    deposit(&domain, &account, 1).await;
    engine.run_until_idle().await.unwrap();

    proxy.cut().await;
    for amount in 2..=6 {
        deposit(&domain, &account, amount).await; // commits while the broker is away
    }
    engine.run_until_idle().await.unwrap(); // the relay fails; the engine does not
    let status = engine.relay_status().await.unwrap().unwrap();
    assert_eq!(
        status.pending,
        5 + 5,
        "five deposits and their facts: {status:?}"
    );
    assert!(status.last_error.is_some(), "{status:?}");

    proxy.restore();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        engine.run_until_idle().await.unwrap();
        let status = engine.relay_status().await.unwrap().unwrap();
        if status.pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay did not catch up: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (events, _) = stored(&domain, &account).await;
    let stream = domain.event_store().stream_of::<Account>(&account).unwrap();
    let mut received = Vec::new();
    while received.len() < events.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {} events received",
            received.len(),
            events.len()
        );
        for delivery in consumer
            .receive(100, Duration::from_millis(500))
            .await
            .unwrap()
        {
            if delivery.message.header(STREAM_HEADER) == Some(stream.as_str()) {
                received.push(delivery.message.id.clone());
            }
            consumer.ack(&delivery).await.unwrap();
        }
    }
    // Nothing more comes: each event once (a repeat would follow within the wait).
    for delivery in consumer
        .receive(100, Duration::from_millis(500))
        .await
        .unwrap()
    {
        assert_ne!(
            delivery.message.header(STREAM_HEADER),
            Some(stream.as_str())
        );
    }
    let ids: Vec<String> = events.iter().map(|e| e.metadata.id.to_string()).collect();
    assert_eq!(received, ids, "every event once, in version order");
}

#[cfg_attr(
    not(fidelis_redis),
    ignore = "set FIDELIS_TEST_REDIS_URL to run the Redis tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_taken_away_mid_run_loses_nothing() {
    let url = std::env::var("FIDELIS_TEST_REDIS_URL").expect("FIDELIS_TEST_REDIS_URL");
    a_real_broker_taken_away_mid_run_loses_nothing(&url).await;
}

#[cfg_attr(
    not(fidelis_nats),
    ignore = "set FIDELIS_TEST_NATS_URL to run the NATS tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_taken_away_mid_run_loses_nothing() {
    let url = std::env::var("FIDELIS_TEST_NATS_URL").expect("FIDELIS_TEST_NATS_URL");
    a_real_broker_taken_away_mid_run_loses_nothing(&url).await;
}
