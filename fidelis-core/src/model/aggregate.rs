//! What every aggregate carries besides its fields: its version and the events it raised
//! since it was loaded, and the `raise` algorithm.

use std::fmt;
use std::sync::Arc;

use crate::model::element::{Aggregate, BelongsTo, DomainEvent, InvariantStage};
use crate::model::error::{Error, Result, ValidationError};
use crate::model::event::AnyEvent;

/// The version of an aggregate and the events raised since it was loaded.
///
/// The macros add it to every aggregate as a hidden field; it is not serialized.
#[derive(Clone)]
pub struct AggregateMeta {
    /// Version of the last event applied, pending ones included (`-1`: none).
    version: i64,
    /// Events raised and not yet committed, oldest first.
    pending: Vec<Arc<dyn AnyEvent>>,
    /// The version of the latest snapshot this process knows of for the aggregate (`-1`:
    /// none), so a commit can tell when the events since reach the snapshot threshold.
    snapshot_version: i64,
    /// Loaded as of a past version or time (`Historical`): saving it is checked against the
    /// stream's current version, so an old state is never written back over a newer one.
    historical: bool,
}

impl AggregateMeta {
    /// The version of the last event, pending ones included; `-1` when there is none.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The version the aggregate had when it was loaded: what the store must still hold
    /// for the commit to succeed.
    pub fn loaded_version(&self) -> i64 {
        self.version - self.pending.len() as i64
    }

    /// The events raised and not yet committed.
    pub fn pending(&self) -> &[Arc<dyn AnyEvent>] {
        &self.pending
    }

    pub(crate) fn take_pending(&mut self) -> Vec<Arc<dyn AnyEvent>> {
        std::mem::take(&mut self.pending)
    }

    pub(crate) fn set_version(&mut self, version: i64) {
        self.version = version;
    }

    /// The version of the latest snapshot known when it was loaded (`-1`: none).
    pub(crate) fn snapshot_version(&self) -> i64 {
        self.snapshot_version
    }

    pub(crate) fn set_snapshot_version(&mut self, version: i64) {
        self.snapshot_version = version;
    }

    /// Whether it was loaded as of a past version or time.
    pub(crate) fn is_historical(&self) -> bool {
        self.historical
    }

    pub(crate) fn set_historical(&mut self, historical: bool) {
        self.historical = historical;
    }
}

impl Default for AggregateMeta {
    fn default() -> Self {
        Self {
            version: -1,
            pending: Vec::new(),
            snapshot_version: -1,
            historical: false,
        }
    }
}

impl fmt::Debug for AggregateMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateMeta")
            .field("version", &self.version)
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// Aggregates are compared by their fields; version and pending events do not count.
impl PartialEq for AggregateMeta {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

/// Checks the invariants of one stage, collecting every failure.
pub(crate) fn check_invariants<A: Aggregate>(
    aggregate: &A,
    stage: InvariantStage,
    errors: &mut ValidationError,
) {
    for invariant in A::invariants()
        .iter()
        .filter(|invariant| invariant.stage == stage)
    {
        if let Err(error) = (invariant.check)(aggregate) {
            errors.merge(error, None);
        }
    }
}

/// `aggregate.raise(event)`: pre-invariants, apply (event-sourced), field validation,
/// post-invariants. On any failure the aggregate and its pending events are left exactly as
/// they were, because the change is made on a copy that replaces the original only on success.
pub(crate) fn raise<A, E>(aggregate: &mut A, event: E) -> Result<()>
where
    A: Aggregate,
    E: BelongsTo<A>,
{
    if let Err(errors) = event.validate() {
        return Err(Error::Validation {
            element: E::NAME.to_owned(),
            errors,
        });
    }
    let mut errors = ValidationError::new();
    check_invariants(aggregate, InvariantStage::Pre, &mut errors);
    if !errors.is_empty() {
        return Err(Error::Invariant {
            aggregate: A::NAME.to_owned(),
            errors,
        });
    }
    if A::EVENT_SOURCED {
        let mut next = aggregate.clone();
        event.apply_to(&mut next);
        if let Err(field_errors) = next.validate() {
            errors.merge(field_errors, None);
        }
        check_invariants(&next, InvariantStage::Post, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Invariant {
                aggregate: A::NAME.to_owned(),
                errors,
            });
        }
        *aggregate = next;
    } else {
        // A stored aggregate changes its fields in its own methods; the event records the
        // change, and is refused if the state it describes is invalid.
        if let Err(field_errors) = aggregate.validate() {
            errors.merge(field_errors, None);
        }
        check_invariants(aggregate, InvariantStage::Post, &mut errors);
        if !errors.is_empty() {
            return Err(Error::Invariant {
                aggregate: A::NAME.to_owned(),
                errors,
            });
        }
    }
    let meta = aggregate.meta_mut();
    meta.version += 1;
    meta.pending.push(Arc::new(event));
    Ok(())
}

/// Applies a stored event during rehydration: no invariants (history is history), and the
/// version advances without a pending event.
pub(crate) fn replay<E: DomainEvent>(aggregate: &mut E::Aggregate, event: &E) {
    event.apply_to(aggregate);
    aggregate.meta_mut().version += 1;
}

/// Applies an event of any type during rehydration, dispatching through the registry.
pub(crate) fn replay_erased<A: Aggregate>(
    registry: &crate::registry::Registry,
    aggregate: &mut A,
    event: &dyn AnyEvent,
) -> Result<()> {
    let info = registry.event_info(std::any::Any::type_id(event.as_any()), event.event_name())?;
    if (info.replay)(aggregate, event) {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "event `{}` is not part of `{}`",
            info.name,
            A::NAME
        )))
    }
}

/// Marks events as raised and not yet committed (a test history, appended as if new).
pub(crate) fn push_pending<A: Aggregate>(aggregate: &mut A, events: Vec<Arc<dyn AnyEvent>>) {
    aggregate.meta_mut().pending.extend(events);
}
