//! One subscription: reads its categories from its checkpoint, hands the events to its
//! projector or event handler, moves the checkpoint, and dead-letters what keeps failing.

use std::any::Any;
use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tracing::Instrument;

use crate::model::error::{Error, Result};
use crate::model::event::{AnyRecordedEvent, EventMetadata, RecordedEvent};
use crate::model::query::QuerySpec;
use crate::registry::SubscriberInfo;
use crate::runtime::context::{Context, EventHandlerContext};
use crate::runtime::domain::Domain;
use crate::store::system::{self, Checkpoint, DeadLetter};
use crate::store::{Cursor, GlobalRead, Storage, Transaction};

/// How many events a subscription reads at a time.
const BATCH: usize = 500;

pub(crate) struct Subscription {
    info: SubscriberInfo,
    /// Held while a batch, a replay or a purge is handled, so that in one process they take
    /// turns (the checkpoint and the dead letters are read, then written).
    turn: tokio::sync::Mutex<()>,
    last_error: std::sync::Mutex<Option<String>>,
}

/// An event as a subscription sees it.
enum Item {
    /// None of the subscription's listeners takes it: passed over.
    Ignored,
    /// It cannot be read (an unknown type, data that no longer decodes): dead-lettered at
    /// once, never skipped silently.
    Unreadable(Error),
    /// To hand to the listeners.
    Deliver(Arc<dyn AnyRecordedEvent>),
}

/// A failure of one event: the last error and the attempts' times.
struct Failure {
    error: Error,
    attempts: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
}

impl Subscription {
    pub(crate) fn new(info: SubscriberInfo) -> Self {
        Self {
            info,
            turn: tokio::sync::Mutex::new(()),
            last_error: std::sync::Mutex::new(None),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.info.name
    }

    pub(crate) fn is_projector(&self) -> bool {
        self.info.projector
    }

    pub(crate) fn categories(&self) -> Vec<&str> {
        self.info.categories.iter().map(String::as_str).collect()
    }

    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    /// What its checkpoints and dead letters are kept under: its name, with the projection's
    /// version from version 2 (`AccountSummaryProjector@v2`), so the versions of a
    /// projection never share them.
    pub(crate) fn checkpoint_name(&self) -> &str {
        &self.info.checkpoint
    }

    fn key(&self) -> String {
        Checkpoint::key(&self.info.checkpoint, 0)
    }

    /// The committed checkpoint.
    pub(crate) async fn checkpoint(&self, storage: &dyn Storage) -> Result<Cursor> {
        Ok(system::get::<Checkpoint>(storage, &self.key())
            .await?
            .map_or(Cursor::START, cursor_of))
    }

    /// A transaction in which the checkpoint is still `expected` (its row locked on
    /// PostgreSQL); `None` when another engine moved it since it was read.
    async fn begin_at(
        &self,
        storage: &dyn Storage,
        expected: Cursor,
    ) -> Result<Option<Box<dyn Transaction>>> {
        let mut transaction = storage.begin().await?;
        let now = system::get_in::<Checkpoint>(transaction.as_mut(), &self.key())
            .await?
            .map_or(Cursor::START, cursor_of);
        if now == expected {
            Ok(Some(transaction))
        } else {
            tracing::debug!(
                subscription = self.name(),
                ?expected,
                ?now,
                "checkpoint moved elsewhere"
            );
            Ok(None)
        }
    }

    async fn put_checkpoint(&self, transaction: &mut dyn Transaction, at: Cursor) -> Result<()> {
        system::put(
            transaction,
            Checkpoint {
                id: self.key(),
                subscription: self.info.name.to_owned(),
                partition: 0,
                commit: at.commit,
                position: at.position,
                updated_at: Utc::now(),
            },
        )
        .await
    }

    /// The streams waiting behind a dead letter of this subscription.
    async fn waiting_streams(&self, storage: &dyn Storage) -> Result<HashSet<String>> {
        Ok(self
            .dead_letters(storage)
            .await?
            .into_iter()
            .map(|letter| letter.stream)
            .collect())
    }

    pub(crate) async fn dead_letters(&self, storage: &dyn Storage) -> Result<Vec<DeadLetter>> {
        let query = QuerySpec {
            filters: vec![system::field_eq(
                "subscription",
                self.info.checkpoint.clone(),
            )],
            order: vec![
                system::order_by("commit", false),
                system::order_by("position", false),
            ],
            ..QuerySpec::default()
        };
        system::query::<DeadLetter>(storage, &query).await
    }

    /// What a stored event is to this subscription.
    fn item(&self, domain: &Domain, recorded: &RecordedEvent) -> Item {
        let registry = domain.registry();
        let decoded = registry
            .event_by_type_name(recorded)
            .and_then(|info| (info.decode)(recorded));
        let event = match decoded {
            Ok(event) => event,
            Err(error) => return Item::Unreadable(error),
        };
        let type_id = Any::type_id(event.as_any());
        let listens = if self.info.projector {
            registry
                .projectors
                .get(&type_id)
                .is_some_and(|ls| ls.iter().any(|l| l.name == self.info.name))
        } else {
            registry
                .event_handlers
                .get(&type_id)
                .is_some_and(|ls| ls.iter().any(|l| l.name == self.info.name))
        };
        if listens {
            Item::Deliver(event.record(recorded.metadata.clone()))
        } else {
            Item::Ignored
        }
    }

    /// Handles the next batch after the checkpoint; returns how many events it read (0: none
    /// is waiting). Handler failures are retried and dead-lettered here; an error is a store
    /// that cannot be read or written.
    pub(crate) async fn step(&self, domain: &Domain) -> Result<usize> {
        let _turn = self.turn.lock().await;
        let storage = domain.storage().as_ref();
        let after = self.checkpoint(storage).await?;
        let categories = self.categories();
        let events = storage
            .read_categories(&GlobalRead {
                categories: &categories,
                after,
                limit: BATCH,
                partition: None,
            })
            .await?;
        let Some(last) = events.last().map(|e| e.metadata.cursor()) else {
            return Ok(0);
        };
        let read = events.len();
        let mut waiting = self.waiting_streams(storage).await?;
        let items: Vec<(EventMetadata, Item)> = events
            .into_iter()
            .map(|recorded| {
                let item = self.item(domain, &recorded);
                (recorded.metadata, item)
            })
            .collect();

        // A projector's batch commits with its checkpoint in one transaction; only when it
        // fails (or holds an unreadable event) are its events taken one at a time, to find
        // the one to retry and dead-letter.
        if self.info.projector && !items.iter().any(|(_, i)| matches!(i, Item::Unreadable(_))) {
            let batch: Vec<Arc<dyn AnyRecordedEvent>> = items
                .iter()
                .filter(|(metadata, _)| !waiting.contains(&metadata.stream))
                .filter_map(|(_, item)| match item {
                    Item::Deliver(event) => Some(event.clone()),
                    _ => None,
                })
                .collect();
            let Some(mut transaction) = self.begin_at(storage, after).await? else {
                return Ok(read);
            };
            let applied = crate::runtime::projection_runner::run_projectors_of(
                domain.registry(),
                transaction.as_mut(),
                &batch,
                Some(self.info.name),
            )
            .await;
            if applied.is_ok() {
                self.put_checkpoint(transaction.as_mut(), last).await?;
                transaction.commit().await?;
                return Ok(read);
            }
        }

        let mut position = after;
        for (metadata, item) in items {
            if waiting.contains(&metadata.stream) {
                continue;
            }
            let outcome = match item {
                Item::Ignored => continue,
                Item::Unreadable(error) => {
                    let now = Utc::now();
                    Err(Failure {
                        error,
                        attempts: 1,
                        first: now,
                        last: now,
                    })
                }
                Item::Deliver(event) => self.with_retries(domain, position, &event).await?,
            };
            let moved = match outcome {
                Ok(Some(())) => true,
                Ok(None) => return Ok(read),
                Err(failure) => {
                    waiting.insert(metadata.stream.clone());
                    if !self.info.projector {
                        // Counted as sync processing counts a failed event handler.
                        domain.count_event_handler_failure();
                    }
                    self.dead_letter(storage, position, &metadata, failure)
                        .await?
                }
            };
            if !moved {
                return Ok(read);
            }
            position = metadata.cursor();
        }
        if position < last {
            let Some(mut transaction) = self.begin_at(storage, position).await? else {
                return Ok(read);
            };
            self.put_checkpoint(transaction.as_mut(), last).await?;
            transaction.commit().await?;
        }
        Ok(read)
    }

    /// Delivers one event, retrying as the domain's [`HandlerRetry`](super::HandlerRetry)
    /// says, and moves the checkpoint from `position` to it once handled. `Ok(Ok(None))`: the
    /// checkpoint moved elsewhere; `Ok(Err(..))`: it failed every attempt.
    async fn with_retries(
        &self,
        domain: &Domain,
        position: Cursor,
        event: &Arc<dyn AnyRecordedEvent>,
    ) -> Result<std::result::Result<Option<()>, Failure>> {
        let retry = domain.handler_retry();
        let mut first = None;
        let mut attempt = 1_u32;
        loop {
            let outcome = if self.info.projector {
                let Some(mut transaction) =
                    self.begin_at(domain.storage().as_ref(), position).await?
                else {
                    return Ok(Ok(None));
                };
                match self.project(domain, transaction.as_mut(), event).await {
                    Ok(()) => {
                        self.put_checkpoint(transaction.as_mut(), event.metadata().cursor())
                            .await?;
                        transaction.commit().await?;
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            } else {
                match self.handle(domain, event).await {
                    Ok(()) => {
                        let Some(mut transaction) =
                            self.begin_at(domain.storage().as_ref(), position).await?
                        else {
                            return Ok(Ok(None));
                        };
                        self.put_checkpoint(transaction.as_mut(), event.metadata().cursor())
                            .await?;
                        transaction.commit().await?;
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            };
            let error = match outcome {
                Ok(()) => return Ok(Ok(Some(()))),
                Err(error) => error,
            };
            let now = Utc::now();
            let first = *first.get_or_insert(now);
            self.set_last_error(error.to_string());
            if attempt >= retry.attempts() {
                return Ok(Err(Failure {
                    error,
                    attempts: i64::from(attempt),
                    first,
                    last: now,
                }));
            }
            let delay = retry.delay(attempt);
            tracing::warn!(
                subscription = self.name(),
                event = %event.metadata().type_name,
                stream = %event.metadata().stream,
                attempt,
                ?delay,
                %error,
                "handler failed; retrying"
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Runs this subscription's projector on one event, in `transaction`.
    pub(crate) async fn project(
        &self,
        domain: &Domain,
        transaction: &mut dyn Transaction,
        event: &Arc<dyn AnyRecordedEvent>,
    ) -> Result<()> {
        crate::runtime::projection_runner::run_projectors_of(
            domain.registry(),
            transaction,
            std::slice::from_ref(event),
            Some(self.info.name),
        )
        .await
    }

    /// Runs this subscription's event handler on one event, each method in a unit of work of
    /// its own, committed. A panic is a failure of the event.
    pub(crate) async fn handle(
        &self,
        domain: &Domain,
        event: &Arc<dyn AnyRecordedEvent>,
    ) -> Result<()> {
        let metadata = event.metadata();
        let Some(listeners) = domain
            .registry()
            .event_handlers
            .get(&Any::type_id(event.payload_any().as_any()))
        else {
            return Ok(());
        };
        for listener in listeners.iter().filter(|l| l.name == self.info.name) {
            let span = tracing::info_span!(
                "event_handler",
                handler = listener.name,
                method = listener.method,
                event = %metadata.type_name,
                correlation_id = %metadata.correlation_id,
            );
            let mut ctx = EventHandlerContext::new(Context::new(
                domain.clone(),
                metadata.correlation_id.clone(),
                Some(metadata.id.clone()),
            ));
            // Unwind safety: a panicking handler's unit of work is dropped unstored with its
            // `ctx`; the panic is this event's failure, retried like an error.
            let result = AssertUnwindSafe(async {
                listener
                    .call
                    .call(listener.instance.as_ref(), event.as_ref(), &mut ctx)
                    .await?;
                crate::runtime::unit_of_work::commit(ctx.unit)
                    .await
                    .map(drop)
            })
            .catch_unwind()
            .instrument(span)
            .await;
            if let Some(error) = crate::task::handler_failure(listener.name, result) {
                return Err(Error::handler_failed(
                    format!("{}::{}", listener.name, listener.method),
                    &format!("on {}", metadata.type_name),
                    error,
                ));
            }
        }
        Ok(())
    }

    /// Records a dead letter and moves the checkpoint past its event, in one transaction;
    /// `false` when the checkpoint moved elsewhere.
    async fn dead_letter(
        &self,
        storage: &dyn Storage,
        position: Cursor,
        metadata: &EventMetadata,
        failure: Failure,
    ) -> Result<bool> {
        let Some(mut transaction) = self.begin_at(storage, position).await? else {
            return Ok(false);
        };
        let letter = self.letter(metadata, &failure);
        tracing::error!(
            subscription = self.name(),
            event = %metadata.type_name,
            stream = %metadata.stream,
            version = metadata.version,
            attempts = failure.attempts,
            error = %failure.error,
            "event dead-lettered: the later events of its stream wait for it in this subscription"
        );
        self.set_last_error(failure.error.to_string());
        system::put(transaction.as_mut(), letter).await?;
        self.put_checkpoint(transaction.as_mut(), metadata.cursor())
            .await?;
        transaction.commit().await?;
        Ok(true)
    }

    fn letter(&self, metadata: &EventMetadata, failure: &Failure) -> DeadLetter {
        DeadLetter {
            id: format!("{}/{}", self.info.checkpoint, metadata.id),
            subscription: self.info.checkpoint.clone(),
            partition: 0,
            event_id: metadata.id.to_string(),
            stream: metadata.stream.clone(),
            version: metadata.version,
            type_name: metadata.type_name.clone(),
            commit: metadata.commit,
            position: metadata.global_position,
            error: failure.error.to_string(),
            attempts: failure.attempts,
            first_failed_at: failure.first,
            last_failed_at: failure.last,
        }
    }

    /// Delivers a dead letter's event again (unless `purge`), then the events of its stream
    /// that waited behind it, once each, to this subscription only; the letter goes when all
    /// of them are handled. A failure of the letter's event updates the letter; a failure of
    /// a waiting event replaces the letter with one of that event (the events before it
    /// stay handled). A projector's rows, the letters and its checkpoint move in one
    /// transaction.
    pub(crate) async fn replay(&self, domain: &Domain, id: &str, purge: bool) -> Result<()> {
        let _turn = self.turn.lock().await;
        let storage = domain.storage().as_ref();
        let Some(letter) = system::get::<DeadLetter>(storage, id).await? else {
            return Err(Error::usage(format!("no dead letter `{id}`")));
        };
        let checkpoint = self.checkpoint(storage).await?;
        let events: Vec<RecordedEvent> = storage
            .read_stream(&letter.stream, letter.version)
            .await?
            .into_iter()
            .filter(|e| e.metadata.cursor() <= checkpoint)
            .filter(|e| !(purge && e.metadata.version == letter.version))
            .collect();
        // A projector's replay is one transaction; a handler commits its own units of work,
        // so its transaction opens only to write the letters (SQLite has one writer).
        let mut projection = if self.info.projector {
            Some(storage.begin().await?)
        } else {
            None
        };
        for recorded in events {
            let outcome = match self.item(domain, &recorded) {
                Item::Ignored => continue,
                Item::Unreadable(error) => Err(error),
                Item::Deliver(event) => match projection.as_mut() {
                    Some(transaction) => self.project(domain, transaction.as_mut(), &event).await,
                    None => self.handle(domain, &event).await,
                },
            };
            let Err(error) = outcome else { continue };
            self.set_last_error(error.to_string());
            let now = Utc::now();
            let metadata = &recorded.metadata;
            if metadata.version == letter.version {
                // The letter's own event failed again: nothing else was delivered.
                drop(projection);
                let mut transaction = storage.begin().await?;
                let updated = DeadLetter {
                    error: error.to_string(),
                    attempts: letter.attempts + 1,
                    last_failed_at: now,
                    ..letter
                };
                system::put(transaction.as_mut(), updated).await?;
                transaction.commit().await?;
                return Err(error);
            }
            let failure = Failure {
                error,
                attempts: 1,
                first: now,
                last: now,
            };
            let mut transaction = match projection {
                Some(transaction) => transaction,
                None => storage.begin().await?,
            };
            system::remove::<DeadLetter>(transaction.as_mut(), &letter.id).await?;
            system::put(transaction.as_mut(), self.letter(metadata, &failure)).await?;
            transaction.commit().await?;
            return Err(failure.error);
        }
        let mut transaction = match projection {
            Some(transaction) => transaction,
            None => storage.begin().await?,
        };
        system::remove::<DeadLetter>(transaction.as_mut(), &letter.id).await?;
        transaction.commit().await?;
        tracing::info!(
            subscription = self.name(),
            letter = id,
            purge,
            "dead letter resolved; its stream flows on"
        );
        Ok(())
    }
}

fn cursor_of(checkpoint: Checkpoint) -> Cursor {
    Cursor {
        commit: checkpoint.commit,
        position: checkpoint.position,
    }
}
