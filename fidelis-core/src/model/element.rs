//! The traits the element macros implement. Users rarely name them: the macros implement
//! them and the runtime is generic over them.

use std::fmt::Debug;
use std::marker::PhantomData;

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::aggregate::AggregateMeta;
use crate::model::error::{Result, ValidationError};
use crate::model::field::FieldDef;
use crate::model::identifier::Identifier;
use crate::registry::{CommandRoute, Registrar};
use crate::runtime::context::Context;

/// What kind of element a type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ElementKind {
    /// `#[aggregate]`
    Aggregate,
    /// `#[event]`
    Event,
    /// `#[command]`
    Command,
    /// `#[command_handler]`
    CommandHandler,
    /// `#[event_handler]`
    EventHandler,
    /// `#[projection]`
    Projection,
    /// `#[projector]`
    Projector,
    /// `#[value_object]`
    ValueObject,
    /// `#[event_version]`: an old version of an event's schema.
    EventVersion,
    /// `#[process_manager]`
    ProcessManager,
    /// `#[subscriber]`: consumes a message broker's stream.
    Subscriber,
    /// `#[entity]`
    Entity,
}

/// A domain element: a type a Fidelis macro was put on. It knows its name and how to add
/// itself to a domain's [`Registrar`].
pub trait Element: Send + Sync + 'static {
    /// The type's name (`Account`).
    const NAME: &'static str;
    /// What kind of element it is.
    const KIND: ElementKind;
    /// Adds the element (and what it needs, such as handler routes) to a registrar.
    fn register(registrar: &mut Registrar);
}

/// An element with declared fields: static definitions plus validation against them.
pub trait HasFields {
    /// Every field, in declaration order.
    const FIELDS: &'static [FieldDef];
    /// Checks every field and reports all failures at once.
    fn validate(&self) -> std::result::Result<(), ValidationError>;
}

/// When an invariant runs: before (`pre`) or after (`post`) a state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvariantStage {
    /// `#[invariant(pre)]`
    Pre,
    /// `#[invariant(post)]`
    Post,
}

/// One `#[invariant]` method of an aggregate.
pub struct Invariant<A> {
    /// The method's name.
    pub name: &'static str,
    /// When it runs.
    pub stage: InvariantStage,
    /// The method.
    pub check: fn(&A) -> std::result::Result<(), ValidationError>,
}

/// An aggregate: a consistency boundary with identity, fields, invariants and events.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "not an aggregate",
    note = "put `#[aggregate]` (or `#[aggregate(event_sourced)]`) on the struct `{Self}`"
)]
pub trait Aggregate: Persisted {
    /// Whether state is rebuilt from events (`#[aggregate(event_sourced)]`) or stored as a row.
    const EVENT_SOURCED: bool;
    /// `#[aggregate(event_sourced, snapshot_threshold = N)]`: after how many events since
    /// the latest snapshot a new one is written, instead of the domain's
    /// [`snapshot_threshold`](crate::DomainBuilder::snapshot_threshold). `None`: the domain's.
    const SNAPSHOT_THRESHOLD: Option<u64> = None;
    /// The aggregate's identity.
    fn id(&self) -> &Identifier;
    /// A new aggregate with the given id, `default = …` values and `Default` elsewhere.
    fn blank(id: Identifier) -> Self;
    /// Version and pending events.
    #[doc(hidden)]
    fn meta(&self) -> &AggregateMeta;
    /// Version and pending events.
    #[doc(hidden)]
    fn meta_mut(&mut self) -> &mut AggregateMeta;
    /// The `#[invariant]` methods, from the `#[aggregate] impl` block.
    fn invariants() -> &'static [Invariant<Self>];
}

/// The `#[invariant]` methods of an aggregate, implemented by the `#[aggregate] impl` block
/// that declares them. Declare all of an aggregate's invariants in one such block.
pub trait AggregateInvariants: Sized + 'static {
    /// The invariants, in declaration order.
    const INVARIANTS: &'static [Invariant<Self>];
}

/// Applies an event to an aggregate's state. `#[apply]` methods implement it for
/// event-sourced aggregates; other aggregates accept their events without a state change.
#[diagnostic::on_unimplemented(
    message = "event-sourced aggregate `{Self}` has no `#[apply]` handler for `{E}`",
    label = "`{E}` is part of `{Self}`, which cannot apply it",
    note = "add `#[apply] fn on_…(&mut self, event: &{E})` to the `#[aggregate] impl {Self}` block"
)]
pub trait Apply<E> {
    /// Changes the state as the event says.
    fn apply(&mut self, event: &E);
}

/// Links an event to the aggregate it is `part_of`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event of aggregate `{A}`",
    label = "an aggregate can only raise its own events",
    note = "declare the event with `#[event(part_of = {A})]`, or raise it from its own aggregate"
)]
pub trait BelongsTo<A>: DomainEvent<Aggregate = A> {}

/// An event: an immutable fact that happened to an aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an event",
    note = "put `#[event(part_of = …)]` on the struct `{Self}`"
)]
pub trait DomainEvent: Element + HasFields + Clone + Debug + Serialize + DeserializeOwned {
    /// The aggregate it is `part_of`.
    type Aggregate: Aggregate;
    /// The version of the event's schema (`v1` in its type name).
    const VERSION: u32;
    /// A type name given with `#[event(type_name = "…")]`, instead of `<Domain>.<Event>.v<N>`.
    const TYPE_NAME: Option<&'static str>;
    /// Whether the outbox relays it to the domain's broker (`#[event(.., published)]`; fact
    /// events always are). Without a broker, nothing is published.
    const PUBLISHED: bool = false;
    /// The id of the aggregate it happened to: the field `<aggregate>_id`, `id`, or the one
    /// marked `#[field(identifier)]`.
    fn aggregate_id(&self) -> Option<&Identifier>;
    /// Applies the event to its aggregate: the aggregate's `#[apply]` method for it, or
    /// nothing for a stored aggregate.
    fn apply_to(&self, aggregate: &mut Self::Aggregate);
}

/// A command: an intention to change one aggregate.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command",
    label = "not a command",
    note = "put `#[command(part_of = …)]` on the struct `{Self}`"
)]
pub trait Command: Element + HasFields + Clone + Debug + Serialize + DeserializeOwned {
    /// The aggregate it is `part_of`.
    type Aggregate: Aggregate;
}

/// A command with its one handler: `domain.process(c)` of a command without one does not
/// compile. `#[handle(C)]` implements it through [`OneHandlerPerCommand`]; a hand-written
/// element may implement it directly.
#[diagnostic::on_unimplemented(
    message = "command `{Self}` has no handler",
    label = "no `#[handle({Self})]` method handles this command",
    note = "add `#[handle({Self})]` to a method of a `#[command_handler(part_of = …)]` impl"
)]
pub trait Handled: Command {
    /// The command handler type.
    type Handler: Element;
    /// What the handler returns on success.
    type Output: Send + 'static;
    /// Calls the handler method.
    fn dispatch<'a>(
        handler: &'a Self::Handler,
        command: Self,
        ctx: &'a mut Context,
    ) -> BoxFuture<'a, Result<Self::Output>>;
    /// How the handler's output is recorded when a process manager issues the command (see
    /// `runtime/step_command.rs`): `#[handle(C)]` fills it in when the output type has serde
    /// encodings; `None`, the default, when it has not.
    #[doc(hidden)]
    fn output_codec() -> Option<OutputCodec<Self::Output>> {
        None
    }
}

/// What `#[handle(C)]` implements: the command's one handler, from which [`Handled`] follows.
/// A command with two `#[handle(C)]` methods is thus a compile error that states the rule,
/// "conflicting implementations of trait `OneHandlerPerCommand` for type `C`", pointed at
/// both `#[handle(C)]`s (rustc's wording of E0119 cannot be changed; the trait's name can).
pub trait OneHandlerPerCommand: Command {
    /// The command handler type.
    type Handler: Element;
    /// What the handler returns on success.
    type Output: Send + 'static;
    /// Calls the handler method.
    fn dispatch<'a>(
        handler: &'a Self::Handler,
        command: Self,
        ctx: &'a mut Context,
    ) -> BoxFuture<'a, Result<Self::Output>>;
    /// How the handler's output is recorded when a process manager issues the command (see
    /// `runtime/step_command.rs`): `#[handle(C)]` fills it in when the output type has serde
    /// encodings; `None`, the default, when it has not.
    #[doc(hidden)]
    fn output_codec() -> Option<OutputCodec<Self::Output>> {
        None
    }
}

// `do_not_recommend`: a command without a handler is reported as not `Handled` (with its
// message), not as "`OneHandlerPerCommand` is not implemented, required for `Handled`".
#[diagnostic::do_not_recommend]
impl<C: OneHandlerPerCommand> Handled for C {
    type Handler = <C as OneHandlerPerCommand>::Handler;
    type Output = <C as OneHandlerPerCommand>::Output;
    fn dispatch<'a>(
        handler: &'a Self::Handler,
        command: Self,
        ctx: &'a mut Context,
    ) -> BoxFuture<'a, Result<Self::Output>> {
        <C as OneHandlerPerCommand>::dispatch(handler, command, ctx)
    }
    fn output_codec() -> Option<OutputCodec<Self::Output>> {
        <C as OneHandlerPerCommand>::output_codec()
    }
}

/// Encodes and decodes a command handler's output as JSON.
#[doc(hidden)]
pub struct OutputCodec<O> {
    /// The output as JSON.
    pub encode: fn(&O) -> serde_json::Result<serde_json::Value>,
    /// The output from JSON.
    pub decode: fn(serde_json::Value) -> serde_json::Result<O>,
}

/// Marks a command handler as `part_of` an aggregate: it may handle that aggregate's commands.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot handle commands of aggregate `{A}`",
    label = "this command is part of `{A}`",
    note = "a command handler handles the commands of the aggregate it is `part_of`: move this method to a `#[command_handler(part_of = {A})]`"
)]
pub trait HandlesCommandsOf<A> {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}

/// The aggregate a command is aimed at: the one an aggregate's own `#[handle(C)]` method
/// loads. `#[command]` implements it when the command has a target field of type
/// `Identifier`: the field marked `#[field(identifier)]`, else the field named
/// `<aggregate>_id` (`account_id` for a command `part_of = Account`).
#[diagnostic::on_unimplemented(
    message = "command `{Self}` does not name the aggregate to load",
    label = "an aggregate's `#[handle({Self})]` method loads the aggregate this command names",
    note = "give `{Self}` a field `<aggregate>_id: Identifier` (`account_id` for `Account`), or mark its `Identifier` field `#[field(identifier)]`; a command that makes a new aggregate is handled by `#[handle({Self}, create)] fn …(command: {Self}) -> Result<Self>`"
)]
pub trait CommandTarget: Command {
    /// The id of the aggregate the command is aimed at.
    fn target(&self) -> &Identifier;
}

/// A command that is `part_of` aggregate `A` (`#[command]` implements it): what an
/// aggregate's own `#[handle(C)]` methods may handle.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a command of aggregate `{A}`",
    label = "an aggregate handles only its own commands",
    note = "handle `{Self}` in the `#[aggregate] impl` of the aggregate it is `part_of`, or in a `#[command_handler]` of that aggregate"
)]
pub trait CommandOf<A> {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`).
    #[doc(hidden)]
    const ASSERT: () = ();
}

/// The command handler of the `#[handle(C)]` methods written on aggregate `A` itself: it
/// loads the aggregate the command names, calls the method and saves it (or, for
/// `#[handle(C, create)]`, saves the aggregate the method made). It holds no state.
pub struct AggregateHandler<A>(PhantomData<fn() -> A>);

impl<A> AggregateHandler<A> {
    /// The handler (it holds no state).
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<A> Default for AggregateHandler<A> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Aggregate> Element for AggregateHandler<A> {
    const NAME: &'static str = A::NAME;
    const KIND: ElementKind = ElementKind::CommandHandler;
    fn register(registrar: &mut Registrar) {
        A::register(registrar);
    }
}

/// The handler of a command-handler, projector or event-handler type `H` none of whose
/// methods takes `self`: the methods are called on the type, so `H` needs no instance (no
/// `Default`, no `.instance(..)`). The registry knows it under `H`'s name.
pub struct Stateless<H>(PhantomData<fn() -> H>);

impl<H> Stateless<H> {
    /// The handler (it holds no state).
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<H> Default for Stateless<H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: Element> Element for Stateless<H> {
    const NAME: &'static str = H::NAME;
    const KIND: ElementKind = H::KIND;
    fn register(registrar: &mut Registrar) {
        H::register(registrar);
    }
}

/// The `#[handle(C)]` methods of an aggregate, implemented by the `#[aggregate] impl` block
/// that declares them. Declare all of an aggregate's command handlers in one such block.
pub trait AggregateCommands: Aggregate {
    /// One route per handled command.
    fn command_routes() -> Vec<CommandRoute>;
}

/// Marks a projector or event handler as listening to an aggregate's events.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not listen to events of aggregate `{A}`",
    label = "this event is part of `{A}`",
    note = "add `{A}` to the `aggregates = [..]` (or `part_of`) of `{Self}`"
)]
pub trait ListensTo<A> {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}

/// A projection: a flat, query-optimized read model kept up to date by projectors.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a projection",
    label = "not a projection",
    note = "put `#[projection]` on the struct `{Self}`"
)]
pub trait Projection: Persisted {
    /// The name of the identifier field.
    const IDENTIFIER: &'static str;
    /// The version of its rows (`#[projection(version = N)]`, 1 by default). Version 1 keeps
    /// its rows in `<domain>_<projection>`; a later version in `<domain>_<projection>_v<N>`,
    /// filled from the first event by subscriptions of its own, so that processes running
    /// the previous version keep serving theirs meanwhile.
    const VERSION: u32 = 1;
}

/// What a projector's context reaches: the rows of projections (every projection is one).
#[diagnostic::on_unimplemented(
    message = "a projector reaches projection rows only, and `{Self}` is not a projection",
    label = "not a projection",
    note = "a projector runs inside the commit of the events it projects: through its `ctx` it gets, adds and removes rows of projections; load aggregates, query and process commands in a command handler or an event handler"
)]
pub trait ProjectionRow: Projection {}

impl<P: Projection> ProjectionRow for P {}

/// An element stored as rows, which [`Query`](crate::Query) can filter, order and page:
/// projections and state-stored aggregates (`#[aggregate]` without `event_sourced`). The
/// macros implement it; an event-sourced aggregate is a stream of events, not a row, so it
/// does not implement it (query a projection of it instead).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be queried: it is not stored as rows",
    label = "not a projection or state-stored aggregate",
    note = "queries run on `#[projection]`s and state-stored `#[aggregate]`s; an event-sourced aggregate is a stream of events: query a projection that a `#[projector]` keeps from its events"
)]
pub trait Queryable: Persisted {
    /// Called on each row a query decodes, with the row's stored version: a state-stored
    /// aggregate takes it as its loaded version, so that it can be changed and saved.
    #[doc(hidden)]
    fn loaded_row(&mut self, version: i64) {
        let _ = version;
    }
}

/// A projector: keeps one projection up to date from the events of some aggregates.
pub trait Projector: Element {
    /// The projection it maintains.
    type Projection: Projection;
}

/// A value object: an immutable, validated value compared by its fields, embeddable in
/// aggregates, events and commands.
pub trait ValueObject:
    HasFields + Clone + Debug + PartialEq + Serialize + DeserializeOwned
{
}

/// An element that a repository can load and save. The macros implement it for aggregates
/// and projections, choosing the runtime's strategy (`load_aggregate`, `load_projection`, …).
pub trait Persisted: Element + HasFields + Clone + Debug + Serialize + DeserializeOwned {
    /// What kind of storage the element uses.
    const STORAGE: StorageKind;
    /// The element's identity.
    fn identity(&self) -> Identifier;
    /// Loads one, as the unit of work sees it.
    #[doc(hidden)]
    fn load<'a>(ctx: &'a Context, id: Identifier) -> BoxFuture<'a, Result<Option<Self>>>;
    /// Records a write in the unit of work.
    #[doc(hidden)]
    fn save<'a>(ctx: &'a mut Context, value: Self) -> BoxFuture<'a, Result<()>>;
}

/// How an element is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageKind {
    /// An event stream, replayed on load.
    EventStream,
    /// A row (document) of an aggregate's table, with a version for optimistic concurrency.
    AggregateRow,
    /// A row (document) of a projection's table.
    ProjectionRow,
}
