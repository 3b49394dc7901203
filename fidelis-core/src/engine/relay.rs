//! The outbox relay: publishes the rows of [`OutboxMessage`] that commits wrote (see
//! `runtime/outbox.rs`) to the domain's broker, in commit order, each event stream's events
//! in version order, then deletes them.
//!
//! One round ([`Relay::step`]):
//!
//! 1. read the oldest rows of the domain, by global position;
//! 2. keep each stream's rows from its first row on, and skip a stream whose first row
//!    another relay has claimed (its claim not lapsed): that relay publishes the stream's
//!    earlier events, and the later ones wait for it;
//! 3. claim the kept rows at once: two relays never both claim a row, and the second sees
//!    the first's claims;
//! 4. publish them in one [`Broker::publish`] call, in position order;
//! 5. on success delete them (one transaction); on a broker error give the claim back with
//!    `attempts` and `last_error` updated, and wait (exponential backoff) before the next
//!    round.
//!
//! SQL stores do 1–3 in one statement ([`Storage::claim_outbox`]), in a transaction of its
//! own during which the domain's other relays wait to claim. Elsewhere (memory) the relay
//! reads the rows, applies [`select`], and claims the kept rows in one transaction, each
//! with a version check: of two relays reading the same rows, one claims them and the
//! other's transaction fails and is dropped.
//!
//! [`Storage::claim_outbox`]: crate::store::Storage::claim_outbox
//!
//! Claims are rows rather than `FOR UPDATE SKIP LOCKED` held across the publish: they work
//! the same on every adapter through the storage port, hold no connection while the broker
//! is slow, and a claim's owner shows in the row. A claim lapses after the engine's lease
//! time, so a relay killed mid-batch only delays its rows. Whatever the broker accepted
//! before a crash or an error is published again with the same ids (the event ids), which
//! brokers de-duplicate: delivery to the broker is at least once, never lost.
//!
//! Published rows are deleted at once: the broker is the record of what was published, and
//! the table stays as small as the backlog, so "pending" is a count of the table.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::watch;

use crate::broker::{BrokerMessage, METADATA_HEADER, STREAM_HEADER, TYPE_HEADER, VERSION_HEADER};
use crate::model::error::{Error, Result};
use crate::model::event::category_of;
use crate::model::query::QuerySpec;
use crate::runtime::domain::Domain;
use crate::store::system::{self, OutboxMessage, SystemRow};
use crate::store::{JsonRow, OutboxClaim};

use super::HandlerRetry;

/// How many rows one round reads.
const BATCH: usize = 100;

/// How the relay waits after a broker error: from 100 ms, doubling, at most 30 s.
fn backoff() -> HandlerRetry {
    HandlerRetry::exponential(u32::MAX, Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(30))
}

/// The relay's state in this process (shared by the engine's clones): one round at a time,
/// and what [`RelayStatus`] reports.
#[derive(Default)]
pub(crate) struct Relay {
    turn: tokio::sync::Mutex<()>,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    published: u64,
    failures: u32,
    last_error: Option<String>,
}

/// How a round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Round {
    /// This many events were published.
    Published(usize),
    /// Nothing to publish here now (none pending, or held by another relay).
    Idle,
    /// The broker refused; the rows wait for the next round.
    BrokerFailed,
}

/// A pending row with the version it was read at.
struct Pending {
    row: OutboxMessage,
    version: i64,
}

impl Relay {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Consecutive broker failures (0 after a success).
    pub(crate) fn failures(&self) -> u32 {
        self.state().failures
    }

    /// One round (see the module docs). Broker errors are kept for the status and end the
    /// round as [`Round::BrokerFailed`]; an error is a store that cannot be read or written.
    pub(crate) async fn step(
        &self,
        domain: &Domain,
        owner: &str,
        claim: Duration,
    ) -> Result<Round> {
        let Some(broker) = domain.broker() else {
            return Ok(Round::Idle);
        };
        let _turn = self.turn.lock().await;
        let claimed = claim_batch(domain, owner, claim).await?;
        if claimed.is_empty() {
            return Ok(Round::Idle);
        }
        let messages = claimed
            .iter()
            .map(|pending| message(&pending.row))
            .collect::<Vec<_>>();
        match broker.publish(&messages).await {
            Ok(()) => {
                let ids: Vec<String> = claimed
                    .iter()
                    .map(|pending| pending.row.id.clone())
                    .collect();
                let mut transaction = domain.storage().begin().await?;
                system::remove_all::<OutboxMessage>(transaction.as_mut(), &ids).await?;
                transaction.commit().await?;
                let mut state = self.state();
                state.published += claimed.len() as u64;
                state.failures = 0;
                tracing::debug!(domain = %domain.name(), published = claimed.len(), broker = %broker.describe(), "outbox rows relayed");
                Ok(Round::Published(claimed.len()))
            }
            Err(error) => {
                let failures = {
                    let mut state = self.state();
                    state.failures = state.failures.saturating_add(1);
                    state.last_error = Some(error.to_string());
                    state.failures
                };
                tracing::warn!(domain = %domain.name(), broker = %broker.describe(), failures, %error, "the broker refused the outbox rows; retrying later");
                release(domain, claimed, &error).await?;
                Ok(Round::BrokerFailed)
            }
        }
    }

    /// The relay's status: the backlog as the store holds it, and this process's counters.
    pub(crate) async fn status(&self, domain: &Domain) -> Result<Option<RelayStatus>> {
        let Some(broker) = domain.broker() else {
            return Ok(None);
        };
        let storage = domain.storage();
        let query = domain_rows(domain, None);
        let pending = storage.count(OutboxMessage::TABLE.name, &query).await?;
        let oldest = pending_rows(domain, 1).await?.into_iter().next();
        let oldest_pending = oldest.map_or(Duration::ZERO, |oldest| {
            (Utc::now() - oldest.row.created_at)
                .to_std()
                .unwrap_or_default()
        });
        let state = self.state();
        Ok(Some(RelayStatus {
            broker: broker.describe(),
            pending,
            oldest_pending,
            published: state.published,
            failures: state.failures,
            last_error: state.last_error.clone(),
        }))
    }
}

/// Where the outbox relay stands ([`Engine::relay_status`](super::Engine::relay_status)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayStatus {
    /// The broker, as [`Broker::describe`](crate::broker::Broker::describe) says (no password).
    pub broker: String,
    /// Events of this domain waiting in the outbox.
    pub pending: u64,
    /// How long ago the oldest of them was committed (zero when none waits).
    pub oldest_pending: Duration,
    /// Events this process relayed since it started.
    pub published: u64,
    /// Broker failures in a row (0 once a publish succeeds).
    pub failures: u32,
    /// The last broker error this process saw (kept after a later success, for diagnosis).
    pub last_error: Option<String>,
}

fn domain_rows(domain: &Domain, limit: Option<usize>) -> QuerySpec {
    QuerySpec {
        filters: vec![system::field_eq("domain", domain.name().to_owned())],
        order: vec![system::order_by("position", false)],
        limit,
        offset: 0,
    }
}

/// The domain's oldest rows, in position order, with their versions.
async fn pending_rows(domain: &Domain, limit: usize) -> Result<Vec<Pending>> {
    domain
        .storage()
        .query(OutboxMessage::TABLE.name, &domain_rows(domain, Some(limit)))
        .await?
        .into_iter()
        .map(decode)
        .collect()
}

fn decode(row: JsonRow) -> Result<Pending> {
    let version = row.version;
    let row =
        serde_json::from_value(Value::Object(row.data)).map_err(|error| Error::Serialization {
            what: format!("a row of system table {}", OutboxMessage::TABLE.name),
            message: error.to_string(),
        })?;
    Ok(Pending { row, version })
}

/// Claims the rows this relay may publish now (steps 1–3 of the module docs), in position
/// order; none when there are none, or another relay claimed them first.
async fn claim_batch(domain: &Domain, owner: &str, claim: Duration) -> Result<Vec<Pending>> {
    let now = Utc::now();
    let until = now + chrono::Duration::from_std(claim).unwrap_or(chrono::Duration::seconds(10));
    let batch = OutboxClaim {
        domain: domain.name(),
        owner,
        now,
        until,
        limit: BATCH,
    };
    if let Some(rows) = domain.storage().claim_outbox(&batch).await? {
        let mut claimed = rows.into_iter().map(decode).collect::<Result<Vec<_>>>()?;
        claimed.sort_by_key(|pending| pending.row.position);
        return Ok(claimed);
    }
    let selected = select(pending_rows(domain, BATCH).await?, owner, now);
    if selected.is_empty() {
        return Ok(Vec::new());
    }
    Ok(claim_rows(domain, selected, owner, until)
        .await?
        .unwrap_or_default())
}

/// The rows this relay may publish now: each stream's rows from its first pending one on,
/// except streams whose first row another relay holds.
fn select(rows: Vec<Pending>, owner: &str, now: DateTime<Utc>) -> Vec<Pending> {
    let mut held_elsewhere: HashSet<String> = HashSet::new();
    let mut selected = Vec::new();
    for pending in rows {
        if held_elsewhere.contains(&pending.row.stream) {
            continue;
        }
        let claimed_elsewhere = pending
            .row
            .claimed_by
            .as_deref()
            .is_some_and(|by| by != owner)
            && pending.row.claimed_until.is_some_and(|until| until > now);
        if claimed_elsewhere {
            // Its later rows wait too: publishing them now could overtake it.
            held_elsewhere.insert(pending.row.stream.clone());
            continue;
        }
        selected.push(pending);
    }
    selected
}

/// Claims the rows in one transaction; `None` when another relay claimed one of them first.
async fn claim_rows(
    domain: &Domain,
    rows: Vec<Pending>,
    owner: &str,
    until: DateTime<Utc>,
) -> Result<Option<Vec<Pending>>> {
    let mut transaction = domain.storage().begin().await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for pending in rows {
        let row = OutboxMessage {
            claimed_by: Some(owner.to_owned()),
            claimed_until: Some(until),
            ..pending.row
        };
        let version = pending.version + 1;
        let written = put(transaction.as_mut(), &row, version, pending.version).await;
        match written {
            Ok(()) => claimed.push(Pending { row, version }),
            Err(Error::VersionConflict { .. }) => {
                tracing::debug!(domain = %domain.name(), row = %row.id, "outbox row claimed by another relay meanwhile");
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
    }
    match transaction.commit().await {
        Ok(()) => Ok(Some(claimed)),
        Err(Error::VersionConflict { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Gives claimed rows back after a broker error, counting the attempt.
async fn release(domain: &Domain, claimed: Vec<Pending>, error: &Error) -> Result<()> {
    let mut transaction = domain.storage().begin().await?;
    for pending in claimed {
        let row = OutboxMessage {
            claimed_by: None,
            claimed_until: None,
            attempts: pending.row.attempts + 1,
            last_error: Some(error.to_string()),
            ..pending.row
        };
        match put(
            transaction.as_mut(),
            &row,
            pending.version + 1,
            pending.version,
        )
        .await
        {
            Ok(()) => {}
            // Our claim lapsed and another relay took the rows over: they are its now.
            Err(Error::VersionConflict { .. }) => return Ok(()),
            Err(error) => return Err(error),
        }
    }
    transaction.commit().await
}

async fn put(
    transaction: &mut dyn crate::store::Transaction,
    row: &OutboxMessage,
    version: i64,
    expected: i64,
) -> Result<()> {
    let data = match serde_json::to_value(row) {
        Ok(Value::Object(data)) => data,
        Ok(_) | Err(_) => {
            return Err(Error::Serialization {
                what: format!("outbox row `{}`", row.id),
                message: "an outbox row must serialize to a JSON object".to_owned(),
            });
        }
    };
    transaction
        .put_json_row(
            OutboxMessage::TABLE.name,
            JsonRow {
                id: row.id.clone(),
                version,
                data,
            },
            Some(expected),
        )
        .await
}

/// The broker stream of an event stream: its category with `::` as `.`
/// (`fidelis::account-1` → `fidelis.account`).
pub(crate) fn broker_stream(stream: &str) -> String {
    category_of(stream).replace("::", ".")
}

/// The broker message of an outbox row: the event id, the data as payload, the type, stream,
/// version and metadata as headers.
fn message(row: &OutboxMessage) -> BrokerMessage {
    BrokerMessage::json_message(row.id.clone(), broker_stream(&row.stream), &row.data)
        .with_header(TYPE_HEADER, row.type_name.clone())
        .with_header(STREAM_HEADER, row.stream.clone())
        .with_header(VERSION_HEADER, row.version.to_string())
        .with_header(METADATA_HEADER, row.metadata.to_string())
}

/// The relay's loop in [`Engine::run`](super::Engine::run): rounds while rows are published,
/// then waits for a commit of this process, a poll, or (after a broker error) the backoff.
pub(crate) async fn run(domain: Domain, relay: Arc<Relay>, mut stopped: watch::Receiver<bool>) {
    let mut wake = super::commits().subscribe();
    let mut idle = super::POLL_MIN;
    let mut store_failures = 0_u32;
    let owner = domain.engine_shared().owner().to_owned();
    let claim = domain.engine_shared().lease();
    while !*stopped.borrow() {
        let wait = match relay.step(&domain, &owner, claim).await {
            Ok(Round::Published(_)) => {
                store_failures = 0;
                idle = super::POLL_MIN;
                continue;
            }
            Ok(Round::Idle) => {
                store_failures = 0;
                let wait = idle;
                idle = (idle * 2).min(super::POLL_MAX);
                wait
            }
            Ok(Round::BrokerFailed) => backoff().delay(relay.failures()),
            Err(error) => {
                store_failures = store_failures.saturating_add(1);
                let delay = backoff().delay(store_failures);
                tracing::error!(domain = %domain.name(), %error, ?delay, "the outbox relay failed to read or write the store; retrying");
                relay.state().last_error = Some(error.to_string());
                delay
            }
        };
        let started = Instant::now();
        tokio::select! {
            // A commit wakes an idle relay; a failing broker is left alone until its backoff ends.
            _ = wake.changed(), if relay.failures() == 0 => idle = super::POLL_MIN,
            _ = stopped.changed() => {}
            () = tokio::time::sleep(wait) => {}
        }
        tracing::trace!(waited = ?started.elapsed(), "outbox relay wakes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(stream: &str, version: i64, claimed_by: Option<&str>, until: i64) -> Pending {
        Pending {
            row: OutboxMessage {
                id: format!("{stream}/{version}"),
                domain: "d".into(),
                stream: stream.into(),
                version,
                position: version,
                type_name: "D.E.v1".into(),
                data: Value::Null,
                metadata: Value::Null,
                created_at: Utc::now(),
                claimed_by: claimed_by.map(str::to_owned),
                claimed_until: claimed_by.map(|_| Utc::now() + chrono::Duration::seconds(until)),
                attempts: 0,
                last_error: None,
            },
            version: 0,
        }
    }

    #[test]
    fn a_stream_whose_first_row_another_relay_holds_waits_whole() {
        let rows = vec![
            row("d::a-1", 0, Some("other"), 60),
            row("d::b-1", 0, None, 0),
            row("d::a-1", 1, None, 0),
            row("d::c-1", 0, Some("other"), -60),
            row("d::b-1", 1, Some("me"), 60),
        ];
        let ids: Vec<String> = select(rows, "me", Utc::now())
            .into_iter()
            .map(|pending| pending.row.id)
            .collect();
        assert_eq!(
            ids,
            ["d::b-1/0", "d::c-1/0", "d::b-1/1"],
            "a lapsed claim and our own are taken"
        );
    }

    #[test]
    fn broker_streams_are_categories_with_dots() {
        assert_eq!(broker_stream("fidelis::account-0193-ab"), "fidelis.account");
        assert_eq!(
            broker_stream("fidelis::account_fact-1"),
            "fidelis.account_fact"
        );
    }
}
