//! The engine's command dispatcher: processes the commands `domain.submit` queued, the
//! normal lane before the bulk one, retrying failures and dead-lettering what keeps failing
//! (subscription [`COMMANDS_SUBSCRIPTION`]).
//!
//! A queued command is taken off the queue in the transaction that commits its work (and
//! writes its command log entry), after a version check of its queue row: if two engines
//! dispatch it at once, one commits and the other's unit of work fails and is dropped, so it
//! is processed once. A crash before the commit leaves it queued, to be processed again
//! (at least once, like an event handler's event).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::model::error::{Error, Result};
use crate::model::event::Priority;
use crate::model::identifier::Identifier;
use crate::model::query::QuerySpec;
use crate::runtime::domain::{Domain, QueuedRequest, Request};
use crate::store::system::{self, DeadLetter, QueuedCommand, SystemRow};
use crate::store::{JsonRow, Row};

use super::HandlerRetry;

/// The name under which failed submitted commands are dead-lettered:
/// `domain.dead_letters().list_of(COMMANDS_SUBSCRIPTION)` lists them, and `replay` / `purge`
/// work on them as on events' letters.
pub const COMMANDS_SUBSCRIPTION: &str = "fidelis.commands";

/// How many commands of the normal lane are read at a time. The bulk lane is read one
/// command at a time, so a normal command submitted meanwhile waits for one bulk command at
/// most.
const NORMAL_BATCH: usize = 100;

/// The dispatcher's state in this process: one dispatch at a time, and the last error.
#[derive(Default)]
pub(crate) struct CommandQueue {
    turn: tokio::sync::Mutex<()>,
    last_error: std::sync::Mutex<Option<String>>,
}

/// A queued command with the version its row was read at.
struct Taken {
    command: QueuedCommand,
    version: i64,
}

/// How a command's dispatch ended.
enum Outcome {
    /// Processed (or processed elsewhere meanwhile).
    Done,
    /// Failed every attempt, or once with an error not worth retrying.
    Failed {
        error: Error,
        attempts: i64,
        first: DateTime<Utc>,
        last: DateTime<Utc>,
    },
}

impl CommandQueue {
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, error: String) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    /// Processes the next commands: a batch of the normal lane, or, when none is waiting,
    /// one of the bulk lane. Returns how many it took (0: the queue is empty). Command
    /// failures are retried and dead-lettered here; an error is a store that cannot be read
    /// or written.
    pub(crate) async fn step(&self, domain: &Domain) -> Result<usize> {
        let _turn = self.turn.lock().await;
        let mut batch = waiting(domain, Priority::Normal, NORMAL_BATCH).await?;
        if batch.is_empty() {
            batch = waiting(domain, Priority::Bulk, 1).await?;
        }
        let taken = batch.len();
        for queued in batch {
            let id = queued.command.id.clone();
            match self.dispatch(domain, &queued).await? {
                Outcome::Done => {}
                Outcome::Failed {
                    error,
                    attempts,
                    first,
                    last,
                } => {
                    self.set_last_error(error.to_string());
                    tracing::error!(
                        command = %queued.command.type_name,
                        command_id = %id,
                        attempts,
                        %error,
                        "submitted command dead-lettered"
                    );
                    dead_letter(domain, queued, &error, attempts, first, last).await?;
                }
            }
        }
        Ok(taken)
    }

    /// Processes one queued command, retrying as the domain's [`HandlerRetry`] says.
    async fn dispatch(&self, domain: &Domain, queued: &Taken) -> Result<Outcome> {
        let retry = domain.handler_retry();
        let mut first = None;
        let mut attempt = 1_u32;
        loop {
            let error = match process(domain, queued).await {
                Ok(()) => return Ok(Outcome::Done),
                Err(error) => error,
            };
            if !still_queued(domain, &queued.command.id).await? {
                // Another engine processed (or a purge removed) it meanwhile.
                return Ok(Outcome::Done);
            }
            let now = Utc::now();
            let first = *first.get_or_insert(now);
            if !worth_retrying(&error) || attempt >= retry.attempts() {
                return Ok(Outcome::Failed {
                    error,
                    attempts: i64::from(attempt),
                    first,
                    last: now,
                });
            }
            let delay = retry.delay(attempt);
            tracing::warn!(
                command = %queued.command.type_name,
                command_id = %queued.command.id,
                attempt,
                ?delay,
                %error,
                "submitted command failed; retrying"
            );
            self.set_last_error(error.to_string());
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// Runs a dead-lettered command again (unless `purge`): on success its letter and queue
    /// row go; on failure the letter is updated and the error returned. A purge drops both.
    pub(crate) async fn replay(
        &self,
        domain: &Domain,
        letter: DeadLetter,
        purge: bool,
    ) -> Result<()> {
        let _turn = self.turn.lock().await;
        let storage = domain.storage();
        let row = storage
            .get_row(QueuedCommand::TABLE.name, &letter.event_id)
            .await?;
        let Some(taken) = row.map(taken).transpose()? else {
            // Nothing left to run: the letter alone goes.
            let mut transaction = storage.begin().await?;
            system::remove::<DeadLetter>(transaction.as_mut(), &letter.id).await?;
            return transaction.commit().await;
        };
        if !purge && let Err(error) = process(domain, &taken).await {
            self.set_last_error(error.to_string());
            let mut transaction = storage.begin().await?;
            let updated = DeadLetter {
                error: error.to_string(),
                attempts: letter.attempts + 1,
                last_failed_at: Utc::now(),
                ..letter
            };
            system::put(transaction.as_mut(), updated).await?;
            transaction.commit().await?;
            return Err(error);
        }
        let mut transaction = storage.begin().await?;
        system::remove::<DeadLetter>(transaction.as_mut(), &letter.id).await?;
        if purge {
            system::remove::<QueuedCommand>(transaction.as_mut(), &taken.command.id).await?;
        }
        transaction.commit().await?;
        tracing::info!(letter = %letter.id, purge, "dead-lettered command resolved");
        Ok(())
    }
}

/// The queue of submitted commands ([`Engine::command_status`](super::Engine::command_status)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandQueueStatus {
    /// Commands of the normal lane waiting.
    pub normal: u64,
    /// Commands of the bulk lane waiting.
    pub bulk: u64,
    /// Commands dead-lettered (waiting for a replay or a purge).
    pub dead_letters: u64,
    /// The last error this process's dispatcher saw.
    pub last_error: Option<String>,
}

pub(crate) async fn status(domain: &Domain, queue: &CommandQueue) -> Result<CommandQueueStatus> {
    let count = |status: &'static str, priority: Option<Priority>| {
        let mut query = lane_query(domain, priority.unwrap_or_default(), None);
        query.filters[1] = system::field_eq("status", status.to_owned());
        if priority.is_none() {
            query.filters.truncate(2);
        }
        async move {
            domain
                .storage()
                .count(QueuedCommand::TABLE.name, &query)
                .await
        }
    };
    Ok(CommandQueueStatus {
        normal: count(QueuedCommand::QUEUED, Some(Priority::Normal)).await?,
        bulk: count(QueuedCommand::QUEUED, Some(Priority::Bulk)).await?,
        dead_letters: count(QueuedCommand::DEAD, None).await?,
        last_error: queue.last_error(),
    })
}

/// Errors that another attempt cannot fix: the command or the domain said no.
fn worth_retrying(error: &Error) -> bool {
    !matches!(
        error,
        Error::Validation { .. }
            | Error::Invariant { .. }
            | Error::NotFound { .. }
            | Error::Domain { .. }
            | Error::Usage { .. }
            | Error::Configuration { .. }
            | Error::Serialization { .. }
    )
}

fn lane_query(domain: &Domain, priority: Priority, limit: Option<usize>) -> QuerySpec {
    QuerySpec {
        filters: vec![
            system::field_eq("domain", domain.name().to_owned()),
            system::field_eq("status", QueuedCommand::QUEUED.to_owned()),
            system::field_eq("priority", priority.as_str().to_owned()),
        ],
        // Command ids are UUIDv7: their order is the order of submission.
        order: vec![system::order_by("id", false)],
        limit,
        offset: 0,
    }
}

/// The oldest queued commands of a lane.
async fn waiting(domain: &Domain, priority: Priority, limit: usize) -> Result<Vec<Taken>> {
    domain
        .storage()
        .query(
            QueuedCommand::TABLE.name,
            &lane_query(domain, priority, Some(limit)),
        )
        .await?
        .into_iter()
        .map(|row| taken(Row::Json(row)))
        .collect()
}

fn taken(row: Row) -> Result<Taken> {
    let (version, command) = match row {
        Row::Json(JsonRow { version, data, .. }) => {
            let command = serde_json::from_value(serde_json::Value::Object(data)).map_err(|e| {
                Error::Serialization {
                    what: format!("a row of system table {}", QueuedCommand::TABLE.name),
                    message: e.to_string(),
                }
            })?;
            (version, command)
        }
        Row::Typed(typed) => {
            let command = typed
                .as_any()
                .downcast_ref::<QueuedCommand>()
                .cloned()
                .ok_or_else(|| Error::Serialization {
                    what: format!("a row of system table {}", QueuedCommand::TABLE.name),
                    message: "a row of another type is stored under this table".to_owned(),
                })?;
            (0, command)
        }
    };
    Ok(Taken { command, version })
}

async fn still_queued(domain: &Domain, id: &str) -> Result<bool> {
    Ok(system::get::<QueuedCommand>(domain.storage().as_ref(), id)
        .await?
        .is_some())
}

/// Decodes a queued command through its type's entry in the registry and processes it.
async fn process(domain: &Domain, queued: &Taken) -> Result<()> {
    let command = &queued.command;
    let Some(dispatch) = domain
        .registry()
        .command_types
        .get(&command.type_name)
        .copied()
    else {
        return Err(Error::usage(format!(
            "submitted command type `{}` is not a command of domain `{}`",
            command.type_name,
            domain.name()
        )));
    };
    let priority = Priority::parse(&command.priority).ok_or_else(|| Error::Serialization {
        what: format!("submitted command `{}`", command.id),
        message: format!("unknown priority {:?}", command.priority),
    })?;
    let extensions = match &command.extensions {
        serde_json::Value::Object(map) => map.clone(),
        serde_json::Value::Null => Default::default(),
        other => {
            return Err(Error::Serialization {
                what: format!("submitted command `{}`", command.id),
                message: format!("extensions are not an object: {other}"),
            });
        }
    };
    let request = Request {
        command_id: Some(Identifier::new(command.id.clone())),
        correlation_id: Some(Identifier::new(command.correlation_id.clone())),
        causation_id: command.causation_id.clone().map(Identifier::new),
        priority,
        extensions,
        received_at: Some(command.submitted_at),
        enriched: true,
        queued: Some(queued.version),
        step_command: None,
    };
    let span = tracing::info_span!(
        "submitted_command",
        command = %command.type_name,
        command_id = %command.id,
        priority = %priority,
    );
    tracing::Instrument::instrument(
        dispatch(
            domain,
            QueuedRequest {
                data: command.data.clone(),
                request,
            },
        ),
        span,
    )
    .await
}

/// Records a dead letter for a command and marks its queue row dead, in one transaction.
async fn dead_letter(
    domain: &Domain,
    queued: Taken,
    error: &Error,
    attempts: i64,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
) -> Result<()> {
    let command = queued.command;
    let letter = DeadLetter {
        id: format!("{COMMANDS_SUBSCRIPTION}/{}", command.id),
        subscription: COMMANDS_SUBSCRIPTION.to_owned(),
        partition: 0,
        event_id: command.id.clone(),
        stream: format!("{}::command-{}", domain.name(), command.id),
        version: 0,
        type_name: command.type_name.clone(),
        commit: 0,
        position: 0,
        error: error.to_string(),
        attempts,
        first_failed_at: first,
        last_failed_at: last,
    };
    let mut transaction = domain.storage().begin().await?;
    system::put(transaction.as_mut(), letter).await?;
    system::put(
        transaction.as_mut(),
        QueuedCommand {
            status: QueuedCommand::DEAD.to_owned(),
            ..command
        },
    )
    .await?;
    transaction.commit().await
}

/// The dispatcher's loop in [`Engine::run`](super::Engine::run): steps while commands are
/// queued, then waits for a wake-up (a submission of this process, a `NOTIFY`) or polls.
pub(crate) async fn run(
    domain: Domain,
    queue: Arc<CommandQueue>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut wake = super::commits().subscribe();
    let mut idle = super::POLL_MIN;
    let mut failures = 0_u32;
    while !*stopped.borrow() {
        match queue.step(&domain).await {
            Ok(0) => {
                failures = 0;
                tokio::select! {
                    _ = wake.changed() => idle = super::POLL_MIN,
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(idle) => idle = (idle * 2).min(super::POLL_MAX),
                }
            }
            Ok(_) => {
                failures = 0;
                idle = super::POLL_MIN;
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = HandlerRetry::default()
                    .with_max_delay(Duration::from_secs(30))
                    .delay(failures);
                tracing::error!(%error, ?delay, "command dispatcher failed to read or write the store; retrying");
                queue.set_last_error(error.to_string());
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
