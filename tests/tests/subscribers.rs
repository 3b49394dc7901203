//! Subscribers of broker streams (`#[subscriber]`, DESIGN §8.7), on every adapter:
//! `domain.deliver` runs them in process; the engine consumes their streams from a
//! `MemoryBroker` through a consumer group per subscriber; a repeated message id is handled
//! once (the relay republishes after a crash, and Redis cannot de-duplicate); a malformed
//! message is dead-lettered at once with its parse error while the next one is handled; a
//! failing subscriber is retried, then dead-lettered, and its letter replays or purges.

#![allow(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use fidelis_core::broker::{Broker, BrokerConsumer, BrokerMessage, Delivery, MemoryBroker};
use fidelis_core::prelude::*;
use fidelis_core::store::system::{self, SubscriberMessage};
use fidelis_core::{Cursor, DomainBuilder, HandlerRetry, Processing};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

const CREDITS: &str = "ledger.credits";
const OPENINGS: &str = "ledger.openings";

/// How many times `LedgerCredits::handle` ran, and whether a credit of 13 fails.
#[derive(Default)]
pub struct Calls {
    handled: AtomicUsize,
    thirteen_fails: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
#[error("credits of 13 are refused today")]
struct Unlucky;
impl DomainError for Unlucky {}

#[derive(serde::Deserialize)]
struct CreditMessage {
    ledger_id: String,
    amount: i64,
}

/// Credits a ledger for each message, through `ctx.process`.
pub struct LedgerCredits;

#[subscriber(stream = "ledger.credits")]
impl LedgerCredits {
    async fn handle(message: &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()> {
        if let Ok(calls) = ctx.resource::<Calls>() {
            calls.handled.fetch_add(1, Ordering::SeqCst);
            let credit: serde_json::Value = message.json().unwrap_or_default();
            if credit["amount"] == 13 && calls.thirteen_fails.load(Ordering::SeqCst) {
                return Err(Unlucky.into());
            }
        }
        let credit: CreditMessage = message.json()?;
        ctx.process(Credit {
            ledger_id: Identifier::new(credit.ledger_id),
            amount: credit.amount,
        })
        .await
    }
}

/// Opens a ledger through its own unit of work (`ctx.repository`), so the record of the
/// message commits in the same transaction as the ledger.
#[derive(Default)]
pub struct LedgerOpenings;

#[subscriber(stream = "ledger.openings")]
impl LedgerOpenings {
    async fn handle(&self, message: &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()> {
        let body: serde_json::Value = message.json()?;
        if body["holder"] == "Racer" {
            // Long enough for a second run of the message to start before this one commits.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut ledger = Ledger::create_new();
        let ledger_id = ledger.id.clone();
        ledger.raise(LedgerOpened {
            ledger_id,
            holder: body["holder"].as_str().unwrap_or("?").to_owned(),
            tags: json!([]),
        })?;
        ctx.repository::<Ledger>().add(ledger).await
    }
}

/// A broker that hands every message of the inner one to the group twice: what a relay
/// republishing after a crash looks like on a broker that cannot de-duplicate (Redis).
#[derive(Clone)]
struct Doubling(MemoryBroker);

struct DoublingConsumer(Box<dyn BrokerConsumer>);

#[async_trait::async_trait]
impl Broker for Doubling {
    fn describe(&self) -> String {
        "doubling memory".to_owned()
    }
    async fn publish(&self, messages: &[BrokerMessage]) -> Result<()> {
        self.0.publish(messages).await
    }
    async fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn BrokerConsumer>> {
        Ok(Box::new(DoublingConsumer(
            self.0.consumer(stream, group).await?,
        )))
    }
}

#[async_trait::async_trait]
impl BrokerConsumer for DoublingConsumer {
    async fn receive(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deliveries = self.0.receive(max, wait).await?;
        Ok(deliveries
            .into_iter()
            .flat_map(|delivery| [delivery.clone(), delivery])
            .collect())
    }
    async fn ack(&mut self, delivery: &Delivery) -> Result<()> {
        self.0.ack(delivery).await
    }
}

/// A subscriber with state and no `Default`: its instance is given to the builder.
pub struct Tagged {
    pub tag: String,
}

#[subscriber(stream = "ledger.tags")]
impl Tagged {
    async fn handle(&self, message: &BrokerMessage, _ctx: &mut EventHandlerContext) -> Result<()> {
        if message.header("tag") == Some(self.tag.as_str()) {
            Ok(())
        } else {
            Err(Error::usage(format!("not tagged `{}`", self.tag)))
        }
    }
}

fn builder(processing: Processing, broker: Option<Arc<dyn Broker>>) -> DomainBuilder {
    let builder = Domain::builder("ledgers")
        .discover_crate(module_path!())
        .instance(Tagged { tag: "blue".into() })
        .processing(processing)
        .resource(Calls::default())
        .handler_retry(HandlerRetry::exponential(3, Duration::from_millis(1)));
    match broker {
        Some(broker) => builder.broker_shared(broker),
        None => builder,
    }
}

async fn open(domain: &Domain) -> Identifier {
    domain
        .process(OpenLedger {
            holder: "Ada".into(),
            tags: json!([]),
        })
        .await
        .expect("the ledger opens")
}

async fn balance(domain: &Domain, ledger: &Identifier) -> i64 {
    domain.settle().await.expect("settles");
    domain
        .repository::<Ledger>()
        .get(ledger)
        .await
        .expect("the ledger")
        .balance
}

fn credit(id: &str, ledger: &Identifier, amount: i64) -> BrokerMessage {
    BrokerMessage::json_message(
        id,
        CREDITS,
        &json!({ "ledger_id": ledger.as_str(), "amount": amount }),
    )
}

fn calls(domain: &Domain) -> &Calls {
    domain.resource::<Calls>().expect("the resource")
}

async fn status_of(domain: &Domain, name: &str) -> fidelis_core::SubscriptionStatus {
    domain
        .engine()
        .status()
        .await
        .expect("the status")
        .into_iter()
        .find(|status| status.name == name)
        .expect("a status row for the subscriber")
}

async fn deliver_runs_the_subscriber_once_per_message(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        // A broker only so the status lists the subscriber: nothing is published to it.
        let broker: Arc<dyn Broker> = Arc::new(MemoryBroker::new());
        let domain = backend.build(builder(processing, Some(broker))).await;
        let ledger = open(&domain).await;
        domain
            .deliver(
                CREDITS,
                credit(&format!("pay-1-{processing:?}"), &ledger, 40),
            )
            .await
            .expect("delivered");
        assert_eq!(balance(&domain, &ledger).await, 40);
        // The same id again: skipped, its command not processed twice.
        domain
            .deliver(
                CREDITS,
                credit(&format!("pay-1-{processing:?}"), &ledger, 40),
            )
            .await
            .expect("a repeat is no error");
        assert_eq!(balance(&domain, &ledger).await, 40);
        assert_eq!(calls(&domain).handled.load(Ordering::SeqCst), 1);
        assert_eq!(
            status_of(&domain, "LedgerCredits").await.handled,
            Some(if processing == Processing::Sync { 1 } else { 2 }),
            "counted in the database, by every domain of it"
        );

        // The handler's error is returned as is (wrapped with where it happened).
        let error = domain
            .deliver(CREDITS, credit("pay-2", &Identifier::new("nobody"), 5))
            .await
            .expect_err("no such ledger");
        assert!(
            error.to_string().starts_with(
                "handler LedgerCredits::handle failed: on message `pay-2` of broker stream `ledger.credits`: "
            ),
            "{error}"
        );
        let error = domain
            .deliver("ledger.unknown", credit("pay-3", &ledger, 1))
            .await
            .expect_err("nobody reads it");
        assert_eq!(
            error.to_string(),
            "no subscriber of domain `ledgers` reads broker stream `ledger.unknown`; its subscribers read `ledger.credits` (LedgerCredits), `ledger.openings` (LedgerOpenings), `ledger.tags` (Tagged)"
        );
        domain.engine().run_until_idle().await.expect("runs");
    }
}

async fn the_engine_consumes_each_subscribers_stream(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        let broker = MemoryBroker::new();
        let domain = backend
            .build(builder(processing, Some(Arc::new(broker.clone()))))
            .await;
        let ledger = open(&domain).await;
        let before = status_of(&domain, "LedgerCredits").await.handled;
        broker
            .publish(&[credit(&format!("c-{processing:?}"), &ledger, 25)])
            .await
            .expect("published");
        domain.engine().run_until_idle().await.expect("runs");
        assert_eq!(balance(&domain, &ledger).await, 25);
        let status = status_of(&domain, "LedgerCredits").await;
        assert_eq!(status.handled, before.map(|count| count + 1));
        assert_eq!(status.dead_letters, 0);
        assert!(!status.projector);

        // A running engine picks up what comes later.
        let engine = domain.engine();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        });
        broker
            .publish(&[credit(&format!("d-{processing:?}"), &ledger, 5)])
            .await
            .expect("published");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while domain
            .repository::<Ledger>()
            .get(&ledger)
            .await
            .unwrap()
            .balance
            != 30
        {
            assert!(tokio::time::Instant::now() < deadline, "consumed in time");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
        running.await.expect("joins").expect("stops cleanly");
    }
}

async fn a_repeated_message_id_is_handled_once(backend: &Backend) {
    let broker = Doubling(MemoryBroker::new());
    let domain = backend
        .build(builder(Processing::Async, Some(Arc::new(broker.clone()))))
        .await;
    let ledger = open(&domain).await;
    broker
        .publish(&[
            credit("twice-1", &ledger, 3),
            BrokerMessage::json_message("open-1", OPENINGS, &json!({ "holder": "Webhook" })),
        ])
        .await
        .expect("published");
    domain.engine().run_until_idle().await.expect("runs");
    // Each message reached its subscriber twice: handled once.
    assert_eq!(balance(&domain, &ledger).await, 3);
    assert_eq!(calls(&domain).handled.load(Ordering::SeqCst), 1);
    let category = domain.event_store().category_of::<Ledger>().unwrap();
    let opened = domain
        .event_store()
        .read_category(&category, Cursor::START)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| {
            event.metadata.type_name.ends_with("LedgerOpened.v1")
                && event.data().unwrap()["holder"] == "Webhook"
        })
        .count();
    assert_eq!(
        opened, 1,
        "the subscriber's own unit of work committed once"
    );
    // The handled ids are recorded, with the subscriber's writes or right after.
    for (subscriber, id) in [("LedgerCredits", "twice-1"), ("LedgerOpenings", "open-1")] {
        let key = SubscriberMessage::key("ledgers", subscriber, id);
        let row = system::get::<SubscriberMessage>(domain.storage_unchecked().as_ref(), &key)
            .await
            .unwrap()
            .expect("recorded");
        assert_eq!(row.status, SubscriberMessage::HANDLED);
    }
    assert_eq!(status_of(&domain, "LedgerOpenings").await.handled, Some(1));
}

async fn a_malformed_message_is_dead_lettered_and_the_next_is_handled(backend: &Backend) {
    let broker = MemoryBroker::new();
    let domain = backend
        .build(builder(Processing::Async, Some(Arc::new(broker.clone()))))
        .await;
    let ledger = open(&domain).await;
    let malformed = BrokerMessage {
        payload: b"{\"ledger_id\": oops".to_vec(),
        ..credit("bad-1", &ledger, 0)
    }
    .with_header("source", "payflow");
    broker
        .publish(&[malformed, credit("good-1", &ledger, 9)])
        .await
        .expect("published");
    domain.engine().run_until_idle().await.expect("runs");
    assert_eq!(balance(&domain, &ledger).await, 9);

    let letters = domain
        .dead_letters()
        .list_of("LedgerCredits")
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.id, "LedgerCredits/bad-1");
    assert_eq!(letter.subscription, "LedgerCredits");
    assert_eq!(letter.event_id, "bad-1");
    assert_eq!(letter.stream, CREDITS);
    assert_eq!(letter.attempts, 1, "a parse error is not retried");
    assert_eq!(
        letter.error,
        "handler LedgerCredits::handle failed: on message `bad-1` of broker stream `ledger.credits`: \
         cannot decode message `bad-1` on broker stream `ledger.credits`: expected value at line 1 column 15"
    );
    // The message is kept for a replay: payload and headers.
    let key = SubscriberMessage::key("ledgers", "LedgerCredits", "bad-1");
    let kept = system::get::<SubscriberMessage>(domain.storage_unchecked().as_ref(), &key)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(kept.status, SubscriberMessage::DEAD);
    assert_eq!(kept.payload, "{\"ledger_id\": oops");
    assert_eq!(kept.headers, json!({ "source": "payflow" }));
    let status = status_of(&domain, "LedgerCredits").await;
    assert_eq!(status.dead_letters, 1);
    assert_eq!(status.handled, Some(1));
    assert!(status.last_error.unwrap().contains("expected value"));

    // Replaying it fails the same way, and counts the attempt.
    let error = domain
        .dead_letters()
        .replay("LedgerCredits/bad-1")
        .await
        .expect_err("still malformed");
    assert!(error.to_string().contains("expected value"), "{error}");
    let letter = domain
        .dead_letters()
        .get("LedgerCredits/bad-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(letter.attempts, 2);

    // Purged: the letter goes, and the message is still skipped when it comes again.
    domain
        .dead_letters()
        .purge("LedgerCredits/bad-1")
        .await
        .unwrap();
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
    domain
        .deliver(CREDITS, credit("bad-1", &ledger, 100))
        .await
        .expect("skipped");
    assert_eq!(balance(&domain, &ledger).await, 9);
}

async fn a_failing_subscriber_is_retried_then_dead_lettered_and_replayed(backend: &Backend) {
    let broker = MemoryBroker::new();
    let domain = backend
        .build(builder(Processing::Async, Some(Arc::new(broker.clone()))))
        .await;
    calls(&domain).thirteen_fails.store(true, Ordering::SeqCst);
    let ledger = open(&domain).await;
    broker
        .publish(&[credit("t-13", &ledger, 13), credit("t-2", &ledger, 2)])
        .await
        .expect("published");
    domain.engine().run_until_idle().await.expect("runs");
    // Three attempts on the 13, one on the 2, which went on.
    assert_eq!(calls(&domain).handled.load(Ordering::SeqCst), 4);
    assert_eq!(balance(&domain, &ledger).await, 2);
    let letter = domain
        .dead_letters()
        .get("LedgerCredits/t-13")
        .await
        .unwrap()
        .expect("dead-lettered");
    assert_eq!(letter.attempts, 3);
    assert_eq!(
        letter.error,
        "handler LedgerCredits::handle failed: on message `t-13` of broker stream `ledger.credits`: \
         credits of 13 are refused today"
    );
    assert!(letter.first_failed_at <= letter.last_failed_at);

    // Fixed: the replay runs it once more, the letter goes, and the message counts as handled.
    calls(&domain).thirteen_fails.store(false, Ordering::SeqCst);
    domain
        .dead_letters()
        .replay("LedgerCredits/t-13")
        .await
        .expect("replayed");
    assert_eq!(balance(&domain, &ledger).await, 15);
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
    assert_eq!(status_of(&domain, "LedgerCredits").await.handled, Some(2));
    // Handled now: a repeat is skipped.
    domain
        .deliver(CREDITS, credit("t-13", &ledger, 13))
        .await
        .expect("skipped");
    assert_eq!(balance(&domain, &ledger).await, 15);
}

/// Two runs of one message at once (a redelivery while the first is still working): the
/// subscriber's own unit of work commits once, the other run is rolled back.
async fn racing_runs_of_one_message_commit_once(backend: &Backend) {
    let domain = backend.build(builder(Processing::Sync, None)).await;
    let message = BrokerMessage::json_message("race-1", OPENINGS, &json!({ "holder": "Racer" }));
    let (first, second) = tokio::join!(
        domain.deliver(OPENINGS, message.clone()),
        domain.deliver(OPENINGS, message.clone()),
    );
    first.expect("the first run");
    second.expect("the second run");
    let category = domain.event_store().category_of::<Ledger>().unwrap();
    let opened = domain
        .event_store()
        .read_category(&category, Cursor::START)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.data().unwrap()["holder"] == "Racer")
        .count();
    assert_eq!(opened, 1);
}

on_every_adapter!(
    racing_runs_of_one_message_commit_once,
    deliver_runs_the_subscriber_once_per_message,
    the_engine_consumes_each_subscribers_stream,
    a_repeated_message_id_is_handled_once,
    a_malformed_message_is_dead_lettered_and_the_next_is_handled,
    a_failing_subscriber_is_retried_then_dead_lettered_and_replayed,
);

/// A subscriber registers by hand too, and the registry lists it with its stream.
#[tokio::test]
async fn a_subscriber_registers_by_hand() {
    let domain = Domain::builder("ledgers")
        .without_discovery()
        .register::<LedgerCredits>()
        .build()
        .await
        .expect("a subscriber alone builds");
    assert_eq!(
        domain.registry().broker_subscribers(),
        [("LedgerCredits", "ledger.credits")]
    );
}

/// A subscriber with state runs on the instance given to the builder; without one, `build`
/// says so.
#[tokio::test]
async fn a_subscriber_with_state_needs_its_instance() {
    let domain = Backend::memory()
        .await
        .unwrap()
        .build(builder(Processing::Sync, None))
        .await;
    let tagged = |tag: &str| {
        BrokerMessage::json_message(format!("tag-{tag}"), "ledger.tags", &json!({}))
            .with_header("tag", tag)
    };
    domain
        .deliver("ledger.tags", tagged("blue"))
        .await
        .expect("blue passes");
    let error = domain
        .deliver("ledger.tags", tagged("red"))
        .await
        .expect_err("red does not");
    assert_eq!(
        error.to_string(),
        "handler Tagged::handle failed: on message `tag-red` of broker stream `ledger.tags`: not tagged `blue`"
    );

    let error = Domain::builder("ledgers")
        .without_discovery()
        .register::<Tagged>()
        .build()
        .await
        .expect_err("no instance");
    assert_eq!(
        error.to_string(),
        "domain configuration is invalid:\n  - `Tagged` has no instance: implement `Default` for it, register one with `Domain::builder(..).instance(..)`, or write `handle` without `self` if it holds no state"
    );
}

/// A broker that is down holds its messages: `run_until_idle` goes on (the status says
/// why), and they are consumed once it is back.
#[tokio::test]
async fn a_broker_that_is_down_holds_its_messages() {
    let broker = MemoryBroker::new();
    let domain = Backend::memory()
        .await
        .unwrap()
        .build(builder(Processing::Sync, Some(Arc::new(broker.clone()))))
        .await;
    let ledger = open(&domain).await;
    broker
        .publish(&[credit("down-1", &ledger, 4)])
        .await
        .expect("published");
    broker.set_available(false);
    domain
        .engine()
        .run_until_idle()
        .await
        .expect("the engine goes on");
    let status = status_of(&domain, "LedgerCredits").await;
    assert_eq!(status.handled, Some(0));
    let last_error = status.last_error.expect("the broker's error");
    assert!(
        last_error.starts_with("broker error (memory)"),
        "{last_error}"
    );
    broker.set_available(true);
    assert_eq!(balance(&domain, &ledger).await, 4);
}
