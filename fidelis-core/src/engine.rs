//! The engine: runs a domain's projectors and event handlers from the stored events, in
//! [asynchronous processing](crate::runtime::config::Processing::Async).
//!
//! Each projector and event handler is a *subscription*, named after the element: it reads
//! the categories of the aggregates it listens to in global order, in batches, from its
//! [`Checkpoint`]. A projector's batch and its checkpoint commit in one transaction (each
//! event changes the projection exactly once); an event handler's unit of work commits with
//! its checkpoint (its database writes land once; effects outside the database are at least
//! once, and the event's id stays the same on a redelivery).
//!
//! A failing event is retried ([`HandlerRetry`]), then dead-lettered ([`DeadLetter`]): the
//! later events of its stream wait behind it for that subscription, other streams go on, and
//! [`DeadLetters`](crate::DeadLetters) replays or purges it.
//!
//! Subscribers of broker streams (`#[subscriber]`) are consumed here too, in both processing
//! modes, when the domain has a broker (`engine/subscribers.rs`).
//!
//! Wake-ups: a commit made through any domain of this process wakes the engines at once (on
//! every adapter); on PostgreSQL, commits of other processes wake them through
//! `LISTEN`/`NOTIFY` (each commit of an asynchronous domain notifies in its transaction, so
//! the notification arrives at commit). Besides, and in place of a lost listener, subscriptions poll with a backoff from
//! 20 ms to 1 s while nothing comes (SQLite's only signal across processes).

mod commands;
mod dead_letters;
#[cfg(feature = "http")]
pub(crate) mod http;
mod lease;
mod partitions;
mod relay;
mod subscribers;
mod subscription;

use std::collections::HashMap;
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
use crate::store::system::{self, DeadLetter, Lease};
use crate::store::{Cursor, GlobalRead, Transaction};

pub(crate) use commands::CommandQueue;
pub use commands::{COMMANDS_SUBSCRIPTION, CommandQueueStatus};
pub use dead_letters::{DeadLetters, ReplaySummary};
pub use lease::{DEFAULT_LEASE, DEFAULT_POSTGRES_PARTITIONS};
pub(crate) use lease::{Leases, shared_by_engines};
pub use relay::RelayStatus;
use relay::{Relay, Round};
pub(crate) use subscribers::SubscriberConsumer;
pub(crate) use subscription::Subscription;
use subscription::Turn;

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

/// What the engine shares with the domain: the subscriptions (each partition run by one task
/// at a time in this process) and the leases this process holds.
pub(crate) struct EngineShared {
    subscriptions: Vec<Arc<Subscription>>,
    /// The consumers of the subscribers of broker streams (engine/subscribers.rs), in both
    /// processing modes: they read a broker, not the stored events.
    subscribers: Vec<Arc<SubscriberConsumer>>,
    /// The dispatcher of submitted commands (engine/commands.rs).
    pub(crate) commands: Arc<CommandQueue>,
    /// The outbox relay (engine/relay.rs).
    relay: Arc<Relay>,
    leases: Leases,
    /// Set once the checkpoints' partition layout was checked (see `partitions.rs`).
    layout: tokio::sync::OnceCell<()>,
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

/// Wakes this process's engines (a command was submitted, or a commit wrote outbox rows).
pub(crate) fn wake_engines() {
    wake_all();
}

impl EngineShared {
    /// The subscriptions of a domain's registry, each split into `partitions`, leased for
    /// `lease` at a time.
    pub(crate) fn new(registry: &Registry, domain: &str, partitions: u32, lease: Duration) -> Self {
        Self {
            subscriptions: registry
                .subscribers
                .iter()
                .map(|info| Arc::new(Subscription::new(info.clone(), partitions)))
                .collect(),
            subscribers: registry
                .broker_subscribers
                .iter()
                .map(|subscriber| Arc::new(SubscriberConsumer::new(subscriber)))
                .collect(),
            commands: Arc::default(),
            relay: Arc::default(),
            leases: Leases::new(domain, lease),
            layout: tokio::sync::OnceCell::new(),
        }
    }

    /// This engine process's owner id (leases, outbox claims).
    pub(crate) fn owner(&self) -> &str {
        self.leases.owner()
    }

    /// The lease time, which is also how long an outbox claim holds.
    pub(crate) fn lease(&self) -> Duration {
        self.leases.lease()
    }

    pub(crate) fn subscription(&self, name: &str) -> Option<&Arc<Subscription>> {
        // Dead letters name a versioned projector's subscription with its version.
        self.subscriptions
            .iter()
            .find(|s| s.name() == name || s.checkpoint_name() == name)
    }

    /// The consumer of the subscriber named `name`.
    pub(crate) fn subscriber(&self, name: &str) -> Option<&Arc<SubscriberConsumer>> {
        self.subscribers.iter().find(|s| s.name() == name)
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
/// and checkpoint commit in one transaction (exactly once); an event handler's unit of work
/// commits with its checkpoint (its database writes once; outside effects at least once, the
/// event id stable). A failing
/// event is retried ([`HandlerRetry`]), then dead-lettered, holding back the later events of
/// its stream in that subscription only ([`DeadLetters`]). With a broker
/// ([`DomainBuilder::broker_adapter`](crate::DomainBuilder::broker_adapter)), it also consumes
/// each subscriber's stream (`#[subscriber]`). Commits of this process wake the
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

    /// A usage error unless the domain processes asynchronously (the HTTP listener reports
    /// subscriptions, which only asynchronous processing has).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
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

    /// The subscriptions this engine runs: none in synchronous processing, where the
    /// projectors and event handlers run in each commit (the engine would apply them again);
    /// there it only processes submitted commands.
    fn subscriptions(&self) -> &[Arc<Subscription>] {
        match self.domain.processing() {
            Processing::Async => &self.domain.engine_shared().subscriptions,
            Processing::Sync => &[],
        }
    }

    fn commands(&self) -> &Arc<CommandQueue> {
        &self.domain.engine_shared().commands
    }

    fn leases(&self) -> &Leases {
        &self.domain.engine_shared().leases
    }

    /// Checks (once) that the stored checkpoints were written for this partition count.
    async fn prepare(&self) -> Result<()> {
        let shared = self.domain.engine_shared();
        shared
            .layout
            .get_or_try_init(|| partitions::check_layout(&self.domain, &shared.subscriptions))
            .await?;
        Ok(())
    }

    /// This engine process's owner id in the lease rows (`<host>:<pid>:<random>`), as
    /// [`status`](Self::status) shows it.
    pub fn owner(&self) -> &str {
        self.leases().owner()
    }

    /// Handles every event stored so far (and the events their handlers commit), then
    /// returns. Failing events are retried and dead-lettered as in [`run`](Self::run); an
    /// error is returned only when the store cannot be read or written, or (SQLite, memory)
    /// when another engine runs on the database.
    ///
    /// It takes the leases of the partitions no other engine holds (and gives them back at
    /// the end, unless a [`run`](Self::run) of this engine is under way); the partitions
    /// other live engines hold, it waits for them to reach what was stored at the call.
    pub async fn run_until_idle(&self) -> Result<()> {
        // Everything committed before the call is readable in global order from here on.
        self.domain.storage().settle().await?;
        self.prepare().await?;
        let mut taken = Vec::new();
        let outcome = self.drain(&mut taken).await;
        if !self.leases().running() {
            for key in taken {
                if let Err(error) = self
                    .leases()
                    .release(self.domain.storage().as_ref(), &key)
                    .await
                {
                    tracing::warn!(%error, key, "could not release a lease; it lapses by itself");
                }
            }
        }
        outcome
    }

    async fn drain(&self, taken: &mut Vec<String>) -> Result<()> {
        let storage = self.domain.storage().as_ref();
        let leases = self.leases();
        let mut elsewhere = Vec::new();
        loop {
            // Everything committed so far (before the call, and by the handlers of the last
            // round) is readable in global order from here on: on PostgreSQL an event is
            // readable only once the transactions that began before it have ended.
            self.domain.storage().settle().await?;
            let mut progressed = false;
            while self.commands().step(&self.domain).await? > 0 {
                progressed = true;
            }
            progressed |= self.relay_until_idle().await?;
            progressed |=
                subscribers::drain(&self.domain, &self.domain.engine_shared().subscribers).await?;
            elsewhere.clear();
            let mut mine = Vec::new();
            for subscription in self.subscriptions() {
                for partition in 0..subscription.partitions() {
                    let key = subscription.key(partition);
                    if leases.fence(&key).is_none() {
                        if !leases
                            .take(storage, subscription.checkpoint_name(), partition)
                            .await?
                        {
                            elsewhere.push((subscription.clone(), partition));
                            continue;
                        }
                        if !taken.contains(&key) {
                            taken.push(key.clone());
                        }
                    }
                    mine.push((subscription, partition));
                }
            }
            // The partitions held here run side by side, as `run`'s one task per partition
            // does: each has its own checkpoint, lease and fence, and a stream's events are
            // all in one partition, handled in order there. (One after another, PostgreSQL's
            // four partitions caught up at a quarter of one partition's speed.)
            let steps = mine
                .iter()
                .map(|(subscription, partition)| self.step_until_idle(subscription, *partition));
            for stepped in futures::future::join_all(steps).await {
                progressed |= stepped?;
            }
            if !progressed {
                break;
            }
        }
        // Partitions other engines hold: wait until they handled what was stored at the call
        // (or their holder went away, and the partition is handled here).
        for (subscription, partition) in elsewhere {
            let categories = subscription.categories();
            let at = subscription.checkpoint(storage, partition).await?;
            let target = storage
                .backlog(&GlobalRead {
                    categories: &categories,
                    after: at,
                    limit: 0,
                    partition: subscription.partition(partition),
                })
                .await?
                .last;
            let Some(target) = target else { continue };
            loop {
                tokio::time::sleep(POLL_MIN).await;
                if subscription.checkpoint(storage, partition).await? >= target {
                    break;
                }
                if leases
                    .take(storage, subscription.checkpoint_name(), partition)
                    .await?
                {
                    taken.push(subscription.key(partition));
                    self.step_until_idle(&subscription, partition).await?;
                    break;
                }
            }
        }
        Ok(())
    }

    /// Relays the outbox until nothing is left to publish here or the broker refuses (its
    /// error is kept for [`relay_status`](Self::relay_status), not returned: commands and
    /// subscriptions go on while a broker is down). Whether it published anything.
    async fn relay_until_idle(&self) -> Result<bool> {
        let shared = self.domain.engine_shared();
        let mut published = false;
        while let Round::Published(_) = shared
            .relay
            .step(&self.domain, shared.owner(), shared.lease())
            .await?
        {
            published = true;
        }
        Ok(published)
    }

    /// The outbox relay: its broker, the events waiting for it, what this process published
    /// and the last broker error. `None` when the domain has no broker.
    pub async fn relay_status(&self) -> Result<Option<RelayStatus>> {
        self.domain.engine_shared().relay.status(&self.domain).await
    }

    /// Steps one partition while it has events and its lease holds; whether it read any.
    async fn step_until_idle(&self, subscription: &Subscription, partition: u32) -> Result<bool> {
        let storage = self.domain.storage().as_ref();
        let leases = self.leases();
        let key = subscription.key(partition);
        let mut progressed = false;
        loop {
            leases.renew_due(storage).await?;
            let Some(fence) = leases.fence(&key) else {
                return Ok(progressed);
            };
            let turn = Turn {
                partition,
                fence,
                leases,
                stop: None,
            };
            if subscription.step(&self.domain, &turn).await? == 0 {
                return Ok(progressed);
            }
            progressed = true;
        }
    }

    /// Runs every subscription until `shutdown` resolves, then lets each partition finish
    /// the batch it is handling (its checkpoint saved; a handler waiting to retry stops
    /// waiting), gives its leases back and returns. A store error is logged, kept in
    /// [`status`](Self::status), and retried with backoff; it does not stop the engine.
    ///
    /// On PostgreSQL, engines of several processes share the partitions: each takes about
    /// `partitions × subscriptions / live engines` leases and renews them every third of the
    /// lease time; a killed engine's partitions are taken over once its leases lapse. On
    /// SQLite and in memory, another engine on the same database is an error, returned here.
    pub async fn run(&self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        self.prepare().await?;
        let leases = self.leases();
        let storage = self.domain.storage();
        leases.run_started();
        let _running = RunGuard(self.domain.clone());
        // The first leases before anything runs: on a one-engine store, another engine's
        // lease is an error here.
        if let Err(error) = partitions::rebalance(&self.domain, self.subscriptions()).await {
            self.give_back().await;
            return Err(error);
        }
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        for subscription in self.subscriptions() {
            for partition in 0..subscription.partitions() {
                tasks.push(tokio::spawn(run_partition(
                    self.domain.clone(),
                    subscription.clone(),
                    partition,
                    stopped.clone(),
                )));
            }
        }
        for consumer in &self.domain.engine_shared().subscribers {
            tasks.push(tokio::spawn(subscribers::run(
                self.domain.clone(),
                consumer.clone(),
                stopped.clone(),
            )));
        }
        tasks.push(tokio::spawn(commands::run(
            self.domain.clone(),
            self.commands().clone(),
            stopped.clone(),
        )));
        if self.domain.broker().is_some() {
            tasks.push(tokio::spawn(relay::run(
                self.domain.clone(),
                self.domain.engine_shared().relay.clone(),
                stopped.clone(),
            )));
        }
        let coordinator = tokio::spawn(coordinate(self.domain.clone(), stopped.clone()));
        let listener = tokio::spawn(listen(self.domain.clone(), stopped.clone()));
        tracing::info!(
            domain = %self.domain.name(),
            owner = leases.owner(),
            subscriptions = self.subscriptions().len(),
            partitions = tasks.len(),
            store = storage.kind(),
            "engine running"
        );
        shutdown.await;
        tracing::info!(domain = %self.domain.name(), "engine stopping: draining in-flight work");
        let _ = stop.send(true);
        listener.abort();
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a partition task ended abnormally");
            }
        }
        if let Err(error) = coordinator.await {
            tracing::error!(%error, "the lease task ended abnormally");
        }
        self.give_back().await;
        Ok(())
    }

    /// The queue of submitted commands: how many wait in each lane, how many are
    /// dead-lettered.
    pub async fn command_status(&self) -> Result<CommandQueueStatus> {
        commands::status(&self.domain, self.commands()).await
    }

    /// A clean shutdown's last step: every lease back (others take them over at once) and
    /// the member row gone.
    async fn give_back(&self) {
        let storage = self.domain.storage().as_ref();
        for key in self.leases().held_keys() {
            if let Err(error) = self.leases().release(storage, &key).await {
                tracing::warn!(%error, key, "could not release a lease; it lapses by itself");
            }
        }
        if shared_by_engines(storage)
            && let Err(error) = self.leases().leave(storage).await
        {
            tracing::warn!(%error, "could not remove this engine's member row; it lapses by itself");
        }
    }

    /// Where each subscription's partitions stand: one row per subscription and partition,
    /// and, when the domain has a broker, one per subscriber of a broker stream (with its
    /// handled count), by name then partition. The lag is counted by the store (one `COUNT` on
    /// SQL stores), exactly.
    pub async fn status(&self) -> Result<Vec<SubscriptionStatus>> {
        let storage = self.domain.storage();
        let letters = system::query::<DeadLetter>(storage.as_ref(), &Default::default()).await?;
        let leases: HashMap<String, Lease> =
            system::query::<Lease>(storage.as_ref(), &Default::default())
                .await?
                .into_iter()
                .map(|lease| (lease.id.clone(), lease))
                .collect();
        let now = chrono::Utc::now();
        let mut statuses = Vec::new();
        for subscription in self.subscriptions() {
            let categories = subscription.categories();
            for partition in 0..subscription.partitions() {
                let position = subscription.checkpoint(storage.as_ref(), partition).await?;
                let read = GlobalRead {
                    categories: &categories,
                    after: position,
                    limit: 1,
                    partition: subscription.partition(partition),
                };
                let backlog = storage.backlog(&read).await?;
                let behind = if backlog.events == 0 {
                    Duration::ZERO
                } else {
                    storage
                        .read_categories(&read)
                        .await?
                        .first()
                        .map_or(Duration::ZERO, |oldest| {
                            (now - oldest.metadata.time).to_std().unwrap_or_default()
                        })
                };
                let dead_letters = letters
                    .iter()
                    .filter(|letter| {
                        letter.subscription == subscription.checkpoint_name()
                            && subscription.partition_of(&letter.stream) == partition
                    })
                    .count() as u64;
                let owner = leases
                    .get(&subscription.key(partition))
                    .filter(|lease| !lease.owner.is_empty() && lease.expires_at > now)
                    .map(|lease| lease.owner.clone());
                statuses.push(SubscriptionStatus {
                    name: subscription.name().to_owned(),
                    projector: subscription.is_projector(),
                    partition,
                    partitions: subscription.partitions(),
                    position,
                    head: backlog.last.unwrap_or(position),
                    lag: backlog.events,
                    behind,
                    dead_letters,
                    owner,
                    last_error: subscription.last_error(partition),
                    handled: None,
                });
            }
        }
        // Subscribers run in the engine only when the domain has a broker to consume from.
        if self.domain.broker().is_some() {
            for consumer in &self.domain.engine_shared().subscribers {
                statuses.push(consumer.status(&self.domain, &letters).await?);
            }
        }
        statuses.sort_by(|a, b| (&a.name, a.partition).cmp(&(&b.name, b.partition)));
        Ok(statuses)
    }
}

/// Marks the end of a [`Engine::run`] however it ends.
struct RunGuard(Domain);

impl Drop for RunGuard {
    fn drop(&mut self) {
        self.0.engine_shared().leases.run_ended();
    }
}

/// Where one partition of a subscription stands ([`Engine::status`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// The subscription: the projector's or event handler's name.
    pub name: String,
    /// Whether it is a projector's (else an event handler's).
    pub projector: bool,
    /// The partition, from 0 to `partitions - 1`.
    pub partition: u32,
    /// How many partitions the subscription's streams are split into.
    pub partitions: u32,
    /// The last event it handled.
    pub position: Cursor,
    /// The last event of its categories (and partition) readable now (its position when
    /// none follows it).
    pub head: Cursor,
    /// How many events of its categories (and partition) it has still to read.
    pub lag: u64,
    /// How long ago the oldest of those was committed (zero when it is caught up).
    pub behind: Duration,
    /// Its dead letters.
    pub dead_letters: u64,
    /// The engine process holding the partition's lease (its
    /// [`Engine::owner`]), `None` when no engine holds it now.
    pub owner: Option<String>,
    /// The last error this process saw it fail with (a handler's, or the store's).
    pub last_error: Option<String>,
    /// A subscriber of a broker stream (`#[subscriber]`): how many messages it has handled
    /// (all engines together). Its position, head and lag stay at zero: the broker keeps
    /// them. `None` for projectors and event handlers.
    pub handled: Option<u64>,
}

/// Renews, releases and takes leases every third of the lease time while the engine runs.
async fn coordinate(domain: Domain, mut stopped: watch::Receiver<bool>) {
    let period = domain.engine_shared().leases.lease() / 3;
    // None in synchronous processing, where the engine runs submitted commands only.
    let subscriptions = match domain.processing() {
        Processing::Async => domain.engine_shared().subscriptions.clone(),
        Processing::Sync => Vec::new(),
    };
    while !*stopped.borrow() {
        tokio::select! {
            _ = stopped.changed() => continue,
            () = tokio::time::sleep(period) => {}
        }
        if let Err(error) = partitions::rebalance(&domain, &subscriptions).await {
            tracing::error!(domain = %domain.name(), %error, "could not renew or balance the leases; retrying");
        }
    }
}

/// One partition's loop in [`Engine::run`]: handles it while this engine holds its lease.
async fn run_partition(
    domain: Domain,
    subscription: Arc<Subscription>,
    partition: u32,
    mut stopped: watch::Receiver<bool>,
) {
    let leases = &domain.engine_shared().leases;
    let key = subscription.key(partition);
    let mut lease_changes = leases.subscribe();
    let mut wake = commits().subscribe();
    let mut idle = POLL_MIN;
    let mut failures = 0_u32;
    while !*stopped.borrow() {
        let Some(fence) = leases.fence(&key) else {
            tokio::select! {
                _ = lease_changes.changed() => {}
                _ = stopped.changed() => {}
                () = tokio::time::sleep(leases.lease() / 3) => {}
            }
            continue;
        };
        let turn = Turn {
            partition,
            fence,
            leases,
            stop: Some(stopped.clone()),
        };
        tracing::trace!(
            subscription = subscription.name(),
            partition,
            token = turn.fence.token,
            "partition step"
        );
        match subscription.step(&domain, &turn).await {
            Ok(0) => {
                failures = 0;
                tokio::select! {
                    _ = wake.changed() => idle = POLL_MIN,
                    _ = stopped.changed() => {}
                    _ = lease_changes.changed() => {}
                    () = tokio::time::sleep(idle) => idle = (idle * 2).min(POLL_MAX),
                }
            }
            Ok(read) => {
                tracing::debug!(
                    subscription = subscription.name(),
                    partition,
                    read,
                    "partition batch handled"
                );
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
                    partition,
                    %error,
                    ?delay,
                    "subscription failed to read or write the store; retrying"
                );
                subscription.set_last_error(partition, error.to_string());
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
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
