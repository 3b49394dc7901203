//! A unit of work's end: commit it ([`crate::runtime::commit`]) with the domain's commit hooks, fill
//! the aggregate cache, then hand its events to the domain's dispatcher
//! ([`crate::runtime::dispatch`]).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::model::error::Result;
use crate::model::event::AnyRecordedEvent;
use crate::runtime::context::Context;
use crate::runtime::dispatch::{Batch, Origin};
use crate::store::Transaction;

/// Commits a unit of work, then delivers its events to their listeners; returns the events
/// as recorded.
///
/// Cancellation: until the final `COMMIT`, dropping this future drops the transaction,
/// which rolls back (every adapter's transaction is safe to drop at any await point). From
/// the `COMMIT` on, the work (commit, cache, dispatch) is finished by a task of its own if the
/// caller stops waiting (a client that went away), so committed events always reach their
/// listeners.
pub(crate) async fn commit(unit: Context) -> Result<Vec<Arc<dyn AnyRecordedEvent>>> {
    commit_and(unit, Dispatch::Listeners).await
}

/// What runs in a unit of work's transaction after its commit hooks, just before `COMMIT`:
/// `false` rolls the whole unit of work back. The engine moves an event handler's
/// checkpoint (and checks its partition's lease) this way, so that the handler's writes and
/// its checkpoint commit together.
pub(crate) type Finish<'a> =
    Box<dyn for<'t> FnOnce(&'t mut dyn Transaction) -> BoxFuture<'t, Result<bool>> + Send + 'a>;

/// Commits a unit of work like [`commit`], running `finish` in its transaction first;
/// `Some(false)` when `finish` refused, and nothing was committed; `None` when the unit of
/// work wrote nothing (then nothing runs: no transaction is opened).
pub(crate) async fn commit_finished(unit: Context, finish: Finish<'_>) -> Result<Option<bool>> {
    let domain = unit.domain.clone();
    let correlation_id = unit.correlation_id.clone();
    let Some(mut prepared) = crate::runtime::commit::prepare(unit, domain.commit_hooks()).await?
    else {
        return Ok(None);
    };
    if !finish(prepared.transaction()).await? {
        return Ok(Some(false));
    }
    let origin = Origin::current();
    crate::task::run_to_completion(async move {
        let committed = prepared.commit().await?;
        for (key, state, last_event) in committed.states {
            domain.cache().put_erased(key, state, last_event);
        }
        if !committed.events.is_empty() {
            let batch = Batch {
                domain: domain.clone(),
                correlation_id,
                events: committed.events,
                origin,
            };
            domain.dispatcher().dispatch(batch).await;
        }
        Ok(Some(true))
    })
    .await
}

/// Commits a unit of work like [`commit`], without dispatching its events: the testing DSL
/// records a scenario's history, facts that already happened, this way.
pub(crate) async fn commit_history(unit: Context) -> Result<()> {
    commit_and(unit, Dispatch::Nobody).await.map(drop)
}

/// Who receives a commit's events once it is durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Dispatch {
    Listeners,
    Nobody,
}

async fn commit_and(unit: Context, dispatch: Dispatch) -> Result<Vec<Arc<dyn AnyRecordedEvent>>> {
    let domain = unit.domain.clone();
    let correlation_id = unit.correlation_id.clone();
    let Some(prepared) = crate::runtime::commit::prepare(unit, domain.commit_hooks()).await? else {
        return Ok(Vec::new());
    };
    // Read here, in the caller's task: the work below may finish in a task of its own.
    let origin = Origin::current();
    crate::task::run_to_completion(async move {
        let committed = prepared.commit().await?;
        for (key, state, last_event) in committed.states {
            domain.cache().put_erased(key, state, last_event);
        }
        // After the commit, in a transaction of its own: a snapshot that fails to be written
        // is logged and leaves the commit standing (the next cold load writes one).
        crate::runtime::snapshot::write_due(&domain, committed.snapshots).await;
        if dispatch == Dispatch::Listeners && !committed.events.is_empty() {
            let batch = Batch {
                domain: domain.clone(),
                correlation_id,
                events: committed.events.clone(),
                origin,
            };
            domain.dispatcher().dispatch(batch).await;
        }
        Ok(committed.events)
    })
    .await
}
