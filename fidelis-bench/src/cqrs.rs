//! The same ledger in cqrs-es 0.5, written the way its bank demo is: an aggregate with a
//! command and an event enum, `MemStore`, and the summary view through `GenericQuery` over a
//! minimal `HashMap` view repository (cqrs-es ships none for memory), with the event time
//! passed as metadata to `execute_with_metadata`.
//!
//! `MemStore` prints two lines to stdout on every command (`loading: …`, `storing: …`) and
//! copies the whole stream on every commit. The harness silences stdout while it runs, and
//! also measures [`QuietMemStore`], the same algorithm without the printing, so that the
//! report separates the cost of the framework from the cost of its logging.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use cqrs_es::event_sink::EventSink;
use cqrs_es::mem_store::{MemStore, MemStoreAggregateContext};
use cqrs_es::persist::{GenericQuery, PersistenceError, ViewContext, ViewRepository};
use cqrs_es::{
    Aggregate, AggregateContext, AggregateError, CqrsFramework, DomainEvent, EventEnvelope,
    EventStore, View,
};
use serde::{Deserialize, Serialize};

use crate::workload::{
    BenchError, LARGE_TRANSACTION, Ledger, Money, RuleBroken, account_number, deposit_amount,
    holder_name, opening_deposit,
};

/// The account aggregate. (`Clone` only because `MemStore<A>` derives `Clone` with an
/// `A: Clone` bound.)
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BankAccount {
    /// Whether it was opened.
    pub opened: bool,
    /// Its id.
    pub account_id: String,
    /// Its number.
    pub account_number: String,
    /// Its holder.
    pub holder_name: String,
    /// The balance.
    pub balance: Money,
}

/// What the account is asked to do.
#[derive(Debug, Serialize, Deserialize)]
pub enum BankAccountCommand {
    /// Open it.
    OpenAccount {
        /// Its id (as in the bank demo, where the command carries it).
        account_id: String,
        /// Its number.
        account_number: String,
        /// Its holder.
        holder_name: String,
        /// The first balance.
        opening_deposit: Money,
    },
    /// Pay money in.
    DepositMoney {
        /// How much.
        amount: Money,
    },
}

/// What happened to the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum BankAccountEvent {
    /// It was opened.
    AccountOpened {
        /// The account.
        account_id: String,
        /// Its number.
        account_number: String,
        /// Its holder.
        holder_name: String,
        /// The first balance.
        opening_deposit: Money,
    },
    /// Money was paid in.
    DepositMade {
        /// The account.
        account_id: String,
        /// How much.
        amount: Money,
        /// A note.
        reference: Option<String>,
    },
}

impl DomainEvent for BankAccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AccountOpened { .. } => "AccountOpened".to_owned(),
            Self::DepositMade { .. } => "DepositMade".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// The services the aggregate's handler receives: here the compliance counter.
#[derive(Debug, Default)]
pub struct Compliance {
    /// Large movements seen.
    pub alerts: AtomicUsize,
}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "account";
    type Command = BankAccountCommand;
    type Event = BankAccountEvent;
    type Error = RuleBroken;
    type Services = Compliance;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            BankAccountCommand::OpenAccount {
                account_id,
                account_number,
                holder_name,
                opening_deposit,
            } => {
                if self.opened {
                    return Err(RuleBroken("account already open"));
                }
                if opening_deposit < Money::ZERO {
                    return Err(RuleBroken("opening deposit must not be negative"));
                }
                let event = BankAccountEvent::AccountOpened {
                    account_id,
                    account_number,
                    holder_name,
                    opening_deposit,
                };
                sink.write(event, self).await;
                Ok(())
            }
            BankAccountCommand::DepositMoney { amount } => {
                if !self.opened {
                    return Err(RuleBroken("no such account"));
                }
                if amount <= Money::ZERO {
                    return Err(RuleBroken("deposit amount must be positive"));
                }
                if self.balance + amount < Money::ZERO {
                    return Err(RuleBroken("balance cannot be negative"));
                }
                if amount >= LARGE_TRANSACTION {
                    services.alerts.fetch_add(1, Ordering::Relaxed);
                }
                let event = BankAccountEvent::DepositMade {
                    account_id: self.account_id.clone(),
                    amount,
                    reference: None,
                };
                sink.write(event, self).await;
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            BankAccountEvent::AccountOpened {
                account_id,
                account_number,
                holder_name,
                opening_deposit,
            } => {
                self.opened = true;
                self.account_id = account_id;
                self.account_number = account_number;
                self.holder_name = holder_name;
                self.balance = opening_deposit;
            }
            BankAccountEvent::DepositMade { amount, .. } => self.balance += amount,
        }
    }
}

/// The summary view (same fields as the example's `AccountSummary`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AccountSummaryView {
    /// The account.
    pub account_id: String,
    /// Its number.
    pub account_number: String,
    /// Its holder.
    pub holder_name: String,
    /// The balance.
    pub balance: Money,
    /// Deposits so far, the opening included.
    pub transaction_count: i64,
    /// When money last moved (the `time` metadata of the event, RFC 3339).
    pub last_transaction_at: Option<String>,
}

impl View<BankAccount> for AccountSummaryView {
    fn update(&mut self, event: &EventEnvelope<BankAccount>) {
        match &event.payload {
            BankAccountEvent::AccountOpened {
                account_number,
                holder_name,
                opening_deposit,
                ..
            } => {
                self.account_id = event.aggregate_id.clone();
                self.account_number = account_number.clone();
                self.holder_name = holder_name.clone();
                self.balance = *opening_deposit;
                self.transaction_count = 1;
            }
            BankAccountEvent::DepositMade { amount, .. } => {
                self.balance += amount;
                self.transaction_count += 1;
            }
        }
        self.last_transaction_at = event.metadata.get("time").cloned();
    }
}

/// A minimal in-memory view repository: views and their versions in a `HashMap`.
#[derive(Debug)]
pub struct MemViewRepository<V> {
    views: RwLock<HashMap<String, (V, i64)>>,
}

impl<V> Default for MemViewRepository<V> {
    fn default() -> Self {
        Self {
            views: RwLock::new(HashMap::new()),
        }
    }
}

impl<V: View<A> + Clone, A: Aggregate> ViewRepository<V, A> for MemViewRepository<V> {
    async fn load(&self, view_id: &str) -> Result<Option<V>, PersistenceError> {
        let views = self.views.read().unwrap_or_else(PoisonError::into_inner);
        Ok(views.get(view_id).map(|(view, _)| view.clone()))
    }

    async fn load_with_context(
        &self,
        view_id: &str,
    ) -> Result<Option<(V, ViewContext)>, PersistenceError> {
        let views = self.views.read().unwrap_or_else(PoisonError::into_inner);
        Ok(views
            .get(view_id)
            .map(|(view, version)| (view.clone(), ViewContext::new(view_id.to_owned(), *version))))
    }

    async fn update_view(&self, view: V, context: ViewContext) -> Result<(), PersistenceError> {
        let mut views = self.views.write().unwrap_or_else(PoisonError::into_inner);
        let current = views
            .get(&context.view_instance_id)
            .map_or(0, |(_, version)| *version);
        if current != context.version {
            return Err(PersistenceError::OptimisticLockError);
        }
        views.insert(context.view_instance_id, (view, context.version + 1));
        Ok(())
    }
}

/// `MemStore`'s algorithm without its `println!`s: loads copy the stream, commits copy the
/// stream, append, and store the copy back.
#[derive(Debug)]
pub struct QuietMemStore<A: Aggregate> {
    events: Arc<RwLock<HashMap<String, Vec<EventEnvelope<A>>>>>,
}

impl<A: Aggregate> Clone for QuietMemStore<A> {
    fn clone(&self) -> Self {
        Self {
            events: Arc::clone(&self.events),
        }
    }
}

impl<A: Aggregate> Default for QuietMemStore<A> {
    fn default() -> Self {
        Self {
            events: Arc::default(),
        }
    }
}

impl<A: Aggregate> QuietMemStore<A> {
    fn committed(&self, aggregate_id: &str) -> Vec<EventEnvelope<A>> {
        let events = self.events.read().unwrap_or_else(PoisonError::into_inner);
        events
            .get(aggregate_id)
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

impl<A: Aggregate> EventStore<A> for QuietMemStore<A> {
    type AC = MemStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        Ok(self.committed(aggregate_id))
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<Self::AC, AggregateError<A::Error>> {
        let mut aggregate = A::default();
        let mut current_sequence = 0;
        for envelope in self.committed(aggregate_id) {
            current_sequence = envelope.sequence;
            aggregate.apply(envelope.payload);
        }
        Ok(MemStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            current_sequence,
        })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: Self::AC,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let mut sequence = context.current_sequence;
        let wrapped: Vec<EventEnvelope<A>> = events
            .into_iter()
            .map(|payload| {
                sequence += 1;
                EventEnvelope {
                    aggregate_id: context.aggregate_id.clone(),
                    sequence,
                    payload,
                    metadata: metadata.clone(),
                }
            })
            .collect();
        if wrapped.is_empty() {
            return Ok(wrapped);
        }
        let mut stream = self.committed(&context.aggregate_id);
        stream.extend(wrapped.iter().cloned());
        self.events
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(context.aggregate_id, stream);
        Ok(wrapped)
    }
}

/// A store whose streams the harness can fill directly, to prepare workload d without
/// replaying `MemStore`'s copy-the-stream commit 10,000 times.
pub trait SeedableStore<A: Aggregate>: EventStore<A> + Clone + Default {
    /// Stores `events` as the whole stream of `aggregate_id`.
    fn seed(&self, aggregate_id: &str, events: Vec<EventEnvelope<A>>);
}

impl<A: Aggregate> SeedableStore<A> for QuietMemStore<A> {
    fn seed(&self, aggregate_id: &str, events: Vec<EventEnvelope<A>>) {
        self.events
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(aggregate_id.to_owned(), events);
    }
}

impl<A: Aggregate + Clone> SeedableStore<A> for MemStore<A> {
    fn seed(&self, aggregate_id: &str, events: Vec<EventEnvelope<A>>) {
        // The only way into a `MemStore`'s map; deprecated in favour of cloning the store,
        // which gives no access to it.
        #[allow(deprecated)]
        let map = self.get_events();
        map.write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(aggregate_id.to_owned(), events);
    }
}

type SummaryQuery =
    GenericQuery<MemViewRepository<AccountSummaryView>, AccountSummaryView, BankAccount>;

/// The cqrs-es ledger over the event store `ES`.
pub struct CqrsLedger<ES: EventStore<BankAccount>> {
    cqrs: CqrsFramework<BankAccount, ES>,
    store: ES,
    summaries: SummaryQuery,
}

/// cqrs-es with its own `MemStore`.
pub type CqrsMemStore = CqrsLedger<MemStore<BankAccount>>;

/// cqrs-es with [`QuietMemStore`].
pub type CqrsQuiet = CqrsLedger<QuietMemStore<BankAccount>>;

pub(crate) fn with_time() -> HashMap<String, String> {
    // As the bank demo does: the time of the command, as metadata of its events.
    let mut metadata = HashMap::new();
    metadata.insert("time".to_owned(), chrono::Utc::now().to_rfc3339());
    metadata
}

pub(crate) fn failed(error: AggregateError<RuleBroken>) -> BenchError {
    error.to_string().into()
}

impl<ES: SeedableStore<BankAccount>> CqrsLedger<ES> {
    /// A new, empty ledger.
    pub fn build() -> Self {
        let store = ES::default();
        let views = Arc::new(MemViewRepository::default());
        let projector = GenericQuery::new(Arc::clone(&views));
        let cqrs = CqrsFramework::new(
            store.clone(),
            vec![Box::new(projector)],
            Compliance::default(),
        );
        Self {
            cqrs,
            store,
            summaries: GenericQuery::new(views),
        }
    }

    async fn load(&self, id: &str) -> Result<Money, BenchError> {
        let mut context = self.store.load_aggregate(id).await.map_err(failed)?;
        let account = context.aggregate();
        if !account.opened {
            return Err(RuleBroken("no such account").into());
        }
        Ok(account.balance)
    }
}

macro_rules! cqrs_ledger {
    ($ledger:ty, $name:literal) => {
        impl Ledger for $ledger {
            const NAME: &'static str = $name;

            async fn open(&mut self, i: usize) -> Result<String, BenchError> {
                let id = uuid::Uuid::now_v7().to_string();
                let command = BankAccountCommand::OpenAccount {
                    account_id: id.clone(),
                    account_number: account_number(i),
                    holder_name: holder_name(i),
                    opening_deposit: opening_deposit(i),
                };
                self.cqrs
                    .execute_with_metadata(&id, command, with_time())
                    .await
                    .map_err(failed)?;
                Ok(id)
            }

            async fn deposit(&mut self, id: &str, amount: Money) -> Result<(), BenchError> {
                let command = BankAccountCommand::DepositMoney { amount };
                self.cqrs
                    .execute_with_metadata(id, command, with_time())
                    .await
                    .map_err(failed)
            }

            async fn summary_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                let view = self
                    .summaries
                    .load(id)
                    .await
                    .ok_or(RuleBroken("no summary"))?;
                Ok(view.balance)
            }

            async fn load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                // cqrs-es keeps no aggregate cache: every load replays the stream.
                self.load(id).await
            }

            async fn cold_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
                self.load(id).await
            }

            async fn seed_long_stream(&mut self, events: usize) -> Result<String, BenchError> {
                let id = self.open(0).await?;
                let mut stream = self.store.load_events(&id).await.map_err(failed)?;
                for k in 1..events {
                    stream.push(EventEnvelope {
                        aggregate_id: id.clone(),
                        sequence: k + 1,
                        payload: BankAccountEvent::DepositMade {
                            account_id: id.clone(),
                            amount: deposit_amount(k),
                            reference: None,
                        },
                        metadata: with_time(),
                    });
                }
                self.store.seed(&id, stream);
                Ok(id)
            }
        }
    };
}

cqrs_ledger!(CqrsMemStore, "cqrs-es");
cqrs_ledger!(CqrsQuiet, "cqrs-es quiet");
