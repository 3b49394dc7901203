//! Fact events: `#[aggregate(.., fact_events)]` records, after every commit that changed an
//! aggregate, one [`Fact<A>`] event carrying its whole new state, in a category of its own.

use std::fmt::Debug;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::element::{Aggregate, DomainEvent, Element, ElementKind, HasFields};
use crate::model::error::ValidationError;
use crate::model::field::FieldDef;
use crate::model::identifier::Identifier;
use crate::registry::Registrar;

/// An aggregate that records fact events: `#[aggregate(event_sourced, fact_events)]` or
/// `#[aggregate(fact_events)]` implements it.
#[diagnostic::on_unimplemented(
    message = "aggregate `{Self}` does not record fact events",
    label = "`Fact<{Self}>` is recorded only for aggregates declared with `fact_events`",
    note = "declare it `#[aggregate(event_sourced, fact_events)]` (or `#[aggregate(fact_events)]` for a stored aggregate)"
)]
pub trait FactEvents: Aggregate + Clone + Debug + Serialize + DeserializeOwned {
    /// The fact event's name, `<Aggregate>Fact` (`AccountFact`): its type name is
    /// `<Domain>.AccountFact.v1` and its category `<domain>::account_fact`.
    const FACT_NAME: &'static str;
}

/// The whole state of aggregate `A` after a commit that changed it: a fact event. It derefs
/// to `A`. Projectors and event handlers that listen to `A` handle it with
/// `#[on(Fact<A>)]` / `#[handle(Fact<A>)]`.
///
/// ```
/// use fidelis_core::prelude::*;
///
/// #[aggregate(event_sourced, fact_events)]
/// pub struct Account { pub balance: i64 }
/// # #[aggregate]
/// # impl Account {}
///
/// #[projection]
/// pub struct Report {
///     #[field(identifier)]
///     pub account_id: Identifier,
///     pub balance: i64,
/// }
///
/// #[derive(Default)]
/// pub struct Reporter;
///
/// #[projector(for = Report, aggregates = [Account])]
/// impl Reporter {
///     #[on(Fact<Account>)]
///     async fn on_fact(fact: &Event<Fact<Account>>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
///         let report = Report { account_id: fact.id.clone(), balance: fact.balance };
///         ctx.repository::<Report>().add(report).await
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Fact<A>(A);

impl<A> Fact<A> {
    /// The fact of this state.
    pub fn new(state: A) -> Self {
        Self(state)
    }

    /// The state.
    pub fn into_inner(self) -> A {
        self.0
    }
}

impl<A> Deref for Fact<A> {
    type Target = A;
    fn deref(&self) -> &A {
        &self.0
    }
}

// The state's own JSON, nothing around it.
impl<A: Serialize> Serialize for Fact<A> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, A: Deserialize<'de>> Deserialize<'de> for Fact<A> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        A::deserialize(deserializer).map(Self)
    }
}

impl<A: FactEvents> Element for Fact<A> {
    const NAME: &'static str = A::FACT_NAME;
    const KIND: ElementKind = ElementKind::Event;
    fn register(registrar: &mut Registrar) {
        registrar.fact_events::<A>();
    }
}

impl<A: FactEvents> HasFields for Fact<A> {
    const FIELDS: &'static [FieldDef] = A::FIELDS;
    /// The state was valid when it was committed.
    fn validate(&self) -> Result<(), ValidationError> {
        Ok(())
    }
}

impl<A: FactEvents> DomainEvent for Fact<A> {
    type Aggregate = A;
    const VERSION: u32 = 1;
    const TYPE_NAME: Option<&'static str> = None;
    /// Facts exist for other bounded contexts and reporting pipelines: always published.
    const PUBLISHED: bool = true;
    fn aggregate_id(&self) -> Option<&Identifier> {
        Some(self.0.id())
    }
    /// A fact changes nothing: it is recorded outside the aggregate's stream.
    fn apply_to(&self, _aggregate: &mut A) {}
}
