//! The writing side of the outbox: a commit hook that adds one [`OutboxMessage`] per
//! published event (an `#[event(.., published)]` type, or a fact event) to the transaction
//! of the events, so a command that rolls back leaves none and a committed event is never
//! lost for the broker. The engine's relay (`engine/relay.rs`) publishes and deletes them.
//!
//! The hook is registered only when the domain has a broker.

use std::any::Any;

use async_trait::async_trait;
use chrono::Utc;

use crate::model::error::{Error, Result};
use crate::runtime::commit::{Commit, CommitHook};
use crate::store::Transaction;
use crate::store::system::{self, OutboxMessage};

/// Writes the outbox rows of a commit's published events.
pub(crate) struct OutboxWriter;

#[async_trait]
impl CommitHook for OutboxWriter {
    fn name(&self) -> &'static str {
        "outbox"
    }

    async fn on_commit(
        &self,
        commit: &Commit<'_>,
        transaction: &mut dyn Transaction,
    ) -> Result<()> {
        let registry = commit.domain.registry();
        let now = Utc::now();
        for event in commit.events {
            let payload = event.payload_any();
            let info = registry.event_info(Any::type_id(payload.as_any()), payload.event_name())?;
            if !info.published {
                continue;
            }
            let metadata = event.metadata();
            let row = OutboxMessage {
                id: metadata.id.to_string(),
                domain: commit.domain.name().to_owned(),
                stream: metadata.stream.clone(),
                version: metadata.version,
                position: metadata.global_position,
                type_name: metadata.type_name.clone(),
                data: payload.to_json()?,
                metadata: serde_json::to_value(metadata).map_err(|error| Error::Serialization {
                    what: format!("the metadata of event `{}`", metadata.id),
                    message: error.to_string(),
                })?,
                created_at: now,
                claimed_by: None,
                claimed_until: None,
                attempts: 0,
                last_error: None,
            };
            system::put(transaction, row).await?;
        }
        Ok(())
    }
}
