//! `given_process::<P>().after(e1).after(e2).await`: events run through one process manager
//! in a fresh in-memory domain, with the commands it issues really processed there.

use std::any::TypeId;
use std::future::IntoFuture;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::model::element::{Command, DomainEvent};
use crate::model::error::{Error, Result};
use crate::model::event::{AnyRecordedEvent, EventMetadata};
use crate::model::identifier::Identifier;
use crate::registry::ListenerCall;
use crate::runtime::context::{Context, EventHandlerContext};
use crate::runtime::domain::{Domain, DomainBuilder};
use crate::runtime::process_manager::{self, IssuedCommand, ProcessRunner, ProcessSteps};
use crate::store::system::{self, ProcessState};

use super::setup_error;

/// Records one history event in the scenario's domain and gives it back as stored.
type Record =
    Box<dyn for<'a> FnOnce(&'a Domain) -> BoxFuture<'a, Result<Arc<dyn AnyRecordedEvent>>> + Send>;

/// Starts a process manager scenario: the events given with [`GivenProcess::after`] are
/// recorded (in their aggregates' streams, so the commands the process manager issues find
/// those aggregates) and run through process manager `P`, in order, in a fresh in-memory
/// domain of every linked element named `test`. The commands it issues are really processed
/// there (aggregates, projectors), and the events they raise are recorded but delivered to
/// nobody (no event handler runs, `P` included): each `after(..)` is one step you chose.
///
/// ```rust,standalone_crate
/// # use fidelis_core::prelude::*;
/// # #[event(part_of = Door)] pub struct Knocked { pub door_id: Identifier }
/// # #[event(part_of = Door)] pub struct Opened { pub door_id: Identifier }
/// # #[command(part_of = Door)] pub struct Open { pub door_id: Identifier }
/// # #[aggregate(event_sourced)] pub struct Door { pub open: bool }
/// # #[aggregate] impl Door {
/// #     #[apply] fn on_knocked(&mut self, _: &Knocked) {}
/// #     #[apply] fn on_opened(&mut self, _: &Opened) { self.open = true; }
/// #     #[handle(Open)] fn open(&mut self, _: Open) -> Result<()> {
/// #         self.raise(Opened { door_id: self.id.clone() })
/// #     }
/// # }
/// #[process_manager(aggregates = [Door])]
/// pub struct Butler { pub knocks: i64 }
///
/// #[process_manager]
/// impl Butler {
///     #[handle(Knocked, start, correlate = door_id)]
///     async fn knocked(&mut self, event: &Event<Knocked>, ctx: &mut EventHandlerContext) -> Result<()> {
///         self.knocks += 1;
///         ctx.process(Open { door_id: event.door_id.clone() }).await
///     }
///     #[handle(Opened, correlate = door_id, end)]
///     fn opened(&mut self, _: &Event<Opened>, _: &mut EventHandlerContext) {}
/// }
///
/// # #[tokio::main] async fn main() {
/// use fidelis_core::testing::given_process;
///
/// let door = Identifier::generate();
/// let outcome = given_process::<Butler>().after(Knocked { door_id: door.clone() }).await;
/// assert_eq!(outcome.state().map(|butler| butler.knocks), Some(1));
/// assert!(!outcome.is_complete());                    // `Opened` was not delivered to it
/// assert_eq!(outcome.commands().get::<Open>().map(|c| &c.door_id), Some(&door));
///
/// let outcome = given_process::<Butler>()
///     .after(Knocked { door_id: door.clone() })
///     .after(Opened { door_id: door.clone() })
///     .await;
/// assert!(outcome.is_complete());
/// # }
/// ```
pub fn given_process<P: ProcessSteps>() -> GivenProcess<P> {
    given_process_in(super::scenario_domain())
}

/// [`given_process`] in a domain built from this builder (for a name or resources). Its
/// storage should be fresh; its event handlers are left out.
pub fn given_process_in<P: ProcessSteps>(builder: DomainBuilder) -> GivenProcess<P> {
    GivenProcess {
        builder,
        events: Vec::new(),
        _process: PhantomData,
    }
}

/// A process manager scenario: the events to run through it. Await it for the
/// [`ProcessOutcome`].
#[must_use = "a scenario does nothing until it is awaited"]
pub struct GivenProcess<P> {
    builder: DomainBuilder,
    events: Vec<(&'static str, Record)>,
    _process: PhantomData<fn() -> P>,
}

impl<P: ProcessSteps> GivenProcess<P> {
    /// An event that happens next: recorded in its aggregate's stream, then delivered to the
    /// process manager (if it handles its type).
    pub fn after<E: DomainEvent>(mut self, event: E) -> Self {
        self.events.push((
            E::NAME,
            Box::new(move |domain| Box::pin(record(domain, event))),
        ));
        self
    }

    async fn run(self) -> ProcessOutcome<P> {
        let domain = match self.builder.without_event_handlers().build().await {
            Ok(domain) => domain,
            Err(error) => setup_error(format!("the scenario's domain does not build: {error}")),
        };
        let runner = ProcessRunner::<P>::default();
        let routes = P::routes();
        let issued = Arc::new(Mutex::new(Vec::new()));
        let mut failures = Vec::new();
        for (index, (name, record)) in self.events.into_iter().enumerate() {
            let event = match record(&domain).await {
                Ok(event) => event,
                Err(error) => setup_error(format!(
                    "event #{} (`{name}`) cannot be recorded: {error}",
                    index + 1
                )),
            };
            let event_type = std::any::Any::type_id(event.payload_any().as_any());
            for route in routes.iter().filter(|route| route.event == event_type) {
                let ListenerCall::EventHandler(call) = &route.call else {
                    continue;
                };
                let mut ctx = EventHandlerContext::new(Context::new(
                    domain.clone(),
                    event.metadata().correlation_id.clone(),
                    Some(event.metadata().id.clone()),
                ));
                let step = async {
                    call.call(&runner, event.as_ref(), &mut ctx).await?;
                    crate::runtime::unit_of_work::commit(ctx.unit)
                        .await
                        .map(drop)
                };
                if let Err(error) = process_manager::recording(issued.clone(), step).await {
                    failures.push(error);
                }
            }
        }
        let state = latest_state::<P>(&domain).await;
        let commands = std::mem::take(
            &mut *issued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        ProcessOutcome {
            domain,
            state,
            commands: CommandLog { commands },
            failures,
        }
    }
}

impl<P: ProcessSteps> IntoFuture for GivenProcess<P> {
    type Output = ProcessOutcome<P>;
    type IntoFuture = BoxFuture<'static, ProcessOutcome<P>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Records `event` as the next event of its aggregate (event-sourced: applied and appended;
/// a stored aggregate's event is not stored, only given metadata) and gives it back with
/// its metadata.
async fn record<E: DomainEvent>(domain: &Domain, event: E) -> Result<Arc<dyn AnyRecordedEvent>> {
    use crate::model::element::Aggregate;
    let id = DomainEvent::aggregate_id(&event).cloned();
    if !<E::Aggregate as Aggregate>::EVENT_SOURCED {
        let stream = domain
            .event_store()
            .stream_of::<E::Aggregate>(id.unwrap_or_else(Identifier::generate))?;
        let info = domain.registry().event_info(TypeId::of::<E>(), E::NAME)?;
        let metadata = EventMetadata {
            id: Identifier::generate(),
            type_name: info.type_name.clone(),
            stream,
            version: 0,
            global_position: 0,
            commit: 0,
            time: chrono::Utc::now(),
            correlation_id: Identifier::generate(),
            causation_id: None,
            priority: Default::default(),
            extensions: Default::default(),
        };
        return Ok(crate::model::event::AnyEvent::record(&event, metadata));
    }
    let Some(id) = id else {
        return Err(Error::usage(format!(
            "`{}` does not say which `{}` it happened to: give it a `<aggregate>_id` (or `id`) field of type `Identifier`, or mark its identifier `#[field(identifier)]`",
            E::NAME,
            <E::Aggregate as crate::model::element::Element>::NAME
        )));
    };
    super::replay_into::<E::Aggregate>(domain, id.clone(), vec![Arc::new(event)]).await?;
    let stream = domain.event_store().stream_of::<E::Aggregate>(&id)?;
    let recorded = domain.event_store().read_stream(&stream).await?;
    let Some(last) = recorded.last() else {
        return Err(Error::usage(format!("`{}` was not recorded", E::NAME)));
    };
    let info = domain.registry().event_by_type_name(last)?;
    Ok(info.decode(last)?.record(last.metadata.clone()))
}

/// The instance of `P` stored last, if any.
async fn latest_state<P: ProcessSteps>(domain: &Domain) -> Option<P> {
    let query = crate::model::query::QuerySpec {
        filters: vec![system::field_eq("process", P::NAME.to_owned())],
        order: vec![system::order_by("updated_at", true)],
        ..Default::default()
    };
    let rows = match system::query::<ProcessState>(domain.storage().as_ref(), &query).await {
        Ok(rows) => rows,
        Err(error) => panic!("reading the process manager's state failed: {error}"),
    };
    let row = rows.into_iter().next()?;
    match domain.process_state::<P>(&row.key).await {
        Ok(state) => state,
        Err(error) => panic!("reading the process manager's state failed: {error}"),
    }
}

/// What a process manager scenario left: the state of its instance, the commands it issued
/// and the steps that failed.
pub struct ProcessOutcome<P> {
    domain: Domain,
    state: Option<P>,
    commands: CommandLog,
    failures: Vec<Error>,
}

impl<P: ProcessSteps> ProcessOutcome<P> {
    /// The state of the instance (the one stored last when the events made several); `None`
    /// when no start event made one.
    pub fn state(&self) -> Option<&P> {
        self.state.as_ref()
    }

    /// Whether the instance is complete (`end`, or `self.complete()`).
    pub fn is_complete(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|state| state.is_complete_meta())
    }

    /// The commands the process manager issued with `ctx.process(..)`, in order (refused ones
    /// included).
    pub fn commands(&self) -> &CommandLog {
        &self.commands
    }

    /// The errors of the steps that failed (they stored nothing), in order.
    pub fn failures(&self) -> &[Error] {
        &self.failures
    }

    /// The domain the scenario ran in (to read aggregates and projections).
    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

/// Reaches the instance's bookkeeping from a generic `P`.
trait CompleteMeta {
    fn is_complete_meta(&self) -> bool;
}

impl<P: process_manager::ProcessManager> CompleteMeta for P {
    fn is_complete_meta(&self) -> bool {
        self.process_meta().is_complete()
    }
}

/// The commands a process manager issued, in order.
#[derive(Default)]
pub struct CommandLog {
    commands: Vec<IssuedCommand>,
}

impl CommandLog {
    /// Whether a command of type `C` was issued.
    pub fn contains<C: Command>(&self) -> bool {
        self.get::<C>().is_some()
    }

    /// The first command of type `C`.
    pub fn get<C: Command>(&self) -> Option<&C> {
        self.commands
            .iter()
            .find_map(|issued| issued.command.downcast_ref::<C>())
    }

    /// Every command of type `C`, in order.
    pub fn of_type<C: Command>(&self) -> Vec<&C> {
        self.commands
            .iter()
            .filter_map(|issued| issued.command.downcast_ref::<C>())
            .collect()
    }

    /// How many commands were issued.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The commands' names, in order (`["MakeWithdrawal", "FailTransfer"]`).
    pub fn names(&self) -> Vec<&'static str> {
        self.commands.iter().map(|issued| issued.name).collect()
    }
}
