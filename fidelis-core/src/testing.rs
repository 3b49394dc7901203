//! The testing DSL: given a history, process a command, assert on the outcome — Protean's
//! `given(Account, *events).process(cmd)` and `given(*events).then(Projection, id)`, in
//! `cargo test`, without a database.
//!
//! ```rust,standalone_crate
//! use fidelis_core::prelude::*;
//! use fidelis_core::testing::given;
//! # #[event(part_of = Account)]
//! # pub struct AccountOpened { pub account_id: Identifier, pub holder_name: String, pub opening_deposit: Decimal }
//! # #[event(part_of = Account)]
//! # pub struct WithdrawalMade { pub account_id: Identifier, pub amount: Decimal }
//! # #[command(part_of = Account)]
//! # pub struct MakeWithdrawal { pub account_id: Identifier, pub amount: Decimal, pub reference: Option<String> }
//! # #[aggregate(event_sourced)]
//! # pub struct Account { pub holder_name: String, #[field(default = Decimal::ZERO)] pub balance: Decimal }
//! # #[aggregate]
//! # impl Account {
//! #     #[invariant(post)]
//! #     fn not_negative(&self) -> Result<(), ValidationError> {
//! #         if self.balance < Decimal::ZERO {
//! #             return Err(ValidationError::field("balance", "Insufficient funds: balance cannot be negative"));
//! #         }
//! #         Ok(())
//! #     }
//! #     #[handle(MakeWithdrawal)]
//! #     fn withdraw(&mut self, command: MakeWithdrawal) -> Result<()> {
//! #         self.raise(WithdrawalMade { account_id: self.id.clone(), amount: command.amount })
//! #     }
//! #     #[apply]
//! #     fn on_opened(&mut self, event: &AccountOpened) { self.balance = event.opening_deposit; }
//! #     #[apply]
//! #     fn on_withdrawn(&mut self, event: &WithdrawalMade) { self.balance -= event.amount; }
//! # }
//! # #[tokio::main]
//! # async fn main() {
//! let id = Identifier::generate();
//! let outcome = given::<Account>()
//!     .after(AccountOpened { account_id: id.clone(), holder_name: "Ada".into(), opening_deposit: Decimal::from(100) })
//!     .process(MakeWithdrawal { account_id: id.clone(), amount: Decimal::from(500), reference: None })
//!     .await;
//! assert!(outcome.rejected());
//! assert_eq!(outcome.rejection_messages()["balance"], ["Insufficient funds: balance cannot be negative"]);
//! assert_eq!(outcome.aggregate().balance, Decimal::from(100));   // the state before the rejection
//! # }
//! ```
//!
//! # What runs
//!
//! - **The history is replayed, not re-lived.** The events given with [`Given::after`] (and
//!   [`Given::given_event`]) are recorded in their streams and applied to their aggregates, as
//!   a load would apply them. Event handlers never run on them: their side effects belong to
//!   when the events happened.
//! - **An aggregate scenario leaves projectors out**, for the history and for the command
//!   alike, so a projector that needs rows from the history cannot make a command look
//!   rejected. [`Given::with_projections`] puts them in, for both: the projections then hold
//!   exactly what the history and the commands make of them.
//! - **The command runs through the whole domain** (its handler, the unit of work, event
//!   handlers after the commit), as `domain.process` does.
//! - **A history that cannot be replayed is a mistake in the test**, never a rejected command:
//!   the scenario panics with a message that starts `test setup error:` (a domain that does
//!   not build; an `after(..)` event without an aggregate id, or about another aggregate than
//!   the first one; a history for a stored aggregate; an event a store refuses).
//! - **Projections from events**: [`given_events`] records events of any aggregates, runs
//!   them through the projectors (that is its purpose) and reads a row with
//!   [`GivenEvents::then_projection`].

mod process;

pub use process::{CommandLog, GivenProcess, ProcessOutcome, given_process, given_process_in};

use std::any::TypeId;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::model::element::{Aggregate, BelongsTo, DomainEvent, Element, Handled, Projection};
use crate::model::error::{Error, Result};
use crate::model::event::{AnyEvent, AnyRecordedEvent, Event};
use crate::model::event_version::EventVersion;
use crate::model::identifier::Identifier;
use crate::runtime::domain::{Domain, DomainBuilder};

/// Starts a scenario for aggregate `A` in a fresh in-memory domain of every linked element,
/// named `test` (projectors left out unless [`Given::with_projections`]). It is always in
/// memory, whatever `FIDELIS_DATABASE_URL` or `fidelis.toml` say.
pub fn given<A: Aggregate>() -> Given<A> {
    given_in(scenario_domain())
}

/// The domain of [`given`] and [`given_events`]: in memory, and synchronous whatever
/// `FIDELIS_PROCESSING` says, since a scenario asserts on the read side right after the
/// command.
fn scenario_domain() -> DomainBuilder {
    Domain::builder("test")
        .database("memory")
        .processing(crate::runtime::config::Processing::Sync)
}

/// Starts a scenario in a domain built from this builder (for a name, resources, or
/// explicit registration). Its storage should be fresh.
pub fn given_in<A: Aggregate>(builder: DomainBuilder) -> Given<A> {
    Given {
        builder,
        history: History::default(),
        projections: false,
        _aggregate: PhantomData,
    }
}

/// Starts a read-model scenario: events of any aggregates, run through the projectors, then
/// a projection row read with [`GivenEvents::then_projection`] (Protean's
/// `given(*events).then(Projection, id)`). A fresh in-memory domain of every linked element,
/// named `test`.
pub fn given_events() -> GivenEvents {
    given_events_in(scenario_domain())
}

/// [`given_events`] in a domain built from this builder. Its storage should be fresh.
pub fn given_events_in(builder: DomainBuilder) -> GivenEvents {
    GivenEvents {
        builder,
        history: History::default(),
    }
}

/// Panics with a test setup error: the scenario itself is wrong, not the code under test.
#[track_caller]
fn setup_error(message: impl std::fmt::Display) -> ! {
    panic!("test setup error: {message}")
}

type ReplayFn =
    for<'a> fn(&'a Domain, Identifier, Vec<Arc<dyn AnyEvent>>) -> BoxFuture<'a, Result<()>>;

/// An event that already happened, as a scenario's history takes it: an event, or an old
/// version of one (`#[event_version]`), which the scenario reads as the event, as it would read
/// a stored row of that version.
pub trait Happened: Send + 'static {
    /// The event it is, or is read as. (Not bounded here: the scenario's methods require
    /// it to be an event, so a mistaken `#[event_version(of = …)]` is reported once.)
    type Current;
    /// Hands the event over to the history.
    #[doc(hidden)]
    fn happened(self) -> Happening<Self::Current>;
}

impl<E: DomainEvent> Happened for E {
    type Current = E;
    fn happened(self) -> Happening<E> {
        Happening(HappeningKind::Current(self))
    }
}

/// An event given to a scenario. **Not public API.**
#[doc(hidden)]
pub struct Happening<E>(HappeningKind<E>);

enum HappeningKind<E> {
    Current(E),
    /// Read as `E` once the scenario's domain is built, through its upcasters.
    Old {
        version: TypeId,
        name: &'static str,
        data: std::result::Result<serde_json::Value, String>,
    },
}

impl<E> Happening<E> {
    /// An old version `V` of `E`, read as `E` by the scenario's domain.
    pub fn old<V: EventVersion<Of = E>>(old: V) -> Self {
        let data = serde_json::to_value(&old).map_err(|error| error.to_string());
        Happening(HappeningKind::Old {
            version: TypeId::of::<V>(),
            name: V::NAME,
            data,
        })
    }
}

/// A history event: ready, or an old version still to be read as its event.
enum PastEvent {
    Ready(Arc<dyn AnyEvent>),
    Old {
        version: TypeId,
        name: &'static str,
        data: std::result::Result<serde_json::Value, String>,
    },
}

/// One event that already happened, with what replaying it needs.
struct Past {
    event: PastEvent,
    event_name: &'static str,
    aggregate: TypeId,
    aggregate_name: &'static str,
    id: Option<Identifier>,
    /// Given with `after(..)`: about the scenario's own aggregate.
    subject: bool,
    replay: ReplayFn,
}

impl Past {
    fn of<E: DomainEvent>(happening: Happening<E>, subject: bool) -> Self {
        let (id, event) = match happening.0 {
            HappeningKind::Current(event) => (
                DomainEvent::aggregate_id(&event).cloned(),
                PastEvent::Ready(Arc::new(event)),
            ),
            HappeningKind::Old {
                version,
                name,
                data,
            } => (
                None,
                PastEvent::Old {
                    version,
                    name,
                    data,
                },
            ),
        };
        Self {
            id,
            event_name: E::NAME,
            aggregate: TypeId::of::<E::Aggregate>(),
            aggregate_name: <E::Aggregate as Element>::NAME,
            subject,
            replay: replay_boxed::<E::Aggregate>,
            event,
        }
    }

    /// Reads an old version as its event, through the domain's upcasters (as a stored row of
    /// that version is read).
    fn upcast(&mut self, domain: &Domain, position: usize) {
        let PastEvent::Old {
            version,
            name,
            data,
        } = &self.event
        else {
            return;
        };
        let registry = domain.registry();
        let read = || -> Result<Arc<dyn AnyEvent>> {
            let data = data.as_ref().map_err(|message| Error::Serialization {
                what: format!("event version {name}"),
                message: message.clone(),
            })?;
            let type_name = registry.version_names.get(version).ok_or_else(|| {
                Error::configuration(format!(
                    "`{name}` is not a registered version of `{}` in this domain",
                    self.event_name
                ))
            })?;
            let recorded = crate::model::event::RecordedEvent::from_json(
                crate::model::event::EventMetadata {
                    id: Identifier::generate(),
                    type_name: type_name.clone(),
                    stream: String::new(),
                    version: 0,
                    global_position: 0,
                    commit: 0,
                    time: chrono::Utc::now(),
                    correlation_id: Identifier::generate(),
                    causation_id: None,
                    priority: crate::model::event::Priority::Normal,
                    extensions: crate::model::event::Extensions::new(),
                },
                data,
            );
            registry.event_by_type_name(&recorded)?.decode(&recorded)
        };
        match read() {
            Ok(event) => {
                self.id = event.aggregate_id();
                self.event = PastEvent::Ready(event);
            }
            Err(error) => setup_error(format!(
                "history event #{position} (`{name}`) cannot be read as `{}`: {error}",
                self.event_name
            )),
        }
    }

    /// The event, read (see [`History::upcast`]).
    fn ready(self) -> Arc<dyn AnyEvent> {
        match self.event {
            PastEvent::Ready(event) => event,
            PastEvent::Old { name, .. } => setup_error(format!(
                "history event `{name}` was not read as `{}`",
                self.event_name
            )),
        }
    }

    /// The aggregate id, or a setup error saying which field is missing.
    fn id_or_panic(&self, position: usize) -> Identifier {
        match &self.id {
            Some(id) => id.clone(),
            None => setup_error(format!(
                "history event #{position} (`{}`) does not say which `{}` it happened to: give it a `{}_id` (or `id`) field of type `Identifier`, or mark its identifier `#[field(identifier)]`",
                self.event_name,
                self.aggregate_name,
                crate::registry::snake_case(self.aggregate_name)
            )),
        }
    }
}

/// Events that already happened, in the order the test gave them.
#[derive(Default)]
struct History {
    events: Vec<Past>,
}

impl History {
    /// Reads the old versions among the events as their events (the domain is built).
    fn upcast(&mut self, domain: &Domain) {
        for (index, past) in self.events.iter_mut().enumerate() {
            past.upcast(domain, index + 1);
        }
    }

    /// The aggregate the `after(..)` events are about; every one must name the same.
    fn subject(&self) -> Option<Identifier> {
        let mut subject: Option<(usize, Identifier)> = None;
        for (index, past) in self.events.iter().enumerate() {
            let id = past.id_or_panic(index + 1);
            if !past.subject {
                continue;
            }
            match &subject {
                None => subject = Some((index + 1, id)),
                Some((first, expected)) if *expected != id => setup_error(format!(
                    "`after(..)` event #{} (`{}`) happened to `{}` `{id}`, but event #{first} to `{expected}`: every `after(..)` event is about the scenario's one `{}`; give events of other aggregates with `.given_event(..)`",
                    index + 1,
                    past.event_name,
                    past.aggregate_name,
                    past.aggregate_name
                )),
                Some(_) => {}
            }
        }
        subject.map(|(_, id)| id)
    }

    /// Records the history in the domain, in order: each run of events of one aggregate is
    /// applied to it and committed, without event handlers.
    async fn replay(self, domain: &Domain) {
        let mut events = self.events.into_iter().enumerate().peekable();
        while let Some((index, first)) = events.next() {
            let id = first.id_or_panic(index + 1);
            let replay = first.replay;
            let (aggregate, name) = (first.aggregate, first.aggregate_name);
            let mut batch = vec![first.ready()];
            while let Some((_, next)) = events.peek() {
                if next.aggregate != aggregate || next.id.as_ref() != Some(&id) {
                    break;
                }
                if let Some((_, next)) = events.next() {
                    batch.push(next.ready());
                }
            }
            if let Err(error) = replay(domain, id.clone(), batch).await {
                setup_error(format!(
                    "the history of `{name}` `{id}` (from event #{}) cannot be replayed: {error}",
                    index + 1
                ));
            }
        }
    }
}

fn replay_boxed<A: Aggregate>(
    domain: &Domain,
    id: Identifier,
    events: Vec<Arc<dyn AnyEvent>>,
) -> BoxFuture<'_, Result<()>> {
    Box::pin(replay_into::<A>(domain, id, events))
}

/// Applies events to aggregate `A` (as stored so far) and commits them, with the projectors
/// the domain has, and no event handlers.
async fn replay_into<A: Aggregate>(
    domain: &Domain,
    id: Identifier,
    events: Vec<Arc<dyn AnyEvent>>,
) -> Result<()> {
    if !A::EVENT_SOURCED {
        return Err(Error::usage(format!(
            "`{0}` is a stored aggregate, which is not rebuilt from events: create it with a command (`given::<{0}>().process(..)`) and chain the next one",
            A::NAME
        )));
    }
    let mut ctx = domain.unit_of_work();
    let mut aggregate = match ctx.repository::<A>().find(&id).await? {
        Some(aggregate) => aggregate,
        None => A::blank(id),
    };
    for event in &events {
        crate::model::aggregate::replay_erased(domain.registry(), &mut aggregate, event.as_ref())?;
    }
    crate::model::aggregate::push_pending(&mut aggregate, events);
    ctx.repository::<A>().add(aggregate).await?;
    crate::runtime::unit_of_work::commit_history(ctx).await
}

/// The history of a scenario: events that already happened.
#[must_use = "a scenario does nothing until `.process(command).await`"]
pub struct Given<A> {
    builder: DomainBuilder,
    history: History,
    projections: bool,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Given<A> {
    /// An event that already happened to the scenario's aggregate. Every `after(..)` event
    /// must name the same aggregate (its `<aggregate>_id`, `id` or `#[field(identifier)]`
    /// field); the first one names it.
    ///
    /// An old version of an event (`#[event_version]`) is read as the event, as a stored
    /// row of it would be.
    pub fn after<E>(mut self, event: E) -> Self
    where
        E: Happened,
        E::Current: BelongsTo<A>,
    {
        self.history.events.push(Past::of(event.happened(), true));
        self
    }

    /// An event that already happened to another aggregate (of any type, or another `A`)
    /// that the scenario needs: the account a transfer draws on, say. Recorded in order with
    /// the `after(..)` events.
    pub fn given_event<E>(mut self, event: E) -> Self
    where
        E: Happened,
        E::Current: DomainEvent,
    {
        self.history.events.push(Past::of(event.happened(), false));
        self
    }

    /// Puts the projectors in: they run on the history as it is recorded and on every
    /// command's events, so projections can be read from [`Outcome::domain`].
    pub fn with_projections(mut self) -> Self {
        self.projections = true;
        self
    }

    /// Replays the history into a fresh domain, then processes the command.
    ///
    /// # Panics
    /// With a `test setup error:` message when the domain does not build or the history
    /// cannot be replayed (see the [module documentation](self)).
    ///
    /// `O` is always the handler's output type, inferred from `C`.
    // Shaped as `Domain::process` is, for one compile error on a command without a handler.
    pub fn process<C, O>(self, command: C) -> BoxFuture<'static, Outcome<A, O>>
    where
        C: Handled<Output = O>,
        O: Send + 'static,
    {
        Box::pin(self.process_boxed(command))
    }

    async fn process_boxed<C: Handled>(self, command: C) -> Outcome<A, C::Output> {
        let builder = if self.projections {
            self.builder
        } else {
            self.builder.without_projectors()
        };
        let domain = match builder.build().await {
            Ok(domain) => domain,
            Err(error) => setup_error(format!("the scenario's domain does not build: {error}")),
        };
        let mut history = self.history;
        history.upcast(&domain);
        let id = history.subject();
        history.replay(&domain).await;
        Outcome {
            domain,
            id,
            aggregate: None,
            events: EventLog::default(),
            all_events: EventLog::default(),
            result: Ok(()),
        }
        .process(command)
        .await
    }
}

/// The events of a read-model scenario; see [`given_events`].
#[must_use = "a scenario does nothing until `.then_projection::<P>(id).await`"]
pub struct GivenEvents {
    builder: DomainBuilder,
    history: History,
}

impl GivenEvents {
    /// An event that happened, to the aggregate its `<aggregate>_id`, `id` or
    /// `#[field(identifier)]` field names. Events are recorded in the order given.
    pub fn event<E>(mut self, event: E) -> Self
    where
        E: Happened,
        E::Current: DomainEvent,
    {
        self.history.events.push(Past::of(event.happened(), false));
        self
    }

    /// Records the events, runs them through the projectors (in order, as commits would;
    /// event handlers do not run), and gives the domain, to read what they made.
    ///
    /// # Panics
    /// With a `test setup error:` message when the domain does not build or an event
    /// cannot be recorded.
    pub async fn domain(self) -> Domain {
        let domain = match self.builder.build().await {
            Ok(domain) => domain,
            Err(error) => setup_error(format!("the scenario's domain does not build: {error}")),
        };
        let mut history = self.history;
        history.upcast(&domain);
        history.replay(&domain).await;
        domain
    }

    /// The row of projection `P` with this id after the events went through the
    /// projectors (`None` when they made no such row).
    ///
    /// # Panics
    /// As [`domain`](Self::domain), and when the projection cannot be read.
    pub async fn then_projection<P: Projection>(self, id: impl AsRef<str>) -> Option<P> {
        let id = id.as_ref().to_owned();
        let domain = self.domain().await;
        match domain.repository::<P>().find(&id).await {
            Ok(row) => row,
            Err(error) => panic!("reading projection `{}` `{id}` failed: {error}", P::NAME),
        }
    }
}

/// What processing a command did: accepted or rejected, the events it raised, and the
/// aggregate's state after it. `O` is the output of the command's handler.
pub struct Outcome<A, O = ()> {
    domain: Domain,
    id: Option<Identifier>,
    aggregate: Option<A>,
    events: EventLog,
    all_events: EventLog,
    result: std::result::Result<O, Error>,
}

impl<A: Aggregate, O> Outcome<A, O> {
    /// Processes another command in the same domain, after this one (whether it was
    /// accepted or not).
    ///
    /// `O2` is always the handler's output type, inferred from `C`.
    // Shaped as `Domain::process` is, for one compile error on a command without a handler.
    pub fn process<C, O2>(self, command: C) -> BoxFuture<'static, Outcome<A, O2>>
    where
        C: Handled<Output = O2>,
        O2: Send + 'static,
        O: Send + 'static,
    {
        Box::pin(self.process_boxed(command))
    }

    async fn process_boxed<C: Handled>(self, command: C) -> Outcome<A, C::Output> {
        let domain = self.domain;
        let (result, events) = match domain.process_request(command, Default::default()).await {
            Ok((output, events)) => (Ok(output), events),
            Err(error) => (Err(error), Vec::new()),
        };
        let all_events = match events.first() {
            Some(first) => correlated(&domain, &first.metadata().correlation_id).await,
            None => Vec::new(),
        };
        let category = domain.event_store().category_of::<A>().ok();
        let id = self.id.or_else(|| {
            let category = category.as_deref()?;
            events.iter().find_map(|event| {
                let stream = &event.metadata().stream;
                stream
                    .strip_prefix(category)?
                    .strip_prefix('-')
                    .map(Identifier::from)
            })
        });
        let aggregate = match &id {
            Some(id) => match domain.repository::<A>().find(id).await {
                Ok(aggregate) => aggregate,
                Err(error) => panic!("reading `{}` `{id}` failed: {error}", A::NAME),
            },
            None => None,
        };
        Outcome {
            domain,
            id,
            aggregate,
            events: EventLog { events },
            all_events: EventLog { events: all_events },
            result,
        }
    }

    /// Whether the command was accepted (its handler succeeded and it committed).
    pub fn accepted(&self) -> bool {
        self.result.is_ok()
    }

    /// Whether the command was rejected.
    pub fn rejected(&self) -> bool {
        self.result.is_err()
    }

    /// Why the command was rejected.
    pub fn rejection(&self) -> Option<&Error> {
        self.result.as_ref().err()
    }

    /// The messages of the rejection, field → messages (empty when the command was
    /// accepted). A validation or invariant failure gives its fields' messages; any other
    /// rejection (a `NotFound`, an error of your own domain) gives its message under `"_"`.
    pub fn rejection_messages(&self) -> BTreeMap<String, Vec<String>> {
        match &self.result {
            Ok(_) => BTreeMap::new(),
            Err(error) => match error.as_validation() {
                Some(validation) => validation.messages().clone(),
                None => BTreeMap::from([("_".to_owned(), vec![error.to_string()])]),
            },
        }
    }

    /// The handler's output, when the command was accepted. Its type is the handler's
    /// return type, so it cannot be asked for as another one.
    pub fn output(&self) -> Option<&O> {
        self.result.as_ref().ok()
    }

    /// The events the command raised in its own unit of work (none when rejected).
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Every event the command caused, of every aggregate: its own, then those of the
    /// commands its event handlers issued (the events that share its correlation id), in
    /// the order they were recorded. Empty when it was rejected.
    pub fn all_events(&self) -> &EventLog {
        &self.all_events
    }

    /// The aggregate's state after the command (before it, when rejected).
    ///
    /// # Panics
    /// When there is no aggregate (no history and the command created none), as an
    /// assertion would; use [`try_aggregate`](Self::try_aggregate) to check.
    pub fn aggregate(&self) -> &A {
        match &self.aggregate {
            Some(aggregate) => aggregate,
            None => panic!("the scenario has no `{}`: {:?}", A::NAME, self.rejection()),
        }
    }

    /// The aggregate's state, if there is one.
    pub fn try_aggregate(&self) -> Option<&A> {
        self.aggregate.as_ref()
    }

    /// The domain the scenario runs in (to read projections, for example).
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

/// Every recorded event with this correlation id, decoded, in order.
async fn correlated(
    domain: &Domain,
    correlation_id: &Identifier,
) -> Vec<Arc<dyn AnyRecordedEvent>> {
    let recorded = match domain
        .event_store()
        .read_all(crate::store::Cursor::START)
        .await
    {
        Ok(recorded) => recorded,
        Err(error) => panic!("reading the scenario's events failed: {error}"),
    };
    recorded
        .iter()
        .filter(|event| event.metadata.correlation_id == *correlation_id)
        .map(|event| {
            let decoded = domain
                .registry()
                .event_by_type_name(event)
                .and_then(|info| info.decode(event));
            match decoded {
                Ok(decoded) => decoded.record(event.metadata.clone()),
                Err(error) => panic!("the scenario recorded an event it cannot read: {error}"),
            }
        })
        .collect()
}

/// The events a command raised, as recorded.
#[derive(Default)]
pub struct EventLog {
    events: Vec<Arc<dyn AnyRecordedEvent>>,
}

impl EventLog {
    /// Whether an event of type `E` was raised.
    pub fn contains<E: DomainEvent>(&self) -> bool {
        self.get::<E>().is_some()
    }

    /// The first event of type `E`.
    pub fn get<E: DomainEvent>(&self) -> Option<&Event<E>> {
        self.events.iter().find_map(|event| event.downcast::<E>())
    }

    /// Every event of type `E`, in order.
    pub fn of_type<E: DomainEvent>(&self) -> Vec<&Event<E>> {
        self.events
            .iter()
            .filter_map(|event| event.downcast::<E>())
            .collect()
    }

    /// How many events were raised.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether none was raised.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The type names of the events, in order.
    pub fn type_names(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|event| event.metadata().type_name.as_str())
            .collect()
    }
}
