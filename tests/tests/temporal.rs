//! Temporal queries on every adapter: an event-sourced aggregate as it was at a version or
//! a time (`Historical<A>`), `NotFound` past the stream's end or before it began, an old
//! state refused by `add`, reads from a snapshot below the target, and the history of a
//! stream (by type, and by the aggregate's name).

#![allow(missing_docs)]

use fidelis_core::chrono::Duration;
use fidelis_core::prelude::*;

mod support;
use support::{Backend, on_every_adapter};

#[path = "support/wallet.rs"]
mod wallet;
use wallet::{Wallet, commit_amounts, open_wallet, replayed};

/// A state-stored aggregate: its row is its state, so it has no history and no snapshots.
#[aggregate]
pub struct Ledger {
    pub entries: i64,
}

on_every_adapter!(
    by_version,
    by_time,
    an_old_version_is_refused_by_add,
    temporal_reads_use_a_snapshot_at_or_below_the_target,
    history_lists_the_events,
    history_by_name,
);

async fn domain(backend: &Backend, threshold: u64) -> Domain {
    backend
        .build(
            Domain::builder("temporal")
                .discover_crate(module_path!())
                .snapshot_threshold(threshold),
        )
        .await
}

const AMOUNTS: [i64; 5] = [100, -30, 45, 10, -5];

/// A wallet with one commit per amount, so each event has a time of its own.
async fn wallet_of_five(domain: &Domain) -> Identifier {
    let id = open_wallet(domain, &AMOUNTS[..1]).await;
    for amount in &AMOUNTS[1..] {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        commit_amounts(domain, &id, &[*amount]).await;
    }
    id
}

async fn by_version(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = wallet_of_five(&domain).await;
    let repo = domain.repository::<Wallet>();
    for version in 0..5 {
        let then = repo.get_at_version(&id, version).await.unwrap();
        assert_eq!(then.version(), version);
        assert_eq!(*then, replayed(&id, &AMOUNTS[..=version as usize]));
    }
    for missing in [5, 100, -1] {
        let error = repo.get_at_version(&id, missing).await.unwrap_err();
        assert!(error.is_not_found(), "version {missing}: {error}");
        assert!(
            error.to_string().contains(&format!("at version {missing}")),
            "{error}"
        );
    }
    let error = repo.get_at_version("no-such-wallet", 0).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
    // The current state is untouched by historical reads.
    assert_eq!(repo.get(&id).await.unwrap(), replayed(&id, &AMOUNTS));

    // Inside a unit of work too.
    let mut ctx = domain.unit_of_work();
    let then = ctx
        .repository::<Wallet>()
        .get_at_version(&id, 1)
        .await
        .unwrap();
    assert_eq!(then.balance, 70);
}

async fn by_time(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = wallet_of_five(&domain).await;
    let repo = domain.repository::<Wallet>();
    let history = domain.event_store().history::<Wallet>(&id).await.unwrap();
    for entry in &history {
        let then = repo.get_as_of(&id, entry.time).await.unwrap();
        assert_eq!(
            then.version(),
            entry.version,
            "as of event {}'s time",
            entry.version
        );
        assert_eq!(then.time(), entry.time);
        assert_eq!(*then, replayed(&id, &AMOUNTS[..=entry.version as usize]));
    }
    let before = history[0].time - Duration::milliseconds(1);
    let error = repo.get_as_of(&id, before).await.unwrap_err();
    assert!(error.is_not_found(), "before the stream began: {error}");
    let later = repo
        .get_as_of(&id, Utc::now() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(later.version(), 4);
    // Between two events: the earlier one's state.
    let between = history[2].time + (history[3].time - history[2].time) / 2;
    if between < history[3].time {
        assert_eq!(repo.get_as_of(&id, between).await.unwrap().version(), 2);
    }
}

async fn an_old_version_is_refused_by_add(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = wallet_of_five(&domain).await;
    let repo = domain.repository::<Wallet>();
    let then = repo.get_at_version(&id, 1).await.unwrap();

    // With a new event: the append at version 2 would overwrite history.
    let mut old = (*then).clone();
    old.apply_amount(1_000).unwrap();
    let error = repo.add(old).await.unwrap_err();
    assert!(error.is_version_conflict(), "{error}");
    // Without one: still an old state, refused before anything is written.
    let error = repo.add((*then).clone()).await.unwrap_err();
    assert!(error.is_version_conflict(), "{error}");
    assert_eq!(repo.get(&id).await.unwrap(), replayed(&id, &AMOUNTS));

    // The latest version read historically is the current state: it may be changed.
    let now = repo.get_at_version(&id, 4).await.unwrap();
    let mut current = (*now).clone();
    current.apply_amount(1).unwrap();
    repo.add(current).await.unwrap();
    assert_eq!(repo.get(&id).await.unwrap().version(), 5);
}

async fn temporal_reads_use_a_snapshot_at_or_below_the_target(backend: &Backend) {
    let domain = domain(backend, 4).await;
    let amounts: Vec<i64> = (1..=10).collect();
    let id = open_wallet(&domain, &amounts[..4]).await;
    commit_amounts(&domain, &id, &amounts[4..]).await;
    let snapshot = domain
        .event_store()
        .latest_snapshot::<Wallet>(&id)
        .await
        .unwrap();
    assert_eq!(snapshot.map(|(version, _)| version), Some(9));
    let repo = domain.repository::<Wallet>();
    for version in 0..10 {
        let then = repo.get_at_version(&id, version).await.unwrap();
        assert_eq!(
            *then,
            replayed(&id, &amounts[..=version as usize]),
            "at {version}"
        );
    }
    let history = domain.event_store().history::<Wallet>(&id).await.unwrap();
    for entry in &history {
        let then = repo.get_as_of(&id, entry.time).await.unwrap();
        // Events of one commit share its time: the read includes the whole commit.
        let last_of_time = history
            .iter()
            .filter(|other| other.time == entry.time)
            .map(|other| other.version)
            .max()
            .unwrap();
        assert_eq!(then.version(), last_of_time);
        assert_eq!(*then, replayed(&id, &amounts[..=last_of_time as usize]));
    }
}

async fn history_lists_the_events(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = wallet_of_five(&domain).await;
    let history = domain.event_store().history::<Wallet>(&id).await.unwrap();
    let stream = domain.event_store().stream_of::<Wallet>(&id).unwrap();
    let events = domain.event_store().read_stream(&stream).await.unwrap();
    assert_eq!(history.len(), 5);
    for ((entry, event), amount) in history.iter().zip(&events).zip(AMOUNTS) {
        assert_eq!(entry.event_id, event.metadata.id);
        assert_eq!(entry.version, event.metadata.version);
        assert_eq!(entry.global_position, event.metadata.global_position);
        assert_eq!(entry.time, event.metadata.time);
        let (type_name, data_amount) = if amount >= 0 {
            ("Temporal.Deposited.v1", amount)
        } else {
            ("Temporal.Withdrawn.v1", -amount)
        };
        assert_eq!(entry.type_name, type_name);
        assert_eq!(entry.data["amount"], data_amount);
    }
    assert!(
        history
            .windows(2)
            .all(|pair| pair[0].global_position < pair[1].global_position)
    );
    assert!(
        domain
            .event_store()
            .history::<Wallet>("no-such-wallet")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn history_by_name(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = wallet_of_five(&domain).await;
    let store = domain.event_store();
    let typed = store.history::<Wallet>(&id).await.unwrap();
    assert_eq!(store.history_named("Wallet", &id).await.unwrap(), typed);
    assert!(
        store
            .history_named("Wallet", "no-such-wallet")
            .await
            .unwrap()
            .is_empty()
    );

    let unknown = store.history_named("Walet", &id).await.unwrap_err();
    assert!(matches!(unknown, Error::Usage { .. }), "{unknown:?}");
    assert_eq!(
        unknown.to_string(),
        "unknown aggregate `Walet`; known: Vault, Wallet"
    );
    let stored = store.history_named("Ledger", &id).await.unwrap_err();
    assert!(matches!(stored, Error::Usage { .. }), "{stored:?}");
    assert_eq!(
        stored.to_string(),
        "`Ledger` is a state-stored aggregate: only event-sourced aggregates keep a history \
         (event-sourced: Vault, Wallet)"
    );
}
