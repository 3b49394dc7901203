//! The domain: its registry, storage and configuration, and command processing.

use crate::FastMap;
use std::any::{Any, TypeId};
use std::collections::BTreeSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::FutureExt;
use futures::future::BoxFuture;
use tracing::Instrument;

use crate::engine::{
    AsyncDispatcher, DeadLetters, Engine, EngineShared, HandlerRetry, NotifyEngines,
};
use crate::model::element::{Aggregate, Element, Handled, Persisted};
use crate::model::error::{Error, Result};
use crate::model::event::{EventMetadata, Extensions, Priority, RecordedEvent};
use crate::model::identifier::Identifier;
use crate::registry::{Registrar, Registry, discovered};
use crate::runtime::command_log::{self, LoggedData};
use crate::runtime::commit::{CommandRecord, CommitHook, InlineProjectors};
use crate::runtime::config::Processing;
use crate::runtime::context::{Context, Processed};
use crate::runtime::dispatch::{Dispatcher, SyncDispatcher};
use crate::runtime::options::{
    CommandEnricher, CommandMetadata, EventEnricher, Lineage, ProcessOptions, enrich_command,
};
use crate::runtime::repository::DomainRepository;
use crate::runtime::retry::RetryPolicy;
use crate::runtime::unit_of_work;
use crate::store::system::{self, CommandLogEntry};
use crate::store::{Cursor, Storage, TableSchema};

/// A bounded context: its elements, storage and configuration. Cheap to clone, `Send + Sync`
/// (share it as axum state).
///
/// ```rust,standalone_crate
/// use fidelis_core::prelude::*;
///
/// #[aggregate]
/// pub struct Account {
///     pub holder: String,
/// }
///
/// #[command(part_of = Account)]
/// pub struct OpenAccount { pub holder: String }
///
/// #[aggregate]
/// impl Account {
///     #[handle(OpenAccount, create)]
///     fn open(command: OpenAccount) -> Result<Self> {
///         Ok(Self { holder: command.holder, ..Self::create_new() })
///     }
/// }
///
/// # #[tokio::main]
/// # async fn main() -> Result<()> {
/// let domain = Domain::builder("fidelis").build().await?; // memory storage
/// let id: Identifier = domain.process(OpenAccount { holder: "Ada".into() }).await?;
/// assert_eq!(domain.repository::<Account>().get(&id).await?.holder, "Ada");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Domain {
    inner: Arc<DomainInner>,
}

struct DomainInner {
    /// Shared: every command log entry names it.
    name: Arc<str>,
    registry: Registry,
    storage: Arc<dyn Storage>,
    retry: RetryPolicy,
    resources: FastMap<TypeId, Arc<dyn Any + Send + Sync>>,
    cache: AggregateCache,
    /// Events since the latest snapshot that make a commit write one (0: never).
    snapshot_threshold: u64,
    failed_event_handlers: AtomicU64,
    event_handler_depth_limit: usize,
    /// What joins every commit's transaction, in order.
    commit_hooks: Vec<Arc<dyn CommitHook>>,
    /// Who is told of committed events.
    dispatcher: Arc<dyn Dispatcher>,
    /// Sync or async.
    processing: Processing,
    /// How the engine retries failing handlers.
    handler_retry: HandlerRetry,
    /// The engine's subscriptions and wake-up signal.
    engine: Arc<EngineShared>,
    /// Whether processed commands go to the command log.
    record_commands: bool,
    /// What adds extensions to every command, in order.
    command_enrichers: Vec<CommandEnricher>,
    /// What adds extensions to every event, in order.
    event_enrichers: Vec<EventEnricher>,
    /// Where the outbox relay publishes, if anywhere.
    broker: Option<Arc<dyn crate::broker::Broker>>,
}

/// How one command is processed: its place in a request, and where it came from.
#[derive(Default)]
pub(crate) struct Request {
    /// The command's id when it already has one (a submitted command).
    pub(crate) command_id: Option<Identifier>,
    /// The request's (`None`: the command starts one, correlating by its own id).
    pub(crate) correlation_id: Option<Identifier>,
    /// The event whose handler issued the command.
    pub(crate) causation_id: Option<Identifier>,
    pub(crate) priority: Priority,
    /// The call's own and the inherited ones: they win over the enrichers'.
    pub(crate) extensions: Extensions,
    /// When the command was received (`None`: now).
    pub(crate) received_at: Option<chrono::DateTime<Utc>>,
    /// The enrichers already ran (a submitted command's, when it was queued).
    pub(crate) enriched: bool,
    /// The version of the queue row of a submitted command, taken off the queue at commit.
    pub(crate) queued: Option<i64>,
    /// The record of a command a process manager's step issues, written with its events.
    pub(crate) step_command: Option<crate::store::system::StepCommand>,
}

/// A queued command as the engine hands it to its type's [`dispatch_queued`].
pub(crate) struct QueuedRequest {
    pub(crate) data: serde_json::Value,
    pub(crate) request: Request,
}

/// Decodes a queued command as `C` and processes it (the registry's per-type entry, see
/// `CommandRoute`). A command whose data no longer decodes is a serialization error.
pub(crate) fn dispatch_queued<C: Handled>(
    domain: &Domain,
    queued: QueuedRequest,
) -> BoxFuture<'_, Result<()>> {
    Box::pin(async move {
        let command: C =
            serde_json::from_value(queued.data).map_err(|error| Error::Serialization {
                what: format!("submitted command {}", C::NAME),
                message: error.to_string(),
            })?;
        domain
            .process_request(command, queued.request)
            .await
            .map(drop)
    })
}

/// What [`Domain::submit`] recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submitted {
    /// The command's id: the causation id of its events, the key of its command log entry.
    pub command_id: Identifier,
    /// `true` when a command with the same idempotency key was submitted before: nothing
    /// was recorded, and `command_id` is the first one's.
    pub duplicate: bool,
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domain")
            .field("name", &self.inner.name)
            .field("storage", &self.inner.storage.kind())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl Domain {
    /// Starts configuring a domain named `name` (`fidelis`): stream categories are
    /// `fidelis::account`, event type names `Fidelis.DepositMade.v1`.
    pub fn builder(name: impl Into<String>) -> DomainBuilder {
        DomainBuilder::new(name.into())
    }

    /// The domain's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The name, shared (a command log entry keeps it without a copy).
    pub(crate) fn shared_name(&self) -> Arc<str> {
        self.inner.name.clone()
    }

    /// The registry of the domain's elements.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The storage adapter itself: an escape hatch for tools and tests (inspecting or
    /// seeding the database). What goes through it **bypasses units of work**: no
    /// validation, invariants, projectors, event handlers, version checks against the
    /// aggregate cache, nor retries. Application code processes commands instead.
    pub fn storage_unchecked(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// The storage adapter, for the runtime's own units of work and reads.
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.inner.storage
    }

    /// Processes a command: validates it, runs its handler in a unit of work, commits
    /// (with the projectors, in sync processing), then runs event handlers. Returns the
    /// handler's output. A version conflict re-runs the handler as the retry policy says.
    ///
    /// Event handlers are run breadth-first, and all of them before `process` returns: the
    /// handlers of the command's events, then the handlers of the events those handlers
    /// committed, and so on, up to [`DomainBuilder::event_handler_depth_limit`] generations.
    ///
    /// `O` is always the handler's output type, inferred from `C`: call it as
    /// `domain.process(command).await`.
    // The signature is shaped for the compile error of a command without a handler: the one
    // bound `C: Handled` is checked at the argument, and the output type is a parameter
    // rather than the projection `C::Output` and the future a concrete box rather than an
    // `async fn`'s opaque type, so neither the call nor its `.await` re-states the same
    // missing impl (an `async fn` reported it three times).
    pub fn process<C, O>(&self, command: C) -> BoxFuture<'_, Result<O>>
    where
        C: Handled<Output = O>,
        O: Send + 'static,
    {
        self.process_with(command, ProcessOptions::new())
    }

    /// [`process`](Self::process) with options: a correlation id of the caller's, a
    /// [`Priority`] and extensions, which the command's events carry in their metadata and
    /// pass on to the commands event handlers issue for them (and to their events).
    ///
    /// ```rust,standalone_crate
    /// use fidelis_core::prelude::*;
    /// use fidelis_core::{Priority, ProcessOptions};
    ///
    /// #[event(part_of = Account)]
    /// pub struct Opened { pub account_id: Identifier }
    ///
    /// #[aggregate(event_sourced)]
    /// pub struct Account {}
    ///
    /// #[command(part_of = Account)]
    /// pub struct Open {}
    ///
    /// #[aggregate]
    /// impl Account {
    ///     #[apply]
    ///     fn opened(&mut self, _: &Opened) {}
    ///     #[handle(Open, create)]
    ///     fn open(_command: Open) -> Result<Self> {
    ///         let mut account = Self::create_new();
    ///         account.raise(Opened { account_id: account.id.clone() })?;
    ///         Ok(account)
    ///     }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<()> {
    /// let domain = Domain::builder("bank").build().await?;
    /// let options = ProcessOptions::new()
    ///     .priority(Priority::Bulk)
    ///     .extension("tenant", "acme");
    /// let id: Identifier = domain.process_with(Open {}, options).await?;
    /// let stream = domain.event_store().stream_of::<Account>(&id)?;
    /// let events = domain.event_store().read_stream(&stream).await?;
    /// assert_eq!(events[0].metadata.priority, Priority::Bulk);
    /// assert_eq!(events[0].metadata.extensions["tenant"], "acme");
    /// # Ok(())
    /// # }
    /// ```
    pub fn process_with<C, O>(
        &self,
        command: C,
        options: ProcessOptions,
    ) -> BoxFuture<'_, Result<O>>
    where
        C: Handled<Output = O>,
        O: Send + 'static,
    {
        Box::pin(async move {
            let request = Request {
                correlation_id: options.correlation_id,
                priority: options.priority.unwrap_or_default(),
                extensions: options.extensions,
                ..Request::default()
            };
            let (output, _) = self.process_request(command, request).await?;
            Ok(output)
        })
    }

    /// `process`, returning the events committed too, with the request's correlation,
    /// causation, priority and extensions. A command that starts a request (no correlation
    /// id given) correlates by its own id.
    pub(crate) async fn process_request<C: Handled>(
        &self,
        command: C,
        request: Request,
    ) -> Result<Processed<C::Output>> {
        let command_id = request.command_id.unwrap_or_else(Identifier::generate);
        let correlation_id = request.correlation_id.unwrap_or_else(|| command_id.clone());
        let causation_id = request.causation_id;
        let span = tracing::info_span!(
            "command",
            command = C::NAME,
            command_id = %command_id,
            correlation_id = %correlation_id,
            causation_id = causation_id.as_ref().map(tracing::field::display),
        );
        async move {
            if let Err(errors) = command.validate() {
                tracing::debug!(%errors, "command rejected: invalid fields");
                return Err(Error::Validation { element: C::NAME.to_owned(), errors });
            }
            let handler = self.command_handler::<C>()?;
            let mut metadata = CommandMetadata {
                id: command_id.clone(),
                type_name: self.command_type_name::<C>()?.to_owned(),
                correlation_id: correlation_id.clone(),
                causation_id: causation_id.clone(),
                priority: request.priority,
                extensions: request.extensions,
                time: request.received_at.unwrap_or_else(Utc::now),
            };
            if !request.enriched {
                metadata.extensions = enrich_command(&self.inner.command_enrichers, &metadata);
            }
            let lineage = Lineage {
                priority: metadata.priority,
                extensions: Arc::new(metadata.extensions.clone()),
            };
            // The log keeps the command typed, shared with the attempts below, and encodes it
            // with its entry; a command that would not encode is refused here all the same,
            // before its handler runs.
            let mut command = Some(command);
            let shared = if self.inner.record_commands {
                if let Some(command) = &command {
                    command_log::check_encodes(C::NAME, command)?;
                }
                command.take().map(Arc::new)
            } else {
                None
            };
            let logged = shared.clone().map(|command| command as Arc<dyn LoggedData>);
            let record = CommandRecord { metadata: Arc::new(metadata), logged, queued: request.queued };
            let record = record.writes().then(|| Arc::new(record));
            let max_attempts = self.inner.retry.max_attempts();
            let mut attempt = 1;
            let mut delay = std::time::Duration::ZERO;
            loop {
                // Each attempt works on a copy of the logged command; without the log, the last
                // attempt takes the command and earlier ones work on a copy.
                let this_command = match &shared {
                    Some(shared) => Some(C::clone(shared)),
                    None if attempt < max_attempts => command.clone(),
                    None => command.take(),
                };
                let Some(this_command) = this_command else {
                    return Err(Error::configuration("command consumed before its last attempt"));
                };
                let mut ctx = Context::new(self.clone(), correlation_id.clone(), Some(command_id.clone()));
                ctx.lineage = lineage.clone();
                ctx.command = record.clone();
                let step_command = request.step_command.clone();
                let result = async {
                    let handler_span = tracing::debug_span!(
                        "handler",
                        handler = <C::Handler as Element>::NAME,
                        attempt
                    );
                    // Unwind safety (why `AssertUnwindSafe` is sound): after a panic, the
                    // handler's unit of work (`ctx`, with everything it wrote) is dropped
                    // unused, before anything was stored; what else the handler reaches (the
                    // registry, the cache, storage) it only reads or changes through `ctx`.
                    // State a handler keeps in itself is its own to keep consistent, as in any
                    // tokio task. The panic becomes this command's error, not the caller's
                    // panic, so nothing is committed that the caller would then retry.
                    let output = AssertUnwindSafe(C::dispatch(handler, this_command, &mut ctx))
                        .catch_unwind()
                        .instrument(handler_span)
                        .await
                        .unwrap_or_else(|panic| {
                            let message = crate::task::panic_message(&*panic);
                            tracing::error!(
                                handler = <C::Handler as Element>::NAME,
                                %message,
                                "command handler panicked; nothing was stored"
                            );
                            Err(Error::handler(
                                <C::Handler as Element>::NAME,
                                format!("panicked while handling `{}`: {message}", C::NAME),
                            ))
                        })?;
                    if let Some(step_command) = step_command {
                        ctx.step_command =
                            Some(crate::runtime::step_command::with_output::<C>(step_command, &output)?);
                    }
                    // Commits, then delivers the events to their handlers.
                    let events = unit_of_work::commit(ctx).await?;
                    Ok::<_, Error>((output, events))
                }
                .await;
                match result {
                    Ok((output, events)) => return Ok((output, events)),
                    Err(error) if error.is_version_conflict() && attempt < max_attempts => {
                        delay = self.inner.retry.next_delay(delay);
                        tracing::debug!(%error, attempt, ?delay, "version conflict; retrying the handler");
                        tokio::time::sleep(delay).await;
                        attempt += 1;
                    }
                    Err(error) => {
                        // A bare `ValidationError` from the handler or an aggregate method
                        // (`?`) did not know its element: it rejected this command.
                        let error = error.name_unnamed_element(C::NAME);
                        tracing::debug!(%error, attempt, "command failed");
                        return Err(error);
                    }
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Records a command for the engine to process, and returns without running it (see
    /// [`submit_with`](Self::submit_with)).
    pub fn submit<C>(&self, command: C) -> BoxFuture<'_, Result<Submitted>>
    where
        C: Handled,
    {
        self.submit_with(command, ProcessOptions::new())
    }

    /// Records a command in the queue of submitted commands and returns its id; the engine
    /// ([`Engine::run`], [`Engine::run_until_idle`]) processes it later, in either
    /// processing mode. The command's fields are validated here (an invalid command is
    /// refused and nothing is recorded); its handler runs in the engine, which retries a
    /// failure as [`HandlerRetry`] says, or dead-letters it at once when it is not worth
    /// retrying (a validation, invariant or domain error), as subscription
    /// [`COMMANDS_SUBSCRIPTION`](crate::COMMANDS_SUBSCRIPTION) of
    /// [`dead_letters`](Self::dead_letters).
    ///
    /// With [`ProcessOptions::idempotency_key`], a second submission with the same key is
    /// not recorded again: it returns the first one's command id with `duplicate: true`
    /// (the key is taken in the transaction that queues the command, so two concurrent
    /// submissions queue one command). Commands of the normal lane are processed before any
    /// of [`Priority::Bulk`].
    ///
    /// ```rust,standalone_crate
    /// use fidelis_core::prelude::*;
    /// use fidelis_core::ProcessOptions;
    ///
    /// #[aggregate]
    /// pub struct Member { pub name: String }
    ///
    /// #[command(part_of = Member)]
    /// pub struct Join { pub name: String }
    ///
    /// #[aggregate]
    /// impl Member {
    ///     #[handle(Join, create)]
    ///     fn join(command: Join) -> Result<Self> {
    ///         Ok(Self { name: command.name, ..Self::create_new() })
    ///     }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<()> {
    /// let domain = Domain::builder("club").build().await?;
    /// let options = ProcessOptions::new().idempotency_key("signup-42");
    /// let first = domain.submit_with(Join { name: "Ada".into() }, options.clone()).await?;
    /// let again = domain.submit_with(Join { name: "Ada".into() }, options).await?;
    /// assert_eq!((again.command_id, again.duplicate), (first.command_id, true));
    /// domain.engine().run_until_idle().await?;     // processes it, once
    /// assert_eq!(domain.repository::<Member>().query().all().await?.len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn submit_with<C>(
        &self,
        command: C,
        options: ProcessOptions,
    ) -> BoxFuture<'_, Result<Submitted>>
    where
        C: Handled,
    {
        Box::pin(crate::runtime::submit::submit(self, command, options))
    }

    /// The type name of a registered command (`Fidelis.MakeDeposit`).
    pub(crate) fn command_type_name<C: Handled>(&self) -> Result<&str> {
        self.inner.registry.command_type_name::<C>().ok_or_else(|| {
            Error::configuration(format!(
                "command `{}` is not registered in domain `{}`",
                C::NAME,
                self.name()
            ))
        })
    }

    /// The domain's command enrichers, in order.
    pub(crate) fn command_enrichers(&self) -> &[CommandEnricher] {
        &self.inner.command_enrichers
    }

    /// The domain's event enrichers, in order.
    pub(crate) fn event_enrichers(&self) -> &[EventEnricher] {
        &self.inner.event_enrichers
    }

    /// Whether processed commands go to the command log.
    pub fn records_commands(&self) -> bool {
        self.inner.record_commands
    }

    pub(crate) fn command_handler<C: Handled>(&self) -> Result<&C::Handler> {
        let registry = &self.inner.registry;
        if !registry.commands.contains_key(&TypeId::of::<C>()) {
            return Err(Error::configuration(format!(
                "command `{}` is not registered in domain `{}`",
                C::NAME,
                self.name()
            )));
        }
        registry
            .command_handlers
            .get(&TypeId::of::<C::Handler>())
            .and_then(|instance| instance.downcast_ref::<C::Handler>())
            .ok_or_else(|| {
                Error::configuration(format!(
                    "command handler `{}` is not registered in domain `{}`",
                    <C::Handler as Element>::NAME,
                    self.name()
                ))
            })
    }

    /// The repository of an aggregate or projection, outside any handler: `add` commits at
    /// once, through the same pipeline as a command.
    pub fn repository<T: Persisted>(&self) -> DomainRepository<T> {
        DomainRepository::new(self.clone())
    }

    /// A unit of work to use by hand: read and write through its repositories, then
    /// [`Context::commit`]. Dropping it discards its writes.
    pub fn unit_of_work(&self) -> Context {
        Context::new(self.clone(), Identifier::generate(), None)
    }

    /// Reads the event store.
    pub fn event_store(&self) -> EventStore<'_> {
        EventStore { domain: self }
    }

    /// A resource registered with [`DomainBuilder::resource`].
    pub fn resource<T: Any + Send + Sync>(&self) -> Result<&T> {
        self.inner
            .resources
            .get(&TypeId::of::<T>())
            .and_then(|resource| resource.downcast_ref::<T>())
            .ok_or_else(|| {
                Error::configuration(format!(
                    "no resource of type `{}`: add it with `Domain::builder(..).resource(..)`",
                    std::any::type_name::<T>()
                ))
            })
    }

    /// Counters of what went wrong after commits.
    pub fn metrics(&self) -> DomainMetrics {
        DomainMetrics {
            failed_event_handlers: self.inner.failed_event_handlers.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_event_handler_failure(&self) {
        self.inner
            .failed_event_handlers
            .fetch_add(1, Ordering::Relaxed);
    }

    /// How many generations of events a request delivers to event handlers (see
    /// [`DomainBuilder::event_handler_depth_limit`]).
    pub(crate) fn event_handler_depth_limit(&self) -> usize {
        self.inner.event_handler_depth_limit
    }

    pub(crate) fn cache(&self) -> &AggregateCache {
        &self.inner.cache
    }

    /// The domain's snapshot threshold (see [`DomainBuilder::snapshot_threshold`]).
    pub(crate) fn snapshot_threshold(&self) -> u64 {
        self.inner.snapshot_threshold
    }

    /// Writes a snapshot of aggregate `A` with this id at its current version, and returns
    /// that version; [`Error::NotFound`] when it has no events. Loads after it replay only
    /// the events that follow.
    pub async fn create_snapshot<A: Aggregate>(&self, id: impl AsRef<str>) -> Result<i64> {
        crate::runtime::snapshot::create::<A>(self, id.as_ref()).await
    }

    /// Writes a snapshot of every aggregate of type `A` at its current version, and returns
    /// how many it wrote.
    pub async fn create_snapshots<A: Aggregate>(&self) -> Result<u64> {
        crate::runtime::snapshot::create_all::<A>(self).await
    }

    /// [`create_snapshot`](Domain::create_snapshot) of the aggregate named `aggregate` (its
    /// Rust name, `Account`), for callers that know it by name only, as the command line
    /// does. An unknown name, or a state-stored aggregate's, is an [`Error::Usage`] that
    /// lists the domain's event-sourced aggregates.
    pub async fn create_snapshot_named(&self, aggregate: &str, id: impl AsRef<str>) -> Result<i64> {
        crate::runtime::snapshot::create_named(self, aggregate, id.as_ref()).await
    }

    /// [`create_snapshots`](Domain::create_snapshots) of the aggregate named `aggregate`;
    /// errors as [`create_snapshot_named`](Domain::create_snapshot_named).
    pub async fn create_snapshots_named(&self, aggregate: &str) -> Result<u64> {
        crate::runtime::snapshot::create_all_named(self, aggregate).await
    }

    /// What joins every commit's transaction, in order.
    pub(crate) fn commit_hooks(&self) -> &[Arc<dyn CommitHook>] {
        &self.inner.commit_hooks
    }

    /// Who is told of committed events.
    pub(crate) fn dispatcher(&self) -> &dyn Dispatcher {
        self.inner.dispatcher.as_ref()
    }

    /// How the domain runs projectors and event handlers.
    pub fn processing(&self) -> Processing {
        self.inner.processing
    }

    /// The engine that runs this domain's projectors and event handlers in
    /// [asynchronous processing](Processing::Async). Every engine of a domain shares its
    /// subscriptions: in one process, a subscription is handled by one task at a time.
    pub fn engine(&self) -> Engine {
        Engine::new(self.clone())
    }

    /// The events the engine gave up on, to list, replay or purge.
    pub fn dead_letters(&self) -> DeadLetters {
        DeadLetters::new(self.clone())
    }

    /// Brings the read side up to date, so one test body runs in both processing modes: runs
    /// the engine until every submitted command and, in [`Processing::Async`], every event
    /// stored so far is handled ([`Engine::run_until_idle`]; in [`Processing::Sync`] the
    /// projectors and event handlers already ran in `process`).
    pub async fn settle(&self) -> Result<()> {
        self.engine().run_until_idle().await
    }

    pub(crate) fn handler_retry(&self) -> HandlerRetry {
        self.inner.handler_retry
    }

    /// The domain's broker: the outbox relay publishes to it and the subscribers consume from
    /// it (`None`: the domain has none).
    pub fn broker(&self) -> Option<&Arc<dyn crate::broker::Broker>> {
        self.inner.broker.as_ref()
    }

    pub(crate) fn engine_shared(&self) -> &EngineShared {
        &self.inner.engine
    }

    /// Hands a broker message to the subscribers of `stream` (`#[subscriber(stream = "…")]`)
    /// here and now, as the engine does with the messages it consumes from the domain's
    /// broker: for tests, and for programs that receive messages without a broker (a webhook
    /// endpoint). The message is handed as being on `stream`.
    ///
    /// Each subscriber that has not seen the message's id yet runs once; a message it
    /// handled (or the engine dead-lettered) before is skipped (its id is recorded with what
    /// the subscriber wrote). The
    /// first subscriber error is returned as is, without retries or dead letters (the
    /// caller, such as a webhook's sender, retries); a stream no subscriber reads is an
    /// [`Error::Usage`].
    ///
    /// ```rust,standalone_crate
    /// use fidelis_core::prelude::*;
    /// use fidelis_core::broker::BrokerMessage;
    ///
    /// pub struct Webhooks;
    ///
    /// #[subscriber(stream = "payflow.webhooks")]
    /// impl Webhooks {
    ///     async fn handle(message: &BrokerMessage, _ctx: &mut EventHandlerContext) -> Result<()> {
    ///         let _body: serde_json::Value = message.json()?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<()> {
    /// let domain = Domain::builder("bank").build().await?;
    /// let message = BrokerMessage::json_message("m-1", "payflow.webhooks", &serde_json::json!({}));
    /// domain.deliver("payflow.webhooks", message).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn deliver(&self, stream: &str, message: crate::broker::BrokerMessage) -> Result<()> {
        crate::runtime::subscriber::deliver(self, stream, message).await
    }

    /// Creates the tables of projections and stored aggregates that are missing, and
    /// reports tables whose columns no longer match their fields. `build` calls it; call it
    /// again after changing the database by hand.
    pub async fn setup_database(&self) -> Result<()> {
        self.inner
            .storage
            .setup(&table_schemas(&self.inner.registry))
            .await
    }
}

pub(crate) fn table_schemas(registry: &Registry) -> Vec<TableSchema> {
    // Schemas are `'static` like the field definitions they point to; their names are
    // interned, so calling `setup_database` again allocates nothing new.
    let mut tables: Vec<TableSchema> = registry
        .projections
        .values()
        .map(|p| TableSchema {
            name: intern(&p.table),
            element: p.name,
            fields: p.fields,
            identifier: p.identifier,
            // Earlier versions of Fidelis named version 1's table without the domain.
            former_name: (p.version == 1).then(|| intern(&crate::registry::snake_case(p.name))),
            indexes: &[],
        })
        .collect();
    tables.extend(
        registry
            .aggregates
            .values()
            .filter(|a| !a.event_sourced)
            .map(|a| TableSchema {
                name: intern(&a.table),
                element: a.name,
                fields: a.fields,
                identifier: a.identifier,
                former_name: Some(intern(&crate::registry::snake_case(a.name))),
                indexes: &[],
            }),
    );
    tables.extend(crate::store::system::schemas());
    tables.sort_by_key(|table| table.name);
    tables
}

/// The one `'static` copy of a table name: leaked the first time the process sees the name,
/// reused after, so memory stays bounded by the number of distinct tables however often
/// domains are built or set up.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(interned) = names.get(name) {
        return interned;
    }
    let interned: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(interned);
    interned
}

/// Counters of a domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainMetrics {
    /// Event handlers that failed after their command committed, plus deliveries stopped at
    /// the [depth limit](DomainBuilder::event_handler_depth_limit).
    pub failed_event_handlers: u64,
}

/// Reads a domain's events, with their metadata.
pub struct EventStore<'a> {
    domain: &'a Domain,
}

const READ_BATCH: usize = 1_000;

impl EventStore<'_> {
    /// The command log entry of a processed command (see
    /// [`DomainBuilder::record_commands`]).
    pub async fn command(&self, command_id: &Identifier) -> Result<Option<CommandLogEntry>> {
        system::get::<CommandLogEntry>(self.domain.storage().as_ref(), command_id.as_str()).await
    }

    /// The command log entries of one request (correlation id), in the order the commands
    /// were received: with their causation ids and the ids of the events they recorded, the
    /// request's causal tree.
    pub async fn commands(&self, correlation_id: &Identifier) -> Result<Vec<CommandLogEntry>> {
        let query = crate::model::query::QuerySpec {
            filters: vec![
                system::field_eq("domain", self.domain.name().to_owned()),
                system::field_eq("correlation_id", correlation_id.to_string()),
            ],
            order: vec![
                system::order_by("received_at", false),
                system::order_by("id", false),
            ],
            ..Default::default()
        };
        system::query::<CommandLogEntry>(self.domain.storage().as_ref(), &query).await
    }

    /// The causal forest of one request: every command (from the command log) and event with
    /// this correlation id, each under the message that caused it, across aggregates, event
    /// handlers and process managers. Roots are what came from outside (and events whose
    /// command was not logged). Empty when nothing has this correlation id.
    ///
    /// ```rust,standalone_crate
    /// use fidelis_core::prelude::*;
    ///
    /// #[event(part_of = Account)]
    /// pub struct Opened { pub account_id: Identifier }
    ///
    /// #[aggregate(event_sourced)]
    /// pub struct Account { pub open: bool }
    ///
    /// #[aggregate]
    /// impl Account {
    ///     #[apply]
    ///     fn on_opened(&mut self, _: &Opened) { self.open = true; }
    /// }
    ///
    /// #[command(part_of = Account)]
    /// pub struct Open {}
    ///
    /// #[derive(Default)]
    /// pub struct Accounts;
    ///
    /// #[command_handler(part_of = Account)]
    /// impl Accounts {
    ///     #[handle(Open)]
    ///     async fn open(&self, _: Open, ctx: &mut Context) -> Result<()> {
    ///         let mut account = Account::create_new();
    ///         account.raise(Opened { account_id: account.id.clone() })?;
    ///         ctx.repository::<Account>().add(account).await
    ///     }
    /// }
    ///
    /// # #[tokio::main]
    /// # async fn main() -> Result<()> {
    /// let domain = Domain::builder("bank").discover_crate(module_path!()).build().await?;
    /// let options = ProcessOptions::new().correlation_id("signup-7");
    /// domain.process_with(Open {}, options).await?;
    ///
    /// let trace = domain.event_store().trace("signup-7").await?;
    /// assert_eq!(trace.roots.len(), 1);
    /// assert_eq!(trace.roots[0].type_name, "Bank.Open");
    /// assert_eq!(trace.roots[0].children[0].type_name, "Bank.Opened.v1");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn trace(&self, correlation_id: impl AsRef<str>) -> Result<crate::Trace> {
        crate::runtime::trace::trace(self.domain, correlation_id.as_ref()).await
    }

    /// Every event of a stream (`fidelis::account-<id>`), in order.
    pub async fn read_stream(&self, stream: &str) -> Result<Vec<RecordedEvent>> {
        if !crate::runtime::repository::storable(stream) {
            return Ok(Vec::new());
        }
        self.domain.storage().read_stream(stream, 0).await
    }

    /// Every event of a category (`fidelis::account`) after a cursor, in global order
    /// ([`Cursor::START`]: from the first). Every event committed before the call is read
    /// (see [`Storage::settle`](crate::store::Storage::settle)); go on from the last one's
    /// [`cursor`](crate::EventMetadata::cursor) to read only newer ones.
    pub async fn read_category(&self, category: &str, after: Cursor) -> Result<Vec<RecordedEvent>> {
        if !crate::runtime::repository::storable(category) {
            return Ok(Vec::new());
        }
        let storage = self.domain.storage();
        storage.settle().await?;
        read_batches(
            |after| storage.read_category(category, after, READ_BATCH),
            after,
        )
        .await
    }

    /// Every event after a cursor, in global order ([`Cursor::START`]: from the first). Every
    /// event committed before the call is read (see
    /// [`Storage::settle`](crate::store::Storage::settle)).
    pub async fn read_all(&self, after: Cursor) -> Result<Vec<RecordedEvent>> {
        let storage = self.domain.storage();
        storage.settle().await?;
        read_batches(|after| storage.read_all(after, READ_BATCH), after).await
    }

    /// The version of a stream's last event, `-1` when it has none.
    pub async fn stream_version(&self, stream: &str) -> Result<i64> {
        if !crate::runtime::repository::storable(stream) {
            return Ok(-1);
        }
        self.domain.storage().stream_version(stream).await
    }

    /// The latest snapshot of aggregate `A` with this id: the version it was taken at and
    /// the state, or `None`. A snapshot that no longer decodes as `A` is an
    /// [`Error::Serialization`] here (a load ignores it and writes a new one).
    pub async fn latest_snapshot<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
    ) -> Result<Option<(i64, A)>> {
        crate::runtime::snapshot::latest_of::<A>(self.domain, id.as_ref()).await
    }

    /// The events of aggregate `A` with this id, oldest first, each with its version, type
    /// name, time, id, global position and data (what `events history` shows).
    pub async fn history<A: Aggregate>(
        &self,
        id: impl AsRef<str>,
    ) -> Result<Vec<crate::runtime::temporal::HistoryEntry>> {
        crate::runtime::temporal::history::<A>(self.domain, id.as_ref()).await
    }

    /// The events of the aggregate named `aggregate` (its Rust name, `Account`) with this
    /// id: [`history`](EventStore::history) for callers that know the aggregate by name
    /// only, as the command line does. An unknown name, or a state-stored aggregate's, is an
    /// [`Error::Usage`] that lists the domain's event-sourced aggregates.
    pub async fn history_named(
        &self,
        aggregate: &str,
        id: impl AsRef<str>,
    ) -> Result<Vec<crate::runtime::temporal::HistoryEntry>> {
        crate::runtime::temporal::history_named(self.domain, aggregate, id.as_ref()).await
    }

    /// The stream of aggregate `A` with this id (`fidelis::account-<id>`).
    pub fn stream_of<A: Aggregate>(&self, id: impl fmt::Display) -> Result<String> {
        Ok(format!("{}-{id}", self.category_of::<A>()?))
    }

    /// The stream category of aggregate `A` (`fidelis::account`).
    pub fn category_of<A: Aggregate>(&self) -> Result<String> {
        Ok(self
            .domain
            .registry()
            .aggregate_info::<A>()?
            .category
            .clone())
    }
}

async fn read_batches<F, Fut>(mut read: F, mut after: Cursor) -> Result<Vec<RecordedEvent>>
where
    F: FnMut(Cursor) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<RecordedEvent>>>,
{
    let mut all = Vec::new();
    loop {
        let batch = read(after).await?;
        let Some(last) = batch.last() else { break };
        after = last.metadata.cursor();
        let full = batch.len() == READ_BATCH;
        all.extend(batch);
        if !full {
            break;
        }
    }
    Ok(all)
}

/// The latest committed state of recently used event-sourced aggregates, so that a command
/// replays only the events committed since (usually none) instead of the whole stream.
///
/// Each entry remembers the id of the last event it applied: a load checks that the store
/// still holds that event at that version before trusting the entry (see `load_aggregate`).
pub(crate) struct AggregateCache {
    capacity: usize,
    entries: Mutex<FastMap<String, CachedAggregate>>,
}

struct CachedAggregate {
    state: Arc<dyn Any + Send + Sync>,
    last_event: Identifier,
}

impl AggregateCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Mutex::new(FastMap::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<String, CachedAggregate>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached state and the id of the last event it applied.
    pub(crate) fn get<A: Aggregate>(&self, key: &str) -> Option<(A, Identifier)> {
        if self.capacity == 0 {
            return None;
        }
        let entries = self.lock();
        let entry = entries.get(key)?;
        let state = entry.state.downcast_ref::<A>()?.clone();
        Some((state, entry.last_event.clone()))
    }

    pub(crate) fn put<A: Aggregate>(&self, key: String, aggregate: &A, last_event: Identifier) {
        self.put_erased(key, Arc::new(aggregate.clone()), last_event);
    }

    pub(crate) fn put_erased(
        &self,
        key: String,
        state: Arc<dyn Any + Send + Sync>,
        last_event: Identifier,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            // Evict an arbitrary entry: a miss only costs a replay, never correctness.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(key, CachedAggregate { state, last_event });
    }

    pub(crate) fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A deferred call on the registrar: `.register::<T>()` or `.instance(h)`.
type Registration = Box<dyn FnOnce(&mut Registrar) + Send>;

/// Configures and builds a [`Domain`].
#[must_use = "a builder does nothing until `build().await`"]
pub struct DomainBuilder {
    name: String,
    discovery: bool,
    crates: Vec<String>,
    registrations: Vec<Registration>,
    resources: FastMap<TypeId, Arc<dyn Any + Send + Sync>>,
    retry: RetryPolicy,
    storage: Option<Arc<dyn Storage>>,
    database: Option<String>,
    pool: crate::runtime::config::PoolOverrides,
    cache_capacity: usize,
    snapshot_threshold: Option<u64>,
    projectors: bool,
    event_handlers: bool,
    event_handler_depth_limit: usize,
    processing: Option<Processing>,
    handler_retry: HandlerRetry,
    record_commands: Option<bool>,
    command_enrichers: Vec<CommandEnricher>,
    event_enrichers: Vec<EventEnricher>,
    engine_partitions: Option<u32>,
    engine_lease: std::time::Duration,
    broker: Option<BrokerChoice>,
}

/// The broker a builder was given: a URL to connect at `build`, or an adapter.
enum BrokerChoice {
    Url(String),
    Adapter(Arc<dyn crate::broker::Broker>),
}

/// The default of [`DomainBuilder::event_handler_depth_limit`]: the events of a command and
/// 31 further generations of events raised by event handlers are delivered.
pub const DEFAULT_EVENT_HANDLER_DEPTH_LIMIT: usize = 32;

impl DomainBuilder {
    fn new(name: String) -> Self {
        Self {
            name,
            discovery: true,
            crates: Vec::new(),
            registrations: Vec::new(),
            resources: FastMap::default(),
            retry: RetryPolicy::default(),
            storage: None,
            database: None,
            pool: crate::runtime::config::PoolOverrides::default(),
            cache_capacity: 100_000,
            snapshot_threshold: None,
            projectors: true,
            event_handlers: true,
            event_handler_depth_limit: DEFAULT_EVENT_HANDLER_DEPTH_LIMIT,
            processing: None,
            handler_retry: HandlerRetry::default(),
            record_commands: None,
            command_enrichers: Vec::new(),
            event_enrichers: Vec::new(),
            engine_partitions: None,
            engine_lease: crate::engine::DEFAULT_LEASE,
            broker: None,
        }
    }

    /// Leaves the projectors out of the domain (their projections stay, empty): the
    /// testing DSL's aggregate scenarios, which test an aggregate, not its read models.
    pub(crate) fn without_projectors(mut self) -> Self {
        self.projectors = false;
        self
    }

    /// Leaves the event handlers and process managers out of the domain: what
    /// `testing::given_process` runs a process manager in, so that the events of the commands
    /// it issues are recorded but delivered to nobody.
    pub(crate) fn without_event_handlers(mut self) -> Self {
        self.event_handlers = false;
        self
    }

    /// Discovers only the elements declared in this crate (callable several times). Without
    /// it, every linked crate's elements are discovered. Give the crate's name
    /// (`fidelis_example`; `fidelis-example` works too) or any module path in it, so
    /// `.discover_crate(module_path!())` means "the crate this line is in".
    pub fn discover_crate(mut self, crate_name: impl Into<String>) -> Self {
        let name = crate_name.into();
        let name = name
            .split("::")
            .next()
            .unwrap_or_default()
            .replace('-', "_");
        self.crates.push(name);
        self
    }

    /// Turns discovery off: only elements given to [`register`](Self::register) are in the domain.
    pub fn without_discovery(mut self) -> Self {
        self.discovery = false;
        self
    }

    /// Registers an element by hand (generic types, plugins, or without discovery).
    pub fn register<T: Element>(mut self) -> Self {
        self.registrations
            .push(Box::new(|registrar| T::register(registrar)));
        self
    }

    /// Registers a handler, projector or event handler instance (one with state, or without
    /// `Default`), replacing the default instance.
    pub fn instance<H: Element>(mut self, instance: H) -> Self {
        self.registrations
            .push(Box::new(move |registrar| registrar.set_instance(instance)));
        self
    }

    /// Shares a value with every handler, as `ctx.resource::<T>()`.
    pub fn resource<T: Any + Send + Sync>(mut self, resource: T) -> Self {
        self.resources.insert(TypeId::of::<T>(), Arc::new(resource));
        self
    }

    /// Sets how version conflicts are retried.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Selects the database by URL: `memory`, `sqlite://fidelis.db`, `postgres://…`. Without
    /// it, `FIDELIS_DATABASE_URL`, then `fidelis.toml`, then `memory` (see [`crate::runtime::config`]).
    pub fn database(mut self, url: impl Into<String>) -> Self {
        self.database = Some(url.into());
        self
    }

    /// The most connections the SQL adapters open (default 10, or `fidelis.toml`'s
    /// `pool_size`).
    pub fn pool_size(mut self, max_connections: u32) -> Self {
        self.pool.max_connections = Some(max_connections.max(1));
        self
    }

    /// How long connecting may take before the database counts as unreachable (default 10 s).
    pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.pool.connect_timeout = Some(timeout);
        self
    }

    /// How long a unit of work waits for a free connection (default 30 s).
    pub fn acquire_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.pool.acquire_timeout = Some(timeout);
        self
    }

    /// Uses this storage adapter.
    pub fn storage(mut self, storage: impl Storage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// How many event-sourced aggregates to keep in memory between commands (0 turns the
    /// cache off; default 100,000). A cached aggregate still catches up with newer events
    /// from the store, so the cache never serves stale state. Memory grows with the size of
    /// an aggregate's state (a few hundred bytes for the example's `Account`) times this
    /// number; a miss costs a replay of the aggregate's stream.
    pub fn aggregate_cache(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// After how many events since an event-sourced aggregate's latest snapshot a commit
    /// writes a new one (default 100, or `fidelis.toml`'s `[snapshots] threshold`; `0` turns
    /// automatic snapshots off, leaving [`Domain::create_snapshot`]). An aggregate's own
    /// `#[aggregate(event_sourced, snapshot_threshold = N)]` wins. A cold load reads the
    /// latest snapshot and the events after it; snapshots never change what a load returns.
    pub fn snapshot_threshold(mut self, events: u64) -> Self {
        self.snapshot_threshold = Some(events);
        self
    }

    /// How many generations of events one request delivers to event handlers (default
    /// [`DEFAULT_EVENT_HANDLER_DEPTH_LIMIT`], 32; at least 1).
    ///
    /// The events a command commits are the first generation; the events committed by their
    /// event handlers (in their own unit of work, or by the commands they issue with
    /// `ctx.process`) are the second, and so on. Events are delivered breadth-first: a whole
    /// generation before the next. Events of a generation past the limit are committed (the
    /// commands that raised them stand) but not delivered to event handlers: the delivery
    /// stops there with an error logged with the correlation id, counted once in
    /// [`DomainMetrics::failed_event_handlers`]. Event handlers that trigger each other without
    /// end so stop at the limit instead of running out of memory or stack.
    ///
    /// ```
    /// # async fn build() -> fidelis_core::Result<()> {
    /// let domain = fidelis_core::Domain::builder("bank")
    ///     .without_discovery()
    ///     .database("memory")
    ///     .event_handler_depth_limit(8)
    ///     .build()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn event_handler_depth_limit(mut self, generations: usize) -> Self {
        self.event_handler_depth_limit = generations.max(1);
        self
    }

    /// When projectors and event handlers run: [`Processing::Sync`] (the default) in
    /// `process`, or [`Processing::Async`] in the engine (`domain.engine()`), `process`
    /// returning once the events are committed. Without it, `FIDELIS_PROCESSING`, then
    /// `fidelis.toml`'s `[processing] mode`, then sync (see [`crate::runtime::config`]).
    pub fn processing(mut self, processing: Processing) -> Self {
        self.processing = Some(processing);
        self
    }

    /// How the engine retries a failing projector or event handler before it dead-letters
    /// the event (default: [`HandlerRetry::default`]).
    pub fn handler_retry(mut self, retry: HandlerRetry) -> Self {
        self.handler_retry = retry;
        self
    }

    /// Whether every processed command is recorded in the command log (table
    /// `fidelis_commands`, in the transaction of its events; default `true`, in every
    /// processing mode). Without it, `fidelis.toml`'s `[processing] record_commands`.
    /// Submitted commands are queued whatever this says.
    pub fn record_commands(mut self, record: bool) -> Self {
        self.record_commands = Some(record);
        self
    }

    /// Adds key/values to the extensions of every command (and so of its events): `f` sees
    /// the command's metadata and returns the key/values. Enrichers run in the order they
    /// are added, a later one winning over an earlier one; a call's own extensions
    /// ([`ProcessOptions::extension`]) and those a command inherits from the event that
    /// caused it win over every enricher.
    ///
    /// ```
    /// # async fn build() -> fidelis_core::Result<()> {
    /// use fidelis_core::{Domain, Extensions};
    /// let domain = Domain::builder("bank")
    ///     .without_discovery()
    ///     .enrich_commands(|_command| {
    ///         let mut extensions = Extensions::new();
    ///         extensions.insert("region".into(), "eu-west".into());
    ///         extensions
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn enrich_commands(
        mut self,
        f: impl Fn(&CommandMetadata) -> Extensions + Send + Sync + 'static,
    ) -> Self {
        self.command_enrichers.push(Arc::new(f));
        self
    }

    /// Adds key/values to the extensions of every event a unit of work records: `f` sees the
    /// event's metadata (before the store gives it a position) and returns the key/values.
    /// Later enrichers win over earlier ones; the extensions of the command that raised the
    /// event (its call's own, inherited and enriched) win over every event enricher.
    pub fn enrich_events(
        mut self,
        f: impl Fn(&EventMetadata) -> Extensions + Send + Sync + 'static,
    ) -> Self {
        self.event_enrichers.push(Arc::new(f));
        self
    }

    /// How many partitions each subscription's streams are split into, for engine processes
    /// to share (at least 1). Default: [`DEFAULT_POSTGRES_PARTITIONS`](crate::DEFAULT_POSTGRES_PARTITIONS)
    /// (4) on PostgreSQL, 1 on stores that run one engine (SQLite, memory). Every engine of a
    /// database must use the same count; checkpoints written for another count are carried
    /// over only when they all stand at one position (see [`Engine`](crate::Engine)).
    pub fn engine_partitions(mut self, partitions: u32) -> Self {
        self.engine_partitions = Some(partitions.max(1));
        self
    }

    /// How long an engine's lease on a partition lasts without renewal (default
    /// [`DEFAULT_LEASE`](crate::DEFAULT_LEASE), 10 s). Engines renew every third of
    /// it; a killed engine's partitions are taken over about one lease time later.
    pub fn engine_lease(mut self, lease: std::time::Duration) -> Self {
        self.engine_lease = lease.max(std::time::Duration::from_millis(30));
        self
    }

    /// Publishes the events of `#[event(.., published)]` types and fact events to the broker
    /// at `url` (`redis://…`, `nats://…`, `memory`; see [`crate::broker::connect`]), through
    /// the outbox: they are written to it in the transaction of the events and relayed by the
    /// engine. Without it, `FIDELIS_BROKER_URL`, then `fidelis.toml`'s `[broker] url`, then no
    /// broker (see [`crate::runtime::config`]). A URL this build cannot connect to fails
    /// `build` with [`Error::Configuration`].
    pub fn broker(mut self, url: impl Into<String>) -> Self {
        self.broker = Some(BrokerChoice::Url(url.into()));
        self
    }

    /// Publishes through this broker adapter (a [`MemoryBroker`](crate::broker::MemoryBroker)
    /// in tests, or an adapter of your own); see [`broker`](Self::broker).
    pub fn broker_adapter(self, broker: impl crate::broker::Broker) -> Self {
        self.broker_shared(Arc::new(broker))
    }

    /// Publishes through a broker adapter shared with other code; see
    /// [`broker`](Self::broker).
    pub fn broker_shared(mut self, broker: Arc<dyn crate::broker::Broker>) -> Self {
        self.broker = Some(BrokerChoice::Adapter(broker));
        self
    }

    /// Registers the elements, checks the whole domain (every problem is reported at once,
    /// including a [`discover_crate`](Self::discover_crate) name that discovers nothing),
    /// connects the storage and creates missing tables.
    pub async fn build(self) -> Result<Domain> {
        let mut registrar = Registrar::default();
        let mut problems = Vec::new();
        if self.discovery {
            for registration in discovered() {
                if self.crates.is_empty()
                    || self.crates.iter().any(|c| c == registration.crate_name())
                {
                    (registration.register)(&mut registrar);
                }
            }
            problems.extend(undiscovered_crates(&self.crates));
        }
        for registration in self.registrations {
            registration(&mut registrar);
        }
        let built = registrar.build(&self.name, crate::store::system::RESERVED_TABLES);
        let registry = match (built, problems.is_empty()) {
            (registry, true) => registry?,
            (Err(Error::Configuration { problems: more }), false) => {
                problems.extend(more);
                return Err(Error::Configuration { problems });
            }
            (_, false) => return Err(Error::Configuration { problems }),
        };
        let mut registry = registry;
        if !self.projectors {
            registry.projectors.clear();
            registry
                .subscribers
                .retain(|subscriber| !subscriber.projector);
        }
        if !self.event_handlers {
            registry.event_handlers.clear();
            registry
                .subscribers
                .retain(|subscriber| subscriber.projector);
        }
        let processing = crate::runtime::config::resolve_processing(self.processing)?;
        let snapshot_threshold =
            crate::runtime::config::resolve_snapshot_threshold(self.snapshot_threshold)?;
        let record_commands = match self.record_commands {
            Some(record) => record,
            None => crate::runtime::config::record_commands()?,
        };
        let broker = match self.broker {
            Some(BrokerChoice::Adapter(broker)) => Some(broker),
            Some(BrokerChoice::Url(url)) => Some(crate::broker::connect(&url).await?),
            None => match crate::runtime::config::resolve_broker(None)? {
                Some(url) => Some(crate::broker::connect(&url).await?),
                None => None,
            },
        };
        if let Some(broker) = &broker {
            tracing::info!(domain = %self.name, broker = %broker.describe(), "publishing through the outbox");
        }
        let storage = match self.storage {
            Some(storage) => storage,
            None => {
                crate::runtime::config::connect_configured(self.database.as_deref(), self.pool)
                    .await?
            }
        };
        tracing::debug!(domain = %self.name, storage = storage.kind(), "domain built");
        let partitions = self.engine_partitions.unwrap_or(
            if crate::engine::shared_by_engines(storage.as_ref()) {
                crate::engine::DEFAULT_POSTGRES_PARTITIONS
            } else {
                1
            },
        );
        let engine = EngineShared::new(&registry, &self.name, partitions, self.engine_lease);
        let domain = Domain {
            inner: Arc::new(DomainInner {
                name: self.name.into(),
                engine: Arc::new(engine),
                registry,
                storage,
                retry: self.retry,
                resources: self.resources,
                cache: AggregateCache::new(self.cache_capacity),
                snapshot_threshold,
                failed_event_handlers: AtomicU64::new(0),
                event_handler_depth_limit: self.event_handler_depth_limit,
                commit_hooks: {
                    let mut hooks: Vec<Arc<dyn CommitHook>> = match processing {
                        Processing::Sync => vec![Arc::new(InlineProjectors)],
                        Processing::Async => vec![Arc::new(NotifyEngines)],
                    };
                    if broker.is_some() {
                        hooks.push(Arc::new(crate::runtime::outbox::OutboxWriter));
                    }
                    hooks
                },
                dispatcher: match processing {
                    Processing::Sync => Arc::new(SyncDispatcher),
                    Processing::Async => Arc::new(AsyncDispatcher),
                },
                processing,
                handler_retry: self.handler_retry,
                record_commands,
                command_enrichers: self.command_enrichers,
                event_enrichers: self.event_enrichers,
                broker,
            }),
        };
        domain.setup_database().await?;
        Ok(domain)
    }
}

/// A problem for each crate given to `discover_crate` that declares no discovered element
/// (a typo, or a crate the program does not link), naming the crates that do.
fn undiscovered_crates(crates: &[String]) -> Vec<String> {
    let with_elements: std::collections::BTreeSet<&str> = discovered()
        .map(|registration| registration.crate_name())
        .collect();
    let known = if with_elements.is_empty() {
        "no linked crate declares elements".to_owned()
    } else {
        let names: Vec<String> = with_elements
            .iter()
            .map(|name| format!("`{name}`"))
            .collect();
        format!("crates with elements: {}", names.join(", "))
    };
    let crates: std::collections::BTreeSet<&str> = crates.iter().map(String::as_str).collect();
    crates
        .into_iter()
        .filter(|name| !with_elements.contains(name))
        .map(|name| {
            format!(
                "`discover_crate(\"{name}\")` found no elements in a crate named `{name}` ({known}); \
                 check the name, and that the program uses the crate (`use {name} as _;`)"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_evicts_at_capacity() {
        let cache = AggregateCache::new(2);
        for key in ["a", "b", "c"] {
            cache.put_erased(key.to_owned(), Arc::new(1_u8), Identifier::new("e"));
        }
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn table_names_are_interned_not_leaked_per_call() {
        let first = intern(&String::from("interned_table"));
        let second = intern(&String::from("interned_table"));
        assert!(
            std::ptr::eq(first, second),
            "one allocation per distinct name"
        );
        assert_eq!(first, "interned_table");
    }
}
