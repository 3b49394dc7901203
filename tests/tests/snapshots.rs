//! Snapshots of event-sourced aggregates on every adapter: written when a commit brings the
//! events since the latest snapshot to the threshold (the domain's, or the aggregate's own),
//! by a cold load after a long replay, and on demand (by type or by the aggregate's name); a cold load starts from the latest
//! snapshot; a snapshot that no longer decodes, or whose last event the stream no longer
//! holds, is ignored and replaced; and (property-tested) a load with snapshots equals a
//! replay.

#![allow(missing_docs)]

use fidelis_core::chrono::Utc;
use fidelis_core::prelude::*;
use fidelis_core::store::system::{self, Snapshot};
use proptest::prelude::*;
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};

#[path = "support/wallet.rs"]
mod wallet;
use wallet::{Stored, Vault, Wallet, commit_amounts, open_wallet, replayed};

/// A state-stored aggregate: its row is its state, so it has no history and no snapshots.
#[aggregate]
pub struct Ledger {
    pub entries: i64,
}

on_every_adapter!(
    a_commit_reaching_the_threshold_writes_a_snapshot,
    an_aggregate_threshold_wins_over_the_domains,
    snapshots_on_demand,
    snapshots_on_demand_by_name,
    a_cold_load_starts_from_the_latest_snapshot,
    an_undecodable_snapshot_is_ignored_and_replaced,
    a_snapshot_of_a_rewritten_stream_is_ignored_and_replaced,
    a_long_cold_replay_writes_a_snapshot,
    loads_with_snapshots_equal_replays,
);

async fn domain(backend: &Backend, threshold: u64) -> Domain {
    backend
        .build(
            Domain::builder("snapshots")
                .discover_crate(module_path!())
                .snapshot_threshold(threshold),
        )
        .await
}

/// A domain on the same database without an aggregate cache: every load is cold.
async fn cold_domain(backend: &Backend, threshold: u64) -> Domain {
    backend
        .build(
            Domain::builder("snapshots")
                .discover_crate(module_path!())
                .snapshot_threshold(threshold)
                .aggregate_cache(0),
        )
        .await
}

async fn latest(domain: &Domain, id: &Identifier) -> Option<(i64, Wallet)> {
    domain
        .event_store()
        .latest_snapshot::<Wallet>(id)
        .await
        .expect("the snapshot decodes")
}

async fn write_snapshot_row(domain: &Domain, row: Snapshot) {
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    system::put(transaction.as_mut(), row).await.unwrap();
    transaction.commit().await.unwrap();
}

async fn stream_of(domain: &Domain, id: &Identifier) -> String {
    domain.event_store().stream_of::<Wallet>(id).unwrap()
}

async fn a_commit_reaching_the_threshold_writes_a_snapshot(backend: &Backend) {
    let domain = domain(backend, 10).await;
    let id = open_wallet(&domain, &[1; 4]).await;
    for _ in 0..5 {
        commit_amounts(&domain, &id, &[1]).await;
    }
    assert_eq!(
        latest(&domain, &id).await,
        None,
        "9 events: below the threshold"
    );

    commit_amounts(&domain, &id, &[1]).await;
    let (version, state) = latest(&domain, &id).await.expect("10 events: a snapshot");
    assert_eq!(version, 9);
    assert_eq!(state, replayed(&id, &[1; 10]));
    assert_eq!(state.version(), 9);

    commit_amounts(&domain, &id, &[2; 9]).await;
    assert_eq!(
        latest(&domain, &id).await.unwrap().0,
        9,
        "9 events since the snapshot"
    );
    commit_amounts(&domain, &id, &[3; 25]).await;
    let (version, state) = latest(&domain, &id).await.unwrap();
    assert_eq!(
        version, 43,
        "one commit past the threshold: the state it committed"
    );
    let mut amounts = vec![1; 10];
    amounts.extend([2; 9]);
    amounts.extend([3; 25]);
    assert_eq!(state, replayed(&id, &amounts));

    // A threshold of 0 turns automatic snapshots off.
    let off = domain_with_threshold_off(backend).await;
    let other = open_wallet(&off, &[1; 30]).await;
    assert_eq!(latest(&off, &other).await, None);
}

async fn domain_with_threshold_off(backend: &Backend) -> Domain {
    domain(backend, 0).await
}

async fn an_aggregate_threshold_wins_over_the_domains(backend: &Backend) {
    let domain = domain(backend, 1_000).await;
    let repo = domain.repository::<Vault>();
    let mut vault = Vault::create_new();
    let id = vault.id.clone();
    for amount in 1..=4 {
        vault
            .raise(Stored {
                vault_id: id.clone(),
                amount,
            })
            .unwrap();
    }
    repo.add(vault).await.unwrap();
    let snapshot = || async {
        domain
            .event_store()
            .latest_snapshot::<Vault>(&id)
            .await
            .unwrap()
    };
    assert_eq!(snapshot().await, None);
    let mut vault = repo.get(&id).await.unwrap();
    vault
        .raise(Stored {
            vault_id: id.clone(),
            amount: 5,
        })
        .unwrap();
    repo.add(vault).await.unwrap();
    let (version, state) = snapshot().await.expect("`snapshot_threshold = 5` on Vault");
    assert_eq!((version, state.total), (4, 15));
}

async fn snapshots_on_demand(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let first = open_wallet(&domain, &[5, -2, 7]).await;
    assert_eq!(latest(&domain, &first).await, None);
    assert_eq!(domain.create_snapshot::<Wallet>(&first).await.unwrap(), 2);
    let (version, state) = latest(&domain, &first).await.unwrap();
    assert_eq!(version, 2);
    assert_eq!(state, replayed(&first, &[5, -2, 7]));

    let error = domain
        .create_snapshot::<Wallet>("no-such-wallet")
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");

    let second = open_wallet(&domain, &[1]).await;
    let third = open_wallet(&domain, &[1, 2, 3, 4]).await;
    commit_amounts(&domain, &first, &[10]).await;
    assert_eq!(domain.create_snapshots::<Wallet>().await.unwrap(), 3);
    assert_eq!(latest(&domain, &first).await.unwrap().0, 3);
    assert_eq!(latest(&domain, &second).await.unwrap().0, 0);
    assert_eq!(
        latest(&domain, &third).await.unwrap().1,
        replayed(&third, &[1, 2, 3, 4])
    );
    // Each aggregate type has snapshots of its own.
    assert_eq!(domain.create_snapshots::<Vault>().await.unwrap(), 0);
}

async fn snapshots_on_demand_by_name(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let first = open_wallet(&domain, &[5, -2, 7]).await;
    assert_eq!(
        domain
            .create_snapshot_named("Wallet", &first)
            .await
            .unwrap(),
        2
    );
    let (version, state) = latest(&domain, &first).await.unwrap();
    assert_eq!((version, state), (2, replayed(&first, &[5, -2, 7])));
    let missing = domain
        .create_snapshot_named("Wallet", "no-such-wallet")
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    let second = open_wallet(&domain, &[1]).await;
    commit_amounts(&domain, &first, &[10]).await;
    assert_eq!(domain.create_snapshots_named("Wallet").await.unwrap(), 2);
    assert_eq!(latest(&domain, &first).await.unwrap().0, 3);
    assert_eq!(latest(&domain, &second).await.unwrap().0, 0);
    assert_eq!(domain.create_snapshots_named("Vault").await.unwrap(), 0);

    for error in [
        domain
            .create_snapshot_named("Walet", &first)
            .await
            .unwrap_err(),
        domain.create_snapshots_named("Walet").await.unwrap_err(),
    ] {
        assert!(matches!(error, Error::Usage { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "unknown aggregate `Walet`; known: Vault, Wallet"
        );
    }
    for error in [
        domain
            .create_snapshot_named("Ledger", &first)
            .await
            .unwrap_err(),
        domain.create_snapshots_named("Ledger").await.unwrap_err(),
    ] {
        assert!(matches!(error, Error::Usage { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            "`Ledger` is a state-stored aggregate: only event-sourced aggregates have snapshots \
             (event-sourced: Vault, Wallet)"
        );
    }
}

async fn a_cold_load_starts_from_the_latest_snapshot(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = open_wallet(&domain, &[1, 2, 3]).await;
    // A snapshot of a state the events never made shows that the load starts from it (a
    // real snapshot would give the same state either way).
    let stream = stream_of(&domain, &id).await;
    let last_event = domain.event_store().read_stream(&stream).await.unwrap()[2]
        .metadata
        .id
        .clone();
    write_snapshot_row(
        &domain,
        Snapshot {
            id: stream.clone(),
            aggregate: "Wallet".to_owned(),
            version: 2,
            last_event_id: last_event.to_string(),
            state: json!({"id": id, "balance": 1000, "operations": 3, "largest": 3, "amounts": [1, 2, 3]}),
            taken_at: Utc::now(),
        },
    )
    .await;
    commit_amounts(&domain, &id, &[4]).await; // through the cache: replay-free
    let cold = cold_domain(backend, 0).await;
    let wallet = cold.repository::<Wallet>().get(&id).await.unwrap();
    assert_eq!(
        wallet.balance, 1004,
        "the snapshot's state plus the event after it"
    );
    assert_eq!(wallet.version(), 3);
    assert_eq!(wallet.amounts, vec![1, 2, 3, 4]);
}

async fn an_undecodable_snapshot_is_ignored_and_replaced(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = open_wallet(&domain, &[1, 2, 3]).await;
    let stream = stream_of(&domain, &id).await;
    let last_event = domain.event_store().read_stream(&stream).await.unwrap()[2]
        .metadata
        .id
        .clone();
    // As if `balance` had been a text field when the snapshot was taken.
    write_snapshot_row(
        &domain,
        Snapshot {
            id: stream.clone(),
            aggregate: "Wallet".to_owned(),
            version: 2,
            last_event_id: last_event.to_string(),
            state: json!({"id": id, "balance": "lots", "operations": 3}),
            taken_at: Utc::now(),
        },
    )
    .await;
    let error = domain
        .event_store()
        .latest_snapshot::<Wallet>(&id)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("snapshot of stream"),
        "latest_snapshot names the undecodable snapshot: {error}"
    );

    let cold = cold_domain(backend, 0).await;
    let wallet = cold.repository::<Wallet>().get(&id).await.unwrap();
    assert_eq!(
        wallet,
        replayed(&id, &[1, 2, 3]),
        "the load replays the stream"
    );
    assert_eq!(wallet.version(), 2);
    let (version, state) = latest(&domain, &id)
        .await
        .expect("replaced by a decodable one");
    assert_eq!(version, 2);
    assert_eq!(state, wallet);

    // A row of the snapshots table that is not even a snapshot is replaced too (memory
    // takes any row; the SQL adapters' columns refuse one).
    if !backend.is_memory() {
        return;
    }
    let other = open_wallet(&domain, &[9]).await;
    let other_stream = stream_of(&domain, &other).await;
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    transaction
        .put_row(
            "fidelis_snapshots",
            other_stream,
            std::sync::Arc::new(json!({"id": "x", "aggregate": "Wallet", "version": "nine"})),
        )
        .await
        .unwrap_or_else(|error| panic!("a raw row is written: {error}"));
    transaction.commit().await.unwrap();
    let wallet = cold.repository::<Wallet>().get(&other).await.unwrap();
    assert_eq!(wallet.balance, 9);
    assert_eq!(latest(&domain, &other).await.unwrap().0, 0);
}

async fn a_snapshot_of_a_rewritten_stream_is_ignored_and_replaced(backend: &Backend) {
    let domain = domain(backend, 0).await;
    let id = open_wallet(&domain, &[1, 2]).await;
    let stream = stream_of(&domain, &id).await;
    // Its last event is not the stream's event of that version (or the stream is shorter).
    for (version, last_event) in [
        (1, "not-the-event".to_owned()),
        (7, "past-the-end".to_owned()),
    ] {
        write_snapshot_row(
            &domain,
            Snapshot {
                id: stream.clone(),
                aggregate: "Wallet".to_owned(),
                version,
                last_event_id: last_event,
                state: json!({"id": id, "balance": 1000, "operations": 2, "largest": 2, "amounts": [1, 2]}),
                taken_at: Utc::now(),
            },
        )
        .await;
        let cold = cold_domain(backend, 0).await;
        let wallet = cold.repository::<Wallet>().get(&id).await.unwrap();
        assert_eq!(
            wallet,
            replayed(&id, &[1, 2]),
            "snapshot at {version} ignored"
        );
        assert_eq!(
            latest(&domain, &id).await.unwrap(),
            (1, wallet),
            "and replaced"
        );
    }
}

async fn a_long_cold_replay_writes_a_snapshot(backend: &Backend) {
    let writer = domain(backend, 0).await;
    let amounts: Vec<i64> = (1..=30).collect();
    let id = open_wallet(&writer, &amounts).await;
    assert_eq!(latest(&writer, &id).await, None);

    let short = cold_domain(backend, 31).await;
    short.repository::<Wallet>().get(&id).await.unwrap();
    assert_eq!(
        latest(&writer, &id).await,
        None,
        "30 events replayed: below 31"
    );

    let cold = cold_domain(backend, 30).await;
    let wallet = cold.repository::<Wallet>().get(&id).await.unwrap();
    assert_eq!(latest(&writer, &id).await, Some((29, wallet)));
}

/// One random history: the amounts of each commit.
fn histories() -> impl Strategy<Value = (u64, Vec<Vec<i64>>)> {
    let commit = prop::collection::vec(prop_oneof![1..100_i64, -100..-1_i64], 1..6);
    (1..8_u64, prop::collection::vec(commit, 1..12))
}

async fn loads_with_snapshots_equal_replays(backend: &Backend) {
    let cases = if backend.is_memory() { 24 } else { 4 };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&histories(), |(threshold, commits)| {
            let outcome = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(check_history(backend, threshold, &commits))
            });
            prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
            Ok(())
        })
        .unwrap();
}

/// Commits the history through a domain with snapshots every `threshold` events, then
/// checks a cold load (from the latest snapshot) and a historical load at every version
/// against replays of the amounts in memory.
async fn check_history(
    backend: &Backend,
    threshold: u64,
    commits: &[Vec<i64>],
) -> std::result::Result<(), String> {
    let writer = domain(backend, threshold).await;
    let id = open_wallet(&writer, &commits[0]).await;
    for amounts in &commits[1..] {
        commit_amounts(&writer, &id, amounts).await;
    }
    let all: Vec<i64> = commits.iter().flatten().copied().collect();
    let cold = cold_domain(backend, threshold).await;
    let loaded = cold
        .repository::<Wallet>()
        .get(&id)
        .await
        .map_err(|e| e.to_string())?;
    let expected = replayed(&id, &all);
    if loaded != expected || loaded.version() != expected.version() {
        return Err(format!("cold load {loaded:?} != replay {expected:?}"));
    }
    if all.len() as u64 >= threshold && latest(&writer, &id).await.is_none() {
        return Err(format!(
            "{} events, threshold {threshold}: no snapshot",
            all.len()
        ));
    }
    for version in 0..all.len() {
        let then = cold
            .repository::<Wallet>()
            .get_at_version(&id, version as i64)
            .await
            .map_err(|e| e.to_string())?;
        let expected = replayed(&id, &all[..=version]);
        if *then != expected || then.version() != version as i64 {
            return Err(format!("at version {version}: {then:?} != {expected:?}"));
        }
    }
    Ok(())
}
