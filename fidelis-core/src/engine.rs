//! The engine: runs a domain's projectors and event handlers from the stored events, in
//! [asynchronous processing](crate::runtime::config::Processing::Async).
//!
//! Each projector and event handler is a *subscription*, named after the element: it reads
//! the categories of the aggregates it listens to in global order, in batches, from its
//! [`Checkpoint`]. A projector's batch and its checkpoint commit in one transaction (each
//! event changes the projection exactly once); an event handler's checkpoint moves after its
//! unit of work commits (at least once; the event's id stays the same on a redelivery).
//!
//! A failing event is retried ([`HandlerRetry`]), then dead-lettered ([`DeadLetter`]): the
//! later events of its stream wait behind it for that subscription, other streams go on, and
//! [`DeadLetters`](crate::DeadLetters) replays or purges it.
//!
//! Wake-ups: a commit made through any domain of this process wakes the engines at once (on
//! every adapter); on PostgreSQL, commits of other processes wake them through
//! `LISTEN`/`NOTIFY` (each commit of an asynchronous domain notifies in its transaction, so
//! the notification arrives at commit). Besides, and in place of a lost listener, subscriptions poll with a backoff from
//! 20 ms to 1 s while nothing comes (SQLite's only signal across processes).

mod dead_letters;
#[cfg(feature = "http")]
pub(crate) mod http;
mod subscription;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rand::Rng;
use tokio::sync::watch;

use crate::model::error::{Error, Result};
use crate::registry::Registry;
use crate::runtime::commit::{Commit, CommitHook};
use crate::runtime::config::Processing;
use crate::runtime::dispatch::{Batch, Dispatcher};
use crate::runtime::domain::Domain;
use crate::store::system::{self, Checkpoint, DeadLetter};
use crate::store::{Cursor, GlobalRead, Transaction};

pub use dead_letters::{DeadLetters, ReplaySummary};
pub(crate) use subscription::Subscription;

/// How a failing projector or event handler is retried before its event is dead-lettered
/// (`DomainBuilder::handler_retry`).
///
/// Waits grow exponentially from the base delay (doubling, at most the maximum), each one a
/// random duration between half the exponential value and the value (jitter), so handlers
/// failing on a shared resource do not retry in step.
///
/// **The default**: 5 attempts, from 100 ms, at most 10 s.
///
/// ```
/// use std::time::Duration;
/// use fidelis_core::HandlerRetry;
/// let fast = HandlerRetry::exponential(3, Duration::from_millis(1));
/// assert_eq!(fast.attempts(), 3);
/// assert_eq!(HandlerRetry::none().attempts(), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandlerRetry {
    attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
}

impl Default for HandlerRetry {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl HandlerRetry {
    /// `attempts` in all (at least 1), waiting from `base_delay`, doubling, at most 10 s.
    pub fn exponential(attempts: u32, base_delay: Duration) -> Self {
        Self {
            attempts: attempts.max(1),
            base_delay,
            ..Self::default()
        }
    }

    /// One attempt: a failure is dead-lettered at once.
    pub fn none() -> Self {
        Self::exponential(1, Duration::ZERO)
    }

    /// Caps each wait.
    pub fn with_max_delay(self, max_delay: Duration) -> Self {
        Self { max_delay, ..self }
    }

    /// Attempts in all, the first included.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The wait before retry number `retry` (1 for the first retry).
    pub(crate) fn delay(&self, retry: u32) -> Duration {
        let factor = 2_u32.saturating_pow(retry.saturating_sub(1));
        let full = self.base_delay.saturating_mul(factor).min(self.max_delay);
        let half = full / 2;
        if full.is_zero() {
            return full;
        }
        rand::rng().random_range(half..=full)
    }
}

/// What the engine shares with the domain: the subscriptions, each run by one task at a time
/// in this process.
pub(crate) struct EngineShared {
    subscriptions: Vec<Arc<Subscription>>,
}

/// Bumped on every commit of events in this process: waiting subscriptions wake up. One for
/// the process rather than per domain, because a web domain and an engine domain of one
/// process may share a database; a wake-up that finds nothing new costs one read.
fn commits() -> &'static watch::Sender<u64> {
    static COMMITS: std::sync::OnceLock<watch::Sender<u64>> = std::sync::OnceLock::new();
    COMMITS.get_or_init(|| watch::Sender::new(0))
}

fn wake_all() {
    commits().send_modify(|count| *count = count.wrapping_add(1));
}

impl EngineShared {
    pub(crate) fn new(registry: &Registry) -> Self {
        Self {
            subscriptions: registry
                .subscribers
                .iter()
                .map(|info| Arc::new(Subscription::new(info.clone())))
                .collect(),
        }
    }

    pub(crate) fn subscription(&self, name: &str) -> Option<&Arc<Subscription>> {
        self.subscriptions.iter().find(|s| s.name() == name)
    }
}

/// The dispatcher of asynchronous processing: a commit only wakes the engine, which reads the
/// events from the store.
pub(crate) struct AsyncDispatcher;

impl Dispatcher for AsyncDispatcher {
    fn dispatch(&self, batch: Batch) -> BoxFuture<'static, ()> {
        drop(batch);
        wake_all();
        Box::pin(async {})
    }
}

/// The commit hook of asynchronous processing: a commit with events asks the store to wake
/// the engines listening on it (other processes' included) when it commits.
pub(crate) struct NotifyEngines;

#[async_trait::async_trait]
impl CommitHook for NotifyEngines {
    fn name(&self) -> &'static str {
        "notify engines"
    }

    async fn on_commit(
        &self,
        commit: &Commit<'_>,
        transaction: &mut dyn Transaction,
    ) -> Result<()> {
        if commit.events.is_empty() {
            return Ok(());
        }
        transaction.notify_commit().await
    }
}

/// The driver of a domain's subscriptions, in
/// [asynchronous processing](crate::Processing::Async). Cheap to clone; every clone and every
/// `domain.engine()` of one domain share the subscriptions, so two runs in one process never
/// handle a subscription at the same time.
///
/// Each projector and event handler is a subscription named after it, reading the categories
/// of its aggregates in global order, in batches, from its checkpoint: a projector's rows
/// and checkpoint commit in one transaction (exactly once); an event handler's checkpoint
/// moves after its unit of work commits (at least once, the event id stable). A failing
/// event is retried ([`HandlerRetry`]), then dead-lettered, holding back the later events of
/// its stream in that subscription only ([`DeadLetters`]). Commits of this process wake the
/// engine at once, PostgreSQL's `NOTIFY` wakes it for other processes' commits, and it polls
/// besides (20 ms to 1 s).
///
/// ```rust,standalone_crate
/// use fidelis_core::prelude::*;
/// use fidelis_core::config::Processing;
///
/// # #[tokio::main]
/// # async fn main() -> Result<()> {
/// let domain = Domain::builder("bank")
///     .processing(Processing::Async)
///     .build()
///     .await?;
/// let engine = domain.engine();
/// engine.run_until_idle().await?;          // tests: everything stored so far
/// engine.run(async { /* shutdown signal */ }).await?; // services: until the signal
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Engine {
    domain: Domain,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("domain", &self.domain.name())
            .finish_non_exhaustive()
    }
}

/// The shortest and longest waits between polls of the store while nothing comes.
const POLL_MIN: Duration = Duration::from_millis(20);
const POLL_MAX: Duration = Duration::from_secs(1);

impl Engine {
    pub(crate) fn new(domain: Domain) -> Self {
        Self { domain }
    }

    /// A usage error unless the domain processes asynchronously: in synchronous processing
    /// the projectors already ran in each commit, and the engine would apply them again.
    fn check_async(&self) -> Result<()> {
        match self.domain.processing() {
            Processing::Async => Ok(()),
            Processing::Sync => Err(Error::usage(format!(
                "domain `{}` processes synchronously: its projectors and event handlers run in \
                 `process`, so it has no engine to run; build it with \
                 `.processing(Processing::Async)` (or `[processing] mode = \"async\"`)",
                self.domain.name()
            ))),
        }
    }

    fn subscriptions(&self) -> &[Arc<Subscription>] {
        &self.domain.engine_shared().subscriptions
    }

    /// Handles every event stored so far (and the events their handlers commit), then
    /// returns. Failing events are retried and dead-lettered as in [`run`](Self::run); an
    /// error is returned only when the store cannot be read or written.
    pub async fn run_until_idle(&self) -> Result<()> {
        self.check_async()?;
        loop {
            // Everything committed so far (before the call, and by the handlers of the last
            // round) is readable in global order from here on: on PostgreSQL an event is
            // readable only once the transactions that began before it have ended.
            self.domain.storage().settle().await?;
            let mut progressed = false;
            for subscription in self.subscriptions() {
                while subscription.step(&self.domain).await? > 0 {
                    progressed = true;
                }
            }
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Runs every subscription until `shutdown` resolves, then lets each finish the batch it
    /// is handling (its checkpoint saved) and returns. A store error is logged, kept in
    /// [`status`](Self::status), and retried with backoff; it does not stop the engine.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        self.check_async()?;
        let (stop, stopped) = watch::channel(false);
        let tasks: Vec<_> = self
            .subscriptions()
            .iter()
            .map(|subscription| {
                tokio::spawn(run_subscription(
                    self.domain.clone(),
                    subscription.clone(),
                    stopped.clone(),
                ))
            })
            .collect();
        let listener = tokio::spawn(listen(self.domain.clone(), stopped.clone()));
        tracing::info!(domain = %self.domain.name(), subscriptions = tasks.len(), "engine running");
        shutdown.await;
        tracing::info!(domain = %self.domain.name(), "engine stopping: draining in-flight work");
        let _ = stop.send(true);
        listener.abort();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a subscription task ended abnormally");
            }
        }
        Ok(())
    }

    /// Where each subscription stands, by name.
    pub async fn status(&self) -> Result<Vec<SubscriptionStatus>> {
        let storage = self.domain.storage();
        let dead_letters = system::query::<DeadLetter>(storage.as_ref(), &Default::default())
            .await?
            .into_iter()
            .fold(BTreeMap::<String, u64>::new(), |mut counts, letter| {
                *counts.entry(letter.subscription).or_default() += 1;
                counts
            });
        let mut statuses = Vec::new();
        for subscription in self.subscriptions() {
            let position = system::get::<Checkpoint>(
                storage.as_ref(),
                &Checkpoint::key(subscription.name(), 0),
            )
            .await?
            .map_or(Cursor::START, |c| Cursor {
                commit: c.commit,
                position: c.position,
            });
            let categories = subscription.categories();
            let waiting = storage
                .read_categories(&GlobalRead {
                    categories: &categories,
                    after: position,
                    limit: LAG_CAP,
                    partition: None,
                })
                .await?;
            let head = waiting.last().map_or(position, |e| e.metadata.cursor());
            let behind = waiting.first().map_or(Duration::ZERO, |oldest| {
                (chrono::Utc::now() - oldest.metadata.time)
                    .to_std()
                    .unwrap_or_default()
            });
            statuses.push(SubscriptionStatus {
                name: subscription.name().to_owned(),
                projector: subscription.is_projector(),
                partition: 0,
                position,
                head,
                lag: waiting.len() as u64,
                behind,
                dead_letters: dead_letters
                    .get(subscription.name())
                    .copied()
                    .unwrap_or_default(),
                last_error: subscription.last_error(),
            });
        }
        Ok(statuses)
    }
}

/// The most events [`Engine::status`] counts in a lag (a lag at the cap means "at least").
pub const LAG_CAP: usize = 100_000;

/// Where a subscription stands ([`Engine::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// The subscription: the projector's or event handler's name.
    pub name: String,
    /// Whether it is a projector's (else an event handler's).
    pub projector: bool,
    /// The partition (0: subscriptions are not partitioned yet).
    pub partition: u32,
    /// The last event it handled.
    pub position: Cursor,
    /// The last event of its categories readable now.
    pub head: Cursor,
    /// How many events of its categories it has still to read (at most [`LAG_CAP`]).
    pub lag: u64,
    /// How long ago the oldest of those was committed (zero when it is caught up).
    pub behind: Duration,
    /// Its dead letters.
    pub dead_letters: u64,
    /// The last error this process saw it fail with (a handler's, or the store's).
    pub last_error: Option<String>,
}

/// Forwards the store's commit signal (other processes' commits) to the subscriptions, for
/// as long as the engine runs; listens again after a lost connection.
async fn listen(domain: Domain, mut stopped: watch::Receiver<bool>) {
    use futures::StreamExt;
    let mut failures = 0_u32;
    while !*stopped.borrow() {
        match domain.storage().commit_signal().await {
            Ok(None) => return,
            Ok(Some(mut signal)) => {
                failures = 0;
                tracing::debug!(domain = %domain.name(), "listening for commits");
                while signal.next().await.is_some() {
                    wake_all();
                }
                tracing::warn!(domain = %domain.name(), "commit listener lost its connection; polling until it is back");
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                tracing::warn!(domain = %domain.name(), %error, "cannot listen for commits; polling");
            }
        }
        let delay = HandlerRetry::default()
            .with_max_delay(Duration::from_secs(30))
            .delay(failures.max(1));
        tokio::select! {
            _ = stopped.changed() => {}
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One subscription's loop in [`Engine::run`].
async fn run_subscription(
    domain: Domain,
    subscription: Arc<Subscription>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut wake = commits().subscribe();
    let mut idle = POLL_MIN;
    let mut failures = 0_u32;
    while !*stopped.borrow() {
        match subscription.step(&domain).await {
            Ok(0) => {
                failures = 0;
                tokio::select! {
                    _ = wake.changed() => idle = POLL_MIN,
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(idle) => idle = (idle * 2).min(POLL_MAX),
                }
            }
            Ok(_) => {
                failures = 0;
                idle = POLL_MIN;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = HandlerRetry::default()
                    .with_max_delay(Duration::from_secs(30))
                    .delay(failures);
                tracing::error!(
                    subscription = subscription.name(),
                    %error,
                    ?delay,
                    "subscription failed to read or write the store; retrying"
                );
                subscription.set_last_error(error.to_string());
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
