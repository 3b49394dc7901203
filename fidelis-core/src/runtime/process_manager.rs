//! Process managers: long-running processes that react to the events of several aggregates,
//! keep their own state between events, and issue commands.
//!
//! A `#[process_manager(aggregates = [..])]` struct is the state of one instance; its
//! `#[process_manager] impl` block's `#[handle(E, correlate = field, start, end)]` methods are
//! its steps. At run time a process manager is an event handler (so the synchronous
//! dispatcher delivers to it after each commit, and the engine gives it a subscription named
//! after it) whose instance is a [`ProcessRunner`]: for each event, the runner finds the
//! instance the event's correlation field names, runs the step on its state, and stores the
//! new state before the events of the commands the step issued are delivered.
//!
//! Storage: one row per instance in the system table `fidelis_process_states`
//! ([`ProcessState`]): the state as JSON, whether it is complete, the ids of the events it
//! handled last, and a version. Steps on one instance are serialized within a process (a lock
//! per instance), and a step stores its state only where the row still has the version the
//! step started from (read and written in one transaction, which locks the row on
//! PostgreSQL): a step overtaken by another process fails with a version conflict instead of
//! losing that process's update.

use std::collections::HashMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::model::element::{DomainEvent, Element, ElementKind, HasFields};
use crate::model::error::{Error, Result};
use crate::model::event::Event;
use crate::model::identifier::Identifier;
use crate::registry::{AggregateRef, ListenerRoute, Registrar};
use crate::runtime::context::EventHandlerContext;
use crate::runtime::step_command::StepScope;
use crate::store::system::{self, ProcessState, SystemRow};

tokio::task_local! {
    /// Set by `testing::given_process` while a step runs: the commands it issues.
    static ISSUED: Arc<Mutex<Vec<IssuedCommand>>>;
}

/// A command a process manager issued, as `testing::given_process` records it.
#[derive(Clone)]
pub(crate) struct IssuedCommand {
    pub(crate) name: &'static str,
    pub(crate) command: Arc<dyn std::any::Any + Send + Sync>,
}

/// Records a command issued with `ctx.process(..)`, when a scenario is listening.
pub(crate) fn record_command<C: crate::model::element::Command>(command: &C) {
    let _ = ISSUED.try_with(|issued| {
        issued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(IssuedCommand {
                name: C::NAME,
                command: Arc::new(command.clone()),
            });
    });
}

/// Runs `work` with the commands it issues recorded in `issued`.
pub(crate) async fn recording<T>(
    issued: Arc<Mutex<Vec<IssuedCommand>>>,
    work: impl std::future::Future<Output = T>,
) -> T {
    ISSUED.scope(issued, work).await
}

/// How many handled event ids an instance remembers, to recognize a redelivered event (the
/// engine delivers at least once; a redelivery comes right after the original).
const HANDLED_KEPT: usize = 64;

/// The state of a process manager: what `#[process_manager(aggregates = [..])]` implements
/// on the struct.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a process manager",
    label = "not a process manager",
    note = "put `#[process_manager(aggregates = [..])]` on the struct `{Self}`"
)]
pub trait ProcessManager:
    Element + HasFields + Default + Clone + Debug + Serialize + DeserializeOwned
{
    /// The aggregates whose events it listens to.
    fn aggregates() -> Vec<AggregateRef>;
    /// The instance's bookkeeping (its key, whether it is complete).
    #[doc(hidden)]
    fn process_meta(&self) -> &ProcessMeta;
    /// The instance's bookkeeping.
    #[doc(hidden)]
    fn process_meta_mut(&mut self) -> &mut ProcessMeta;
}

/// The steps of a process manager: what `#[process_manager] impl` implements.
#[diagnostic::on_unimplemented(
    message = "process manager `{Self}` has no steps",
    label = "no `#[process_manager] impl {Self}` block",
    note = "add `#[process_manager] impl {Self} {{ #[handle(Event, start, correlate = field)] async fn …(&mut self, event: &Event<Event>, ctx: &mut EventHandlerContext) -> Result<()> {{ … }} }}`"
)]
pub trait ProcessSteps: ProcessManager {
    /// One route per `#[handle(E, ..)]` method.
    fn routes() -> Vec<ListenerRoute>;
}

/// What every instance carries beside its fields: its correlation key and whether it is
/// complete. Not stored in the state's JSON (it has columns of its own).
#[doc(hidden)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessMeta {
    key: Option<Identifier>,
    complete: bool,
}

impl ProcessMeta {
    /// The instance's correlation key (`None` on a state not made by a start event).
    pub fn key(&self) -> Option<&Identifier> {
        self.key.as_ref()
    }

    /// Whether the instance is complete.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Marks the instance complete.
    pub fn complete(&mut self) {
        self.complete = true;
    }
}

/// A value an event's `correlate = field` may hold: the instance key. `Identifier` and
/// `String` are keys; an `Option` of one is a key when `Some`, and `None` says the event is
/// not for any instance.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot correlate an event with a process manager instance",
    label = "`correlate = ` names this field",
    note = "correlate on a field of type `Identifier`, `String`, `Option<Identifier>` or `Option<String>`"
)]
pub trait CorrelationKey {
    /// The key, or `None` when the event is for no instance.
    fn correlation_key(&self) -> Option<Identifier>;
}

impl CorrelationKey for Identifier {
    fn correlation_key(&self) -> Option<Identifier> {
        Some(self.clone())
    }
}

impl CorrelationKey for String {
    fn correlation_key(&self) -> Option<Identifier> {
        Some(Identifier::from(self.as_str()))
    }
}

impl<T: CorrelationKey> CorrelationKey for Option<T> {
    fn correlation_key(&self) -> Option<Identifier> {
        self.as_ref().and_then(CorrelationKey::correlation_key)
    }
}

/// One `#[handle(E, ..)]` method of a process manager, as the runner calls it.
#[doc(hidden)]
pub struct Step<P, E> {
    /// The method's name.
    pub method: &'static str,
    /// `start`: an event for an unknown key creates an instance.
    pub start: bool,
    /// `end`: the instance is complete after this step.
    pub end: bool,
    /// The event's correlation key.
    pub key: fn(&E) -> Option<Identifier>,
    /// Calls the method.
    pub call: for<'a> fn(
        &'a mut P,
        &'a Event<E>,
        &'a mut EventHandlerContext,
    ) -> BoxFuture<'a, Result<()>>,
}

/// The event handler a process manager runs as: it finds the instance of each event, runs the
/// step and stores the state. One per domain (the registry makes it), holding the per-instance
/// locks of that domain.
pub struct ProcessRunner<P> {
    locks: Mutex<HashMap<Identifier, Arc<tokio::sync::Mutex<()>>>>,
    _process: PhantomData<fn() -> P>,
}

impl<P> Default for ProcessRunner<P> {
    fn default() -> Self {
        Self {
            locks: Mutex::new(HashMap::new()),
            _process: PhantomData,
        }
    }
}

impl<P: ProcessSteps> Element for ProcessRunner<P> {
    const NAME: &'static str = P::NAME;
    const KIND: ElementKind = ElementKind::EventHandler;
    fn register(registrar: &mut Registrar) {
        P::register(registrar);
    }
}

/// Registers process manager `P` (its runner as an event handler of `P`'s aggregates).
#[doc(hidden)]
pub fn register<P: ProcessSteps>(registrar: &mut Registrar) {
    registrar.event_handler::<ProcessRunner<P>>(
        Some(ProcessRunner::default),
        P::aggregates(),
        P::routes(),
    );
}

impl<P: ProcessSteps> ProcessRunner<P> {
    /// The lock of one instance, shared by the steps on it in this process.
    fn lock_of(&self, key: &Identifier) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Drop the locks nobody holds any more, so the map does not grow with every instance.
        if locks.len() > 1024 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(key.clone()).or_default().clone()
    }

    /// Runs one step: the event's instance (or a new one, for a start event), the method, then
    /// the new state stored. Events for no instance, for an unknown key without `start`, for a
    /// complete instance, or already handled by it are ignored.
    #[doc(hidden)]
    pub async fn step<E: DomainEvent>(
        &self,
        event: &Event<E>,
        ctx: &mut EventHandlerContext,
        step: Step<P, E>,
    ) -> Result<()> {
        let Some(key) = (step.key)(event.payload()) else {
            return Ok(());
        };
        let lock = self.lock_of(&key);
        let _guard = lock.lock().await;
        let domain = ctx.domain().clone();
        let row_id = ProcessState::key_of(domain.name(), P::NAME, key.as_str());
        let event_id = event.metadata().id.to_string();
        let stored: Option<ProcessState> = system::get(domain.storage().as_ref(), &row_id).await?;
        let (mut state, version, mut handled) = match stored {
            Some(row) if row.complete => {
                tracing::debug!(process = P::NAME, %key, event = E::NAME, "instance complete; event ignored");
                return Ok(());
            }
            Some(row) => {
                let handled = handled_ids(&row.handled);
                if handled.contains(&event_id) {
                    tracing::debug!(process = P::NAME, %key, event = E::NAME, "event already handled; redelivery ignored");
                    return Ok(());
                }
                let mut state: P =
                    serde_json::from_value(row.state).map_err(|error| Error::Serialization {
                        what: format!("the state of process manager {} `{key}`", P::NAME),
                        message: error.to_string(),
                    })?;
                state.process_meta_mut().key = Some(key.clone());
                (state, row.version, handled)
            }
            None if step.start => {
                let mut state = P::default();
                state.process_meta_mut().key = Some(key.clone());
                (state, -1, Vec::new())
            }
            None => {
                tracing::debug!(process = P::NAME, %key, event = E::NAME, "no instance and not a start event; ignored");
                return Ok(());
            }
        };
        let span =
            tracing::debug_span!("process_step", process = P::NAME, method = step.method, %key);
        // The step's commands get ids derived from this event: a run of the step after one
        // that committed some of them (and then failed or crashed before the state below was
        // stored) gets their recorded outputs instead of issuing them again.
        ctx.step = Some(StepScope::new(
            P::NAME,
            key.clone(),
            event.metadata().id.clone(),
        ));
        let outcome =
            tracing::Instrument::instrument((step.call)(&mut state, event, ctx), span).await;
        ctx.step = None;
        outcome?;
        if step.end {
            state.process_meta_mut().complete();
        }
        if let Err(errors) = state.validate() {
            return Err(Error::Validation {
                element: P::NAME.to_owned(),
                errors,
            });
        }
        handled.push(event_id);
        if handled.len() > HANDLED_KEPT {
            handled.drain(..handled.len() - HANDLED_KEPT);
        }
        let row = ProcessState {
            id: row_id.clone(),
            process: P::NAME.to_owned(),
            key: key.to_string(),
            state: to_json::<P>(&state, &key)?,
            complete: state.process_meta().is_complete(),
            handled: Value::Array(handled.into_iter().map(Value::String).collect()),
            version: version + 1,
            updated_at: chrono::Utc::now(),
        };
        store(domain.storage().as_ref(), row, version).await
    }
}

/// Writes the instance's row where it still has `expected` (`-1`: where there is none).
async fn store(
    storage: &dyn crate::store::Storage,
    row: ProcessState,
    expected: i64,
) -> Result<()> {
    let mut transaction = storage.begin().await?;
    let current: Option<ProcessState> = system::get_in(transaction.as_mut(), &row.id).await?;
    let actual = current.map_or(-1, |current| current.version);
    if actual != expected {
        return Err(Error::VersionConflict {
            stream: format!("{}/{}", ProcessState::TABLE.name, row.id),
            expected,
            actual,
        });
    }
    system::put(transaction.as_mut(), row).await?;
    transaction.commit().await
}

fn handled_ids(value: &Value) -> Vec<String> {
    match value {
        Value::Array(ids) => ids
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn to_json<P: ProcessManager>(state: &P, key: &Identifier) -> Result<Value> {
    serde_json::to_value(state).map_err(|error| Error::Serialization {
        what: format!("the state of process manager {} `{key}`", P::NAME),
        message: error.to_string(),
    })
}

impl crate::Domain {
    /// The stored state of the instance of process manager `P` whose correlation key is
    /// `key`: `None` when no start event made one. `state.is_complete()` says whether it
    /// ended. (The process manager itself gets its state as `&mut self` in its steps.)
    pub async fn process_state<P: ProcessManager>(
        &self,
        key: impl AsRef<str>,
    ) -> Result<Option<P>> {
        let row_id = ProcessState::key_of(self.name(), P::NAME, key.as_ref());
        let Some(row) = system::get::<ProcessState>(self.storage().as_ref(), &row_id).await? else {
            return Ok(None);
        };
        let mut state: P =
            serde_json::from_value(row.state).map_err(|error| Error::Serialization {
                what: format!(
                    "the state of process manager {} `{}`",
                    P::NAME,
                    key.as_ref()
                ),
                message: error.to_string(),
            })?;
        let meta = state.process_meta_mut();
        meta.key = Some(Identifier::from(row.key.as_str()));
        meta.complete = row.complete;
        Ok(Some(state))
    }
}
