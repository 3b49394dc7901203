//! `setup-db`.

use fidelis_core::Domain;
use fidelis_core::store::system;

use crate::error::CliError;
use crate::output::Output;

pub(super) async fn run(domain: &Domain, out: &Output) -> Result<(), CliError> {
    domain.setup_database().await.map_err(CliError::building)?;
    let registry = domain.registry();
    let mut tables: Vec<(String, &str)> = vec![("fidelis_events".to_owned(), "events")];
    tables.extend(
        registry
            .projections()
            .into_iter()
            .map(|p| (p.table.clone(), "projection")),
    );
    tables.extend(
        registry
            .aggregates()
            .into_iter()
            .filter(|a| !a.event_sourced)
            .map(|a| (a.table.clone(), "aggregate")),
    );
    tables.extend(
        system::schemas()
            .iter()
            .map(|schema| (schema.name.to_owned(), "system")),
    );
    if out.json() {
        let tables: Vec<_> = tables
            .iter()
            .map(|(name, kind)| serde_json::json!({ "table": name, "kind": kind }))
            .collect();
        return out.document(&serde_json::json!({
            "domain": domain.name(),
            "storage": domain.storage_unchecked().kind(),
            "tables": tables,
        }));
    }
    out.line(&format!(
        "Database of domain `{}` ready ({}):",
        domain.name(),
        domain.storage_unchecked().kind()
    ));
    out.table(
        &["table", "kind"],
        tables
            .into_iter()
            .map(|(name, kind)| vec![name, kind.to_owned()]),
    );
    Ok(())
}
