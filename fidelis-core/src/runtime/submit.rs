//! `domain.submit(command)`: validates a command and records it in the queue of submitted
//! commands (with its idempotency key, in one transaction) for the engine to process.

use chrono::Utc;
use serde_json::Value;

use crate::model::element::Handled;
use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;
use crate::runtime::domain::{Domain, Submitted};
use crate::runtime::options::{CommandMetadata, ProcessOptions, enrich_command};
use crate::store::system::{self, IdempotencyKey, QueuedCommand};

/// See [`Domain::submit_with`].
pub(crate) async fn submit<C: Handled>(
    domain: &Domain,
    command: C,
    options: ProcessOptions,
) -> Result<Submitted> {
    if let Err(errors) = command.validate() {
        return Err(Error::Validation {
            element: C::NAME.to_owned(),
            errors,
        });
    }
    // Refused here rather than dead-lettered later: a command this domain cannot run.
    domain.command_handler::<C>()?;
    let command_id = Identifier::generate();
    let mut metadata = CommandMetadata {
        id: command_id.clone(),
        type_name: domain.command_type_name::<C>()?.to_owned(),
        correlation_id: options.correlation_id.unwrap_or_else(|| command_id.clone()),
        causation_id: None,
        priority: options.priority.unwrap_or_default(),
        extensions: options.extensions,
        time: Utc::now(),
    };
    metadata.extensions = enrich_command(domain.command_enrichers(), &metadata);
    let data = serde_json::to_value(&command).map_err(|error| Error::Serialization {
        what: format!("command {}", C::NAME),
        message: error.to_string(),
    })?;
    let key = options
        .idempotency_key
        .map(|key| idempotency_row_id(domain.name(), &key));

    let storage = domain.storage();
    let mut transaction = storage.begin().await?;
    if let Some(key) = &key {
        if let Some(taken) = system::get_in::<IdempotencyKey>(transaction.as_mut(), key).await? {
            return Ok(duplicate(taken));
        }
        let row = IdempotencyKey {
            id: key.clone(),
            command_id: command_id.to_string(),
            type_name: metadata.type_name.clone(),
            created_at: metadata.time,
        };
        // Insert-only: a concurrent submission with the same key fails here or at commit.
        let inserted = system::insert(transaction.as_mut(), row).await;
        if let Some(first) = taken_meanwhile(domain, key, inserted).await? {
            return Ok(first);
        }
    }
    let queued = QueuedCommand {
        id: command_id.to_string(),
        domain: domain.name().to_owned(),
        type_name: metadata.type_name.clone(),
        data,
        correlation_id: metadata.correlation_id.to_string(),
        causation_id: None,
        priority: metadata.priority.as_str().to_owned(),
        extensions: Value::Object(metadata.extensions),
        idempotency_key: key.clone(),
        submitted_at: metadata.time,
        status: QueuedCommand::QUEUED.to_owned(),
    };
    system::put(transaction.as_mut(), queued).await?;
    // Wakes engines of other processes (PostgreSQL); this process's are woken below.
    transaction.notify_commit().await?;
    let committed = transaction.commit().await;
    match &key {
        Some(key) => {
            if let Some(first) = taken_meanwhile(domain, key, committed).await? {
                return Ok(first);
            }
        }
        None => committed?,
    }
    tracing::debug!(
        command = C::NAME,
        command_id = %command_id,
        priority = %metadata.priority,
        "command submitted"
    );
    crate::engine::wake_engines();
    Ok(Submitted {
        command_id,
        duplicate: false,
    })
}

/// Idempotency keys are a domain's own: two domains of a database may use the same key.
fn idempotency_row_id(domain: &str, key: &str) -> String {
    format!("{domain}/{key}")
}

fn duplicate(taken: IdempotencyKey) -> Submitted {
    Submitted {
        command_id: Identifier::new(taken.command_id),
        duplicate: true,
    }
}

/// When `outcome` is the version conflict of a key another submission took meanwhile, that
/// submission (committed by now: the conflict waited for it); any other error is returned.
async fn taken_meanwhile(
    domain: &Domain,
    key: &str,
    outcome: Result<()>,
) -> Result<Option<Submitted>> {
    match outcome {
        Ok(()) => Ok(None),
        Err(error) if error.is_version_conflict() => {
            match system::get::<IdempotencyKey>(domain.storage().as_ref(), key).await? {
                Some(taken) => Ok(Some(duplicate(taken))),
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}
