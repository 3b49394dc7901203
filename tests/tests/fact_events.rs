//! Fact events (DESIGN §8.7): after every commit that changed an aggregate declared with
//! `fact_events`, one `Fact<A>` with its whole new state is recorded in the category
//! `<domain>::<aggregate>_fact`, in the same transaction, and the projectors and event
//! handlers of `Fact<A>` receive it, in sync mode and through the engine, on every adapter.
//! (Protean routes facts to a category nobody subscribes to; ours run.)

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::{Arc, Mutex};

use fidelis_core::prelude::*;
use fidelis_core::{DomainBuilder, Processing};

mod support;
use support::{Backend, on_every_adapter};

#[aggregate(event_sourced, fact_events)]
pub struct Account {
    pub holder: String,
    pub balance: i64,
}

#[event(part_of = Account)]
pub struct AccountOpened {
    pub account_id: Identifier,
    pub holder: String,
}

#[event(part_of = Account)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: i64,
}

#[command(part_of = Account)]
pub struct Open {
    pub holder: String,
}

#[command(part_of = Account)]
pub struct Deposit {
    pub account_id: Identifier,
    pub amount: i64,
}

/// Loads and saves the account without changing it: no fact.
#[command(part_of = Account)]
pub struct Inspect {
    pub account_id: Identifier,
}

#[aggregate]
impl Account {
    #[handle(Open, create)]
    fn open(command: Open) -> Result<Self> {
        let mut account = Self::create_new();
        account.raise(AccountOpened {
            account_id: account.id.clone(),
            holder: command.holder,
        })?;
        Ok(account)
    }

    #[handle(Deposit)]
    fn deposit(&mut self, command: Deposit) -> Result<()> {
        if command.amount <= 0 {
            return Err(ValidationError::field("amount", "must be positive").into());
        }
        self.raise(DepositMade {
            account_id: self.id.clone(),
            amount: command.amount,
        })
    }

    #[handle(Inspect)]
    fn inspect(&mut self, _command: Inspect) -> Result<()> {
        Ok(())
    }

    #[apply]
    fn on_opened(&mut self, event: &AccountOpened) {
        self.holder = event.holder.clone();
    }

    #[apply]
    fn on_deposit(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

/// A state-stored aggregate with facts.
#[aggregate(fact_events)]
pub struct Profile {
    pub nickname: String,
}

#[command(part_of = Profile)]
pub struct CreateProfile {
    pub nickname: String,
}

#[command(part_of = Profile)]
pub struct Rename {
    pub profile_id: Identifier,
    pub nickname: String,
}

#[aggregate]
impl Profile {
    #[handle(CreateProfile, create)]
    fn create(command: CreateProfile) -> Result<Self> {
        let mut profile = Self::create_new();
        profile.nickname = command.nickname;
        Ok(profile)
    }

    #[handle(Rename)]
    fn rename(&mut self, command: Rename) -> Result<()> {
        self.nickname = command.nickname;
        Ok(())
    }
}

/// A reporting table fed by the facts only.
#[projection]
pub struct AccountReport {
    #[field(identifier)]
    pub account_id: Identifier,
    pub holder: String,
    pub balance: i64,
    pub facts: i64,
}

#[derive(Default)]
pub struct Reports;

#[projector(for = AccountReport, aggregates = [Account])]
impl Reports {
    #[on(Fact<Account>)]
    async fn on_fact(fact: &Event<Fact<Account>>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let mut rows = ctx.repository::<AccountReport>();
        let facts = rows.find(&fact.id).await?.map_or(0, |row| row.facts);
        rows.add(AccountReport {
            account_id: fact.id.clone(),
            holder: fact.holder.clone(),
            balance: fact.balance,
            facts: facts + 1,
        })
        .await
    }
}

/// What the fact handler received: category, type name, and a summary of the state.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<(String, String, String)>>>);

impl Journal {
    fn entries(&self) -> Vec<(String, String, String)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn push(&self, metadata: &EventMetadata, summary: String) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((
                metadata.category().to_owned(),
                metadata.type_name.clone(),
                summary,
            ));
    }
}

#[derive(Default)]
pub struct FactLog;

#[event_handler(aggregates = [Account, Profile])]
impl FactLog {
    #[handle(Fact<Account>)]
    async fn account(fact: &Event<Fact<Account>>, ctx: &mut EventHandlerContext) -> Result<()> {
        let summary = format!("{} {}", fact.holder, fact.balance);
        ctx.resource::<Journal>()?.push(fact.metadata(), summary);
        Ok(())
    }

    #[handle(Fact<Profile>)]
    async fn profile(fact: &Event<Fact<Profile>>, ctx: &mut EventHandlerContext) -> Result<()> {
        let summary = fact.nickname.clone();
        ctx.resource::<Journal>()?.push(fact.metadata(), summary);
        Ok(())
    }
}

fn builder(processing: Processing, journal: &Journal) -> DomainBuilder {
    Domain::builder("facts")
        .discover_crate(module_path!())
        .processing(processing)
        .resource(journal.clone())
}

async fn every_change_records_one_fact(backend: &Backend, processing: Processing) {
    let journal = Journal::default();
    let domain = backend.build(builder(processing, &journal)).await;
    let account: Identifier = domain
        .process(Open {
            holder: "Ada".into(),
        })
        .await
        .unwrap();
    for amount in [10, 5] {
        domain
            .process(Deposit {
                account_id: account.clone(),
                amount,
            })
            .await
            .unwrap();
    }
    // No change, no fact; a refused command, no fact.
    domain
        .process(Inspect {
            account_id: account.clone(),
        })
        .await
        .unwrap();
    domain
        .process(Deposit {
            account_id: account.clone(),
            amount: -1,
        })
        .await
        .unwrap_err();
    domain.settle().await.unwrap();

    // The facts have a stream of their own; the account's stream holds its own events only.
    let store = domain.event_store();
    let own = store
        .read_stream(&store.stream_of::<Account>(&account).unwrap())
        .await
        .unwrap();
    assert_eq!(own.len(), 3);
    let fact_stream = format!("facts::account_fact-{account}");
    let facts = store.read_stream(&fact_stream).await.unwrap();
    let versions: Vec<i64> = facts.iter().map(|f| f.metadata.version).collect();
    assert_eq!(versions, [0, 1, 2]);
    // Appended with the command's events, after them.
    for (event, fact) in own.iter().zip(&facts) {
        assert!(fact.metadata.global_position > event.metadata.global_position);
    }
    assert!(
        facts
            .iter()
            .all(|f| f.metadata.type_name == "Facts.AccountFact.v1")
    );
    // The whole state, as JSON, and each fact shares the correlation id of its command.
    let last = facts.last().unwrap().data().unwrap();
    assert_eq!(last["balance"], 15);
    assert_eq!(last["holder"], "Ada");
    assert_eq!(
        facts[2].metadata.correlation_id,
        own[2].metadata.correlation_id
    );
    let category = store
        .read_category("facts::account_fact", Cursor::START)
        .await
        .unwrap();
    assert_eq!(category.len(), 3);

    // The projector and the event handler of `Fact<Account>` ran, once per fact.
    let report = domain
        .repository::<AccountReport>()
        .get(&account)
        .await
        .expect("the projector of Fact<Account> ran");
    assert_eq!(
        (report.holder.as_str(), report.balance, report.facts),
        ("Ada", 15, 3)
    );
    let entry = |summary: &str| {
        (
            "facts::account_fact".to_owned(),
            "Facts.AccountFact.v1".to_owned(),
            summary.to_owned(),
        )
    };
    assert_eq!(
        journal.entries(),
        [entry("Ada 0"), entry("Ada 10"), entry("Ada 15")]
    );
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
}

async fn facts_in_sync_mode(backend: &Backend) {
    every_change_records_one_fact(backend, Processing::Sync).await;
}

async fn facts_through_the_engine(backend: &Backend) {
    every_change_records_one_fact(backend, Processing::Async).await;
}

async fn a_stored_aggregate_records_facts_too(backend: &Backend) {
    let journal = Journal::default();
    let domain = backend.build(builder(Processing::Async, &journal)).await;
    let profile: Identifier = domain
        .process(CreateProfile {
            nickname: "ada".into(),
        })
        .await
        .unwrap();
    domain
        .process(Rename {
            profile_id: profile.clone(),
            nickname: "countess".into(),
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    let entry = |summary: &str| {
        (
            "facts::profile_fact".to_owned(),
            "Facts.ProfileFact.v1".to_owned(),
            summary.to_owned(),
        )
    };
    assert_eq!(journal.entries(), [entry("ada"), entry("countess")]);
    let stored = domain
        .event_store()
        .read_stream(&format!("facts::profile_fact-{profile}"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[1].data().unwrap()["nickname"], "countess");
}

on_every_adapter!(
    facts_in_sync_mode,
    facts_through_the_engine,
    a_stored_aggregate_records_facts_too,
);

#[tokio::test]
async fn a_fact_derefs_to_the_state_and_reads_back_from_its_json() {
    let domain = builder(Processing::Sync, &Journal::default())
        .database("memory")
        .build()
        .await
        .unwrap();
    let account: Identifier = domain
        .process(Open {
            holder: "Grace".into(),
        })
        .await
        .unwrap();
    let facts = domain
        .event_store()
        .read_stream(&format!("facts::account_fact-{account}"))
        .await
        .unwrap();
    let json = facts[0].data().unwrap();
    let fact: Fact<Account> = serde_json::from_value(json).unwrap();
    assert_eq!(fact.holder, "Grace");
    assert_eq!(fact.id, account);
    assert_eq!(fact.into_inner().balance, 0);
}

#[tokio::test]
async fn a_scenario_lists_the_fact_of_its_command() {
    let account = Identifier::generate();
    let journal = Journal::default();
    let outcome = fidelis_core::testing::given_in::<Account>(builder(Processing::Sync, &journal))
        .after(AccountOpened {
            account_id: account.clone(),
            holder: "Ada".into(),
        })
        .process(Deposit {
            account_id: account.clone(),
            amount: 9,
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    let fact = outcome
        .events()
        .get::<Fact<Account>>()
        .expect("the command's fact is in its events");
    assert_eq!((fact.holder.as_str(), fact.balance), ("Ada", 9));
    assert!(outcome.events().contains::<DepositMade>());
}
