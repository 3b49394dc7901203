//! Partitions and their leases: which engine process handles which partition of each
//! subscription.
//!
//! A subscription's streams are split into partitions by [`stream_hash`](crate::store::stream_hash);
//! each partition has its own checkpoint (`<subscription>/<partition>`) and a lease row of the
//! same key in `fidelis_leases` ([`Lease`]): its owner (an engine process), when it lapses,
//! and a **fencing token** that grows by one with every new holder. An engine handles a
//! partition only while it holds its lease, and every transaction that moves the partition's
//! checkpoint (a projector's rows with it, a dead letter) first checks, under the row's lock,
//! that the lease still has its owner and token ([`Fence::holds`]): a process that lost its
//! lease (paused past the expiry, cut off from the database, killed but not yet gone) cannot
//! commit anything once another took it over.
//!
//! Engines running on one database announce themselves with member rows (subscription
//! `@engines/<domain>`), renewed with their leases every third of the lease time; each aims
//! for `ceil(units / live engines)` leases, releasing extras (after the batch in hand) and
//! taking free or lapsed ones, so a killed process's partitions are taken over within about
//! one lease time. Stores with one writer (SQLite, memory) run one engine: a lease held by
//! another live engine is an error naming the database.
//!
//! Lease rows rather than `pg_try_advisory_lock` on a held connection: the rows show the owner
//! in `engine.status()`, fence the writes of a stale owner in the same transaction, and work
//! the same on every adapter (an advisory lock dies with its connection, but a process whose
//! connection was cut does not learn it before its next statement).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::Rng;
use tokio::sync::watch;

use crate::model::error::{Error, Result};
use crate::store::system::{self, Lease};
use crate::store::{Storage, Transaction};

/// The default lease time ([`DomainBuilder::engine_lease`](crate::DomainBuilder::engine_lease)).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The default partition count on PostgreSQL (other stores run one engine, one partition).
pub const DEFAULT_POSTGRES_PARTITIONS: u32 = 4;

/// Whether several engine processes may share the store: PostgreSQL's writers commit
/// concurrently; SQLite has one writer and memory one process.
pub(crate) fn shared_by_engines(storage: &dyn Storage) -> bool {
    storage.kind() == "postgres"
}

/// A lease this engine holds.
#[derive(Clone, Copy, Debug)]
struct Held {
    token: i64,
    /// When this process stops trusting it without a renewal (a little before the expiry
    /// written in the row, measured on the monotonic clock from before the write).
    valid_until: Instant,
    renewed_at: Instant,
    /// To be released once the batch in hand ends: no new batch starts, and an event
    /// handler stops before its next event (see [`Leases::drain`]).
    draining: bool,
}

/// What a transaction checks before it commits a partition's work: the lease still names
/// this owner with this token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    pub(crate) key: String,
    pub(crate) owner: String,
    pub(crate) token: i64,
}

impl Fence {
    /// Locks the lease row in `transaction` (PostgreSQL: until it ends) and tells whether it
    /// is still this fence's: a taker's write waits for this transaction, and this
    /// transaction sees a taker's committed write.
    pub(crate) async fn holds(&self, transaction: &mut dyn Transaction) -> Result<bool> {
        Ok(system::get_in::<Lease>(transaction, &self.key)
            .await?
            .is_some_and(|lease| lease.owner == self.owner && lease.token == self.token))
    }
}

/// The leases of one domain's engine in this process (shared by its clones).
pub(crate) struct Leases {
    owner: String,
    domain: String,
    lease: Duration,
    held: Mutex<HashMap<String, Held>>,
    /// Bumped when a lease is taken or lost: idle partition workers look again.
    changed: watch::Sender<u64>,
    /// `Engine::run`s under way: `run_until_idle` keeps the leases they rely on.
    runs: std::sync::atomic::AtomicUsize,
    /// Held by [`renew_due`](Self::renew_due): the partitions `run_until_idle` steps side by
    /// side renew one at a time, so two never renew the same lease in competing
    /// transactions (the second finds nothing due).
    renewing: tokio::sync::Mutex<()>,
}

impl Leases {
    pub(crate) fn new(domain: &str, lease: Duration) -> Self {
        let random: u32 = rand::rng().random();
        Self {
            owner: format!("{}:{}:{random:08x}", host(), std::process::id()),
            domain: domain.to_owned(),
            lease,
            held: Mutex::new(HashMap::new()),
            changed: watch::Sender::new(0),
            runs: std::sync::atomic::AtomicUsize::new(0),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// This engine's owner id: `<host>:<pid>:<random>`.
    pub(crate) fn owner(&self) -> &str {
        &self.owner
    }

    pub(crate) fn lease(&self) -> Duration {
        self.lease
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(crate) fn run_started(&self) {
        self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn run_ended(&self) {
        self.runs.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn running(&self) -> bool {
        self.runs.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.changed
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// The keys of the leases held now.
    pub(crate) fn held_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.held().keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The fence of a lease this engine holds and still trusts.
    pub(crate) fn fence(&self, key: &str) -> Option<Fence> {
        let held = self.held().get(key).copied()?;
        (!held.draining && held.valid_until > Instant::now()).then(|| Fence {
            key: key.to_owned(),
            owner: self.owner.clone(),
            token: held.token,
        })
    }

    /// Whether a fence is still trusted here (its token held, not past its validity): an
    /// event handler is called only then, since its effects commit outside the fenced
    /// transaction.
    pub(crate) fn trusts(&self, fence: &Fence) -> bool {
        self.fence(&fence.key)
            .is_some_and(|now| now.token == fence.token)
    }

    /// Forgets a lease found lost (a fenced commit refused): its worker stops. Only the
    /// token that was refused: a lease taken again meanwhile stays.
    pub(crate) fn forget_token(&self, key: &str, token: i64) {
        let mut held = self.held();
        if held.get(key).is_some_and(|h| h.token == token) {
            held.remove(key);
            drop(held);
            self.bump();
        }
    }

    /// Marks a held lease to be released: its worker starts no new batch and an event
    /// handler stops before its next event, so the lease keeper can release it soon without
    /// waiting for a whole batch (it keeps renewing it meanwhile).
    pub(crate) fn drain(&self, key: &str) {
        let changed = self
            .held()
            .get_mut(key)
            .is_some_and(|held| !std::mem::replace(&mut held.draining, true));
        if changed {
            tracing::debug!(domain = %self.domain, key, "lease draining before its release");
            self.bump();
        }
    }

    /// Keeps a held lease after all (a drain no longer wanted: the share grew back).
    pub(crate) fn keep(&self, key: &str) {
        let changed = self
            .held()
            .get_mut(key)
            .is_some_and(|held| std::mem::replace(&mut held.draining, false));
        if changed {
            self.bump();
        }
    }

    /// Takes a partition's lease if it is free, lapsed, or already this engine's; `false`
    /// when another live engine holds it (on a store that runs one engine: an error naming
    /// the database and the holder).
    pub(crate) async fn take(
        &self,
        storage: &dyn Storage,
        subscription: &str,
        partition: u32,
    ) -> Result<bool> {
        let key = system::Checkpoint::key(subscription, i64::from(partition));
        // Held and trusted (a draining one is kept after all).
        if let Some(held) = self.held().get_mut(&key)
            && held.valid_until > Instant::now()
        {
            if std::mem::replace(&mut held.draining, false) {
                self.bump();
            }
            return Ok(true);
        }
        let started = Instant::now();
        let now = Utc::now();
        let mut transaction = storage.begin().await?;
        let token = match system::get_in::<Lease>(transaction.as_mut(), &key).await? {
            None => 1,
            Some(lease) if lease.owner == self.owner || lease.owner.is_empty() => lease.token + 1,
            Some(lease) if lease.expires_at <= now => lease.token + 1,
            Some(lease) if shared_by_engines(storage) => {
                drop(lease);
                return Ok(false);
            }
            Some(lease) => {
                return Err(Error::usage(format!(
                    "another engine runs on {}: `{}` holds subscription `{subscription}` \
                     (partition {partition}) until {}; a {} database runs one engine at a \
                     time (stop the other one, or use PostgreSQL to run several); a killed \
                     engine's lease lapses after its lease time",
                    storage.location(),
                    lease.owner,
                    lease.expires_at.to_rfc3339(),
                    storage.kind(),
                )));
            }
        };
        system::put(
            transaction.as_mut(),
            Lease {
                id: key.clone(),
                subscription: subscription.to_owned(),
                partition: i64::from(partition),
                owner: self.owner.clone(),
                token,
                expires_at: now + self.lease_chrono(),
            },
        )
        .await?;
        transaction.commit().await?;
        tracing::info!(
            domain = %self.domain,
            owner = %self.owner,
            subscription,
            partition,
            token,
            "lease taken"
        );
        self.held().insert(
            key,
            Held {
                token,
                valid_until: started + self.trusted(),
                renewed_at: started,
                draining: false,
            },
        );
        self.bump();
        Ok(true)
    }

    /// Renews the held leases in `keys` in one transaction (one commit however many they
    /// are, so that the renewals keep up on a busy database); the ones found lost to
    /// another engine are forgotten (their workers stop).
    pub(crate) async fn renew(&self, storage: &dyn Storage, keys: &[String]) -> Result<()> {
        let mine: Vec<(String, Held)> = {
            let held = self.held();
            keys.iter()
                .filter_map(|key| held.get(key).map(|h| (key.clone(), *h)))
                .collect()
        };
        if mine.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let now = Utc::now();
        let mut transaction = storage.begin().await?;
        let mut renewed = Vec::new();
        let mut lost = Vec::new();
        for (key, held) in mine {
            let lease = system::get_in::<Lease>(transaction.as_mut(), &key).await?;
            let Some(lease) = lease.filter(|l| l.owner == self.owner && l.token == held.token)
            else {
                lost.push((key, held.token));
                continue;
            };
            system::put(
                transaction.as_mut(),
                Lease {
                    expires_at: now + self.lease_chrono(),
                    ..lease
                },
            )
            .await?;
            renewed.push((key, held.token));
        }
        transaction.commit().await?;
        {
            let mut held = self.held();
            for (key, token) in &renewed {
                if let Some(entry) = held.get_mut(key)
                    && entry.token == *token
                {
                    entry.valid_until = started + self.trusted();
                    entry.renewed_at = started;
                }
            }
        }
        for (key, token) in lost {
            tracing::warn!(domain = %self.domain, owner = %self.owner, key, "lease lost to another engine");
            self.forget_token(&key, token);
        }
        Ok(())
    }

    /// Renews the held leases last renewed a third of the lease time ago or more (used
    /// between batches of `run_until_idle`, which has no heartbeat task).
    pub(crate) async fn renew_due(&self, storage: &dyn Storage) -> Result<()> {
        let _renewing = self.renewing.lock().await;
        let due: Vec<String> = self
            .held()
            .iter()
            .filter(|(_, held)| held.renewed_at.elapsed() >= self.lease / 3)
            .map(|(key, _)| key.clone())
            .collect();
        self.renew(storage, &due).await
    }

    /// Gives a held lease back at once (expired, no owner, token kept), so another engine
    /// may take it without waiting for the expiry. The caller makes sure no batch of the
    /// partition is in hand.
    pub(crate) async fn release(&self, storage: &dyn Storage, key: &str) -> Result<()> {
        let Some(held) = self.held().remove(key) else {
            return Ok(());
        };
        self.bump();
        let mut transaction = storage.begin().await?;
        let lease = system::get_in::<Lease>(transaction.as_mut(), key).await?;
        if let Some(lease) = lease.filter(|l| l.owner == self.owner && l.token == held.token) {
            system::put(
                transaction.as_mut(),
                Lease {
                    owner: String::new(),
                    expires_at: Utc::now(),
                    ..lease
                },
            )
            .await?;
            transaction.commit().await?;
            tracing::info!(domain = %self.domain, owner = %self.owner, key, "lease released");
        }
        Ok(())
    }

    /// Writes this engine's member row and returns how many engines of the domain are live
    /// (their member row not lapsed), this one included.
    pub(crate) async fn heartbeat(&self, storage: &dyn Storage) -> Result<usize> {
        let now = Utc::now();
        let mut transaction = storage.begin().await?;
        system::put(
            transaction.as_mut(),
            Lease {
                id: self.member_key(),
                subscription: self.members(),
                partition: -1,
                owner: self.owner.clone(),
                token: 0,
                expires_at: now + self.lease_chrono(),
            },
        )
        .await?;
        transaction.commit().await?;
        let members = system::query::<Lease>(
            storage,
            &crate::model::query::QuerySpec {
                filters: vec![system::field_eq("subscription", self.members())],
                ..Default::default()
            },
        )
        .await?;
        // Member rows of engines gone for ten lease times (killed: no clean shutdown
        // removed them) are removed, so that the list stays short.
        let gone_before = now - self.lease_chrono() * 10;
        let gone: Vec<&Lease> = members
            .iter()
            .filter(|member| member.expires_at < gone_before)
            .collect();
        if !gone.is_empty() {
            let mut transaction = storage.begin().await?;
            for member in &gone {
                system::remove::<Lease>(transaction.as_mut(), &member.id).await?;
            }
            transaction.commit().await?;
            tracing::debug!(domain = %self.domain, removed = gone.len(), "member rows of gone engines removed");
        }
        Ok(members
            .iter()
            .filter(|member| member.owner == self.owner || member.expires_at > now)
            .count()
            .max(1))
    }

    /// Removes this engine's member row (a clean shutdown).
    pub(crate) async fn leave(&self, storage: &dyn Storage) -> Result<()> {
        let mut transaction = storage.begin().await?;
        system::remove::<Lease>(transaction.as_mut(), &self.member_key()).await?;
        transaction.commit().await
    }

    fn members(&self) -> String {
        format!("@engines/{}", self.domain)
    }

    fn member_key(&self) -> String {
        format!("{}/{}", self.members(), self.owner)
    }

    fn lease_chrono(&self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.lease).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// How long after a write this process trusts a lease: four fifths of the lease time,
    /// leaving a margin for clock drift and the time the write took.
    fn trusted(&self) -> Duration {
        self.lease.mul_f64(0.8)
    }
}

/// This machine's name for owner ids (`HOSTNAME`, else `localhost`).
fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
