//! The testing DSL: given a history, process a command, assert on the outcome — Protean's
//! `given(Account, *events).process(cmd)`, in `cargo test`, without a database.
//!
//! ```ignore
//! use fidelis_core::testing::given;
//!
//! let outcome = given::<Account>()
//!     .after(AccountOpened { account_id: id.clone(), /* … */ opening_deposit: Decimal::from(100) })
//!     .process(MakeWithdrawal { account_id: id.clone(), amount: Decimal::from(500), reference: None })
//!     .await;
//! assert!(outcome.rejected());
//! assert_eq!(outcome.aggregate().balance, Decimal::from(100));   // the state before the rejection
//! ```

use std::any::Any;
use std::marker::PhantomData;
use std::sync::Arc;

use crate::domain::{Domain, DomainBuilder};
use crate::element::{Aggregate, BelongsTo, DomainEvent, Handled};
use crate::error::{Error, Result};
use crate::event::{AnyEvent, AnyRecordedEvent, Event};
use crate::identifier::Identifier;

/// Starts a scenario for aggregate `A` in a fresh in-memory domain of every linked element
/// (projectors and event handlers included), named `test`. It is always in memory, whatever
/// `FIDELIS_DATABASE_URL` or `fidelis.toml` say.
pub fn given<A: Aggregate>() -> Given<A> {
    given_in(Domain::builder("test").database("memory"))
}

/// Starts a scenario in a domain built from this builder (for a name, resources, or
/// explicit registration). Its storage should be fresh.
pub fn given_in<A: Aggregate>(builder: DomainBuilder) -> Given<A> {
    Given {
        builder,
        history: Vec::new(),
        _aggregate: PhantomData,
    }
}

/// The history of a scenario: events that already happened to one aggregate.
#[must_use = "a scenario does nothing until `.process(command).await`"]
pub struct Given<A> {
    builder: DomainBuilder,
    history: Vec<Arc<dyn AnyEvent>>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A: Aggregate> Given<A> {
    /// An event that already happened to the aggregate. The first event's `<aggregate>_id`
    /// (or `id`) field names the aggregate.
    pub fn after<E: DomainEvent + BelongsTo<A>>(mut self, event: E) -> Self {
        self.history.push(Arc::new(event));
        self
    }

    /// Replays the history into a fresh domain, then processes the command.
    pub async fn process<C: Handled>(self, command: C) -> Outcome<A> {
        let domain = match self.builder.build().await {
            Ok(domain) => domain,
            Err(error) => return Outcome::failed(None, error),
        };
        let id = match self.history.first() {
            None => None,
            Some(first) => match first.aggregate_id() {
                Some(id) => Some(id),
                None => {
                    let error = Error::configuration(format!(
                        "cannot tell which `{}` the history is about: its first event has no `{}_id` or `id` field",
                        A::NAME,
                        crate::registry::snake_case(A::NAME)
                    ));
                    return Outcome::failed(Some(domain), error);
                }
            },
        };
        if id.is_some() && !A::EVENT_SOURCED {
            let error = Error::configuration(format!(
                "`given::<{0}>().after(..)` replays events, but `{0}` is a stored aggregate: create it with a command (`given::<{0}>().process(..)`) and chain the next one",
                A::NAME
            ));
            return Outcome::failed(Some(domain), error);
        }
        if let Some(id) = &id
            && let Err(error) = replay_history::<A>(&domain, id, self.history).await
        {
            return Outcome::failed(Some(domain), error);
        }
        Outcome {
            domain: Some(domain),
            id,
            aggregate: None,
            events: EventLog::default(),
            result: Ok(None),
        }
        .process(command)
        .await
    }
}

async fn replay_history<A: Aggregate>(
    domain: &Domain,
    id: &Identifier,
    history: Vec<Arc<dyn AnyEvent>>,
) -> Result<()> {
    let ctx = domain.unit_of_work();
    let mut aggregate = A::blank(id.clone());
    for event in &history {
        crate::aggregate::replay_erased(domain.registry(), &mut aggregate, event.as_ref())?;
    }
    crate::aggregate::push_pending(&mut aggregate, history);
    ctx.repository::<A>().add(aggregate).await?;
    ctx.commit().await
}

/// What processing a command did: accepted or rejected, the events it raised, and the
/// aggregate's state after it.
pub struct Outcome<A> {
    domain: Option<Domain>,
    id: Option<Identifier>,
    aggregate: Option<A>,
    events: EventLog,
    result: std::result::Result<Option<Box<dyn Any + Send>>, Error>,
}

impl<A: Aggregate> Outcome<A> {
    fn failed(domain: Option<Domain>, error: Error) -> Self {
        Self {
            domain,
            id: None,
            aggregate: None,
            events: EventLog::default(),
            result: Err(error),
        }
    }

    /// Processes another command in the same domain, after this one.
    pub async fn process<C: Handled>(self, command: C) -> Outcome<A> {
        let Some(domain) = self.domain else {
            return self;
        };
        let (result, events) = match domain.process_traced(command, None, None).await {
            Ok((output, events)) => (Ok(Some(Box::new(output) as Box<dyn Any + Send>)), events),
            Err(error) => (Err(error), Vec::new()),
        };
        let category = domain.event_store().category_of::<A>().ok();
        let id = self.id.or_else(|| {
            let category = category.as_deref()?;
            events.iter().find_map(|event| {
                let stream = &event.metadata().stream;
                stream
                    .strip_prefix(category)?
                    .strip_prefix('-')
                    .map(Identifier::from)
            })
        });
        let aggregate = match &id {
            Some(id) => domain.repository::<A>().find(id).await.ok().flatten(),
            None => None,
        };
        Outcome {
            domain: Some(domain),
            id,
            aggregate,
            events: EventLog { events },
            result,
        }
    }

    /// Whether the command was accepted (its handler succeeded and it committed).
    pub fn accepted(&self) -> bool {
        self.result.is_ok()
    }

    /// Whether the command was rejected.
    pub fn rejected(&self) -> bool {
        self.result.is_err()
    }

    /// Why the command was rejected.
    pub fn rejection(&self) -> Option<&Error> {
        self.result.as_ref().err()
    }

    /// The handler's output, if the command was accepted and it is a `T`.
    pub fn output<T: 'static>(&self) -> Option<&T> {
        self.result.as_ref().ok()?.as_ref()?.downcast_ref::<T>()
    }

    /// The events the command raised (none when rejected).
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The aggregate's state after the command (before it, when rejected).
    ///
    /// # Panics
    /// When there is no aggregate (no history and the command created none), as an
    /// assertion would; use [`try_aggregate`](Self::try_aggregate) to check.
    pub fn aggregate(&self) -> &A {
        match &self.aggregate {
            Some(aggregate) => aggregate,
            None => panic!("the scenario has no `{}`: {:?}", A::NAME, self.rejection()),
        }
    }

    /// The aggregate's state, if there is one.
    pub fn try_aggregate(&self) -> Option<&A> {
        self.aggregate.as_ref()
    }

    /// The domain the scenario runs in (to read projections, for example).
    pub fn domain(&self) -> Option<&Domain> {
        self.domain.as_ref()
    }
}

/// The events a command raised, as recorded.
#[derive(Default)]
pub struct EventLog {
    events: Vec<Arc<dyn AnyRecordedEvent>>,
}

impl EventLog {
    /// Whether an event of type `E` was raised.
    pub fn contains<E: DomainEvent>(&self) -> bool {
        self.get::<E>().is_some()
    }

    /// The first event of type `E`.
    pub fn get<E: DomainEvent>(&self) -> Option<&Event<E>> {
        self.events.iter().find_map(|event| event.downcast::<E>())
    }

    /// Every event of type `E`, in order.
    pub fn of_type<E: DomainEvent>(&self) -> Vec<&Event<E>> {
        self.events
            .iter()
            .filter_map(|event| event.downcast::<E>())
            .collect()
    }

    /// How many events were raised.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether none was raised.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The type names of the events, in order.
    pub fn type_names(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|event| event.metadata().type_name.as_str())
            .collect()
    }
}
