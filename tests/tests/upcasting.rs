//! Upcasting (DESIGN §8.4): rows of old versions of an event, written as an older build
//! wrote them, are read as the current event by aggregates, projectors, event handlers (in
//! the engine) and the testing DSL, on every adapter; the store is never rewritten; and
//! `build()` refuses version declarations that cannot reach the current event.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::{Arc, Mutex};

use fidelis_core::chrono::Utc;
use fidelis_core::prelude::*;
use fidelis_core::store::ExpectedVersion;
use fidelis_core::testing::{given_events_in, given_in};
use fidelis_core::{DomainBuilder, Payload, Processing, RecordedEvent};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};

#[aggregate(event_sourced)]
pub struct Account {
    pub balance: i64,
    /// The channel of every deposit, in order, comma-separated.
    pub channels: String,
}

/// The current version: amounts in whole units, with the channel.
#[event(part_of = Account, version = 3)]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: i64,
    #[field(default = "branch")]
    pub channel: String,
}

/// The first shape: amounts in cents. Upcast to v2, then to v3.
#[event_version(of = DepositMade, version = 1, next = DepositMadeV2)]
pub struct DepositMadeV1 {
    pub account_id: Identifier,
    pub cents: i64,
}

/// The second shape: whole units, no channel.
#[event_version(of = DepositMade, version = 2)]
pub struct DepositMadeV2 {
    pub account_id: Identifier,
    pub amount: i64,
}

impl From<DepositMadeV1> for DepositMadeV2 {
    fn from(v1: DepositMadeV1) -> Self {
        Self {
            account_id: v1.account_id,
            amount: v1.cents / 100,
        }
    }
}

impl From<DepositMadeV2> for DepositMade {
    fn from(v2: DepositMadeV2) -> Self {
        Self {
            account_id: v2.account_id,
            amount: v2.amount,
            channel: "branch".into(),
        }
    }
}

#[command(part_of = Account)]
pub struct Deposit {
    pub account_id: Identifier,
    pub amount: i64,
}

#[aggregate]
impl Account {
    #[handle(Deposit)]
    fn deposit(&mut self, command: Deposit) -> Result<()> {
        self.raise(DepositMade {
            account_id: self.id.clone(),
            amount: command.amount,
            channel: "online".into(),
        })
    }

    #[apply]
    fn on_deposit(&mut self, event: &DepositMade) {
        self.balance += event.amount;
        if !self.channels.is_empty() {
            self.channels.push(',');
        }
        self.channels.push_str(&event.channel);
    }
}

#[projection]
pub struct Balance {
    #[field(identifier)]
    pub account_id: Identifier,
    pub total: i64,
    pub deposits: i64,
}

#[derive(Default)]
pub struct Balances;

#[projector(for = Balance, aggregates = [Account])]
impl Balances {
    #[on(DepositMade)]
    async fn on_deposit(event: &Event<DepositMade>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let mut rows = ctx.repository::<Balance>();
        let mut row = rows.find(&event.account_id).await?.unwrap_or(Balance {
            account_id: event.account_id.clone(),
            total: 0,
            deposits: 0,
        });
        row.total += event.amount;
        row.deposits += 1;
        rows.add(row).await
    }
}

/// What the auditor was given: stored type name, amount, channel.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<(String, i64, String)>>>);

impl Journal {
    fn entries(&self) -> Vec<(String, i64, String)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[derive(Default)]
pub struct Auditor;

#[event_handler(part_of = Account)]
impl Auditor {
    #[handle(DepositMade)]
    async fn deposited(event: &Event<DepositMade>, ctx: &mut EventHandlerContext) -> Result<()> {
        let journal = ctx.resource::<Journal>()?.clone();
        journal
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((
                event.metadata().type_name.clone(),
                event.amount,
                event.channel.clone(),
            ));
        Ok(())
    }
}

/// The domain, registered by hand: the mistaken declarations below must stay out of it.
fn domain_builder() -> DomainBuilder {
    Domain::builder("upcasting")
        .without_discovery()
        .register::<Account>()
        .register::<DepositMade>()
        .register::<DepositMadeV1>()
        .register::<DepositMadeV2>()
        .register::<Deposit>()
        .register::<Balance>()
        .register::<Balances>()
        .register::<Auditor>()
}

/// A row as an older build wrote it: its type name and its data, in the account's stream.
async fn append_old(
    domain: &Domain,
    account: &Identifier,
    type_name: &str,
    data: serde_json::Value,
) {
    let stream = domain.event_store().stream_of::<Account>(account).unwrap();
    let version = domain.event_store().stream_version(&stream).await.unwrap();
    let event = RecordedEvent {
        metadata: EventMetadata {
            id: Identifier::generate(),
            type_name: type_name.to_owned(),
            stream: stream.clone(),
            version: version + 1,
            global_position: 0,
            commit: 0,
            time: Utc::now(),
            correlation_id: Identifier::generate(),
            causation_id: None,
            priority: Default::default(),
            extensions: Default::default(),
        },
        payload: Payload::json(&data),
    };
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    transaction
        .append(&stream, ExpectedVersion::Exact(version), vec![event])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

async fn old_rows_are_read_as_the_current_event_everywhere(backend: &Backend) {
    let journal = Journal::default();
    let domain = backend
        .build(
            domain_builder()
                .processing(Processing::Async)
                .resource(journal.clone()),
        )
        .await;
    let account = Identifier::generate();
    append_old(
        &domain,
        &account,
        "Upcasting.DepositMade.v1",
        json!({ "account_id": account.as_str(), "cents": 1000 }),
    )
    .await;
    append_old(
        &domain,
        &account,
        "Upcasting.DepositMade.v2",
        json!({ "account_id": account.as_str(), "amount": 5 }),
    )
    .await;

    // The aggregate loads through the upcasters (v1 → v2 → v3, v2 → v3) and raises a v3.
    domain
        .process(Deposit {
            account_id: account.clone(),
            amount: 7,
        })
        .await
        .expect("the account loads from its old rows");
    let loaded = domain.repository::<Account>().get(&account).await.unwrap();
    assert_eq!(loaded.balance, 10 + 5 + 7);
    assert_eq!(loaded.channels, "branch,branch,online");

    // A cold load (another domain on the same database: no cache) replays them too.
    let cold = backend
        .build(domain_builder().resource(Journal::default()))
        .await;
    let replayed = cold.repository::<Account>().get(&account).await.unwrap();
    assert_eq!((replayed.balance, replayed.version()), (22, 2));

    // The engine delivers the old rows to the projector and the event handler as `DepositMade`,
    // and the metadata keeps the stored type names.
    domain.settle().await.unwrap();
    let balance = domain
        .repository::<Balance>()
        .get(&account)
        .await
        .expect("the projector ran over every row");
    assert_eq!((balance.total, balance.deposits), (22, 3));
    assert_eq!(
        journal.entries(),
        [
            (
                "Upcasting.DepositMade.v1".to_owned(),
                10,
                "branch".to_owned()
            ),
            (
                "Upcasting.DepositMade.v2".to_owned(),
                5,
                "branch".to_owned()
            ),
            (
                "Upcasting.DepositMade.v3".to_owned(),
                7,
                "online".to_owned()
            ),
        ]
    );
    assert!(domain.dead_letters().list().await.unwrap().is_empty());

    // The store is never rewritten.
    let stream = domain.event_store().stream_of::<Account>(&account).unwrap();
    let stored = domain.event_store().read_stream(&stream).await.unwrap();
    let names: Vec<&str> = stored
        .iter()
        .map(|e| e.metadata.type_name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Upcasting.DepositMade.v1",
            "Upcasting.DepositMade.v2",
            "Upcasting.DepositMade.v3"
        ]
    );
    assert_eq!(
        stored[0].data().unwrap(),
        json!({ "account_id": account.as_str(), "cents": 1000 })
    );
}

async fn an_old_row_that_does_not_decode_names_its_version_and_place(backend: &Backend) {
    let domain = backend
        .build(domain_builder().resource(Journal::default()))
        .await;
    let account = Identifier::generate();
    append_old(
        &domain,
        &account,
        "Upcasting.DepositMade.v1",
        json!({ "account_id": account.as_str(), "amount": 1000 }),
    )
    .await;
    let error = domain
        .repository::<Account>()
        .get(&account)
        .await
        .expect_err("a v1 row without `cents` cannot be read");
    let message = error.to_string();
    assert!(message.contains("Upcasting.DepositMade.v1"), "{message}");
    assert!(message.contains("as `DepositMadeV1`"), "{message}");
    assert!(message.contains("cents"), "{message}");
}

on_every_adapter!(
    old_rows_are_read_as_the_current_event_everywhere,
    an_old_row_that_does_not_decode_names_its_version_and_place,
);

#[tokio::test]
async fn in_sync_mode_an_aggregate_loads_old_rows_and_its_new_event_is_delivered() {
    let journal = Journal::default();
    let domain = domain_builder()
        .database("memory")
        .resource(journal.clone())
        .build()
        .await
        .unwrap();
    let account = Identifier::generate();
    append_old(
        &domain,
        &account,
        "Upcasting.DepositMade.v1",
        json!({ "account_id": account.as_str(), "cents": 250 }),
    )
    .await;
    domain
        .process(Deposit {
            account_id: account.clone(),
            amount: 1,
        })
        .await
        .unwrap();
    assert_eq!(
        domain
            .repository::<Account>()
            .get(&account)
            .await
            .unwrap()
            .balance,
        3
    );
    // Sync mode delivers the command's own event; the old row was never a commit's.
    let balance = domain.repository::<Balance>().get(&account).await.unwrap();
    assert_eq!((balance.total, balance.deposits), (1, 1));
    assert_eq!(
        journal.entries(),
        [(
            "Upcasting.DepositMade.v3".to_owned(),
            1,
            "online".to_owned()
        )]
    );
}

#[tokio::test]
async fn the_testing_dsl_takes_old_versions_as_history() {
    let account = Identifier::generate();
    let outcome = given_in::<Account>(domain_builder().resource(Journal::default()))
        .after(DepositMadeV1 {
            account_id: account.clone(),
            cents: 300,
        })
        .after(DepositMadeV2 {
            account_id: account.clone(),
            amount: 4,
        })
        .after(DepositMade {
            account_id: account.clone(),
            amount: 5,
            channel: "phone".into(),
        })
        .process(Deposit {
            account_id: account.clone(),
            amount: 6,
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(outcome.aggregate().balance, 3 + 4 + 5 + 6);
    assert_eq!(outcome.aggregate().channels, "branch,branch,phone,online");
    let raised = outcome.events().get::<DepositMade>().expect("a deposit");
    assert_eq!(raised.amount, 6);

    let balance = given_events_in(domain_builder().resource(Journal::default()))
        .event(DepositMadeV1 {
            account_id: account.clone(),
            cents: 1200,
        })
        .event(DepositMadeV2 {
            account_id: account.clone(),
            amount: 1,
        })
        .then_projection::<Balance>(&account)
        .await
        .expect("the projector made a row");
    assert_eq!((balance.total, balance.deposits), (13, 2));
}

// Mistaken declarations, each registered only by the test that shows `build()` refusing it.

/// A second declaration of version 2.
#[event_version(of = DepositMade, version = 2)]
pub struct DepositMadeV2Again {
    pub account_id: Identifier,
    pub amount: i64,
}

impl From<DepositMadeV2Again> for DepositMade {
    fn from(v2: DepositMadeV2Again) -> Self {
        DepositMadeV2::from_parts(v2.account_id, v2.amount).into()
    }
}

impl DepositMadeV2 {
    fn from_parts(account_id: Identifier, amount: i64) -> Self {
        Self { account_id, amount }
    }
}

/// Not older than the current version 3.
#[event_version(of = DepositMade, version = 3)]
pub struct DepositMadeV3 {
    pub account_id: Identifier,
    pub amount: i64,
}

impl From<DepositMadeV3> for DepositMade {
    fn from(v3: DepositMadeV3) -> Self {
        DepositMadeV2::from_parts(v3.account_id, v3.amount).into()
    }
}

/// A `next` that is a plain struct, no declared version.
pub struct Halfway {
    pub amount: i64,
}

#[event_version(of = DepositMade, version = 1, next = Halfway)]
pub struct DepositMadeToNowhere {
    pub account_id: Identifier,
    pub cents: i64,
}

impl From<DepositMadeToNowhere> for Halfway {
    fn from(v1: DepositMadeToNowhere) -> Self {
        Self { amount: v1.cents }
    }
}

/// Two versions that point at each other: neither reaches the current event.
#[event_version(of = DepositMade, version = 1, next = LoopB)]
pub struct LoopA {
    pub account_id: Identifier,
}

#[event_version(of = DepositMade, version = 2, next = LoopA)]
pub struct LoopB {
    pub account_id: Identifier,
}

impl From<LoopA> for LoopB {
    fn from(a: LoopA) -> Self {
        Self {
            account_id: a.account_id,
        }
    }
}

impl From<LoopB> for LoopA {
    fn from(b: LoopB) -> Self {
        Self {
            account_id: b.account_id,
        }
    }
}

fn base() -> DomainBuilder {
    Domain::builder("upcasting")
        .without_discovery()
        .database("memory")
        .register::<Account>()
        .register::<DepositMade>()
        .register::<Deposit>()
}

async fn problems(builder: DomainBuilder) -> Vec<String> {
    match builder.build().await {
        Ok(_) => panic!("the domain must not build"),
        Err(Error::Configuration { problems }) => problems,
        Err(other) => panic!("a configuration error, not {other}"),
    }
}

#[tokio::test]
async fn build_rejects_two_declarations_of_one_version() {
    let problems = problems(
        base()
            .register::<DepositMadeV2>()
            .register::<DepositMadeV2Again>(),
    )
    .await;
    assert_eq!(
        problems,
        [
            "version 2 of event `DepositMade` is declared 2 times (`DepositMadeV2`, `DepositMadeV2Again`): keep one `#[event_version(of = DepositMade, version = 2)]`"
        ],
    );
}

#[tokio::test]
async fn build_rejects_a_chain_with_a_gap() {
    // v1 goes to v2, which this domain does not declare: stored v1 rows could not be read.
    let problems = problems(base().register::<DepositMadeV1>()).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("the upcasters of event `DepositMade` have a gap: `DepositMadeV1` (v1) goes to `next = DepositMadeV2`, which is not a declared version of `DepositMade` in domain `upcasting`"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn build_rejects_a_next_that_names_no_declared_version() {
    let problems = problems(base().register::<DepositMadeToNowhere>()).await;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("`DepositMadeToNowhere` (v1) goes to `next = Halfway`, which is not a declared version of `DepositMade`"),
        "{problems:?}"
    );
}

#[tokio::test]
async fn build_rejects_an_old_version_not_lower_than_the_current_one() {
    let problems = problems(base().register::<DepositMadeV3>()).await;
    assert_eq!(
        problems,
        [
            "`DepositMadeV3` declares version 3 of event `DepositMade`, but the current `DepositMade` is version 3: an old version's number is lower than the current one's (raise the event's `#[event(.., version = N)]`)"
        ],
    );
}

#[tokio::test]
async fn build_rejects_versions_that_go_round_in_a_loop() {
    let problems = problems(base().register::<LoopA>().register::<LoopB>()).await;
    assert!(
        problems.iter().any(|p| p
            .contains("`LoopB` (v2) goes to `next = LoopA` (v1): `next` names a newer version")),
        "{problems:?}"
    );
}

#[tokio::test]
async fn build_rejects_a_version_of_an_unregistered_event() {
    let problems = problems(
        Domain::builder("upcasting")
            .without_discovery()
            .database("memory")
            .register::<DepositMadeV2>(),
    )
    .await;
    assert_eq!(
        problems,
        [
            "`DepositMadeV2` is an old version of event `DepositMade`, which is not registered in domain `upcasting`"
        ],
    );
}
