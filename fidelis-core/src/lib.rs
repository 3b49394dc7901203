#![doc = include_str!("../docs/crate.md")]
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

// The public API is the crate root, `prelude`, and five modules whose path says what they are for:
// `config` (database URLs and pools), `query` (field handles, filters and the query an adapter
// runs), `store` and `broker` (for adapter authors) and `testing` (the scenario DSL). The other
// modules are private; what users need of them is re-exported at the root, and what only the
// macros' generated code needs is in `__private`. See the README, "Public API".
//
// The layout, lowest layer first (a module imports only from the layers above it in this list):
// `model` (identifiers, errors, fields, queries, events, elements: nothing of ours), `registry`
// (what a domain is made of), `store` (the storage ports, the system tables and the adapters),
// `broker` (the message broker port and its adapters), `runtime` (configuration, contexts,
// repositories, commit, dispatch, the domain), `engine` (the subscriptions that process stored
// events in async mode), `testing`. The exceptions, by design, are the contracts between an
// element and the runtime: `model::element`'s traits name the registrar an element registers
// itself with and the contexts its handlers receive (`runtime::context`), and the registry's
// listener thunks name those contexts too (a subscriber's thunk names the broker's message as
// well); and the runtime starts the engine's wake-ups from its commit. `task` (running a future to
// completion) is a utility of every layer.
pub mod broker;
mod engine;
mod model;
mod registry;
mod runtime;
pub mod store;
mod task;
pub mod testing;

pub use model::query;
pub use runtime::config;

/// The runtime's internal hash map: foldhash, seeded per process, is several times faster than
/// SipHash on the short keys the runtime hashes on every command.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use chrono;
#[doc(inline)]
pub use fidelis_macros::{
    aggregate, apply, command, command_handler, entity, event, event_handler, event_version, field,
    handle, invariant, on, process_manager, projection, projector, subscriber, value_object,
};
/// The exact decimal type of `Decimal` fields (the `decimal` feature): use it for money.
#[cfg(feature = "decimal")]
pub use rust_decimal::{self, Decimal};

/// The engine's health and metrics listener (the `http` feature).
#[cfg(feature = "http")]
pub use crate::engine::http::{HttpListener, Readiness};
pub use crate::engine::{
    COMMANDS_SUBSCRIPTION, CommandQueueStatus, DEFAULT_LEASE, DEFAULT_POSTGRES_PARTITIONS,
    DeadLetters, Engine, HandlerRetry, RelayStatus, ReplaySummary, SubscriptionStatus,
};
pub use crate::model::element::{
    Aggregate, BelongsTo, Command, DomainEvent, Element, Handled, HasFields, Invariant,
    InvariantStage, OneHandlerPerCommand, Persisted, Projection, ProjectionRow, Projector,
    Queryable, ValueObject,
};
pub use crate::model::error::{DomainError, Error, Result, ValidationError};
pub use crate::model::event::{
    AnyEvent, AnyRecordedEvent, Event, EventMetadata, Extensions, Payload, Priority, RecordedEvent,
};
pub use crate::model::event_version::{EventVersion, UpcastFrom};
pub use crate::model::fact::{Fact, FactEvents};
pub use crate::model::field::{BasicField, FieldDef, FieldKind, FieldType};
pub use crate::model::identifier::Identifier;
pub use crate::registry::Registry;
pub use crate::runtime::config::Processing;
pub use crate::runtime::context::{
    Context, EventHandlerContext, ProjectionRepository, ProjectorContext,
};
pub use crate::runtime::domain::{
    DEFAULT_EVENT_HANDLER_DEPTH_LIMIT, Domain, DomainBuilder, DomainMetrics, EventStore, Submitted,
};
pub use crate::runtime::options::{CommandMetadata, ProcessOptions};
pub use crate::runtime::process_manager::{
    CorrelationKey, ProcessManager, ProcessRunner, ProcessSteps,
};
pub use crate::runtime::rebuild::{
    ProjectionStatus, ProjectorStatus, RebuildProgress, RebuildReport,
};
pub use crate::runtime::repository::{DomainRepository, Query, Repository};
pub use crate::runtime::retry::RetryPolicy;
pub use crate::runtime::temporal::{Historical, HistoryEntry};
pub use crate::runtime::trace::{Trace, TraceKind, TraceNode};
pub use crate::store::Cursor;

/// The examples of the macros' reference pages (`fidelis-macros/docs/*.md`, shown on the
/// macros above), compiled and run as doctests here: a proc-macro crate's doctests cannot
/// use its own macros.
#[cfg(doctest)]
mod macro_doctests {
    #[doc = include_str!("../../fidelis-macros/docs/aggregate.md")]
    struct Aggregate;
    #[doc = include_str!("../../fidelis-macros/docs/event.md")]
    struct Event;
    #[doc = include_str!("../../fidelis-macros/docs/event_version.md")]
    struct EventVersion;
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
    #[doc = include_str!("../../fidelis-macros/docs/process_manager.md")]
    struct ProcessManager;
    #[doc = include_str!("../../fidelis-macros/docs/entity.md")]
    struct Entity;
    #[doc = include_str!("../../fidelis-macros/docs/subscriber.md")]
    struct Subscriber;
}

/// Everything a domain crate needs: `use fidelis_core::prelude::*;`.
pub mod prelude {
    pub use chrono::{DateTime, NaiveDate, Utc};
    #[cfg(feature = "decimal")]
    pub use rust_decimal::Decimal;

    pub use crate::broker::BrokerMessage;
    pub use crate::model::query::TextHandle;
    pub use crate::{
        Aggregate, Command, Context, Cursor, Domain, DomainError, DomainEvent, Error, Event,
        EventHandlerContext, EventMetadata, Fact, Identifier, Priority, ProcessOptions, Projection,
        ProjectorContext, Result, RetryPolicy, ValidationError, aggregate, apply, command,
        command_handler, entity, event, event_handler, event_version, field, handle, invariant, on,
        process_manager, projection, projector, subscriber, value_object,
    };
}
