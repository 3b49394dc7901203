//! Which partitions this engine handles: the checkpoints' layout, checked once, and the
//! balancing of leases between the live engines.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use rand::Rng;

use crate::model::error::{Error, Result};
use crate::model::query::QuerySpec;
use crate::runtime::domain::Domain;
use crate::store::Cursor;
use crate::store::system::{self, Checkpoint, Lease};

use super::Subscription;
use super::lease::shared_by_engines;
use super::subscription::cursor_of;

/// The key of the row that records how many partitions a subscription's checkpoints were
/// written for (a [`Checkpoint`] row whose `partition` is the count).
fn count_key(subscription: &str) -> String {
    format!("{subscription}/partitions")
}

/// Checks that each subscription's checkpoints were written for its partition count, and
/// records the count on first use. Checkpoints of another count are carried over when they
/// all stand at the same cursor (the case of a subscription that ran unpartitioned: every
/// new partition starts where it stood, so nothing is applied twice); otherwise the engine
/// refuses to start rather than apply events twice or skip them.
pub(super) async fn check_layout(
    domain: &Domain,
    subscriptions: &[Arc<Subscription>],
) -> Result<()> {
    let storage = domain.storage().as_ref();
    let mut problems = Vec::new();
    for subscription in subscriptions {
        let name = subscription.checkpoint_name();
        let count = subscription.partitions();
        let mut transaction = storage.begin().await?;
        // Locked: engines starting at once check one after another.
        let recorded = system::get_in::<Checkpoint>(transaction.as_mut(), &count_key(name)).await?;
        if recorded
            .as_ref()
            .is_some_and(|row| row.partition == i64::from(count))
        {
            continue;
        }
        let existing: Vec<Checkpoint> = system::query::<Checkpoint>(
            storage,
            &QuerySpec {
                filters: vec![system::field_eq("subscription", name.to_owned())],
                ..QuerySpec::default()
            },
        )
        .await?
        .into_iter()
        .filter(|checkpoint| checkpoint.id != count_key(name))
        .collect();
        let cursors: Vec<Cursor> = existing.iter().cloned().map(cursor_of).collect();
        let carried = match cursors.first() {
            None => None,
            Some(first) if cursors.iter().all(|cursor| cursor == first) => Some(*first),
            Some(_) => {
                let former = recorded.map_or_else(
                    || "one partition".to_owned(),
                    |row| format!("{} partitions", row.partition),
                );
                problems.push(format!(
                    "subscription `{name}` has checkpoints of {former} at different positions; \
                     it cannot run with {count} partitions without applying events twice or \
                     skipping some: run its engines with the former count until they are \
                     caught up and stopped (all its checkpoints then stand at one position), \
                     then change it"
                ));
                continue;
            }
        };
        let now = Utc::now();
        if let Some(at) = carried {
            for checkpoint in &existing {
                if checkpoint.partition >= i64::from(count) {
                    system::remove::<Checkpoint>(transaction.as_mut(), &checkpoint.id).await?;
                }
            }
            for partition in 0..count {
                system::put(
                    transaction.as_mut(),
                    Checkpoint {
                        id: subscription.key(partition),
                        subscription: name.to_owned(),
                        partition: i64::from(partition),
                        commit: at.commit,
                        position: at.position,
                        updated_at: now,
                    },
                )
                .await?;
            }
            tracing::info!(
                subscription = name,
                partitions = count,
                ?at,
                "checkpoints carried over to a new partition count"
            );
        }
        system::put(
            transaction.as_mut(),
            Checkpoint {
                id: count_key(name),
                subscription: name.to_owned(),
                partition: i64::from(count),
                commit: 0,
                position: 0,
                updated_at: now,
            },
        )
        .await?;
        transaction.commit().await?;
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Configuration { problems })
    }
}

/// One round of lease keeping: announces this engine, renews its leases, then releases the
/// ones beyond its share (`ceil(units / live engines)`, after the batch in hand) or takes
/// free and lapsed ones up to it. On a store that runs one engine, its share is everything,
/// and a lease another live engine holds is an error.
pub(super) async fn rebalance(domain: &Domain, subscriptions: &[Arc<Subscription>]) -> Result<()> {
    let storage = domain.storage().as_ref();
    let leases = &domain.engine_shared().leases;
    let shared = shared_by_engines(storage);
    let units: Vec<(&Arc<Subscription>, u32)> = subscriptions
        .iter()
        .flat_map(|subscription| (0..subscription.partitions()).map(move |p| (subscription, p)))
        .collect();
    let live = if shared {
        leases.heartbeat(storage).await?
    } else {
        1
    };
    leases.renew(storage, &leases.held_keys()).await?;
    let share = units.len().div_ceil(live);
    let held = leases.held_keys();
    for key in held.iter().take(share) {
        leases.keep(key);
    }
    if held.len() > share {
        for key in &held[share..] {
            let Some((subscription, partition)) = units
                .iter()
                .find(|(subscription, partition)| subscription.key(*partition) == *key)
            else {
                continue;
            };
            // Not while a batch is in hand, and without waiting for it (this task renews
            // every lease: waiting out a long batch would let them all lapse): the lease
            // drains (its worker stops at the next event) and goes in a later round.
            match subscription.turn(*partition).try_lock() {
                Ok(_turn) => leases.release(storage, key).await?,
                Err(_) => leases.drain(key),
            }
        }
        return Ok(());
    }
    let rows: HashMap<String, Lease> = system::query::<Lease>(storage, &QuerySpec::default())
        .await?
        .into_iter()
        .map(|lease| (lease.id.clone(), lease))
        .collect();
    let now = Utc::now();
    let mut free: Vec<&(&Arc<Subscription>, u32)> = units
        .iter()
        .filter(|(subscription, partition)| {
            let key = subscription.key(*partition);
            !held.contains(&key)
                && (!shared
                    || rows.get(&key).is_none_or(|lease| {
                        lease.owner.is_empty()
                            || lease.expires_at <= now
                            || lease.owner == leases.owner()
                    }))
        })
        .collect();
    // A lease whose row names this engine but that it no longer counts as held (found lost,
    // then taken again while a stale batch ended) is taken back first, even past the share:
    // no other engine would take it before it lapses. The next round releases extras.
    let mut wanted = share.saturating_sub(held.len());
    for (subscription, partition) in &free {
        let key = subscription.key(*partition);
        if rows
            .get(&key)
            .is_some_and(|lease| lease.owner == leases.owner())
            && leases
                .take(storage, subscription.checkpoint_name(), *partition)
                .await?
        {
            wanted = wanted.saturating_sub(1);
        }
    }
    // Engines joining at once start at different places, so they seldom race for a lease.
    if !free.is_empty() {
        let start = rand::rng().random_range(0..free.len());
        free.rotate_left(start);
    }
    for (subscription, partition) in free {
        if wanted == 0 {
            break;
        }
        if leases
            .take(storage, subscription.checkpoint_name(), *partition)
            .await?
        {
            wanted = wanted.saturating_sub(1);
        }
    }
    Ok(())
}
