//! Whole domains on every storage adapter: concurrency, atomicity and corrupt stored events,
//! through `Domain::process` and repositories rather than the storage port.
//!
//! Each check runs on memory, SQLite (a fresh file) and PostgreSQL (a fresh schema in
//! `FIDELIS_TEST_POSTGRES_URL`; `SKIPPED: …` is printed when the variable is unset, and an
//! unreachable server fails the test), as `<check>::<adapter>`.

#![allow(missing_docs)]

use std::time::Instant;

use fidelis_core::prelude::*;
use fidelis_core::store::{ExpectedVersion, Storage};
use fidelis_core::{DomainBuilder, EventMetadata, Payload, RecordedEvent};
use fidelis_example::account::Account;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};

on_every_adapter!(
    concurrent_deposits_are_all_kept,
    failing_projector_leaves_nothing_behind,
    corrupt_events_name_their_stream,
    one_unit_of_work_appends_to_many_streams_in_order,
    a_conflict_on_one_stream_stores_nothing_of_the_unit
);

async fn banking(backend: &Backend, builder: DomainBuilder) -> Domain {
    backend.build(builder).await
}

fn open(number: &str, deposit: Decimal) -> OpenAccount {
    OpenAccount {
        account_number: number.into(),
        holder_name: "Ada Lovelace".into(),
        opening_deposit: deposit,
    }
}

// ---- (a) concurrency -------------------------------------------------------------------

const TASKS: usize = 4;
const DEPOSITS: usize = 250;

async fn concurrent_deposits_are_all_kept(backend: &Backend) {
    let domain = banking(
        backend,
        fidelis_example::domain().retry(RetryPolicy::attempts(100_000)),
    )
    .await;
    let id = domain
        .process(open("ACC-001", Decimal::from(100)))
        .await
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let domain = domain.clone();
            let id = id.clone();
            tokio::spawn(async move {
                for _ in 0..DEPOSITS {
                    domain
                        .process(MakeDeposit {
                            account_id: id.clone(),
                            amount: Decimal::from(1),
                            reference: None,
                        })
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for task in tasks {
        task.await
            .expect("the task ran")
            .expect("every deposit commits");
    }
    eprintln!(
        "{} concurrent deposits on {} took {:.2?}",
        TASKS * DEPOSITS,
        domain.storage_unchecked().kind(),
        started.elapsed()
    );

    let expected = Decimal::from(100 + TASKS * DEPOSITS);
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(account.balance, expected);
    let stream = domain.event_store().stream_of::<Account>(&id).unwrap();
    let events = domain.event_store().read_stream(&stream).await.unwrap();
    assert_eq!(events.len(), 1 + TASKS * DEPOSITS);
    let versions: Vec<i64> = events.iter().map(|e| e.metadata.version).collect();
    assert_eq!(
        versions,
        (0..=(TASKS * DEPOSITS) as i64).collect::<Vec<_>>(),
        "versions are gapless"
    );
    let positions: Vec<i64> = domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .unwrap()
        .iter()
        .map(|e| e.metadata.global_position)
        .collect();
    assert_eq!(positions.len(), 1 + TASKS * DEPOSITS, "every event is read");
    if matches!(backend, Backend::Postgres(_)) {
        // Concurrent writers take positions from a sequence: a conflicting (rolled back)
        // attempt leaves a gap. Within the one stream they still increase.
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "positions increase: {positions:?}"
        );
    } else {
        assert_eq!(
            positions,
            (1..=(1 + TASKS * DEPOSITS) as i64).collect::<Vec<_>>(),
            "positions are gapless"
        );
    }
    // A fresh domain on the same database (no cache) replays the same balance.
    if !backend.is_memory() {
        let again = banking(backend, fidelis_example::domain().aggregate_cache(0)).await;
        assert_eq!(
            again
                .repository::<Account>()
                .get(&id)
                .await
                .unwrap()
                .balance,
            expected
        );
    }
    let summary = domain
        .repository::<AccountSummary>()
        .get(&id)
        .await
        .unwrap();
    assert_eq!(summary.balance, expected);
    assert_eq!(summary.transaction_count, 1 + (TASKS * DEPOSITS) as i64);
}

// ---- (b) atomicity ---------------------------------------------------------------------

/// A state-stored aggregate that also records events.
#[aggregate]
pub struct Vault {
    #[field(max_length = 50)]
    pub label: String,
    #[field(default = false)]
    pub sealed: bool,
}

#[aggregate]
impl Vault {
    /// A state-stored aggregate changes its fields itself; its events are recorded as told.
    pub fn open(label: &str) -> Result<Self> {
        let mut vault = Self::create_new();
        let vault_id = vault.id.clone();
        vault.label = label.into();
        vault.raise(VaultOpened {
            vault_id: vault_id.clone(),
            label: label.into(),
        })?;
        vault.sealed = true;
        vault.raise(VaultSealed {
            vault_id,
            label: label.into(),
        })?;
        Ok(vault)
    }
}

#[event(part_of = Vault)]
pub struct VaultOpened {
    pub vault_id: Identifier,
    pub label: String,
}

#[event(part_of = Vault)]
pub struct VaultSealed {
    pub vault_id: Identifier,
    pub label: String,
}

#[command(part_of = Vault)]
pub struct OpenVault {
    pub label: String,
}

/// Written by the command handler itself (so it is in the transaction before projectors run).
#[projection]
pub struct VaultNote {
    #[field(identifier)]
    pub vault_id: Identifier,
    pub label: String,
}

/// Written by the projector, on the first event of the command.
#[projection]
pub struct VaultLog {
    #[field(identifier)]
    pub vault_id: Identifier,
    pub label: String,
}

#[derive(Default)]
pub struct VaultHandler;

#[command_handler(part_of = Vault)]
impl VaultHandler {
    #[handle(OpenVault)]
    async fn open_vault(&self, command: OpenVault, ctx: &mut Context) -> Result<Identifier> {
        let vault = Vault::open(&command.label)?;
        let id = vault.id.clone();
        ctx.repository::<Vault>().add(vault).await?;
        ctx.repository::<VaultNote>()
            .add(VaultNote {
                vault_id: id.clone(),
                label: command.label,
            })
            .await?;
        Ok(id)
    }
}

#[derive(Default)]
pub struct VaultLogProjector;

#[projector(for = VaultLog, aggregates = [Vault])]
impl VaultLogProjector {
    #[on(VaultOpened)]
    async fn on_opened(
        &self,
        event: &Event<VaultOpened>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        ctx.repository::<VaultLog>()
            .add(VaultLog {
                vault_id: event.vault_id.clone(),
                label: event.label.clone(),
            })
            .await
    }

    /// Fails on the command's second event, after rows were written for the first.
    #[on(VaultSealed)]
    async fn on_sealed(
        &self,
        event: &Event<VaultSealed>,
        _ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        if event.label == "fail" {
            return Err(Error::handler(
                "VaultLogProjector",
                "refuses to log a failing vault",
            ));
        }
        Ok(())
    }
}

async fn failing_projector_leaves_nothing_behind(backend: &Backend) {
    let domain = banking(
        backend,
        Domain::builder("vaults").discover_crate("storage_domain"),
    )
    .await;
    let ok = domain
        .process(OpenVault { label: "ok".into() })
        .await
        .unwrap();
    assert!(domain.repository::<Vault>().get(&ok).await.unwrap().sealed);
    assert_eq!(
        domain
            .repository::<VaultLog>()
            .get(&ok)
            .await
            .unwrap()
            .label,
        "ok"
    );
    assert_eq!(
        domain
            .repository::<VaultNote>()
            .get(&ok)
            .await
            .unwrap()
            .label,
        "ok"
    );
    assert_eq!(vault_rows(&domain).await, 1);
    let events_before = domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .unwrap();
    assert_eq!(events_before.len(), 2);

    let error = domain
        .process(OpenVault {
            label: "fail".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Handler { .. }), "{error}");

    assert_eq!(
        domain
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap(),
        events_before,
        "no event was appended"
    );
    assert_eq!(vault_rows(&domain).await, 1, "no aggregate row was written");
    assert_eq!(
        domain
            .repository::<VaultLog>()
            .query()
            .count()
            .await
            .unwrap(),
        1,
        "no projector row was written"
    );
    assert_eq!(
        domain
            .repository::<VaultNote>()
            .query()
            .count()
            .await
            .unwrap(),
        1,
        "no handler row was written"
    );

    // The store is still usable afterwards, and positions run on (without a gap where one
    // writer assigns them).
    domain
        .process(OpenVault {
            label: "after".into(),
        })
        .await
        .unwrap();
    let positions: Vec<i64> = domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .unwrap()
        .iter()
        .map(|e| e.metadata.global_position)
        .collect();
    if matches!(backend, Backend::Postgres(_)) {
        // The rolled-back attempt's positions are not reused (a sequence).
        assert_eq!(positions.len(), 4, "{positions:?}");
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "{positions:?}"
        );
    } else {
        assert_eq!(positions, [1, 2, 3, 4]);
    }
}

/// The rows of the stored aggregate's table, through its typed query.
async fn vault_rows(domain: &Domain) -> u64 {
    domain.repository::<Vault>().query().count().await.unwrap()
}

// ---- (c) corrupt data ------------------------------------------------------------------

fn stored_event(type_name: &str, data: serde_json::Value) -> RecordedEvent {
    RecordedEvent {
        metadata: EventMetadata {
            id: Identifier::generate(),
            type_name: type_name.to_owned(),
            stream: String::new(),
            version: 0,
            global_position: 0,
            commit: 0,
            time: Utc::now(),
            correlation_id: Identifier::generate(),
            causation_id: None,
            priority: Default::default(),
            extensions: Default::default(),
        },
        payload: Payload::json(&data),
    }
}

async fn append_raw(storage: &dyn Storage, stream: &str, event: RecordedEvent) -> i64 {
    let mut transaction = storage.begin().await.unwrap();
    let stored = transaction
        .append(stream, ExpectedVersion::Any, vec![event])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    stored[0].global_position
}

async fn corrupt_events_name_their_stream(backend: &Backend) {
    let domain = banking(backend, fidelis_example::domain()).await;
    let storage = domain.storage_unchecked().as_ref();

    // An event type no registered event has.
    let unknown = domain
        .process(open("ACC-101", Decimal::from(10)))
        .await
        .unwrap();
    let stream = domain.event_store().stream_of::<Account>(&unknown).unwrap();
    let position = append_raw(
        storage,
        &stream,
        stored_event("Fidelis.Nonsense.v1", json!({})),
    )
    .await;
    let error = domain
        .repository::<Account>()
        .get(&unknown)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Serialization { .. }), "{text}");
    assert!(
        text.contains(&stream) && text.contains(&format!("position {position}")),
        "{text}"
    );
    assert!(text.contains("Fidelis.Nonsense.v1"), "{text}");

    // Data that does not decode as the event it claims to be.
    let misshapen = domain
        .process(open("ACC-102", Decimal::from(10)))
        .await
        .unwrap();
    let stream = domain
        .event_store()
        .stream_of::<Account>(&misshapen)
        .unwrap();
    let position = append_raw(
        storage,
        &stream,
        stored_event("Fidelis.DepositMade.v1", json!({ "amount": "lots" })),
    )
    .await;
    let error = domain
        .repository::<Account>()
        .get(&misshapen)
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Serialization { .. }), "{text}");
    assert!(
        text.contains(&stream) && text.contains(&format!("position {position}")),
        "{text}"
    );

    // Malformed JSON, written behind the store's back (SQLite keeps JSON as text; PostgreSQL's
    // JSONB cannot hold malformed JSON, so there the misshapen case above stands for it).
    if let Backend::Sqlite(_) = backend {
        let malformed = domain
            .process(open("ACC-103", Decimal::from(10)))
            .await
            .unwrap();
        let stream = domain
            .event_store()
            .stream_of::<Account>(&malformed)
            .unwrap();
        let position = append_raw(
            storage,
            &stream,
            stored_event("Fidelis.DepositMade.v1", json!({})),
        )
        .await;
        backend.execute(&format!("UPDATE fidelis_events SET data = '{{\"amount\": 1' WHERE global_position = {position}")).await;
        let error = domain
            .repository::<Account>()
            .get(&malformed)
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(matches!(error, Error::Serialization { .. }), "{text}");
        assert!(
            text.contains(&stream) && text.contains(&format!("position {position}")),
            "{text}"
        );
        assert!(text.contains("malformed JSON"), "{text}");
    }
    // Other accounts still load.
    let healthy = domain
        .process(open("ACC-104", Decimal::from(10)))
        .await
        .unwrap();
    assert_eq!(
        domain
            .repository::<Account>()
            .get(&healthy)
            .await
            .unwrap()
            .balance,
        Decimal::from(10)
    );
}

// ---- (d) a unit of work over several streams -------------------------------------------

const STREAMS: usize = 5;
/// Deposits per stream: 3,500 events in all, more than one `INSERT` on SQLite.
const DEPOSITS_PER_STREAM: usize = 700;

async fn one_unit_of_work_appends_to_many_streams_in_order(backend: &Backend) {
    let domain = banking(backend, fidelis_example::domain()).await;
    let mut ids = Vec::new();
    for n in 0..STREAMS {
        let id = domain
            .process(open(&format!("ACC-2{n:02}"), Decimal::from(100)))
            .await
            .unwrap();
        ids.push(id);
    }
    let storage = domain.storage_unchecked().clone();
    storage.settle().await.unwrap();
    let before = storage.head().await.unwrap();

    let mut unit = domain.unit_of_work();
    // Touched last to first: the appends follow the order the handler touched them in.
    for id in ids.iter().rev() {
        let mut account = unit.repository::<Account>().get(id).await.unwrap();
        for _ in 0..DEPOSITS_PER_STREAM {
            account.deposit(Decimal::from(1), None).unwrap();
        }
        unit.repository::<Account>().add(account).await.unwrap();
    }
    unit.commit().await.unwrap();

    storage.settle().await.unwrap();
    let events = storage.read_all(before, 100_000).await.unwrap();
    let streams: Vec<String> = ids
        .iter()
        .rev()
        .map(|id| domain.event_store().stream_of::<Account>(id).unwrap())
        .collect();
    let deposits: Vec<&RecordedEvent> = events
        .iter()
        .filter(|event| streams.contains(&event.metadata.stream))
        .collect();
    assert_eq!(deposits.len(), STREAMS * DEPOSITS_PER_STREAM);
    // Stream after stream, each in version order, positions increasing, one commit.
    for (chunk, stream) in deposits.chunks(DEPOSITS_PER_STREAM).zip(&streams) {
        assert!(chunk.iter().all(|event| &event.metadata.stream == stream));
        let versions: Vec<i64> = chunk.iter().map(|event| event.metadata.version).collect();
        assert_eq!(
            versions,
            (1..=DEPOSITS_PER_STREAM as i64).collect::<Vec<_>>()
        );
    }
    assert!(
        deposits
            .windows(2)
            .all(|pair| pair[0].metadata.global_position < pair[1].metadata.global_position)
    );
    // One commit: the transaction's (PostgreSQL), or each position (one writer at a time).
    let commit = deposits[0].metadata.commit;
    assert!(
        deposits.iter().all(|event| event.metadata.commit == commit)
            || deposits
                .iter()
                .all(|event| event.metadata.commit == event.metadata.global_position)
    );
    for id in &ids {
        let account = domain.repository::<Account>().get(id).await.unwrap();
        assert_eq!(account.version(), DEPOSITS_PER_STREAM as i64);
        assert_eq!(
            account.balance,
            Decimal::from(100 + DEPOSITS_PER_STREAM as i64)
        );
    }
}

async fn a_conflict_on_one_stream_stores_nothing_of_the_unit(backend: &Backend) {
    let domain = banking(backend, fidelis_example::domain()).await;
    let first = domain
        .process(open("ACC-301", Decimal::from(100)))
        .await
        .unwrap();
    let second = domain
        .process(open("ACC-302", Decimal::from(100)))
        .await
        .unwrap();

    let mut unit = domain.unit_of_work();
    let mut one = unit.repository::<Account>().get(&first).await.unwrap();
    let mut two = unit.repository::<Account>().get(&second).await.unwrap();
    // Another writer moves the second account meanwhile.
    domain
        .process(MakeDeposit {
            account_id: second.clone(),
            amount: Decimal::from(5),
            reference: None,
        })
        .await
        .unwrap();
    for _ in 0..10 {
        one.deposit(Decimal::from(1), None).unwrap();
        two.deposit(Decimal::from(1), None).unwrap();
    }
    unit.repository::<Account>().add(one).await.unwrap();
    unit.repository::<Account>().add(two).await.unwrap();
    match unit.commit().await {
        Err(Error::VersionConflict {
            stream,
            expected,
            actual,
        }) => {
            let conflicted = domain.event_store().stream_of::<Account>(&second).unwrap();
            assert_eq!((stream, expected, actual), (conflicted, 0, 1));
        }
        other => panic!("expected a version conflict, got {other:?}"),
    }
    let one = domain.repository::<Account>().get(&first).await.unwrap();
    assert_eq!((one.version(), one.balance), (0, Decimal::from(100)));
    let two = domain.repository::<Account>().get(&second).await.unwrap();
    assert_eq!((two.version(), two.balance), (1, Decimal::from(105)));
}
