//! The engine's consumers of broker streams: one per subscriber (`#[subscriber]`), reading
//! its stream from the domain's broker through the consumer group named after it. Each
//! message is handled, retried with the engine's [`HandlerRetry`](super::HandlerRetry) and
//! then dead-lettered, and acknowledged; a message the subscriber already handled (a
//! redelivery, or the relay publishing again after a crash) is acknowledged and skipped.
//!
//! Engine processes share a group, so the broker spreads the messages over them: no leases.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::broker::{Broker, BrokerConsumer, BrokerMessage, TYPE_HEADER};
use crate::model::error::{Error, Result};
use crate::model::query::QuerySpec;
use crate::registry::BrokerSubscriber;
use crate::runtime::domain::Domain;
use crate::runtime::subscriber::{self, Handled};
use crate::store::Cursor;
use crate::store::system::{self, DeadLetter, SubscriberMessage, SystemRow};

use super::SubscriptionStatus;

/// How many messages a consumer takes at a time.
const BATCH: usize = 100;
/// How long a running engine's consumer waits on the broker for messages before it looks at
/// the shutdown signal again.
const WAIT: Duration = Duration::from_millis(500);
/// How long `run_until_idle` waits on the broker: not zero, which some brokers read as
/// "block until something comes".
const IDLE_WAIT: Duration = Duration::from_millis(1);

/// One subscriber's consumer in this process.
pub(crate) struct SubscriberConsumer {
    name: &'static str,
    stream: &'static str,
    /// Made on first use and kept (a broker may track each consumer of a group); held while
    /// a batch is handled, so one task at a time consumes for the subscriber here.
    consumer: tokio::sync::Mutex<Option<Box<dyn BrokerConsumer>>>,
    last_error: std::sync::Mutex<Option<String>>,
}

impl SubscriberConsumer {
    pub(crate) fn new(subscriber: &BrokerSubscriber) -> Self {
        Self {
            name: subscriber.name,
            stream: subscriber.stream,
            consumer: tokio::sync::Mutex::new(None),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn subscriber<'d>(&self, domain: &'d Domain) -> Result<&'d BrokerSubscriber> {
        domain
            .registry()
            .broker_subscribers
            .iter()
            .find(|s| s.name == self.name)
            .ok_or_else(|| Error::usage(format!("no subscriber `{}` in this domain", self.name)))
    }

    /// Takes one batch from the broker and handles it; how many messages it took.
    pub(crate) async fn step(
        &self,
        domain: &Domain,
        broker: &Arc<dyn Broker>,
        wait: Duration,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<usize> {
        let mut slot = self.consumer.lock().await;
        if slot.is_none() {
            *slot = Some(broker.consumer(self.stream, self.name).await?);
        }
        let Some(consumer) = slot.as_mut() else {
            return Ok(0);
        };
        let deliveries = match consumer.receive(BATCH, wait).await {
            Ok(deliveries) => deliveries,
            Err(error) => {
                // Made again on the next step: the connection may be what failed.
                *slot = None;
                return Err(error);
            }
        };
        let subscriber = self.subscriber(domain)?;
        for delivery in &deliveries {
            if !self
                .handle(domain, subscriber, &delivery.message, stop)
                .await?
            {
                // Shutdown during a retry wait: left unacknowledged, delivered again later.
                return Ok(deliveries.len());
            }
            if let Err(error) = consumer.ack(delivery).await {
                // Delivered again later, then skipped as handled.
                tracing::warn!(subscriber = self.name, message = %delivery.message.id, %error, "could not acknowledge a message");
                self.set_last_error(error.to_string());
            }
        }
        Ok(deliveries.len())
    }

    /// Handles one message: skipped when seen before, else retried, then dead-lettered.
    /// `false`: interrupted by the shutdown, not handled.
    async fn handle(
        &self,
        domain: &Domain,
        subscriber: &BrokerSubscriber,
        message: &BrokerMessage,
        stop: Option<&watch::Receiver<bool>>,
    ) -> Result<bool> {
        if subscriber::seen(domain, subscriber, message).await? {
            tracing::debug!(subscriber = self.name, message = %message.id, "message seen before: acknowledged and skipped");
            return Ok(true);
        }
        let retry = domain.handler_retry();
        let mut first = None;
        let mut attempt = 1_u32;
        loop {
            let error = match subscriber::handle_once(domain, subscriber, message, None).await {
                Ok(Handled::Done | Handled::Repeat) => return Ok(true),
                Err(error @ (Error::Storage { .. } | Error::Broker { .. })) => return Err(error),
                // Another run of the message committed its record first (a conflict at
                // commit): it is handled.
                Err(error)
                    if error.is_version_conflict()
                        && subscriber::seen(domain, subscriber, message).await? =>
                {
                    return Ok(true);
                }
                Err(error) => error,
            };
            let now = Utc::now();
            let first = *first.get_or_insert(now);
            self.set_last_error(error.to_string());
            let malformed = subscriber::is_malformed(&error);
            if malformed || attempt >= retry.attempts() {
                let failure = Failure {
                    error,
                    attempts: i64::from(attempt),
                    first,
                    last: now,
                };
                self.dead_letter(domain, message, failure).await?;
                return Ok(true);
            }
            let delay = retry.delay(attempt);
            tracing::warn!(subscriber = self.name, message = %message.id, attempt, ?delay, %error, "subscriber failed; retrying");
            if !wait_unless_stopped(delay, stop).await {
                return Ok(false);
            }
            attempt += 1;
        }
    }

    /// Records the dead letter and the message (its headers and payload, for a replay) in
    /// one transaction.
    async fn dead_letter(
        &self,
        domain: &Domain,
        message: &BrokerMessage,
        failure: Failure,
    ) -> Result<()> {
        tracing::error!(
            subscriber = self.name,
            stream = %message.stream,
            message = %message.id,
            attempts = failure.attempts,
            error = %failure.error,
            "message dead-lettered"
        );
        let letter = DeadLetter {
            id: letter_id(self.name, &message.id),
            subscription: self.name.to_owned(),
            partition: 0,
            event_id: message.id.clone(),
            stream: message.stream.clone(),
            version: 0,
            type_name: message.header(TYPE_HEADER).unwrap_or("message").to_owned(),
            commit: 0,
            position: 0,
            error: failure.error.to_string(),
            attempts: failure.attempts,
            first_failed_at: failure.first,
            last_failed_at: failure.last,
        };
        let headers = message
            .headers
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect();
        let kept = SubscriberMessage {
            id: SubscriberMessage::key(domain.name(), self.name, &message.id),
            domain: domain.name().to_owned(),
            subscriber: self.name.to_owned(),
            message_id: message.id.clone(),
            stream: message.stream.clone(),
            status: SubscriberMessage::DEAD.to_owned(),
            headers: serde_json::Value::Object(headers),
            payload: String::from_utf8_lossy(&message.payload).into_owned(),
            updated_at: failure.last,
        };
        let mut transaction = domain.storage().begin().await?;
        system::put(transaction.as_mut(), letter).await?;
        system::put(transaction.as_mut(), kept).await?;
        transaction.commit().await
    }

    /// Runs a dead letter's message through the subscriber again, now, once (or drops it,
    /// with `purge`): on success the letter goes, in the transaction that records the
    /// message as handled; a failure updates the letter and is returned.
    pub(crate) async fn replay(
        &self,
        domain: &Domain,
        letter: DeadLetter,
        purge: bool,
    ) -> Result<()> {
        let storage = domain.storage();
        let key = SubscriberMessage::key(domain.name(), self.name, &letter.event_id);
        let Some(kept) = system::get::<SubscriberMessage>(storage.as_ref(), &key).await? else {
            return Err(Error::usage(format!(
                "dead letter `{}` of subscriber `{}` has lost its message (no row `{key}` in {}); purge it",
                letter.id,
                self.name,
                SubscriberMessage::TABLE.name
            )));
        };
        if purge {
            let mut transaction = storage.begin().await?;
            system::remove::<DeadLetter>(transaction.as_mut(), &letter.id).await?;
            system::put(
                transaction.as_mut(),
                SubscriberMessage {
                    status: SubscriberMessage::PURGED.to_owned(),
                    updated_at: Utc::now(),
                    ..kept
                },
            )
            .await?;
            return transaction.commit().await;
        }
        let message = BrokerMessage {
            id: kept.message_id.clone(),
            stream: kept.stream.clone(),
            headers: match &kept.headers {
                serde_json::Value::Object(map) => map
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect(),
                _ => Default::default(),
            },
            payload: kept.payload.clone().into_bytes(),
        };
        let subscriber = self.subscriber(domain)?;
        match subscriber::handle_once(domain, subscriber, &message, Some(&letter.id)).await {
            Ok(Handled::Done) => {
                tracing::info!(subscriber = self.name, letter = %letter.id, "dead letter replayed");
                Ok(())
            }
            // Handled meanwhile by another run: nothing left to replay, the letter goes.
            Ok(Handled::Repeat) => {
                let mut transaction = storage.begin().await?;
                system::remove::<DeadLetter>(transaction.as_mut(), &letter.id).await?;
                transaction.commit().await
            }
            Err(error) => {
                self.set_last_error(error.to_string());
                let mut transaction = storage.begin().await?;
                let updated = DeadLetter {
                    error: error.to_string(),
                    attempts: letter.attempts + 1,
                    last_failed_at: Utc::now(),
                    ..letter
                };
                system::put(transaction.as_mut(), updated).await?;
                transaction.commit().await?;
                Err(error)
            }
        }
    }

    /// The dead letters of this subscriber, oldest first.
    pub(crate) async fn dead_letters(&self, domain: &Domain) -> Result<Vec<DeadLetter>> {
        let query = QuerySpec {
            filters: vec![system::field_eq("subscription", self.name.to_owned())],
            order: vec![
                system::order_by("first_failed_at", false),
                system::order_by("id", false),
            ],
            ..QuerySpec::default()
        };
        system::query(domain.storage().as_ref(), &query).await
    }

    /// Its row of [`Engine::status`](super::Engine::status).
    pub(crate) async fn status(
        &self,
        domain: &Domain,
        letters: &[DeadLetter],
    ) -> Result<SubscriptionStatus> {
        let handled = QuerySpec {
            filters: vec![
                system::field_eq("domain", domain.name().to_owned()),
                system::field_eq("subscriber", self.name.to_owned()),
                system::field_eq("status", SubscriberMessage::HANDLED.to_owned()),
            ],
            ..QuerySpec::default()
        };
        let handled = domain
            .storage()
            .count(SubscriberMessage::TABLE.name, &handled)
            .await?;
        Ok(SubscriptionStatus {
            name: self.name.to_owned(),
            projector: false,
            partition: 0,
            partitions: 1,
            position: Cursor::START,
            head: Cursor::START,
            lag: 0,
            behind: Duration::ZERO,
            dead_letters: letters
                .iter()
                .filter(|letter| letter.subscription == self.name)
                .count() as u64,
            owner: None,
            last_error: self.last_error(),
            handled: Some(handled),
        })
    }
}

/// A subscriber's dead letter's id: `<subscriber>/<message id>`.
fn letter_id(subscriber: &str, message_id: &str) -> String {
    format!("{subscriber}/{message_id}")
}

struct Failure {
    error: Error,
    attempts: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

/// Sleeps `delay` unless the engine stops first; `false` when it stopped.
async fn wait_unless_stopped(delay: Duration, stop: Option<&watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        tokio::time::sleep(delay).await;
        return true;
    };
    let mut stop = stop.clone();
    tokio::select! {
        stopped = async { stop.wait_for(|stopped| *stopped).await.is_ok() } => {
            if stopped {
                return false;
            }
            // The engine is gone without a signal: wait the whole delay.
            tokio::time::sleep(delay).await;
            true
        }
        () = tokio::time::sleep(delay) => true,
    }
}

/// Consumes until the broker has nothing more for any subscriber (`run_until_idle`);
/// whether it handled anything. A broker that cannot be reached is logged and kept in the
/// subscriber's status, not returned: the messages wait on the broker, and the rest of the
/// engine's work goes on (a store error is returned).
pub(crate) async fn drain(domain: &Domain, consumers: &[Arc<SubscriberConsumer>]) -> Result<bool> {
    let Some(broker) = domain.broker() else {
        return Ok(false);
    };
    let mut progressed = false;
    for consumer in consumers {
        loop {
            match consumer.step(domain, broker, IDLE_WAIT, None).await {
                Ok(0) => break,
                Ok(_) => progressed = true,
                Err(error @ Error::Broker { .. }) => {
                    tracing::warn!(subscriber = consumer.name(), %error, "broker unavailable; its messages wait there");
                    consumer.set_last_error(error.to_string());
                    break;
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(progressed)
}

/// One subscriber's loop in [`Engine::run`](super::Engine::run): consumes until the engine
/// stops. A broker or store error is logged, kept for the status, and retried with backoff.
pub(crate) async fn run(
    domain: Domain,
    consumer: Arc<SubscriberConsumer>,
    mut stopped: watch::Receiver<bool>,
) {
    let Some(broker) = domain.broker().cloned() else {
        return;
    };
    let mut failures = 0_u32;
    while !*stopped.borrow() {
        match consumer.step(&domain, &broker, WAIT, Some(&stopped)).await {
            Ok(_) => failures = 0,
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = super::HandlerRetry::default()
                    .with_max_delay(Duration::from_secs(30))
                    .delay(failures);
                tracing::error!(subscriber = consumer.name(), %error, ?delay, "subscriber could not consume; retrying");
                consumer.set_last_error(error.to_string());
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
