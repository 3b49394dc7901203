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
use crate::store::{Cursor, GlobalRead, Partition, Storage, Transaction};

use super::lease::{Fence, Leases};

/// How many events a subscription reads at a time.
const BATCH: usize = 500;

pub(crate) struct Subscription {
    info: SubscriberInfo,
    /// How many partitions its streams are split into.
    partitions: u32,
    /// Per partition: held while a batch, a replay or a purge is handled, so that in one
    /// process they take turns (the checkpoint and the dead letters are read, then written),
    /// and while its lease is released.
    turns: Vec<tokio::sync::Mutex<()>>,
    /// Per partition: the last error this process saw.
    last_errors: Vec<std::sync::Mutex<Option<String>>>,
}

/// What a batch of one partition is handled under: the partition, the fence of its lease,
/// and the engine's shutdown signal (which interrupts retry waits).
pub(crate) struct Turn<'a> {
    pub(crate) partition: u32,
    pub(crate) fence: Fence,
    pub(crate) leases: &'a Leases,
    pub(crate) stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// What became of one event's delivery.
enum Delivery {
    /// Handled; the checkpoint moved past it.
    Done,
    /// Handled by an event handler that wrote nothing: the checkpoint moves past it with a
    /// later event's (or the batch's end), one transaction fewer per such event. A crash
    /// before then delivers it again, which at-least-once allows.
    Handled,
    /// The checkpoint moved elsewhere or the lease was lost: this batch stops.
    Lost,
    /// Shutdown came during a retry wait: the event stays unhandled, for the next run.
    Interrupted,
    /// It failed every attempt.
    Failed(Failure),
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
    pub(crate) fn new(info: SubscriberInfo, partitions: u32) -> Self {
        let partitions = partitions.max(1);
        Self {
            info,
            partitions,
            turns: (0..partitions)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            last_errors: (0..partitions)
                .map(|_| std::sync::Mutex::new(None))
                .collect(),
        }
    }

    pub(crate) fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition a stream belongs to.
    pub(crate) fn partition_of(&self, stream: &str) -> u32 {
        let index = crate::store::partition_of(crate::store::stream_hash(stream), self.partitions);
        u32::try_from(index).unwrap_or_default()
    }

    /// The read filter of a partition (none when there is one partition).
    pub(crate) fn partition(&self, index: u32) -> Option<Partition> {
        (self.partitions > 1).then_some(Partition {
            index,
            count: self.partitions,
        })
    }

    /// The lock a partition's batches take turns on (also taken to release its lease).
    pub(crate) fn turn(&self, partition: u32) -> &tokio::sync::Mutex<()> {
        &self.turns[partition as usize % self.turns.len()]
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

    pub(crate) fn last_error(&self, partition: u32) -> Option<String> {
        self.last_errors[partition as usize % self.last_errors.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_last_error(&self, partition: u32, error: String) {
        *self.last_errors[partition as usize % self.last_errors.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    /// What its checkpoints, leases and dead letters are kept under: its name, with the
    /// projection's version from version 2 (`AccountSummaryProjector@v2`), so the versions of
    /// a projection never share them.
    pub(crate) fn checkpoint_name(&self) -> &str {
        &self.info.checkpoint
    }

    /// The key of a partition's checkpoint and lease: `<checkpoint name>/<partition>`.
    pub(crate) fn key(&self, partition: u32) -> String {
        Checkpoint::key(&self.info.checkpoint, i64::from(partition))
    }

    /// A partition's committed checkpoint.
    pub(crate) async fn checkpoint(&self, storage: &dyn Storage, partition: u32) -> Result<Cursor> {
        Ok(system::get::<Checkpoint>(storage, &self.key(partition))
            .await?
            .map_or(Cursor::START, cursor_of))
    }

    /// Commits a transaction that moves a partition's checkpoint if the fence still holds
    /// (checked under the lease row's lock, in the transaction); `false` (nothing
    /// committed, the lease forgotten) when another engine took the partition over.
    async fn commit_fenced(
        &self,
        mut transaction: Box<dyn Transaction>,
        turn: &Turn<'_>,
    ) -> Result<bool> {
        if !turn.fence.holds(transaction.as_mut()).await? {
            drop(transaction);
            self.refused(turn);
            return Ok(false);
        }
        transaction.commit().await?;
        Ok(true)
    }

    /// A transaction in which the checkpoint is still `expected` (its row locked on
    /// PostgreSQL); `None` when another engine moved it since it was read.
    async fn begin_at(
        &self,
        storage: &dyn Storage,
        partition: u32,
        expected: Cursor,
    ) -> Result<Option<Box<dyn Transaction>>> {
        let mut transaction = storage.begin().await?;
        let now = system::get_in::<Checkpoint>(transaction.as_mut(), &self.key(partition))
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

    async fn put_checkpoint(
        &self,
        transaction: &mut dyn Transaction,
        partition: u32,
        at: Cursor,
    ) -> Result<()> {
        system::put(
            transaction,
            Checkpoint {
                id: self.key(partition),
                subscription: self.info.name.to_owned(),
                partition: i64::from(partition),
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
            .and_then(|info| info.decode(recorded));
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
    pub(crate) async fn step(&self, domain: &Domain, turn: &Turn<'_>) -> Result<usize> {
        let _turn = self.turn(turn.partition).lock().await;
        // Released or lost while this batch waited for its turn.
        if !turn.leases.trusts(&turn.fence) {
            return Ok(0);
        }
        let partition = turn.partition;
        let storage = domain.storage().as_ref();
        let after = self.checkpoint(storage, partition).await?;
        let categories = self.categories();
        let events = storage
            .read_categories(&GlobalRead {
                categories: &categories,
                after,
                limit: BATCH,
                partition: self.partition(partition),
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
            let Some(mut transaction) = self.begin_at(storage, partition, after).await? else {
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
                self.put_checkpoint(transaction.as_mut(), partition, last)
                    .await?;
                self.commit_fenced(transaction, turn).await?;
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
                    Delivery::Failed(Failure {
                        error,
                        attempts: 1,
                        first: now,
                        last: now,
                    })
                }
                Item::Deliver(event) => self.with_retries(domain, turn, position, &event).await?,
            };
            let moved = match outcome {
                Delivery::Done => true,
                Delivery::Handled => continue,
                Delivery::Lost | Delivery::Interrupted => return Ok(read),
                Delivery::Failed(failure) => {
                    waiting.insert(metadata.stream.clone());
                    if !self.info.projector {
                        // Counted as sync processing counts a failed event handler.
                        domain.count_event_handler_failure();
                    }
                    self.dead_letter(storage, turn, position, &metadata, failure)
                        .await?
                }
            };
            if !moved {
                return Ok(read);
            }
            position = metadata.cursor();
        }
        if position < last {
            let Some(mut transaction) = self.begin_at(storage, partition, position).await? else {
                return Ok(read);
            };
            self.put_checkpoint(transaction.as_mut(), partition, last)
                .await?;
            self.commit_fenced(transaction, turn).await?;
        }
        Ok(read)
    }

    /// Delivers one event, retrying as the domain's [`HandlerRetry`](super::HandlerRetry)
    /// says, and moves the partition's checkpoint from `position` to it once handled (in a
    /// fenced transaction). An event handler is called only while the lease is trusted here;
    /// a shutdown interrupts the wait between attempts.
    async fn with_retries(
        &self,
        domain: &Domain,
        turn: &Turn<'_>,
        position: Cursor,
        event: &Arc<dyn AnyRecordedEvent>,
    ) -> Result<Delivery> {
        let retry = domain.handler_retry();
        let storage = domain.storage().as_ref();
        let partition = turn.partition;
        let mut first = None;
        let mut attempt = 1_u32;
        loop {
            if !turn.leases.trusts(&turn.fence) {
                return Ok(Delivery::Lost);
            }
            let mut handled = Delivery::Done;
            let outcome = if self.info.projector {
                let Some(mut transaction) = self.begin_at(storage, partition, position).await?
                else {
                    return Ok(Delivery::Lost);
                };
                match self.project(domain, transaction.as_mut(), event).await {
                    Ok(()) => {
                        self.put_checkpoint(
                            transaction.as_mut(),
                            partition,
                            event.metadata().cursor(),
                        )
                        .await?;
                        if !self.commit_fenced(transaction, turn).await? {
                            return Ok(Delivery::Lost);
                        }
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            } else {
                // The handler's writes and the checkpoint commit in one transaction.
                match self.handle(domain, event, Some((turn, position))).await {
                    Ok(Handled::Committed) => Ok(()),
                    Ok(Handled::Nothing) => {
                        handled = Delivery::Handled;
                        Ok(())
                    }
                    Ok(Handled::Refused) => return Ok(Delivery::Lost),
                    Err(error) => Err(error),
                }
            };
            let error = match outcome {
                Ok(()) => return Ok(handled),
                Err(error) => error,
            };
            let now = Utc::now();
            let first = *first.get_or_insert(now);
            self.set_last_error(partition, error.to_string());
            if attempt >= retry.attempts() {
                return Ok(Delivery::Failed(Failure {
                    error,
                    attempts: i64::from(attempt),
                    first,
                    last: now,
                }));
            }
            let delay = retry.delay(attempt);
            tracing::warn!(
                subscription = self.name(),
                partition,
                event = %event.metadata().type_name,
                stream = %event.metadata().stream,
                attempt,
                ?delay,
                %error,
                "handler failed; retrying"
            );
            if !wait_unless_stopped(delay, turn.stop.clone()).await {
                tracing::info!(
                    subscription = self.name(),
                    partition,
                    stream = %event.metadata().stream,
                    "shutdown during a retry wait: the event is delivered again on the next run"
                );
                return Ok(Delivery::Interrupted);
            }
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
    ///
    /// With `checkpoint` (a batch's turn and the partition's checkpoint now), the last
    /// method's unit of work also moves the checkpoint to the event, in its transaction,
    /// if the lease still holds and the checkpoint did not move: the handler's writes and
    /// the checkpoint commit together or not at all.
    pub(crate) async fn handle(
        &self,
        domain: &Domain,
        event: &Arc<dyn AnyRecordedEvent>,
        checkpoint: Option<(&Turn<'_>, Cursor)>,
    ) -> Result<Handled> {
        let metadata = event.metadata();
        let listeners: Vec<_> = domain
            .registry()
            .event_handlers
            .get(&Any::type_id(event.payload_any().as_any()))
            .map(|listeners| {
                listeners
                    .iter()
                    .filter(|l| l.name == self.info.name)
                    .collect()
            })
            .unwrap_or_default();
        let to = metadata.cursor();
        if listeners.is_empty() {
            return Ok(Handled::Nothing);
        }
        let fenced = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let last = listeners.len() - 1;
        let mut handled = Handled::Nothing;
        for (index, listener) in listeners.into_iter().enumerate() {
            let span = tracing::info_span!(
                "event_handler",
                handler = listener.name,
                method = listener.method,
                event = %metadata.type_name,
                correlation_id = %metadata.correlation_id,
            );
            let mut ctx = EventHandlerContext::new(Context::caused_by(domain.clone(), metadata));
            // Unwind safety: a panicking handler's unit of work is dropped unstored with its
            // `ctx`; the panic is this event's failure, retried like an error.
            let checkpoint = checkpoint.filter(|_| index == last);
            let result = AssertUnwindSafe(async {
                listener
                    .call
                    .call(listener.instance.as_ref(), event.as_ref(), &mut ctx)
                    .await?;
                match checkpoint {
                    Some((turn, expected)) => {
                        let apply = self.checkpoint_move(turn, expected, to);
                        let fenced = fenced.clone();
                        crate::runtime::unit_of_work::commit_finished(
                            ctx.unit,
                            Box::new(move |transaction| {
                                Box::pin(async move {
                                    Ok(match apply.apply(transaction).await? {
                                        Moved::Yes => true,
                                        Moved::Elsewhere => false,
                                        Moved::Fenced => {
                                            fenced.store(true, std::sync::atomic::Ordering::SeqCst);
                                            false
                                        }
                                    })
                                })
                            }),
                        )
                        .await
                    }
                    None => crate::runtime::unit_of_work::commit(ctx.unit)
                        .await
                        .map(|_| Some(true)),
                }
            })
            .catch_unwind()
            .instrument(span)
            .await;
            let result = result.map(|outcome| {
                outcome.map(|committed| {
                    handled = match committed {
                        None => Handled::Nothing,
                        Some(true) => Handled::Committed,
                        Some(false) => Handled::Refused,
                    };
                })
            });
            if let Some(error) = crate::task::handler_failure(listener.name, result) {
                return Err(Error::handler_failed(
                    format!("{}::{}", listener.name, listener.method),
                    &format!("on {}", metadata.type_name),
                    error,
                ));
            }
        }
        if fenced.load(std::sync::atomic::Ordering::SeqCst)
            && let Some((turn, _)) = checkpoint
        {
            self.refused(turn);
        }
        Ok(handled)
    }

    /// The move of a partition's checkpoint from `expected` to `to` under `turn`'s fence.
    fn checkpoint_move(&self, turn: &Turn<'_>, expected: Cursor, to: Cursor) -> CheckpointMove {
        CheckpointMove {
            key: self.key(turn.partition),
            subscription: self.info.name,
            partition: turn.partition,
            fence: turn.fence.clone(),
            expected,
            to,
        }
    }

    fn refused(&self, turn: &Turn<'_>) {
        tracing::warn!(
            subscription = self.name(),
            partition = turn.partition,
            token = turn.fence.token,
            "lease lost: another engine holds this partition; the batch is not committed"
        );
        turn.leases.forget_token(&turn.fence.key, turn.fence.token);
    }

    /// Records a dead letter and moves the checkpoint past its event, in one transaction;
    /// `false` when the checkpoint moved elsewhere.
    async fn dead_letter(
        &self,
        storage: &dyn Storage,
        turn: &Turn<'_>,
        position: Cursor,
        metadata: &EventMetadata,
        failure: Failure,
    ) -> Result<bool> {
        let Some(mut transaction) = self.begin_at(storage, turn.partition, position).await? else {
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
        self.set_last_error(turn.partition, failure.error.to_string());
        system::put(transaction.as_mut(), letter).await?;
        self.put_checkpoint(transaction.as_mut(), turn.partition, metadata.cursor())
            .await?;
        self.commit_fenced(transaction, turn).await
    }

    fn letter(&self, metadata: &EventMetadata, failure: &Failure) -> DeadLetter {
        DeadLetter {
            id: format!("{}/{}", self.info.checkpoint, metadata.id),
            subscription: self.info.checkpoint.clone(),
            partition: i64::from(self.partition_of(&metadata.stream)),
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
        let storage = domain.storage().as_ref();
        let Some(letter) = system::get::<DeadLetter>(storage, id).await? else {
            return Err(Error::usage(format!("no dead letter `{id}`")));
        };
        let partition = self.partition_of(&letter.stream);
        let _turn = self.turn(partition).lock().await;
        let checkpoint = self.checkpoint(storage, partition).await?;
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
                    None => self.handle(domain, &event, None).await.map(drop),
                },
            };
            let Err(error) = outcome else { continue };
            self.set_last_error(partition, error.to_string());
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

/// What an event handler's delivery with its checkpoint came to.
pub(crate) enum Handled {
    /// Its writes and the checkpoint committed.
    Committed,
    /// It wrote nothing (so nothing committed, the checkpoint included).
    Nothing,
    /// The checkpoint moved elsewhere or the lease was lost: nothing committed.
    Refused,
}

/// Whether a [`CheckpointMove`] was made.
enum Moved {
    Yes,
    /// The checkpoint no longer stood where the batch read it.
    Elsewhere,
    /// The lease is another engine's now.
    Fenced,
}

/// A partition's checkpoint to move in a transaction (an event handler's, in its unit of
/// work's): owned, so that it can run inside the commit of the handler's unit of work.
struct CheckpointMove {
    key: String,
    subscription: &'static str,
    partition: u32,
    fence: Fence,
    expected: Cursor,
    to: Cursor,
}

impl CheckpointMove {
    /// Moves the checkpoint if it still stands at `expected` (its row locked on PostgreSQL)
    /// and the fence holds (checked under the lease row's lock).
    async fn apply(self, transaction: &mut dyn Transaction) -> Result<Moved> {
        let now = system::get_in::<Checkpoint>(transaction, &self.key)
            .await?
            .map_or(Cursor::START, cursor_of);
        if now != self.expected {
            tracing::debug!(
                subscription = self.subscription,
                partition = self.partition,
                expected = ?self.expected,
                ?now,
                "checkpoint moved elsewhere"
            );
            return Ok(Moved::Elsewhere);
        }
        system::put(
            transaction,
            Checkpoint {
                id: self.key,
                subscription: self.subscription.to_owned(),
                partition: i64::from(self.partition),
                commit: self.to.commit,
                position: self.to.position,
                updated_at: Utc::now(),
            },
        )
        .await?;
        if !self.fence.holds(transaction).await? {
            return Ok(Moved::Fenced);
        }
        Ok(Moved::Yes)
    }
}

/// Sleeps `delay` unless the engine stops first; `false` when it stopped.
async fn wait_unless_stopped(
    delay: std::time::Duration,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
) -> bool {
    let Some(mut stop) = stop else {
        tokio::time::sleep(delay).await;
        return true;
    };
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

pub(crate) fn cursor_of(checkpoint: Checkpoint) -> Cursor {
    Cursor {
        commit: checkpoint.commit,
        position: checkpoint.position,
    }
}
