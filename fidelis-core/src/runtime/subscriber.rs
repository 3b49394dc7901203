//! Running a subscriber (`#[subscriber]`) on one broker message: its `handle` in a unit of
//! work of its own, and the record that the message was handled, so a repeat is skipped.
//! `Domain::deliver` and the engine's consumers both go through here.

use std::panic::AssertUnwindSafe;

use chrono::Utc;
use futures::FutureExt;
use tracing::Instrument;

use crate::broker::{BrokerMessage, METADATA_HEADER};
use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;
use crate::registry::BrokerSubscriber;
use crate::runtime::context::{Context, EventHandlerContext};
use crate::runtime::domain::Domain;
use crate::store::system::SystemRow;
use crate::store::system::{self, DeadLetter, SubscriberMessage};
use crate::store::{JsonRow, Transaction};

/// What became of a message handed to a subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Handled {
    /// Its `handle` ran and the message is recorded as handled.
    Done,
    /// The subscriber had already handled it (or given up on it): skipped.
    Repeat,
}

/// Whether `subscriber` has a record of `message` (handled, dead-lettered or purged).
pub(crate) async fn seen(
    domain: &Domain,
    subscriber: &BrokerSubscriber,
    message: &BrokerMessage,
) -> Result<bool> {
    let key = SubscriberMessage::key(domain.name(), subscriber.name, &message.id);
    Ok(
        system::get::<SubscriberMessage>(domain.storage().as_ref(), &key)
            .await?
            .is_some(),
    )
}

/// Runs `subscriber`'s `handle` on `message` once, and records the message as handled: in
/// the transaction of the subscriber's own unit of work (`ctx.repository`) when it wrote
/// anything, else in a transaction of its own right after (commands issued with
/// `ctx.process` commit in their own units of work, before). A message already recorded as
/// handled in between is a [`Handled::Repeat`], its unit of work rolled back.
///
/// `resolves`: the dead letter this run replays, removed in the same transaction.
pub(crate) async fn handle_once(
    domain: &Domain,
    subscriber: &BrokerSubscriber,
    message: &BrokerMessage,
    resolves: Option<&str>,
) -> Result<Handled> {
    let span = tracing::info_span!(
        "subscriber",
        subscriber = subscriber.name,
        stream = %message.stream,
        message = %message.id,
    );
    let unit = Context::new(
        domain.clone(),
        correlation_of(message),
        Some(Identifier::new(message.id.clone())),
    );
    let mut ctx = EventHandlerContext::new(unit);
    let record = Record {
        key: SubscriberMessage::key(domain.name(), subscriber.name, &message.id),
        domain: domain.name().to_owned(),
        subscriber: subscriber.name,
        message_id: message.id.clone(),
        stream: message.stream.clone(),
        resolves: resolves.map(str::to_owned),
    };
    // Unwind safety: a panicking `handle`'s unit of work is dropped unstored with its `ctx`;
    // the panic is the message's failure, retried like an error.
    let outcome = AssertUnwindSafe(async {
        subscriber
            .call
            .call(subscriber.instance.as_ref(), message, &mut ctx)
            .await?;
        let written = record.clone();
        crate::runtime::unit_of_work::commit_finished(
            ctx.unit,
            Box::new(move |transaction| Box::pin(written.write(transaction))),
        )
        .await
    })
    .catch_unwind()
    .instrument(span)
    .await;
    let committed = match outcome {
        Ok(Ok(committed)) => committed,
        Ok(Err(error)) => return Err(failed(subscriber, message, error)),
        Err(panic) => {
            let error = crate::task::handler_failure(subscriber.name, Err(panic))
                .unwrap_or_else(|| Error::handler(subscriber.name, "panicked"));
            return Err(failed(subscriber, message, error));
        }
    };
    match committed {
        Some(true) => Ok(Handled::Done),
        Some(false) => Ok(Handled::Repeat),
        // It wrote nothing through its own unit of work: the record goes alone.
        None => {
            let mut transaction = domain.storage().begin().await?;
            if !record.write(transaction.as_mut()).await? {
                return Ok(Handled::Repeat);
            }
            transaction.commit().await?;
            Ok(Handled::Done)
        }
    }
}

/// A subscriber's failure on a message, keeping the error it returned (so a domain error or
/// a malformed payload's [`Error::Serialization`] stays findable).
fn failed(subscriber: &BrokerSubscriber, message: &BrokerMessage, error: Error) -> Error {
    Error::handler_failed(
        format!("{}::handle", subscriber.name),
        &format!(
            "on message `{}` of broker stream `{}`",
            message.id, message.stream
        ),
        error,
    )
}

/// Whether a failure is a payload that cannot be decoded: retrying cannot help.
pub(crate) fn is_malformed(error: &Error) -> bool {
    match error {
        Error::Serialization { .. } => true,
        Error::Handler {
            source: Some(source),
            ..
        } => is_malformed(source),
        _ => false,
    }
}

/// The correlation id of a relayed event's metadata header, so the commands a subscriber
/// issues continue the request that raised the event; a new one for other messages.
fn correlation_of(message: &BrokerMessage) -> Identifier {
    message
        .header(METADATA_HEADER)
        .and_then(|metadata| serde_json::from_str::<serde_json::Value>(metadata).ok())
        .and_then(|metadata| {
            metadata
                .get("correlation_id")
                .and_then(serde_json::Value::as_str)
                .map(Identifier::new)
        })
        .unwrap_or_else(Identifier::generate)
}

/// The record of a handled message, written in a transaction.
#[derive(Clone)]
struct Record {
    key: String,
    domain: String,
    subscriber: &'static str,
    message_id: String,
    stream: String,
    resolves: Option<String>,
}

impl Record {
    /// Records the message as handled (and removes the dead letter it resolves); `false`
    /// when it is recorded as handled already, or another run records it meanwhile, and the
    /// transaction must not commit. The write is version-checked (insert-only when there is
    /// no row yet), so two runs of one message that race (a redelivery while the first is
    /// still working) cannot both commit.
    async fn write(self, transaction: &mut dyn Transaction) -> Result<bool> {
        let table = SubscriberMessage::TABLE.name;
        let existing = transaction.get_json_row(table, &self.key).await?;
        let expected = match &existing {
            None => -1,
            Some(row) => {
                if row.data.get("status").and_then(serde_json::Value::as_str)
                    == Some(SubscriberMessage::HANDLED)
                {
                    return Ok(self.refused());
                }
                row.version
            }
        };
        if let Some(letter) = &self.resolves {
            system::remove::<DeadLetter>(transaction, letter).await?;
        }
        let row = SubscriberMessage {
            id: self.key.clone(),
            domain: self.domain.clone(),
            subscriber: self.subscriber.to_owned(),
            message_id: self.message_id.clone(),
            stream: self.stream.clone(),
            status: SubscriberMessage::HANDLED.to_owned(),
            headers: serde_json::Value::Object(serde_json::Map::new()),
            payload: String::new(),
            updated_at: Utc::now(),
        };
        let serde_json::Value::Object(data) =
            serde_json::to_value(&row).map_err(|error| Error::Serialization {
                what: format!("a row of system table {table}"),
                message: error.to_string(),
            })?
        else {
            return Err(Error::Serialization {
                what: format!("a row of system table {table}"),
                message: "does not serialize to a JSON object".to_owned(),
            });
        };
        let row = JsonRow {
            id: self.key.clone(),
            version: expected + 1,
            data,
        };
        match transaction.put_json_row(table, row, Some(expected)).await {
            Ok(()) => Ok(true),
            Err(error) if error.is_version_conflict() => Ok(self.refused()),
            Err(error) => Err(error),
        }
    }

    fn refused(&self) -> bool {
        tracing::debug!(
            subscriber = self.subscriber,
            message = %self.message_id,
            "message handled meanwhile; this run's unit of work is rolled back"
        );
        false
    }
}

/// Hands a message to every subscriber of `stream`, in process (`Domain::deliver`): each
/// one that has not handled it yet runs once, without retries or dead letters; the first
/// failure is returned (the others still run, and a repeat skips those that succeeded).
pub(crate) async fn deliver(
    domain: &Domain,
    stream: &str,
    mut message: BrokerMessage,
) -> Result<()> {
    let subscribers: Vec<&BrokerSubscriber> = domain
        .registry()
        .broker_subscribers
        .iter()
        .filter(|subscriber| subscriber.stream == stream)
        .collect();
    if subscribers.is_empty() {
        let known: Vec<String> = domain
            .registry()
            .broker_subscribers
            .iter()
            .map(|s| format!("`{}` ({})", s.stream, s.name))
            .collect();
        let known = if known.is_empty() {
            "it has no subscribers".to_owned()
        } else {
            format!("its subscribers read {}", known.join(", "))
        };
        return Err(Error::usage(format!(
            "no subscriber of domain `{}` reads broker stream `{stream}`; {known}",
            domain.name()
        )));
    }
    stream.clone_into(&mut message.stream);
    let mut first_error = None;
    for subscriber in subscribers {
        let outcome = if seen(domain, subscriber, &message).await? {
            Ok(Handled::Repeat)
        } else {
            handle_once(domain, subscriber, &message, None).await
        };
        match outcome {
            Ok(Handled::Done) => {}
            Ok(Handled::Repeat) => tracing::debug!(
                subscriber = subscriber.name,
                message = %message.id,
                "message already handled: skipped"
            ),
            Err(error) => {
                tracing::warn!(subscriber = subscriber.name, message = %message.id, %error, "subscriber failed");
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
