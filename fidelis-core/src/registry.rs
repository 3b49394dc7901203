//! The domain registry: which elements a domain has, how they link, and the checks that a
//! domain is whole before it runs.
//!
//! Elements reach a [`Registrar`] two ways: discovered (every macro submits an
//! [`AutoRegistration`] to `inventory`) or registered by hand with
//! `Domain::builder(..).register::<T>()`. Both call the element's [`Element::register`].

mod subscriber;
mod upcasting;

use std::any::{Any, TypeId};
use std::collections::BTreeMap;

use crate::FastMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::model::aggregate;
use crate::model::element::{Aggregate, Command, DomainEvent, Element, ElementKind, Projection};
use crate::model::error::{Error, Result};
use crate::model::event::{AnyEvent, AnyRecordedEvent, Event, Payload, RecordedEvent};
use crate::model::event_version::{self, DecodeOldFn, EventVersion, FinishFn, StepFn, Upcaster};
use crate::model::fact::{Fact, FactEvents};
use crate::model::field::FieldDef;
use crate::runtime::context::{EventHandlerContext, ProjectorContext};

pub(crate) use subscriber::BrokerSubscriber;
pub use subscriber::SubscriberThunk;
use subscriber::{SubscriberEntry, TypedSubscriber};

/// One auto-registered element, submitted to `inventory` by the macros.
#[doc(hidden)]
pub struct AutoRegistration {
    /// `module_path!()` where the element is declared; its first segment is the crate.
    pub module_path: &'static str,
    /// The element's [`Element::register`].
    pub register: fn(&mut Registrar),
}

inventory::collect!(AutoRegistration);

impl AutoRegistration {
    /// The crate the element was declared in.
    pub fn crate_name(&self) -> &'static str {
        self.module_path
            .split("::")
            .next()
            .unwrap_or(self.module_path)
    }
}

/// Every element discovered through `inventory` in this process.
pub(crate) fn discovered() -> impl Iterator<Item = &'static AutoRegistration> {
    inventory::iter::<AutoRegistration>.into_iter()
}

/// An aggregate as the registry knows it.
#[derive(Clone, Debug)]
pub struct AggregateInfo {
    /// Its Rust name.
    pub name: &'static str,
    /// Whether it is event-sourced.
    pub event_sourced: bool,
    /// Its fields.
    pub fields: &'static [FieldDef],
    /// Its identifier field: the one marked `#[field(identifier)]` (the macro marks a field
    /// named `id`, or the `id` it adds, so), else `id`. The primary key of its table.
    pub identifier: &'static str,
    /// Its stream category, `<domain>::<aggregate>` (set when the domain is built).
    pub category: String,
    /// Its table (state-stored aggregates): `<domain>_<aggregate>` in snake case (set when the
    /// domain is built), so that two domains can share a database.
    pub table: String,
    /// Its snapshot operations, for calls by name (used when it is event-sourced).
    pub(crate) snapshots: crate::runtime::snapshot::SnapshotOps,
}

type DecodeFn = fn(&RecordedEvent) -> Result<Arc<dyn AnyEvent>>;
type ReplayFn = fn(&mut dyn Any, &dyn AnyEvent) -> bool;

/// An event as the registry knows it.
#[derive(Clone, Debug)]
pub struct EventInfo {
    /// Its Rust name.
    pub name: &'static str,
    /// Its schema version.
    pub version: u32,
    /// `#[event(type_name = "…")]`, if given.
    pub type_name_override: Option<&'static str>,
    /// Its stable type name (set when the domain is built).
    pub type_name: String,
    /// The aggregate it is part of.
    pub aggregate: TypeId,
    /// That aggregate's name.
    pub aggregate_name: &'static str,
    /// Its fields.
    pub fields: &'static [FieldDef],
    /// Whether the outbox relays it to the broker (`#[event(published)]`, fact events).
    pub published: bool,
    pub(crate) decode_current: DecodeFn,
    pub(crate) replay: ReplayFn,
    /// Ends an upcaster chain at this event.
    pub(crate) finish: FinishFn,
    /// Set on the entries of old versions' type names: how their rows become this event.
    pub(crate) upcaster: Option<Upcaster>,
}

impl EventInfo {
    /// The event a stored row holds, typed: decoded straight into the event, or, for a row
    /// of an old version, decoded as that version and upcast to the current one.
    pub(crate) fn decode(&self, recorded: &RecordedEvent) -> Result<Arc<dyn AnyEvent>> {
        match &self.upcaster {
            None => (self.decode_current)(recorded),
            Some(upcaster) => upcaster.upcast(recorded),
        }
    }
}

/// An old version of an event (`#[event_version]`) as the registry knows it.
#[derive(Clone, Debug)]
pub struct EventVersionInfo {
    /// Its Rust name.
    pub name: &'static str,
    /// Its schema version.
    pub version: u32,
    /// The event it is a version of.
    pub of: TypeId,
    /// That event's name.
    pub of_name: &'static str,
    /// The type it is upcast to (`next = T`, or the event).
    pub next: TypeId,
    /// That type's name, for messages.
    pub next_name: &'static str,
    pub(crate) decode: DecodeOldFn,
    pub(crate) step: StepFn,
}

/// A command as the registry knows it.
#[derive(Clone, Debug)]
pub struct CommandInfo {
    /// Its Rust name.
    pub name: &'static str,
    /// The aggregate it is part of.
    pub aggregate: TypeId,
    /// That aggregate's name.
    pub aggregate_name: &'static str,
    /// Its fields.
    pub fields: &'static [FieldDef],
    /// Its type name in the command log and the queue of submitted commands,
    /// `<Domain>.<Command>` (`Fidelis.MakeDeposit`; set when the domain is built).
    pub type_name: String,
}

/// A projection as the registry knows it.
#[derive(Clone, Debug)]
pub struct ProjectionInfo {
    /// Its Rust name.
    pub name: &'static str,
    /// Its fields.
    pub fields: &'static [FieldDef],
    /// The identifier field.
    pub identifier: &'static str,
    /// Its table: `<domain>_<projection>` in snake case (set when the domain is built), so
    /// that two domains can share a database; `<domain>_<projection>_v<N>` from version 2.
    pub table: String,
    /// The version of its rows (`#[projection(version = N)]`, 1 by default).
    pub version: u32,
}

/// A command handled by a command handler method.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct CommandRoute {
    pub(crate) command: TypeId,
    pub(crate) command_name: &'static str,
    pub(crate) method: &'static str,
    /// Decodes a submitted command of this type from its queued JSON and processes it.
    pub(crate) dispatch_queued: DispatchQueued,
}

/// Decodes a queued command (its JSON) into its type and processes it, for the engine's
/// command dispatcher. One per command type, made where the type is known: the route.
// It names the runtime's `Domain` and queued-command request: like the handler contexts, the
// contract between a command and the runtime that runs it.
pub(crate) type DispatchQueued = for<'a> fn(
    &'a crate::runtime::domain::Domain,
    crate::runtime::domain::QueuedRequest,
) -> BoxFuture<'a, Result<()>>;

impl CommandRoute {
    /// `#[handle(C)] fn method`.
    pub fn of<C: crate::model::element::Handled>(method: &'static str) -> Self {
        Self {
            command: TypeId::of::<C>(),
            command_name: C::NAME,
            method,
            dispatch_queued: crate::runtime::domain::dispatch_queued::<C>,
        }
    }
}

pub(crate) type Instance = Arc<dyn Any + Send + Sync>;

/// Calls one projector method with a type-erased instance and event.
pub(crate) trait ProjectorCall: Send + Sync {
    fn call<'a, 'c>(
        &self,
        instance: &'a (dyn Any + Send + Sync),
        event: &'a dyn AnyRecordedEvent,
        ctx: &'a mut ProjectorContext<'c>,
    ) -> BoxFuture<'a, Result<()>>;
}

/// Calls one event handler method with a type-erased instance and event.
pub(crate) trait EventHandlerCall: Send + Sync {
    fn call<'a>(
        &self,
        instance: &'a (dyn Any + Send + Sync),
        event: &'a dyn AnyRecordedEvent,
        ctx: &'a mut EventHandlerContext,
    ) -> BoxFuture<'a, Result<()>>;
}

/// The signature of the thunks the macros generate for a projector's `#[on(E)]` methods.
#[doc(hidden)]
pub type ProjectorThunk<H, E> =
    for<'a, 'c> fn(&'a H, &'a Event<E>, &'a mut ProjectorContext<'c>) -> BoxFuture<'a, Result<()>>;

/// The signature of the thunks the macros generate for an event handler's `#[handle(E)]`
/// methods.
#[doc(hidden)]
pub type EventHandlerThunk<H, E> =
    for<'a> fn(&'a H, &'a Event<E>, &'a mut EventHandlerContext) -> BoxFuture<'a, Result<()>>;

struct TypedCall<T> {
    thunk: T,
    listener: &'static str,
}

impl<H: Send + Sync + 'static, E: DomainEvent> ProjectorCall for TypedCall<ProjectorThunk<H, E>> {
    fn call<'a, 'c>(
        &self,
        instance: &'a (dyn Any + Send + Sync),
        event: &'a dyn AnyRecordedEvent,
        ctx: &'a mut ProjectorContext<'c>,
    ) -> BoxFuture<'a, Result<()>> {
        match (instance.downcast_ref::<H>(), event.downcast::<E>()) {
            (Some(instance), Some(event)) => (self.thunk)(instance, event, ctx),
            _ => misrouted::<E>(self.listener),
        }
    }
}

impl<H: Send + Sync + 'static, E: DomainEvent> EventHandlerCall
    for TypedCall<EventHandlerThunk<H, E>>
{
    fn call<'a>(
        &self,
        instance: &'a (dyn Any + Send + Sync),
        event: &'a dyn AnyRecordedEvent,
        ctx: &'a mut EventHandlerContext,
    ) -> BoxFuture<'a, Result<()>> {
        match (instance.downcast_ref::<H>(), event.downcast::<E>()) {
            (Some(instance), Some(event)) => (self.thunk)(instance, event, ctx),
            _ => misrouted::<E>(self.listener),
        }
    }
}

/// The routing table is keyed by the event's `TypeId`, so a misrouted event means a corrupted
/// registry: reported instead of panicking.
fn misrouted<E: DomainEvent>(listener: &'static str) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move {
        Err(Error::handler(
            listener,
            format!("misrouted event {}", E::NAME),
        ))
    })
}

/// A listener method's call, by the role it is written for.
#[derive(Clone)]
pub(crate) enum ListenerCall {
    Projector(Arc<dyn ProjectorCall>),
    EventHandler(Arc<dyn EventHandlerCall>),
}

/// An event handled by a projector or event handler method.
#[doc(hidden)]
#[derive(Clone)]
pub struct ListenerRoute {
    pub(crate) event: TypeId,
    pub(crate) event_name: &'static str,
    pub(crate) event_aggregate: TypeId,
    pub(crate) event_aggregate_name: &'static str,
    pub(crate) method: &'static str,
    pub(crate) call: ListenerCall,
}

impl ListenerRoute {
    /// A projector's `#[on(E)] fn method`.
    pub fn projector<H: Element, E: DomainEvent>(
        method: &'static str,
        thunk: ProjectorThunk<H, E>,
    ) -> Self {
        let call = TypedCall {
            thunk,
            listener: H::NAME,
        };
        Self::new::<E>(method, ListenerCall::Projector(Arc::new(call)))
    }

    /// An event handler's `#[handle(E)] fn method`.
    pub fn event_handler<H: Element, E: DomainEvent>(
        method: &'static str,
        thunk: EventHandlerThunk<H, E>,
    ) -> Self {
        let call = TypedCall {
            thunk,
            listener: H::NAME,
        };
        Self::new::<E>(method, ListenerCall::EventHandler(Arc::new(call)))
    }

    fn new<E: DomainEvent>(method: &'static str, call: ListenerCall) -> Self {
        Self {
            event: TypeId::of::<E>(),
            event_name: E::NAME,
            event_aggregate: TypeId::of::<E::Aggregate>(),
            event_aggregate_name: <E::Aggregate as Element>::NAME,
            method,
            call,
        }
    }
}

/// An aggregate a projector or event handler listens to.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct AggregateRef {
    pub(crate) type_id: TypeId,
    pub(crate) name: &'static str,
}

impl AggregateRef {
    /// The aggregate `A`.
    pub fn of<A: Aggregate>() -> Self {
        Self {
            type_id: TypeId::of::<A>(),
            name: A::NAME,
        }
    }
}

/// A command handler, projector or event handler as the registry knows it.
#[derive(Clone)]
pub(crate) struct HandlerInfo {
    pub(crate) name: &'static str,
    pub(crate) kind: ElementKind,
    pub(crate) instance: Option<Instance>,
    pub(crate) commands: Vec<CommandRoute>,
    pub(crate) projection: Option<(TypeId, &'static str)>,
    pub(crate) aggregates: Vec<AggregateRef>,
    pub(crate) events: Vec<ListenerRoute>,
}

/// Collects the elements of a domain. The macros' generated `register` functions call its
/// methods; users call [`DomainBuilder::register`](crate::DomainBuilder::register) instead.
#[derive(Default)]
pub struct Registrar {
    aggregates: BTreeMap<TypeId, AggregateInfo>,
    events: BTreeMap<TypeId, EventInfo>,
    commands: BTreeMap<TypeId, CommandInfo>,
    projections: BTreeMap<TypeId, ProjectionInfo>,
    handlers: BTreeMap<TypeId, HandlerInfo>,
    versions: BTreeMap<TypeId, EventVersionInfo>,
    facts: BTreeMap<TypeId, FactInfo>,
    subscribers: BTreeMap<TypeId, SubscriberEntry>,
}

/// Makes the fact event of an aggregate's state (`None`: not that aggregate's state).
pub(crate) type MakeFactFn = fn(&(dyn Any + Send + Sync)) -> Option<Arc<dyn AnyEvent>>;

/// The fact events of an aggregate declared with `fact_events`.
#[derive(Clone, Debug)]
pub(crate) struct FactInfo {
    /// The event type, `Fact<A>`.
    pub(crate) event: TypeId,
    /// Its name, `<Aggregate>Fact`.
    pub(crate) event_name: &'static str,
    /// Its category, `<domain>::<aggregate>_fact` (set when the domain is built).
    pub(crate) category: String,
    pub(crate) make: MakeFactFn,
}

fn make_fact<A: FactEvents>(state: &(dyn Any + Send + Sync)) -> Option<Arc<dyn AnyEvent>> {
    state
        .downcast_ref::<A>()
        .map(|state| Arc::new(Fact::new(state.clone())) as Arc<dyn AnyEvent>)
}

impl Registrar {
    /// Registers an aggregate.
    pub fn aggregate<A: Aggregate>(&mut self) {
        self.aggregates
            .entry(TypeId::of::<A>())
            .or_insert_with(|| AggregateInfo {
                name: A::NAME,
                event_sourced: A::EVENT_SOURCED,
                fields: A::FIELDS,
                identifier: A::FIELDS
                    .iter()
                    .find(|field| field.identifier)
                    .map_or("id", |field| field.name),
                category: String::new(),
                table: String::new(),
                snapshots: crate::runtime::snapshot::SnapshotOps::of::<A>(),
            });
    }

    /// Registers an event.
    pub fn event<E: DomainEvent>(&mut self) {
        self.events
            .entry(TypeId::of::<E>())
            .or_insert_with(|| EventInfo {
                name: E::NAME,
                version: E::VERSION,
                type_name_override: E::TYPE_NAME,
                type_name: String::new(),
                aggregate: TypeId::of::<E::Aggregate>(),
                aggregate_name: <E::Aggregate as Element>::NAME,
                fields: E::FIELDS,
                published: E::PUBLISHED,
                decode_current: decode_event::<E>,
                replay: replay_event::<E>,
                finish: event_version::finish::<E>,
                upcaster: None,
            });
    }

    /// Registers the fact events of aggregate `A` (`#[aggregate(.., fact_events)]`): the event
    /// `Fact<A>`, recorded after every commit that changed an `A`.
    pub fn fact_events<A: FactEvents>(&mut self) {
        self.event::<Fact<A>>();
        self.facts
            .entry(TypeId::of::<A>())
            .or_insert_with(|| FactInfo {
                event: TypeId::of::<Fact<A>>(),
                event_name: A::FACT_NAME,
                category: String::new(),
                make: make_fact::<A>,
            });
    }

    /// Registers an old version of an event: its stored rows are read as the event.
    pub fn event_version<V: EventVersion>(&mut self) {
        self.versions
            .entry(TypeId::of::<V>())
            .or_insert_with(|| EventVersionInfo {
                name: V::NAME,
                version: V::VERSION,
                of: TypeId::of::<V::Of>(),
                of_name: <V::Of as Element>::NAME,
                next: TypeId::of::<V::Next>(),
                next_name: upcasting::short_type_name(std::any::type_name::<V::Next>()),
                decode: event_version::decode_old::<V>,
                step: event_version::step::<V>,
            });
    }

    /// Registers a command.
    pub fn command<C: Command>(&mut self) {
        self.commands
            .entry(TypeId::of::<C>())
            .or_insert_with(|| CommandInfo {
                name: C::NAME,
                aggregate: TypeId::of::<C::Aggregate>(),
                aggregate_name: <C::Aggregate as Element>::NAME,
                fields: C::FIELDS,
                type_name: String::new(),
            });
    }

    /// Registers a projection.
    pub fn projection<P: Projection>(&mut self) {
        self.projections
            .entry(TypeId::of::<P>())
            .or_insert_with(|| ProjectionInfo {
                name: P::NAME,
                fields: P::FIELDS,
                identifier: P::IDENTIFIER,
                table: String::new(),
                version: P::VERSION,
            });
    }

    /// Registers a command handler with its routes; `factory` makes the instance when the
    /// handler implements `Default`.
    pub fn command_handler<H: Element>(
        &mut self,
        factory: Option<fn() -> H>,
        commands: Vec<CommandRoute>,
    ) {
        self.handler::<H>(HandlerInfo {
            name: H::NAME,
            kind: ElementKind::CommandHandler,
            instance: factory.map(|make| Arc::new(make()) as Instance),
            commands,
            projection: None,
            aggregates: Vec::new(),
            events: Vec::new(),
        });
    }

    /// Registers the `#[handle]` methods written on aggregate `A` itself, as the command
    /// handler [`AggregateHandler<A>`](crate::AggregateHandler) (which needs no instance of
    /// its own).
    pub fn aggregate_commands<A: Aggregate>(&mut self, commands: Vec<CommandRoute>) {
        self.command_handler::<crate::model::element::AggregateHandler<A>>(
            Some(crate::model::element::AggregateHandler::new),
            commands,
        );
    }

    /// Registers a projector of projection `P`.
    pub fn projector<H: Element, P: Projection>(
        &mut self,
        factory: Option<fn() -> H>,
        aggregates: Vec<AggregateRef>,
        events: Vec<ListenerRoute>,
    ) {
        self.handler::<H>(HandlerInfo {
            name: H::NAME,
            kind: ElementKind::Projector,
            instance: factory.map(|make| Arc::new(make()) as Instance),
            commands: Vec::new(),
            projection: Some((TypeId::of::<P>(), P::NAME)),
            aggregates,
            events,
        });
    }

    /// Registers an event handler.
    pub fn event_handler<H: Element>(
        &mut self,
        factory: Option<fn() -> H>,
        aggregates: Vec<AggregateRef>,
        events: Vec<ListenerRoute>,
    ) {
        self.handler::<H>(HandlerInfo {
            name: H::NAME,
            kind: ElementKind::EventHandler,
            instance: factory.map(|make| Arc::new(make()) as Instance),
            commands: Vec::new(),
            projection: None,
            aggregates,
            events,
        });
    }

    /// Registers a subscriber of broker stream `stream` (`#[subscriber(stream = "…")]`),
    /// its `handle` method called through `thunk`; `factory` makes the instance when the
    /// subscriber implements `Default`.
    pub fn subscriber<H: Element>(
        &mut self,
        factory: Option<fn() -> H>,
        stream: &'static str,
        thunk: SubscriberThunk<H>,
    ) {
        self.subscribers
            .entry(TypeId::of::<H>())
            .or_insert_with(|| SubscriberEntry {
                name: H::NAME,
                stream,
                instance: factory.map(|make| Arc::new(make()) as Instance),
                call: Arc::new(TypedSubscriber {
                    thunk,
                    subscriber: H::NAME,
                }),
            });
    }

    fn handler<H: Element>(&mut self, info: HandlerInfo) {
        // Registering twice (discovered and by hand) keeps the first; an instance given with
        // `.instance(..)` replaces the default one in `set_instance`.
        self.handlers.entry(TypeId::of::<H>()).or_insert(info);
    }

    /// Sets the instance of a handler (one with state, or without `Default`).
    pub(crate) fn set_instance<H: Element>(&mut self, instance: H) {
        H::register(self);
        let instance: Instance = Arc::new(instance);
        if let Some(info) = self.handlers.get_mut(&TypeId::of::<H>()) {
            info.instance = Some(instance.clone());
        }
        if let Some(entry) = self.subscribers.get_mut(&TypeId::of::<H>()) {
            entry.instance = Some(instance);
        }
    }

    /// Checks that the domain is whole and computes names; every problem is reported at once.
    /// `reserved_tables`: names the stores keep for themselves, which no element may take.
    pub(crate) fn build(mut self, domain: &str, reserved_tables: &[&str]) -> Result<Registry> {
        let mut problems = Vec::new();
        let domain_snake = snake_case(domain);
        let domain_pascal = pascal_case(domain);

        for info in self.aggregates.values_mut() {
            info.category = format!("{domain_snake}::{}", snake_case(info.name));
            info.table = table_name(&domain_snake, info.name);
        }
        for info in self.projections.values_mut() {
            info.table = table_name(&domain_snake, info.name);
            if info.version > 1 {
                info.table = format!("{}_v{}", info.table, info.version);
            }
        }
        for info in self.facts.values_mut() {
            info.category = format!("{domain_snake}::{}", snake_case(info.event_name));
        }
        let tables = self.projections.values().map(|p| (p.name, &p.table)).chain(
            self.aggregates
                .values()
                .filter(|a| !a.event_sourced)
                .map(|a| (a.name, &a.table)),
        );
        for (element, table) in tables {
            if reserved_tables.contains(&table.as_str()) {
                problems.push(format!(
                    "`{element}`'s table would be `{table}`, a table Fidelis keeps for itself in every database; rename the element or the domain"
                ));
            }
        }
        for info in self.events.values_mut() {
            info.type_name = match info.type_name_override {
                Some(name) => name.to_owned(),
                None => format!("{domain_pascal}.{}.v{}", info.name, info.version),
            };
            if !self.aggregates.contains_key(&info.aggregate) {
                problems.push(format!(
                    "event `{}` is part of aggregate `{}`, which is not registered in domain `{domain}`",
                    info.name, info.aggregate_name
                ));
            }
        }

        let (upcasts, version_names) = upcasting::upcasters(
            &self.events,
            &self.versions,
            domain,
            &domain_pascal,
            &mut problems,
        );
        for info in self.commands.values_mut() {
            info.type_name = format!("{domain_pascal}.{}", info.name);
        }

        let mut handler_of: FastMap<TypeId, Vec<(&'static str, &'static str)>> = FastMap::default();
        for handler in self.handlers.values() {
            for route in &handler.commands {
                handler_of
                    .entry(route.command)
                    .or_default()
                    .push((handler.name, route.method));
                if !self.commands.contains_key(&route.command) {
                    problems.push(format!(
                        "command handler `{}` handles `{}`, which is not registered in domain `{domain}`",
                        handler.name, route.command_name
                    ));
                }
            }
        }
        for (type_id, info) in &self.commands {
            if !self.aggregates.contains_key(&info.aggregate) {
                problems.push(format!(
                    "command `{}` is part of aggregate `{}`, which is not registered in domain `{domain}`",
                    info.name, info.aggregate_name
                ));
            }
            match handler_of.get(type_id).map(Vec::as_slice) {
                None | Some([]) => problems.push(format!(
                    "command `{}` has no handler in domain `{domain}`: register a `#[command_handler]` with `#[handle({})]`",
                    info.name, info.name
                )),
                Some([_]) => {}
                Some(many) => problems.push(format!(
                    "command `{}` has {} handlers ({}); a command must have exactly one",
                    info.name,
                    many.len(),
                    {
                        let mut names: Vec<String> =
                            many.iter().map(|(h, m)| format!("`{h}::{m}`")).collect();
                        names.sort();
                        names.join(", ")
                    }
                )),
            }
        }

        for handler in self.handlers.values() {
            if handler.instance.is_none() {
                problems.push(format!(
                    "`{}` has no instance: implement `Default` for it, register one with `Domain::builder(..).instance(..)`, or write its methods without `self` if it holds no state",
                    handler.name
                ));
            }
            if let Some((projection, name)) = handler.projection
                && !self.projections.contains_key(&projection)
            {
                problems.push(format!(
                    "projector `{}` is for projection `{name}`, which is not registered in domain `{domain}`",
                    handler.name
                ));
            }
            for aggregate in &handler.aggregates {
                if !self.aggregates.contains_key(&aggregate.type_id) {
                    problems.push(format!(
                        "`{}` listens to aggregate `{}`, which is not registered in domain `{domain}`",
                        handler.name, aggregate.name
                    ));
                }
            }
            for route in &handler.events {
                if !handler
                    .aggregates
                    .iter()
                    .any(|a| a.type_id == route.event_aggregate)
                {
                    problems.push(format!(
                        "`{}::{}` handles `{}` of aggregate `{}`, which is not among the aggregates it listens to ({})",
                        handler.name,
                        route.method,
                        route.event_name,
                        route.event_aggregate_name,
                        handler.aggregates.iter().map(|a| a.name).collect::<Vec<_>>().join(", ")
                    ));
                }
                if !self.events.contains_key(&route.event) {
                    problems.push(format!(
                        "`{}::{}` handles `{}`, which is not registered in domain `{domain}`",
                        handler.name, route.method, route.event_name
                    ));
                }
                let projector_route = matches!(route.call, ListenerCall::Projector(_));
                if projector_route != (handler.kind == ElementKind::Projector) {
                    problems.push(format!(
                        "`{}::{}` is registered as {} but written for {}: register it with `ListenerRoute::{}`",
                        handler.name,
                        route.method,
                        if handler.kind == ElementKind::Projector { "a projector" } else { "an event handler" },
                        if projector_route { "a projector" } else { "an event handler" },
                        if handler.kind == ElementKind::Projector { "projector" } else { "event_handler" },
                    ));
                }
            }
        }

        // A subscription (its checkpoint, its dead letters) is named after its element.
        duplicates(
            &mut problems,
            "projector or event handler name",
            self.handlers
                .values()
                .filter(|h| matches!(h.kind, ElementKind::Projector | ElementKind::EventHandler))
                .map(|h| (h.name.to_owned(), h.name)),
        );
        subscriber::check(&self.subscribers, &self.handlers, &mut problems);
        duplicates(
            &mut problems,
            "event type name",
            self.events
                .values()
                .map(|e| (e.type_name.clone(), e.name))
                .chain(upcasts.values().map(|e| (e.type_name.clone(), e.name))),
        );
        duplicates(
            &mut problems,
            "aggregate name",
            self.aggregates
                .values()
                .map(|a| (a.category.clone(), a.name))
                // The facts of `Account` take the category an aggregate `AccountFact` would.
                .chain(
                    self.facts
                        .values()
                        .map(|f| (f.category.clone(), f.event_name)),
                ),
        );
        duplicates(
            &mut problems,
            "command name",
            self.commands.values().map(|c| (c.name.to_owned(), c.name)),
        );
        duplicates(
            &mut problems,
            "table name",
            self.projections
                .values()
                .map(|p| (p.table.clone(), p.name))
                .chain(
                    self.aggregates
                        .values()
                        .filter(|a| !a.event_sourced)
                        .map(|a| (a.table.clone(), a.name)),
                ),
        );

        if !problems.is_empty() {
            // Elements are keyed by `TypeId`, whose order changes between builds: sort, so the
            // same mistakes always read the same.
            problems.sort();
            return Err(Error::Configuration { problems });
        }

        let event_types = self
            .events
            .iter()
            .map(|(id, info)| (info.type_name.clone(), *id))
            .collect();
        let mut listeners: FastMap<TypeId, Vec<Listener<dyn ProjectorCall>>> = FastMap::default();
        let mut event_handlers: FastMap<TypeId, Vec<Listener<dyn EventHandlerCall>>> =
            FastMap::default();
        for handler in self.handlers.values() {
            let Some(instance) = &handler.instance else {
                continue;
            };
            for route in &handler.events {
                // The build checks above refused a route of the other role.
                match &route.call {
                    ListenerCall::Projector(call) => {
                        listeners.entry(route.event).or_default().push(Listener {
                            name: handler.name,
                            method: route.method,
                            instance: instance.clone(),
                            call: call.clone(),
                        })
                    }
                    ListenerCall::EventHandler(call) => event_handlers
                        .entry(route.event)
                        .or_default()
                        .push(Listener {
                            name: handler.name,
                            method: route.method,
                            instance: instance.clone(),
                            call: call.clone(),
                        }),
                }
            }
        }
        // One subscription per projector and event handler with an instance, reading the
        // categories of the aggregates it listens to (sorted, so the engine's order is stable).
        let mut subscribers: Vec<SubscriberInfo> = self
            .handlers
            .values()
            .filter(|h| h.instance.is_some())
            .filter(|h| matches!(h.kind, ElementKind::Projector | ElementKind::EventHandler))
            .map(|h| {
                // Listeners of `Fact<A>` read the facts' category too.
                let fact_categories = h.events.iter().filter_map(|route| {
                    self.facts
                        .values()
                        .find(|fact| fact.event == route.event)
                        .map(|fact| fact.category.clone())
                });
                let mut categories: Vec<String> = h
                    .aggregates
                    .iter()
                    .filter_map(|a| self.aggregates.get(&a.type_id))
                    .map(|a| a.category.clone())
                    .chain(fact_categories)
                    .collect();
                categories.sort();
                categories.dedup();
                let projection = h.projection.map(|(id, _)| id);
                let version = projection
                    .and_then(|id| self.projections.get(&id))
                    .map_or(1, |p| p.version);
                SubscriberInfo {
                    name: h.name,
                    projector: h.kind == ElementKind::Projector,
                    categories,
                    projection,
                    checkpoint: checkpoint_name(h.name, version),
                }
            })
            .collect();
        subscribers.sort_by_key(|s| s.name);
        let command_routes = self
            .handlers
            .values()
            .flat_map(|h| h.commands.iter().map(|r| (r.command, (h.name, r.method))))
            .collect();
        let command_types = self
            .handlers
            .values()
            .flat_map(|h| h.commands.iter())
            .filter_map(|route| {
                let info = self.commands.get(&route.command)?;
                Some((info.type_name.clone(), route.dispatch_queued))
            })
            .collect();
        let command_handlers = self
            .handlers
            .iter()
            .filter(|(_, h)| h.kind == ElementKind::CommandHandler)
            .filter_map(|(id, h)| h.instance.clone().map(|instance| (*id, instance)))
            .collect();

        let broker_subscribers = subscriber::built(self.subscribers);
        Ok(Registry {
            broker_subscribers,
            aggregates: self.aggregates.into_iter().collect(),
            event_types,
            upcasts,
            version_names,
            facts: self.facts.into_iter().collect(),
            events: self.events.into_iter().collect(),
            commands: self.commands.into_iter().collect(),
            projections: self.projections.into_iter().collect(),
            command_handlers,
            command_routes,
            command_types,
            projectors: listeners,
            event_handlers,
            subscribers,
        })
    }
}

fn duplicates(
    problems: &mut Vec<String>,
    what: &str,
    names: impl Iterator<Item = (String, &'static str)>,
) {
    let mut seen: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for (key, element) in names {
        seen.entry(key).or_default().push(element);
    }
    for (key, elements) in seen {
        if elements.len() > 1 {
            problems.push(format!(
                "duplicate {what} `{key}`: {} elements share it; rename one (or set its type name)",
                elements.len()
            ));
        }
    }
}

fn decode_event<E: DomainEvent>(recorded: &RecordedEvent) -> Result<Arc<dyn AnyEvent>> {
    // The one place stored events become typed: a store that kept the typed event lends it
    // (shared, not copied); text is decoded straight into `E`.
    match &recorded.payload {
        Payload::Typed(event) if event.as_any().is::<E>() => Ok(event.clone()),
        _ => Ok(Arc::new(recorded.decode::<E>()?)),
    }
}

fn replay_event<E: DomainEvent>(aggregate: &mut dyn Any, event: &dyn AnyEvent) -> bool {
    match (
        aggregate.downcast_mut::<E::Aggregate>(),
        event.as_any().downcast_ref::<E>(),
    ) {
        (Some(aggregate_ref), Some(event)) => {
            aggregate::replay(aggregate_ref, event);
            true
        }
        _ => false,
    }
}

/// A projector or event handler method, ready to call.
pub(crate) struct Listener<C: ?Sized> {
    pub(crate) name: &'static str,
    pub(crate) method: &'static str,
    pub(crate) instance: Instance,
    pub(crate) call: Arc<C>,
}

/// A built, validated domain registry.
pub struct Registry {
    pub(crate) aggregates: FastMap<TypeId, AggregateInfo>,
    pub(crate) events: FastMap<TypeId, EventInfo>,
    pub(crate) event_types: FastMap<String, TypeId>,
    /// The old versions' type names, each with the upcaster that reads it.
    pub(crate) upcasts: FastMap<String, EventInfo>,
    /// The type name of each old version, by its type.
    pub(crate) version_names: FastMap<TypeId, String>,
    /// The aggregates that record fact events, by aggregate type.
    pub(crate) facts: FastMap<TypeId, FactInfo>,
    pub(crate) commands: FastMap<TypeId, CommandInfo>,
    pub(crate) projections: FastMap<TypeId, ProjectionInfo>,
    pub(crate) command_handlers: FastMap<TypeId, Instance>,
    pub(crate) command_routes: FastMap<TypeId, (&'static str, &'static str)>,
    /// Command type name → how to decode and process a queued one.
    pub(crate) command_types: FastMap<String, DispatchQueued>,
    pub(crate) projectors: FastMap<TypeId, Vec<Listener<dyn ProjectorCall>>>,
    pub(crate) event_handlers: FastMap<TypeId, Vec<Listener<dyn EventHandlerCall>>>,
    /// The projectors and event handlers, by name: the engine's subscriptions.
    pub(crate) subscribers: Vec<SubscriberInfo>,
    /// The subscribers of broker streams (`#[subscriber]`), by name.
    pub(crate) broker_subscribers: Vec<BrokerSubscriber>,
}

/// A projector or event handler as the engine subscribes it.
#[derive(Clone, Debug)]
pub(crate) struct SubscriberInfo {
    /// The element's name, which names its subscription.
    pub(crate) name: &'static str,
    /// A projector (else an event handler).
    pub(crate) projector: bool,
    /// The stream categories of the aggregates it listens to.
    pub(crate) categories: Vec<String>,
    /// A projector's projection.
    pub(crate) projection: Option<TypeId>,
    /// The name its checkpoints are kept under ([`checkpoint_name`]).
    pub(crate) checkpoint: String,
}

/// The name a subscription's checkpoints are kept under: the element's name, and for a
/// projector of a projection's version N ≥ 2, `<name>@v<N>`, so that version builds from the
/// first event while the previous version's checkpoint stays where its processes left it.
pub(crate) fn checkpoint_name(subscriber: &str, version: u32) -> String {
    if version > 1 {
        format!("{subscriber}@v{version}")
    } else {
        subscriber.to_owned()
    }
}

impl Registry {
    /// The aggregates, by name.
    #[doc(hidden)]
    pub fn aggregates(&self) -> Vec<&AggregateInfo> {
        sorted(self.aggregates.values(), |a| a.name)
    }
    /// The events, by name.
    #[doc(hidden)]
    pub fn events(&self) -> Vec<&EventInfo> {
        sorted(self.events.values(), |e| e.name)
    }
    /// The commands, by name.
    #[doc(hidden)]
    pub fn commands(&self) -> Vec<&CommandInfo> {
        sorted(self.commands.values(), |c| c.name)
    }
    /// The projections, by name.
    #[doc(hidden)]
    pub fn projections(&self) -> Vec<&ProjectionInfo> {
        sorted(self.projections.values(), |p| p.name)
    }
    /// The handler of command `C`: the name of its command handler (the aggregate's name for
    /// a `#[handle]` method written on the aggregate) and of the method.
    pub fn command_handler_of<C: 'static>(&self) -> Option<(&'static str, &'static str)> {
        self.command_routes.get(&TypeId::of::<C>()).copied()
    }

    /// The type name of command `C` in the command log and the queue (`Fidelis.MakeDeposit`).
    pub fn command_type_name<C: 'static>(&self) -> Option<&str> {
        self.commands
            .get(&TypeId::of::<C>())
            .map(|info| info.type_name.as_str())
    }

    /// Whether the element `T` is registered in this domain.
    pub fn contains<T: 'static>(&self) -> bool {
        let id = TypeId::of::<T>();
        self.aggregates.contains_key(&id)
            || self.events.contains_key(&id)
            || self.commands.contains_key(&id)
            || self.projections.contains_key(&id)
            || self.command_handlers.contains_key(&id)
            || self
                .projectors
                .values()
                .flatten()
                .map(|listener| &listener.instance)
                .chain(self.event_handlers.values().flatten().map(|l| &l.instance))
                .chain(self.broker_subscribers.iter().map(|s| &s.instance))
                .any(|instance| instance.as_ref().type_id() == id)
    }

    /// The subscribers of broker streams: each one's name and the stream it reads, by name.
    pub fn broker_subscribers(&self) -> Vec<(&'static str, &'static str)> {
        self.broker_subscribers
            .iter()
            .map(|subscriber| (subscriber.name, subscriber.stream))
            .collect()
    }

    pub(crate) fn aggregate_info<A: 'static>(&self) -> Result<&AggregateInfo> {
        self.aggregates
            .get(&TypeId::of::<A>())
            .ok_or_else(|| not_registered(std::any::type_name::<A>()))
    }

    pub(crate) fn event_info(&self, type_id: TypeId, name: &str) -> Result<&EventInfo> {
        self.events
            .get(&type_id)
            .ok_or_else(|| not_registered(name))
    }

    pub(crate) fn event_by_type_name(&self, recorded: &RecordedEvent) -> Result<&EventInfo> {
        self.event_types
            .get(&recorded.metadata.type_name)
            .and_then(|id| self.events.get(id))
            .or_else(|| self.upcasts.get(&recorded.metadata.type_name))
            .ok_or_else(|| Error::Serialization {
                what: recorded.describe(),
                message: format!(
                    "unknown event type `{}`: no registered event has this type name",
                    recorded.metadata.type_name
                ),
            })
    }

    /// The table of a projection or state-stored aggregate.
    pub(crate) fn table_of<T: 'static>(&self) -> Result<&str> {
        let id = TypeId::of::<T>();
        if let Some(info) = self.projections.get(&id) {
            return Ok(&info.table);
        }
        match self.aggregates.get(&id) {
            Some(info) if !info.event_sourced => Ok(&info.table),
            Some(info) => Err(Error::usage(format!(
                "aggregate `{}` is event-sourced: it has no rows to query; query a projection of it",
                info.name
            ))),
            None => Err(not_registered(std::any::type_name::<T>())),
        }
    }

    pub(crate) fn projection_info<P: 'static>(&self) -> Result<&ProjectionInfo> {
        self.projections
            .get(&TypeId::of::<P>())
            .ok_or_else(|| not_registered(std::any::type_name::<P>()))
    }
}

fn sorted<'a, T>(items: impl Iterator<Item = &'a T>, key: fn(&T) -> &'static str) -> Vec<&'a T> {
    let mut items: Vec<&T> = items.collect();
    items.sort_by_key(|item| key(item));
    items
}

fn not_registered(name: &str) -> Error {
    Error::configuration(format!(
        "`{name}` is not registered in this domain: discover its crate or register it with `Domain::builder(..).register::<..>()`"
    ))
}

/// The table of an element of a domain: `<domain>_<element>` in snake case
/// (`fidelis_account_summary`). The domain prefix keeps the tables of two domains sharing one
/// database apart, on every adapter.
pub(crate) fn table_name(domain_snake: &str, element: &str) -> String {
    format!("{domain_snake}_{}", snake_case(element))
}

/// `AccountSummary` → `account_summary`; `bank-ledger` → `bank_ledger`.
pub(crate) fn snake_case(name: &str) -> String {
    // The same rule as the macros' (for `<aggregate>_id` fields): a capital starts a word
    // after a lowercase letter or digit, or before a lowercase letter in a run of capitals
    // (`HTTPServer` → `http_server`); `-`, `_` and spaces separate words.
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (index, &c) in chars.iter().enumerate() {
        let previous = index.checked_sub(1).and_then(|i| chars.get(i));
        if matches!(c, '-' | ' ' | '_') {
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        } else if c.is_uppercase() {
            let after_lower = previous.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            let ends_acronym = previous.is_some_and(|p| p.is_uppercase())
                && chars.get(index + 1).is_some_and(|n| n.is_lowercase());
            if (after_lower || ends_acronym) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `fidelis` → `Fidelis`; `bank-ledger` → `BankLedger`.
pub(crate) fn pascal_case(name: &str) -> String {
    name.split(['-', '_', ' '])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(snake_case("AccountSummary"), "account_summary");
        assert_eq!(snake_case("bank-ledger"), "bank_ledger");
        assert_eq!(snake_case("Account"), "account");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Account2Fa"), "account2_fa");
        assert_eq!(pascal_case("fidelis"), "Fidelis");
        assert_eq!(pascal_case("bank-ledger"), "BankLedger");
        assert_eq!(
            table_name("bank_ledger", "AccountSummary"),
            "bank_ledger_account_summary"
        );
    }
}
