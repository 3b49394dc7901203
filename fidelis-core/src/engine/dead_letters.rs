//! The dead letters of a domain's subscriptions: list, replay, purge.

use crate::model::error::{Error, Result};
use crate::model::query::QuerySpec;
use crate::runtime::domain::Domain;
use crate::store::system::{self, DeadLetter};

use super::COMMANDS_SUBSCRIPTION;

/// The events the engine gave up on (`domain.dead_letters()`), each with the real error, its
/// attempts and times. The later events of a dead letter's stream wait behind it, in its
/// subscription only, until it is replayed successfully or purged.
///
/// A replay delivers the event to the subscription that failed on it, and to no other: a
/// projector that already counted the event does not count it again.
#[derive(Clone, Debug)]
pub struct DeadLetters {
    domain: Domain,
}

/// What [`DeadLetters::replay_all`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Letters whose event (and the events waiting behind it) were handled.
    pub replayed: usize,
    /// Letters that failed again (each keeps, or is replaced by, a letter with the new error).
    pub failed: usize,
}

impl DeadLetters {
    pub(crate) fn new(domain: Domain) -> Self {
        Self { domain }
    }

    /// Every dead letter, in the global order of their events.
    pub async fn list(&self) -> Result<Vec<DeadLetter>> {
        let query = QuerySpec {
            order: vec![
                system::order_by("commit", false),
                system::order_by("position", false),
            ],
            ..QuerySpec::default()
        };
        system::query(self.domain.storage().as_ref(), &query).await
    }

    /// The dead letters of one subscription (a projector's or event handler's name, or
    /// [`COMMANDS_SUBSCRIPTION`] for submitted commands).
    pub async fn list_of(&self, subscription: &str) -> Result<Vec<DeadLetter>> {
        if subscription == COMMANDS_SUBSCRIPTION {
            return self.commands().await;
        }
        if let Some(subscriber) = self.domain.engine_shared().subscriber(subscription) {
            return subscriber.dead_letters(&self.domain).await;
        }
        self.subscription(subscription)?
            .dead_letters(self.domain.storage().as_ref())
            .await
    }

    /// One dead letter, by id.
    pub async fn get(&self, id: &str) -> Result<Option<DeadLetter>> {
        system::get(self.domain.storage().as_ref(), id).await
    }

    /// Delivers a dead letter's event again, now, to its subscription only, then the events
    /// of its stream that waited behind it; returns the error if one of them fails again.
    ///
    /// A submitted command's letter runs the command again, now; on success it goes. A
    /// subscriber's letter (`#[subscriber]`) hands its message to that subscriber again,
    /// now; on success it goes, with the message recorded as handled.
    pub async fn replay(&self, id: &str) -> Result<()> {
        let letter = self.letter(id).await?;
        if letter.subscription == COMMANDS_SUBSCRIPTION {
            return self
                .command_queue()
                .replay(&self.domain, letter, false)
                .await;
        }
        if let Some(subscriber) = self.domain.engine_shared().subscriber(&letter.subscription) {
            return subscriber.replay(&self.domain, letter, false).await;
        }
        self.subscription(&letter.subscription)?
            .replay(&self.domain, id, false)
            .await
    }

    /// Replays every dead letter of a subscription, oldest first.
    pub async fn replay_all(&self, subscription: &str) -> Result<ReplaySummary> {
        let mut summary = ReplaySummary::default();
        for letter in self.list_of(subscription).await? {
            match self.replay(&letter.id).await {
                Ok(()) => summary.replayed += 1,
                Err(error @ Error::Storage { .. }) => return Err(error),
                Err(_) => summary.failed += 1,
            }
        }
        Ok(summary)
    }

    /// Drops a dead letter without delivering its event; the events that waited behind it
    /// are delivered (and may fail in turn).
    ///
    /// A submitted command's letter goes with the command, which never runs; a subscriber's
    /// letter goes, and its message, never handled, is still skipped when it comes again.
    pub async fn purge(&self, id: &str) -> Result<()> {
        let letter = self.letter(id).await?;
        if letter.subscription == COMMANDS_SUBSCRIPTION {
            return self
                .command_queue()
                .replay(&self.domain, letter, true)
                .await;
        }
        if let Some(subscriber) = self.domain.engine_shared().subscriber(&letter.subscription) {
            return subscriber.replay(&self.domain, letter, true).await;
        }
        self.subscription(&letter.subscription)?
            .replay(&self.domain, id, true)
            .await
    }

    /// Purges every dead letter of a subscription; returns how many were purged.
    pub async fn purge_all(&self, subscription: &str) -> Result<usize> {
        let mut purged = 0;
        // A purge may replace its letter with one of a waiting event that fails: take the
        // letters of the subscription until none is left that this call has not seen.
        let mut seen = std::collections::HashSet::new();
        loop {
            let letters = self.list_of(subscription).await?;
            let Some(letter) = letters.into_iter().find(|l| !seen.contains(&l.id)) else {
                return Ok(purged);
            };
            seen.insert(letter.id.clone());
            match self.purge(&letter.id).await {
                Ok(()) => purged += 1,
                Err(error @ Error::Storage { .. }) => return Err(error),
                Err(_) => purged += 1,
            }
        }
    }

    /// The letters of this domain's submitted commands, oldest first.
    async fn commands(&self) -> Result<Vec<DeadLetter>> {
        let query = QuerySpec {
            filters: vec![system::field_eq(
                "subscription",
                COMMANDS_SUBSCRIPTION.to_owned(),
            )],
            order: vec![
                system::order_by("first_failed_at", false),
                system::order_by("id", false),
            ],
            ..QuerySpec::default()
        };
        let prefix = format!("{}::command-", self.domain.name());
        Ok(
            system::query::<DeadLetter>(self.domain.storage().as_ref(), &query)
                .await?
                .into_iter()
                .filter(|letter| letter.stream.starts_with(&prefix))
                .collect(),
        )
    }

    fn command_queue(&self) -> &super::CommandQueue {
        &self.domain.engine_shared().commands
    }

    async fn letter(&self, id: &str) -> Result<DeadLetter> {
        self.get(id)
            .await?
            .ok_or_else(|| Error::usage(format!("no dead letter `{id}`")))
    }

    fn subscription(&self, name: &str) -> Result<&std::sync::Arc<super::Subscription>> {
        self.domain
            .engine_shared()
            .subscription(name)
            .ok_or_else(|| {
                Error::usage(format!(
                    "no subscription `{name}` in domain `{}`: subscriptions are named after \
                     projectors, event handlers and subscribers",
                    self.domain.name()
                ))
            })
    }
}
