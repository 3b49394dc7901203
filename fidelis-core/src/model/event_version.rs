//! Old versions of an event's schema (`#[event_version(of = E, version = N)]`), and the steps
//! that turn a stored old version into the current event (upcasting).
//!
//! An old version is read, never raised: the registry maps its type name
//! (`Fidelis.DepositMade.v1`) to a decoder that reads the old struct and applies the user's
//! `From` impls, one version after the other, until it is the current event. The store is
//! never rewritten.

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::element::{DomainEvent, Element};
use crate::model::error::{Error, Result};
use crate::model::event::{AnyEvent, Payload, RecordedEvent};

/// An old version of event [`Of`](EventVersion::Of)'s schema, declared with
/// `#[event_version(of = E, version = N)]`: stored rows of its type name are read as `E`.
///
/// ```
/// use fidelis_core::prelude::*;
/// # #[aggregate(event_sourced)]
/// # pub struct Account { pub balance: i64 }
/// # #[aggregate]
/// # impl Account {
/// #     #[apply]
/// #     fn on_deposit(&mut self, event: &DepositMade) { self.balance += event.amount; }
/// # }
/// #[event(part_of = Account, version = 2)]
/// pub struct DepositMade { pub account_id: Identifier, pub amount: i64, pub channel: String }
///
/// #[event_version(of = DepositMade, version = 1)]  // `Fidelis.DepositMade.v1`: read, never raised
/// pub struct DepositMadeV1 { pub account_id: Identifier, pub amount: i64 }
///
/// impl From<DepositMadeV1> for DepositMade {
///     fn from(v1: DepositMadeV1) -> Self {
///         Self { account_id: v1.account_id, amount: v1.amount, channel: "branch".into() }
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an old version of an event",
    label = "not an event version",
    note = "put `#[event_version(of = TheEvent, version = N)]` on the struct `{Self}`"
)]
pub trait EventVersion: Element + Clone + Debug + Serialize + DeserializeOwned {
    /// The event it is an old version of.
    type Of: DomainEvent;
    /// The version it is upcast to: `next = T`, by default the current event
    /// [`Of`](Self::Of).
    type Next: UpcastFrom<Self> + Send + 'static;
    /// Its schema version (`v1` in its type name); lower than the current event's.
    const VERSION: u32;
}

/// `Self` can be made from the older version `Old`: implemented for every `T: From<Old>`.
/// `#[event_version(.., next = T)]` requires it of `T`, so a missing `From` is reported at
/// the declaration, naming both types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be made from the old version `{Old}`",
    label = "no `impl From<{Old}> for {Self}`",
    note = "upcasting reads a stored `{Old}` and converts it: write `impl From<{Old}> for {Self} {{ fn from(old: {Old}) -> Self {{ … }} }}`"
)]
pub trait UpcastFrom<Old>: Sized {
    /// Converts the older version.
    fn upcast_from(old: Old) -> Self;
}

impl<Old, T: From<Old>> UpcastFrom<Old> for T {
    fn upcast_from(old: Old) -> Self {
        T::from(old)
    }
}

/// A value of some version of an event, on its way to the current version.
pub(crate) type Erased = Box<dyn Any + Send>;

/// Reads the stored data of one version.
pub(crate) type DecodeOldFn = fn(&RecordedEvent) -> Result<Erased>;
/// Upcasts one version to its `next`.
pub(crate) type StepFn = fn(Erased) -> Result<Erased>;
/// Turns the last step's value, the current event, into an event the runtime handles.
pub(crate) type FinishFn = fn(Erased) -> Result<Arc<dyn AnyEvent>>;

/// Decodes the stored data of version `V`: its JSON text, or (a store that kept a typed
/// event under this name) the typed event's JSON.
pub(crate) fn decode_old<V: EventVersion>(recorded: &RecordedEvent) -> Result<Erased> {
    let decoded = match &recorded.payload {
        Payload::Typed(event) => serde_json::from_value::<V>(event.to_json()?),
        Payload::Encoded(text) => serde_json::from_str::<V>(text.get()),
    };
    decoded
        .map(|old| Box::new(old) as Erased)
        .map_err(|error| Error::Serialization {
            what: recorded.describe(),
            message: format!("as `{}`: {error}", V::NAME),
        })
}

/// One step of a chain: `V` into `V::Next`.
pub(crate) fn step<V: EventVersion>(value: Erased) -> Result<Erased> {
    match value.downcast::<V>() {
        Ok(old) => Ok(Box::new(<V::Next as UpcastFrom<V>>::upcast_from(*old))),
        // The registry chains the steps by `TypeId`: another type here is a registry bug.
        Err(_) => Err(Error::configuration(format!(
            "upcasting reached a value that is not `{}`",
            V::NAME
        ))),
    }
}

/// The end of a chain: the current event `E`.
pub(crate) fn finish<E: DomainEvent>(value: Erased) -> Result<Arc<dyn AnyEvent>> {
    match value.downcast::<E>() {
        Ok(event) => Ok(Arc::new(*event)),
        Err(_) => Err(Error::configuration(format!(
            "upcasting did not end at the current event `{}`",
            E::NAME
        ))),
    }
}

/// The decoder of one old type name: decode the old struct, then each step in order.
#[derive(Clone, Debug)]
pub(crate) struct Upcaster {
    pub(crate) decode: DecodeOldFn,
    pub(crate) steps: Arc<[StepFn]>,
    pub(crate) finish: FinishFn,
}

impl Upcaster {
    /// The current event that a stored old version reads as.
    pub(crate) fn upcast(&self, recorded: &RecordedEvent) -> Result<Arc<dyn AnyEvent>> {
        let mut value = (self.decode)(recorded)?;
        for step in self.steps.iter() {
            value = step(value)?;
        }
        (self.finish)(value)
    }
}
