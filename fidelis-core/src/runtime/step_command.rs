//! The commands a process manager's steps issue, recorded so that a step run again does not
//! issue them a second time.
//!
//! A step runs again when its event is delivered again before the step stored its state: the
//! engine redelivers after a crash or a lost lease, and retries a step that failed after
//! some of its commands committed. Each `ctx.process(..)` of a step gets an id derived from
//! the domain, the process manager, the instance, the event and the command's place in the
//! step (a UUID v5), and the command's unit of work writes a [`StepCommand`] row under that
//! id in its own transaction, with the handler's output. A later run of the step derives the
//! same ids: a command whose row exists committed already, and `ctx.process` returns the
//! recorded output instead of processing it again. The row is inserted only where none
//! exists, so two runs at once (two engines while a lease changes hands) cannot both commit
//! the command: the second one's unit of work fails, and it returns the first one's output.

use std::sync::atomic::{AtomicU32, Ordering};

use chrono::Utc;

use crate::model::element::{Handled, OutputCodec};
use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;
use crate::store::system::{self, StepCommand};
use crate::store::{Storage, Transaction};

/// The namespace of the derived command ids (a fixed, random UUID).
const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6f1c_2a4e_93d7_4b0a_8e55_c0d1_7a2f_9b34);

/// The step a process manager is running, as its `EventHandlerContext` knows it.
pub(crate) struct StepScope {
    process: &'static str,
    key: Identifier,
    event_id: Identifier,
    /// How many commands the step has issued so far.
    issued: AtomicU32,
}

impl StepScope {
    pub(crate) fn new(process: &'static str, key: Identifier, event_id: Identifier) -> Self {
        Self {
            process,
            key,
            event_id,
            issued: AtomicU32::new(0),
        }
    }

    /// The record the step's next command writes when it commits (its output still unset):
    /// the same for the same command in every run of the step.
    pub(crate) fn next<C: Handled>(&self, domain: &str) -> StepCommand {
        let place = self.issued.fetch_add(1, Ordering::Relaxed);
        StepCommand {
            id: self.place_id(domain, place),
            process: self.process.to_owned(),
            key: self.key.to_string(),
            event_id: self.event_id.to_string(),
            type_name: C::NAME.to_owned(),
            output: None,
            created_at: Utc::now(),
        }
    }
}

impl StepScope {
    /// The id of the step's command at `place` (0: its first).
    fn place_id(&self, domain: &str, place: u32) -> String {
        let name = format!(
            "{domain}/{}/{}/{}/{place}",
            self.process, self.key, self.event_id
        );
        let mut buffer = uuid::Uuid::encode_buffer();
        uuid::Uuid::new_v5(&NAMESPACE, name.as_bytes())
            .hyphenated()
            .encode_lower(&mut buffer)
            .to_owned()
    }
}

/// The step command's record with the handler's output, to write with the command's events.
pub(crate) fn with_output<C: Handled>(
    mut record: StepCommand,
    output: &C::Output,
) -> Result<StepCommand> {
    record.output = match C::output_codec() {
        Some(codec) => Some(
            (codec.encode)(output).map_err(|error| Error::Serialization {
                what: format!("the output of `{}` issued by {}", C::NAME, record.process),
                message: error.to_string(),
            })?,
        ),
        None => None,
    };
    record.created_at = Utc::now();
    Ok(record)
}

/// The output of a step command that committed in an earlier run, if it did.
pub(crate) async fn recorded<C: Handled>(
    storage: &dyn Storage,
    id: &str,
) -> Result<Option<C::Output>> {
    let Some(row) = system::get::<StepCommand>(storage, id).await? else {
        return Ok(None);
    };
    output_of(&row, C::output_codec()).map(Some)
}

fn output_of<O>(row: &StepCommand, codec: Option<OutputCodec<O>>) -> Result<O> {
    let what = || {
        format!(
            "the output of `{}` (command {}) issued by {} for event {}",
            row.type_name, row.id, row.process, row.event_id
        )
    };
    match (codec, &row.output) {
        (Some(codec), Some(value)) => {
            (codec.decode)(value.clone()).map_err(|error| Error::Serialization {
                what: what(),
                message: error.to_string(),
            })
        }
        _ => Err(Error::usage(format!(
            "{} is not recorded, but the command committed in an earlier run of the step, so \
             it cannot be processed again: a command a process manager issues must return a \
             type that implements `Serialize` and `Deserialize` (as `()` and `Identifier` do)",
            what()
        ))),
    }
}

/// Writes the record in the command's transaction, where none exists yet: a second run of
/// the step that got this far rolls its unit of work back.
pub(crate) async fn record(transaction: &mut dyn Transaction, row: StepCommand) -> Result<()> {
    let id = row.id.clone();
    system::insert(transaction, row).await.map_err(|error| {
        if error.is_version_conflict() {
            // Not retried as a conflict: processing the command again cannot succeed.
            Error::usage(format!(
                "step command {id} was committed meanwhile by another run of the step"
            ))
        } else {
            error
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn row(output: Option<Value>) -> StepCommand {
        StepCommand {
            id: "c1".into(),
            process: "FundsTransfer".into(),
            key: "t1".into(),
            event_id: "e1".into(),
            type_name: "MakeDeposit".into(),
            output,
            created_at: Utc::now(),
        }
    }

    fn codec() -> Option<OutputCodec<u32>> {
        Some(OutputCodec {
            encode: |output: &u32| serde_json::to_value(output),
            decode: serde_json::from_value::<u32>,
        })
    }

    #[test]
    fn a_recorded_output_decodes() {
        assert_eq!(output_of(&row(Some(Value::from(7))), codec()).unwrap(), 7);
    }

    #[test]
    fn an_output_without_serde_is_a_clear_error() {
        let error = output_of::<u32>(&row(None), None).unwrap_err().to_string();
        assert!(
            error.contains("`MakeDeposit` (command c1) issued by FundsTransfer for event e1"),
            "{error}"
        );
        assert!(
            error.contains("must return a type that implements `Serialize`"),
            "{error}"
        );
    }

    #[test]
    fn an_undecodable_output_names_the_command() {
        let error = output_of(&row(Some(Value::from("seven"))), codec()).unwrap_err();
        assert!(matches!(error, Error::Serialization { .. }), "{error}");
        assert!(
            error.to_string().contains("`MakeDeposit` (command c1)"),
            "{error}"
        );
    }

    #[test]
    fn ids_are_derived_from_the_step_and_the_place_of_the_command() {
        let step = || StepScope::new("FollowUp", Identifier::from("t1"), Identifier::from("e1"));
        let (first, again) = (step(), step());
        let a = [first.place_id("d", 0), first.place_id("d", 1)];
        let b = [again.place_id("d", 0), again.place_id("d", 1)];
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
        assert_ne!(a[0], step().place_id("other", 0));
    }
}
