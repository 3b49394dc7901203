#![doc = include_str!("../docs/crate.md")]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod aggregate;
pub mod config;
pub mod context;
pub mod domain;
pub mod element;
pub mod error;
pub mod event;
pub mod field;
pub mod identifier;
pub mod query;
pub mod registry;
pub mod repository;
pub mod retry;
pub mod store;
mod strict_json;
mod task;
pub mod testing;
mod unit_of_work;

/// The runtime's internal hash map: foldhash, seeded per process, is several times faster than
/// SipHash on the short keys the runtime hashes on every command.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use chrono;
#[doc(inline)]
pub use fidelis_macros::{
    aggregate, apply, command, command_handler, event, event_handler, field, handle, invariant, on,
    projection, projector, value_object,
};
/// The exact decimal type of `Decimal` fields (the `decimal` feature): use it for money.
#[cfg(feature = "decimal")]
pub use rust_decimal::{self, Decimal};

#[doc(inline)]
pub use crate::aggregate::AggregateMeta;
#[doc(inline)]
pub use crate::context::Context;
#[doc(inline)]
pub use crate::domain::{Domain, DomainBuilder, DomainMetrics, EventStore};
#[doc(inline)]
pub use crate::element::{
    Aggregate, AggregateCommands, AggregateHandler, AggregateInvariants, Apply, BelongsTo, Command,
    CommandOf, CommandTarget, DomainEvent, Element, ElementKind, Handled, HandlesCommandsOf,
    HasFields, Invariant, InvariantStage, ListensTo, Persisted, Projection, Projector, Queryable,
    Stateless, StorageKind, ValueObject,
};
#[doc(inline)]
pub use crate::error::{DomainError, Error, Result, ValidationError};
#[doc(inline)]
pub use crate::event::{Event, EventMetadata, RecordedEvent};
#[doc(inline)]
pub use crate::field::{FieldDef, FieldKind, FieldType};
#[doc(inline)]
pub use crate::identifier::Identifier;
pub use crate::query::{FieldHandle, Filter, OrderBy, TextHandle};
pub use crate::registry::{Registrar, Registry};
pub use crate::repository::{DomainRepository, Query, Repository};
pub use crate::retry::RetryPolicy;

/// The examples of the macros' reference pages (`fidelis-macros/docs/*.md`, shown on the
/// macros above), compiled and run as doctests here: a proc-macro crate's doctests cannot
/// use its own macros.
#[cfg(doctest)]
mod macro_doctests {
    #[doc = include_str!("../../fidelis-macros/docs/aggregate.md")]
    struct Aggregate;
    #[doc = include_str!("../../fidelis-macros/docs/event.md")]
    struct Event;
    #[doc = include_str!("../../fidelis-macros/docs/command.md")]
    struct Command;
    #[doc = include_str!("../../fidelis-macros/docs/command_handler.md")]
    struct CommandHandler;
    #[doc = include_str!("../../fidelis-macros/docs/event_handler.md")]
    struct EventHandler;
    #[doc = include_str!("../../fidelis-macros/docs/projection.md")]
    struct Projection;
    #[doc = include_str!("../../fidelis-macros/docs/projector.md")]
    struct Projector;
    #[doc = include_str!("../../fidelis-macros/docs/value_object.md")]
    struct ValueObject;
    #[doc = include_str!("../../fidelis-macros/docs/field.md")]
    struct Field;
    #[doc = include_str!("../../fidelis-macros/docs/apply.md")]
    struct Apply;
    #[doc = include_str!("../../fidelis-macros/docs/invariant.md")]
    struct Invariant;
    #[doc = include_str!("../../fidelis-macros/docs/handle.md")]
    struct Handle;
    #[doc = include_str!("../../fidelis-macros/docs/on.md")]
    struct On;
}

/// Everything a domain crate needs: `use fidelis_core::prelude::*;`.
pub mod prelude {
    pub use chrono::{DateTime, NaiveDate, Utc};
    #[cfg(feature = "decimal")]
    pub use rust_decimal::Decimal;

    pub use crate::{
        Aggregate, Command, Context, Domain, DomainError, DomainEvent, Error, Event, EventMetadata,
        Identifier, Projection, Result, RetryPolicy, TextHandle, ValidationError, aggregate, apply,
        command, command_handler, event, event_handler, field, handle, invariant, on, projection,
        projector, value_object,
    };
}
