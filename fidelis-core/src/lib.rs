//! # Fidelis
//!
//! Declarative domain-driven design, CQRS and event sourcing for Rust. Annotate plain types
//! with `#[aggregate]`, `#[event]`, `#[command]`, `#[command_handler]`, `#[projection]`,
//! `#[projector]`, `#[event_handler]` and `#[value_object]`; Fidelis generates validation,
//! apply dispatch, typed handler tables and registration, and its runtime processes
//! commands in units of work and keeps read models up to date.
//!
//! Start with `use fidelis_core::prelude::*;` and see the crate README for the whole tour.

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
pub use fidelis_macros::{
    aggregate, apply, command, command_handler, event, event_handler, field, handle, invariant, on,
    projection, projector, value_object,
};
/// The exact decimal type of `Decimal` fields (the `decimal` feature): use it for money.
#[cfg(feature = "decimal")]
pub use rust_decimal::{self, Decimal};

pub use crate::aggregate::AggregateMeta;
pub use crate::context::Context;
pub use crate::domain::{Domain, DomainBuilder, DomainMetrics, EventStore};
pub use crate::element::{
    Aggregate, AggregateCommands, AggregateHandler, AggregateInvariants, Apply, BelongsTo, Command,
    CommandOf, CommandTarget, DomainEvent, Element, ElementKind, Handled, HandlesCommandsOf,
    HasFields, Invariant, InvariantStage, ListensTo, Persisted, Projection, Projector, Queryable,
    Stateless, StorageKind, ValueObject,
};
pub use crate::error::{DomainError, Error, Result, ValidationError};
pub use crate::event::{Event, EventMetadata, RecordedEvent};
pub use crate::field::{FieldDef, FieldKind, FieldType};
pub use crate::identifier::Identifier;
pub use crate::query::{FieldHandle, Filter, OrderBy, TextHandle};
pub use crate::registry::{Registrar, Registry};
pub use crate::repository::{DomainRepository, Query, Repository};
pub use crate::retry::RetryPolicy;

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
