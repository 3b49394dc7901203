//! The domain model's building blocks: identifiers, errors, fields and their validation,
//! queries, events, elements and aggregates. Nothing here depends on the registry, the stores
//! or the runtime.

pub(crate) mod aggregate;
pub(crate) mod element;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod event_version;
pub(crate) mod fact;
pub(crate) mod field;
pub(crate) mod identifier;
pub mod query;
pub(crate) mod strict_json;
