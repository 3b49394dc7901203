//! Support for the code the macros generate. **Not public API**: no stability promise,
//! do not use directly.

use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use futures::future::BoxFuture;
pub use inventory;
pub use serde;
pub use serde_json;

pub use crate::broker::BrokerMessage;
pub use crate::model::aggregate::AggregateMeta;
pub use crate::model::element::{
    Aggregate, AggregateCommands, AggregateHandler, AggregateInvariants, Apply, BelongsTo, Command,
    CommandOf, CommandTarget, DomainEvent, Element, ElementKind, Handled, HandlesCommandsOf,
    HasFields, Invariant, InvariantStage, ListensTo, OneHandlerPerCommand, OutputCodec, Persisted,
    Projection, Projector, Queryable, Stateless, StorageKind, ValueObject,
};
pub use crate::model::error::{Error, Result, ValidationError};
pub use crate::model::event::Event;
pub use crate::model::event_version::{EventVersion, UpcastFrom};
pub use crate::model::fact::{Fact, FactEvents};
pub use crate::model::field::{
    BasicField, DecimalField, FieldDef, FieldKind, FieldType, IdentityField, LengthField,
    NumericField, TextField,
};
pub use crate::runtime::context::{Context, EventHandlerContext, ProjectorContext};
pub use crate::runtime::process_manager::{
    CorrelationKey, ProcessManager, ProcessMeta, ProcessRunner, ProcessSteps, Step,
    register as register_process_manager,
};
pub use crate::testing::{Happened, Happening};

/// `#[serde(with = …)]` and `from_json` support for `#[field(allow_non_finite)]` floats.
pub mod non_finite {
    pub use crate::model::field::non_finite::{NonFiniteFloat, deserialize, from_value, serialize};
}
pub use crate::model::field::{check_variant_field, enum_query_value, variant_names};
pub use crate::model::identifier::Identifier;
pub use crate::model::query::{FieldHandle, IntoQueryValue, QueryValue};
pub use crate::registry::{
    AggregateInfo, AggregateRef, AutoRegistration, CommandInfo, CommandRoute, EventHandlerThunk,
    EventInfo, ListenerRoute, ProjectionInfo, ProjectorThunk, Registrar, SubscriberThunk,
};

/// `aggregate.raise(event)`.
pub fn raise<A, E>(aggregate: &mut A, event: E) -> Result<()>
where
    A: Aggregate,
    E: BelongsTo<A>,
{
    crate::model::aggregate::raise(aggregate, event)
}

/// `A::create_new()`: a fresh id, defaults elsewhere.
pub fn create_new<A: Aggregate>() -> A {
    A::blank(Identifier::generate())
}

/// Checks one field's value against its definition.
pub fn check_field<T: FieldType>(value: &T, def: &FieldDef, errors: &mut ValidationError) {
    crate::model::field::check_field(value, def, errors);
}

/// Parses the JSON text given to `from_json`: malformed text is a serialization error, a key
/// given twice a validation error on that key.
pub fn parse_json_input(json: &str, element: &'static str) -> Result<Value> {
    match crate::model::strict_json::parse(json) {
        Ok(value) => Ok(value),
        Err(crate::model::strict_json::StrictJsonError::DuplicateKey(path)) => {
            Err(Error::Validation {
                element: element.to_owned(),
                errors: ValidationError::field(path, "is given twice"),
            })
        }
        Err(crate::model::strict_json::StrictJsonError::Syntax(error)) => {
            Err(Error::Serialization {
                what: format!("{element} from JSON"),
                message: error.to_string(),
            })
        }
    }
}

/// Reads the fields of a command or event from untrusted JSON, collecting every missing,
/// mistyped and invalid field instead of stopping at the first.
pub struct JsonFields {
    map: Map<String, Value>,
    errors: ValidationError,
    element: &'static str,
}

impl JsonFields {
    /// Starts reading; a value that is not an object is reported as such.
    pub fn new(element: &'static str, value: Value) -> std::result::Result<Self, Error> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                errors: ValidationError::new(),
                element,
            }),
            other => Err(Error::Validation {
                element: element.to_owned(),
                errors: ValidationError::field(
                    "_",
                    format!("expected a JSON object, got {}", kind_of(&other)),
                ),
            }),
        }
    }

    /// Takes a field: `None` (with a message recorded) when it is missing and required, or
    /// has the wrong type.
    pub fn take<T: DeserializeOwned + FieldType>(
        &mut self,
        name: &'static str,
        default: Option<fn() -> T>,
    ) -> Option<T> {
        self.take_with(name, default, serde_json::from_value)
    }

    /// [`take`](Self::take) with the field's own decoding (`allow_non_finite` floats).
    pub fn take_with<T: FieldType>(
        &mut self,
        name: &'static str,
        default: Option<fn() -> T>,
        decode: fn(Value) -> serde_json::Result<T>,
    ) -> Option<T> {
        self.take_field(name, T::OPTIONAL, default, decode)
    }

    /// [`take_with`](Self::take_with), given what it needs to know of the field's type (the
    /// generated code passes `<T as FieldType>::…` items, so a type that is not a field type
    /// is reported once, at the field).
    pub fn take_field<T>(
        &mut self,
        name: &'static str,
        optional: bool,
        default: Option<fn() -> T>,
        decode: fn(Value) -> serde_json::Result<T>,
    ) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) if optional => decode(Value::Null).ok(),
            None | Some(Value::Null) => match default {
                Some(default) => Some(default()),
                None => {
                    self.errors.add(name, "is required");
                    None
                }
            },
            Some(value) => {
                let kind = kind_of(&value);
                match decode(value) {
                    Ok(value) => Some(value),
                    Err(error) => {
                        self.errors
                            .add(name, format!("has the wrong type ({kind}): {error}"));
                        None
                    }
                }
            }
        }
    }

    /// Ends reading: unknown fields are reported too.
    pub fn finish(mut self) -> std::result::Result<(), Error> {
        for unknown in self.map.keys() {
            self.errors
                .add(unknown.clone(), "is not a field of this element");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation {
                element: self.element.to_owned(),
                errors: self.errors,
            })
        }
    }

    /// Ends reading when a field failed (so the value cannot be built): reports everything.
    pub fn fail(self) -> Error {
        match self.finish() {
            Err(error) => error,
            Ok(()) => Error::Validation {
                element: "input".to_owned(),
                errors: ValidationError::field("_", "invalid input"),
            },
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Validates a freshly decoded value, turning field errors into [`Error::Validation`].
pub fn validated<T: HasFields>(value: T, element: &'static str) -> Result<T> {
    match value.validate() {
        Ok(()) => Ok(value),
        Err(errors) => Err(Error::Validation {
            element: element.to_owned(),
            errors,
        }),
    }
}

/// Checks an entity held in an aggregate: its fields and its invariants, the messages under
/// the aggregate's field (`signatories.0.name`).
pub fn check_entity<E: HasFields>(
    entity: &E,
    invariants: &[Invariant<E>],
    def: &FieldDef,
    errors: &mut ValidationError,
) {
    let mut nested = entity.validate().err().unwrap_or_default();
    for invariant in invariants {
        if let Err(broken) = (invariant.check)(entity) {
            nested.merge(broken, None);
        }
    }
    if nested.is_empty() {
        return;
    }
    // An item of a list is checked under an empty name; the list adds `name.index`.
    let prefix = (!def.name.is_empty()).then_some(def.name);
    errors.merge(nested, prefix);
}

/// A command, event, value object or process manager holds no entity: an entity lives in the
/// aggregate it is `part_of`, and only there (checked at compile time, at the field).
pub const fn assert_no_entity(entity_of: Option<&'static str>) {
    if entity_of.is_some() {
        panic!(
            "an entity cannot be a field here: an entity lives only inside the aggregate it is `part_of`; carry its fields (and its id) as plain fields or a value object"
        );
    }
}

/// An aggregate holds only its own entities (`#[entity(part_of = ThisAggregate)]`).
pub const fn assert_entity_of(entity_of: Option<&'static str>, aggregate: &'static str) {
    if let Some(owner) = entity_of
        && !const_str_eq(owner, aggregate)
    {
        panic!(
            "this entity is `part_of` another aggregate: an aggregate holds only the entities declared `#[entity(part_of = ThisAggregate)]`"
        );
    }
}

const fn const_str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut index = 0;
    while index < a.len() {
        if a[index] != b[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// What a handler method may return: `()`, or `Result<T, E>` with `E: Into<Error>`.
pub trait HandlerReturn {
    /// The success value.
    type Output;
    /// As a `Result`.
    fn into_result(self) -> Result<Self::Output>;
}

impl HandlerReturn for () {
    type Output = ();
    fn into_result(self) -> Result<()> {
        Ok(())
    }
}

impl<T, E: Into<Error>> HandlerReturn for std::result::Result<T, E> {
    type Output = T;
    fn into_result(self) -> Result<T> {
        self.map_err(Into::into)
    }
}

/// Autoref specialization probe, at the concrete type the macro names:
/// `(&DefaultProbe::<H>::new()).factory()` is `Some(H::default)` when `H: Default`.
pub struct DefaultProbe<T>(PhantomData<fn() -> T>);
/// `(&InvariantProbe::<A>::new()).invariants()` lists the invariants of the impl block.
pub struct InvariantProbe<T>(PhantomData<fn() -> T>);

impl<T> DefaultProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)] // a `Default` impl would confuse the probe itself
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}
impl<T> InvariantProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// The probe's answer for types implementing `Default`.
pub trait FactoryViaDefault<T> {
    /// `Some(T::default)`.
    fn factory(&self) -> Option<fn() -> T>;
}
impl<T: Default> FactoryViaDefault<T> for DefaultProbe<T> {
    fn factory(&self) -> Option<fn() -> T> {
        Some(T::default)
    }
}
/// The probe's answer for types without `Default`.
pub trait FactoryFallback<T> {
    /// `None`.
    fn factory(&self) -> Option<fn() -> T>;
}
impl<T> FactoryFallback<T> for &DefaultProbe<T> {
    fn factory(&self) -> Option<fn() -> T> {
        None
    }
}

/// The probe's answer for aggregates with an `#[aggregate] impl` block.
pub trait InvariantsViaImpl<T> {
    /// The invariants.
    fn invariants(&self) -> &'static [Invariant<T>];
}
impl<T: AggregateInvariants> InvariantsViaImpl<T> for InvariantProbe<T> {
    fn invariants(&self) -> &'static [Invariant<T>] {
        T::INVARIANTS
    }
}
/// The probe's answer for aggregates without one.
pub trait InvariantsFallback<T> {
    /// None.
    fn invariants(&self) -> &'static [Invariant<T>];
}
impl<T> InvariantsFallback<T> for &InvariantProbe<T> {
    fn invariants(&self) -> &'static [Invariant<T>] {
        &[]
    }
}

pub use crate::runtime::repository::{
    load_aggregate, load_projection, loaded_aggregate_row, save_aggregate, save_projection,
};

/// Loads the aggregate a command names (its [`CommandTarget`]), for an aggregate's own
/// `#[handle(C)]` method: [`Error::NotFound`] when there is none.
pub async fn load_target<A: Aggregate>(ctx: &mut Context, target: Identifier) -> Result<A> {
    ctx.repository::<A>().get(&target).await
}

/// What a `#[handle(C, create)]` method may return: `Result<A, E>` with `E: Into<Error>`.
#[diagnostic::on_unimplemented(
    message = "a `create` handler of `{A}` returns the new aggregate, not `{Self}`",
    label = "expected `Result<Self>`",
    note = "`#[handle(C, create)] fn name(command: C) -> Result<Self>` makes a new `{A}`, which is saved; `process` returns its id"
)]
pub trait Creates<A> {
    /// As a `Result`.
    fn into_created(self) -> Result<A>;
}
impl<A, E: Into<Error>> Creates<A> for std::result::Result<A, E> {
    fn into_created(self) -> Result<A> {
        self.map_err(Into::into)
    }
}

/// Records an aggregate changed by its own `#[handle(C)]` method in the unit of work.
pub async fn save_handled<A: Aggregate>(ctx: &mut Context, aggregate: A) -> Result<()> {
    ctx.repository::<A>().add(aggregate).await
}

/// Records the aggregate a `#[handle(C, create)]` method made, and gives its id. An
/// event-sourced aggregate that raised no event would not be stored at all (its stream is
/// its state), so the id would name nothing: that is refused.
pub async fn add_created<A: Aggregate>(
    ctx: &mut Context,
    aggregate: A,
    method: &'static str,
) -> Result<Identifier> {
    if A::EVENT_SOURCED && aggregate.meta().version() < 0 {
        return Err(Error::handler(
            format!("{}::{method}", A::NAME),
            format!(
                "the `create` handler returned an event-sourced `{}` that raised no event, so nothing would be stored: raise the event that creates it",
                A::NAME
            ),
        ));
    }
    let id = aggregate.id().clone();
    ctx.repository::<A>().add(aggregate).await?;
    Ok(id)
}

/// `(&CommandsProbe::<A>::new()).command_routes()` lists the `#[handle]` methods of an
/// aggregate's impl block, when it has some.
pub struct CommandsProbe<T>(PhantomData<fn() -> T>);
impl<T> CommandsProbe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}
/// The probe's answer for aggregates with `#[handle]` methods.
pub trait CommandsViaImpl<T> {
    /// The routes.
    fn command_routes(&self) -> Option<Vec<CommandRoute>>;
}
impl<T: AggregateCommands> CommandsViaImpl<T> for CommandsProbe<T> {
    fn command_routes(&self) -> Option<Vec<CommandRoute>> {
        Some(T::command_routes())
    }
}
/// The probe's answer for aggregates without.
pub trait CommandsFallback<T> {
    /// None.
    fn command_routes(&self) -> Option<Vec<CommandRoute>>;
}
impl<T> CommandsFallback<T> for &CommandsProbe<T> {
    fn command_routes(&self) -> Option<Vec<CommandRoute>> {
        None
    }
}

/// Autoref specialization for `#[handle(C)]`'s `output_codec`: `(&OutputProbe::<T>::new())
/// .output_codec()` is `Some` codec through serde when `T` has serde encodings (the method of
/// `OutputViaSerde`, found without autoref), else `None` (the method of `OutputWithoutSerde`,
/// found with it).
pub struct OutputProbe<T>(PhantomData<fn() -> T>);

impl<T> OutputProbe<T> {
    /// The probe.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

/// See [`OutputProbe`].
pub trait OutputViaSerde<T> {
    /// A codec through serde.
    fn output_codec(&self) -> Option<OutputCodec<T>>;
}

impl<T: serde::Serialize + DeserializeOwned> OutputViaSerde<T> for OutputProbe<T> {
    fn output_codec(&self) -> Option<OutputCodec<T>> {
        Some(OutputCodec {
            encode: |output: &T| serde_json::to_value(output),
            decode: serde_json::from_value::<T>,
        })
    }
}

/// See [`OutputProbe`].
pub trait OutputWithoutSerde<T> {
    /// No codec.
    fn output_codec(&self) -> Option<OutputCodec<T>>;
}

impl<T> OutputWithoutSerde<T> for &OutputProbe<T> {
    fn output_codec(&self) -> Option<OutputCodec<T>> {
        None
    }
}
