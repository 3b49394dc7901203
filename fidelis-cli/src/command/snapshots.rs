//! `snapshots create`.

use fidelis_core::Domain;

use super::SnapshotsCommand;
use crate::error::CliError;
use crate::output::Output;

pub(super) async fn run(
    domain: &Domain,
    out: &Output,
    command: SnapshotsCommand,
) -> Result<(), CliError> {
    match command {
        SnapshotsCommand::Create {
            aggregate,
            id: Some(id),
        } => create(domain, out, &aggregate, &id).await,
        SnapshotsCommand::Create {
            aggregate,
            id: None,
        } => create_all(domain, out, &aggregate).await,
    }
}

/// One aggregate's snapshot: an unknown or state-stored aggregate is a usage error (exit 2),
/// an id without events is not found (exit 4).
async fn create(domain: &Domain, out: &Output, aggregate: &str, id: &str) -> Result<(), CliError> {
    let version = domain.create_snapshot_named(aggregate, id).await?;
    if out.json() {
        return out.document(&serde_json::json!({
            "aggregate": aggregate,
            "id": id,
            "version": version,
        }));
    }
    out.line(&format!(
        "Snapshot of {aggregate} `{id}` taken at version {version}"
    ));
    Ok(())
}

/// A snapshot of every aggregate of the type.
async fn create_all(domain: &Domain, out: &Output, aggregate: &str) -> Result<(), CliError> {
    let written = domain.create_snapshots_named(aggregate).await?;
    if out.json() {
        return out.document(&serde_json::json!({
            "aggregate": aggregate,
            "snapshots": written,
        }));
    }
    let noun = if written == 1 {
        "snapshot"
    } else {
        "snapshots"
    };
    out.line(&format!("{written} {noun} of {aggregate} written"));
    Ok(())
}
