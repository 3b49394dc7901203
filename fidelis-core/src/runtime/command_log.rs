//! The command log's entries as units of work write them.
//!
//! A [`CommandLogEntry`] built per command cost more than the rest of an in-memory deposit:
//! the command encoded to a JSON tree, the tree copied into the entry, a dozen strings, and
//! (on SQL) the entry encoded again, tree and all. The entry a commit writes is instead a
//! [`LoggedCommand`]: the typed command and the metadata the unit of work already holds,
//! shared, plus the ids of its events. It serializes field for field as a
//! [`CommandLogEntry`] does, so the SQL adapters store the same row (the command encoded
//! once, straight into it), and the memory adapter keeps it typed until a reader asks: a
//! read through [`system::get`](crate::store::system::get) or
//! [`system::query`](crate::store::system::query) returns a `CommandLogEntry` as before.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeStruct, Serializer};

use crate::model::error::{Error, Result};
use crate::model::identifier::Identifier;
use crate::runtime::options::CommandMetadata;
use crate::store::TypedRow;
#[cfg(doc)]
use crate::store::system::CommandLogEntry;

/// A command kept for the log: typed, encoded only when its entry is.
pub(crate) trait LoggedData: Send + Sync + 'static {
    /// The log entry of the command processed as `metadata`, in `domain`, that recorded
    /// `events`, committed at `processed_at`.
    fn entry(
        self: Arc<Self>,
        metadata: Arc<CommandMetadata>,
        domain: Arc<str>,
        events: Vec<Identifier>,
        processed_at: DateTime<Utc>,
    ) -> Arc<dyn TypedRow>;
}

impl<C: Serialize + Send + Sync + 'static> LoggedData for C {
    fn entry(
        self: Arc<Self>,
        metadata: Arc<CommandMetadata>,
        domain: Arc<str>,
        events: Vec<Identifier>,
        processed_at: DateTime<Utc>,
    ) -> Arc<dyn TypedRow> {
        Arc::new(LoggedCommand {
            metadata,
            command: self,
            domain,
            events,
            processed_at,
        })
    }
}

/// Checks that `command` encodes to JSON, without keeping the encoding: a command the log
/// could not store is refused before its handler runs, as when the log encoded it up front.
pub(crate) fn check_encodes<C: Serialize>(name: &str, command: &C) -> Result<()> {
    serde_json::to_writer(std::io::sink(), command).map_err(|error| Error::Serialization {
        what: format!("command {name}"),
        message: error.to_string(),
    })
}

/// A command log entry as a commit writes it (see the module documentation).
pub(crate) struct LoggedCommand<C> {
    metadata: Arc<CommandMetadata>,
    command: Arc<C>,
    domain: Arc<str>,
    events: Vec<Identifier>,
    processed_at: DateTime<Utc>,
}

/// The fields of [`CommandLogEntry`], in its order, as its derived `Serialize` writes them.
impl<C: Serialize> Serialize for LoggedCommand<C> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let metadata = &*self.metadata;
        let mut entry = serializer.serialize_struct("CommandLogEntry", 11)?;
        entry.serialize_field("id", metadata.id.as_str())?;
        entry.serialize_field("domain", &*self.domain)?;
        entry.serialize_field("type_name", &metadata.type_name)?;
        entry.serialize_field("data", &*self.command)?;
        entry.serialize_field("correlation_id", metadata.correlation_id.as_str())?;
        entry.serialize_field(
            "causation_id",
            &metadata.causation_id.as_ref().map(Identifier::as_str),
        )?;
        entry.serialize_field("priority", metadata.priority.as_str())?;
        entry.serialize_field("extensions", &metadata.extensions)?;
        entry.serialize_field("events", &self.events)?;
        entry.serialize_field("received_at", &metadata.time)?;
        entry.serialize_field("processed_at", &self.processed_at)?;
        entry.end()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::model::event::Priority;
    use crate::store::memory::MemoryStorage;
    use crate::store::system::{self, CommandLogEntry, SystemRow};
    use crate::store::{Storage, TableSchema};

    #[derive(Clone, serde::Serialize)]
    struct Deposit {
        account_id: String,
        amount: i64,
        reference: Option<String>,
    }

    fn metadata(causation_id: Option<&str>) -> CommandMetadata {
        CommandMetadata {
            id: Identifier::new("cmd-1"),
            type_name: "Bank.Deposit".to_owned(),
            correlation_id: Identifier::new("req-1"),
            causation_id: causation_id.map(Identifier::new),
            priority: Priority::Bulk,
            extensions: match json!({"tenant": "acme", "n": 2}) {
                serde_json::Value::Object(map) => map,
                _ => unreachable!("an object"),
            },
            time: DateTime::from_timestamp(1_700_000_000, 5_000).unwrap(),
        }
    }

    fn deposit() -> Deposit {
        Deposit {
            account_id: "a-1".to_owned(),
            amount: 10,
            reference: None,
        }
    }

    /// The entry the log wrote before it kept commands typed, from the same values.
    fn entry_of(
        metadata: &CommandMetadata,
        events: &[Identifier],
        at: DateTime<Utc>,
    ) -> CommandLogEntry {
        CommandLogEntry {
            id: metadata.id.to_string(),
            domain: "bank".to_owned(),
            type_name: metadata.type_name.clone(),
            data: serde_json::to_value(deposit()).unwrap(),
            correlation_id: metadata.correlation_id.to_string(),
            causation_id: metadata.causation_id.as_ref().map(ToString::to_string),
            priority: metadata.priority.as_str().to_owned(),
            extensions: serde_json::Value::Object(metadata.extensions.clone()),
            events: events.iter().map(ToString::to_string).collect(),
            received_at: metadata.time,
            processed_at: at,
        }
    }

    fn logged(
        metadata: CommandMetadata,
        events: Vec<Identifier>,
        at: DateTime<Utc>,
    ) -> Arc<dyn TypedRow> {
        Arc::new(deposit()).entry(Arc::new(metadata), Arc::from("bank"), events, at)
    }

    #[test]
    fn an_entry_encodes_as_a_command_log_entry_does() {
        let at = DateTime::from_timestamp(1_700_000_001, 0).unwrap();
        for causation in [None, Some("evt-0")] {
            for events in [
                vec![],
                vec![Identifier::new("evt-1"), Identifier::new("evt-2")],
            ] {
                let metadata = metadata(causation);
                let want = entry_of(&metadata, &events, at);
                let row = logged(metadata, events, at);
                let json = row.to_json().unwrap();
                assert_eq!(
                    serde_json::Value::Object(json.clone()),
                    serde_json::to_value(&want).unwrap()
                );
                // Every column of the table, no other key.
                let fields: Vec<&str> = CommandLogEntry::TABLE
                    .fields
                    .iter()
                    .map(|f| f.name)
                    .collect();
                assert_eq!(
                    json.keys().map(String::as_str).collect::<Vec<_>>().len(),
                    fields.len()
                );
                for field in fields {
                    assert!(json.contains_key(field), "{field}");
                }
            }
        }
    }

    #[tokio::test]
    async fn an_entry_kept_typed_reads_back_as_a_command_log_entry() {
        let storage = MemoryStorage::new();
        let tables: [TableSchema; 1] = [CommandLogEntry::TABLE];
        storage.setup(&tables).await.unwrap();
        let at = DateTime::from_timestamp(1_700_000_001, 0).unwrap();
        let events = vec![Identifier::new("evt-1")];
        let want = entry_of(&metadata(None), &events, at);
        let mut transaction = storage.begin().await.unwrap();
        transaction
            .put_row(
                CommandLogEntry::TABLE.name,
                "cmd-1".to_owned(),
                logged(metadata(None), events, at),
            )
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        let read = system::get::<CommandLogEntry>(&storage, "cmd-1")
            .await
            .unwrap();
        assert_eq!(read, Some(want.clone()));
        let query = crate::model::query::QuerySpec {
            filters: vec![system::field_eq("correlation_id", "req-1".to_owned())],
            ..Default::default()
        };
        let found = system::query::<CommandLogEntry>(&storage, &query)
            .await
            .unwrap();
        assert_eq!(found, vec![want]);
    }

    #[test]
    fn a_command_that_does_not_encode_is_refused_with_its_name() {
        assert!(check_encodes("Deposit", &deposit()).is_ok());
        let mut keyed = BTreeMap::new();
        keyed.insert((1, 2), "a tuple key");
        let error = check_encodes("Keyed", &keyed).unwrap_err();
        assert_eq!(
            error.to_string(),
            Error::Serialization {
                what: "command Keyed".to_owned(),
                message: serde_json::to_value(&keyed).unwrap_err().to_string(),
            }
            .to_string()
        );
    }
}
