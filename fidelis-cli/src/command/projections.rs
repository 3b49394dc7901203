//! `projections status|rebuild`.

use std::time::Duration;

use fidelis_core::{Domain, ProjectorStatus, RebuildProgress};
use indicatif::{ProgressBar, ProgressStyle};

use super::ProjectionsCommand;
use crate::error::CliError;
use crate::output::Output;

pub(super) async fn run(
    domain: &Domain,
    out: &Output,
    command: ProjectionsCommand,
) -> Result<(), CliError> {
    match command {
        ProjectionsCommand::Status => status(domain, out).await,
        ProjectionsCommand::Rebuild { projection } => rebuild(domain, out, &projection).await,
    }
}

async fn status(domain: &Domain, out: &Output) -> Result<(), CliError> {
    let statuses = domain.projection_status().await?;
    if out.json() {
        let projector = |p: &ProjectorStatus| {
            serde_json::json!({
                "projector": p.projector,
                "version": p.version,
                "position": p.position.position,
                "lag": p.lag,
                "caught_up": p.caught_up,
            })
        };
        let statuses: Vec<_> = statuses
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "version": s.version,
                    "table": s.table,
                    "rows": s.rows,
                    "projectors": s.projectors.iter().map(projector).collect::<Vec<_>>(),
                    "other_versions": s.other_versions.iter().map(projector).collect::<Vec<_>>(),
                })
            })
            .collect();
        return out.document(&serde_json::json!({
            "processing": format!("{:?}", domain.processing()).to_lowercase(),
            "projections": statuses,
        }));
    }
    let mut rows = Vec::new();
    for status in &statuses {
        for projector in &status.projectors {
            rows.push(vec![
                status.name.clone(),
                format!("v{}", projector.version),
                status.table.clone(),
                status.rows.to_string(),
                projector.projector.clone(),
                projector.position.position.to_string(),
                projector.lag.to_string(),
                // A synchronous domain's projectors write in each commit: no checkpoint,
                // unless an engine or a rebuild left one.
                if domain.processing() == fidelis_core::Processing::Sync
                    && projector.position == fidelis_core::Cursor::START
                {
                    "in each commit (sync)".to_owned()
                } else {
                    state(projector, true).to_owned()
                },
            ]);
        }
        for other in &status.other_versions {
            rows.push(vec![
                status.name.clone(),
                format!("v{}", other.version),
                "-".to_owned(),
                "-".to_owned(),
                other.projector.clone(),
                other.position.position.to_string(),
                other.lag.to_string(),
                state(other, other.version > status.version).to_owned(),
            ]);
        }
    }
    out.table(
        &[
            "projection",
            "version",
            "table",
            "rows",
            "projector",
            "position",
            "lag",
            "state",
        ],
        rows,
    );
    Ok(())
}

/// A failed rebuild says that nothing changed.
fn failed(name: &str, error: fidelis_core::Error) -> CliError {
    let mut error = CliError::from(error);
    error.message = format!(
        "rebuild of {name} failed, the live rows and checkpoints are unchanged: {}",
        error.message
    );
    error
}

fn state(projector: &ProjectorStatus, current: bool) -> &'static str {
    match (current, projector.caught_up) {
        (true, true) => "caught up",
        (true, false) => "catching up",
        (false, _) => "previous version",
    }
}

async fn rebuild(domain: &Domain, out: &Output, name: &str) -> Result<(), CliError> {
    let known = domain.projection_names();
    if !known.contains(&name) {
        return Err(CliError::unknown("projection", name, &known));
    }
    let report = if out.interactive() {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {msg} [{bar:40}] position {pos}/{len} ({per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(format!("rebuilding {name}"));
        bar.enable_steady_tick(Duration::from_millis(120));
        let report = domain
            .rebuild_projection_named_with(name, |progress: &RebuildProgress| {
                bar.set_length(progress.head.max(progress.position).max(0) as u64);
                bar.set_position(progress.position.max(0) as u64);
            })
            .await;
        bar.finish_and_clear();
        report.map_err(|error| failed(name, error))?
    } else {
        // Without a terminal: a plain line at each tenth of the way.
        let mut next_tenth = 1;
        domain
            .rebuild_projection_named_with(name, |progress: &RebuildProgress| {
                if progress.head <= 0 {
                    return;
                }
                let tenths = progress.position.saturating_mul(10) / progress.head;
                if tenths >= next_tenth {
                    next_tenth = tenths + 1;
                    out.progress(&format!(
                        "rebuilding {name}: {} events read, position {} of {}",
                        progress.events_read, progress.position, progress.head
                    ));
                }
            })
            .await
            .map_err(|error| failed(name, error))?
    };
    if out.json() {
        return out.document(&serde_json::json!({
            "projection": report.projection,
            "table": report.table,
            "events_read": report.events_read,
            "events_applied": report.events_applied,
            "skipped": report.skipped,
            "rows": report.rows,
            "position": report.position.position,
            "elapsed_seconds": report.elapsed.as_secs_f64(),
        }));
    }
    let seconds = report.elapsed.as_secs_f64();
    out.line(&format!(
        "Rebuilt {} ({}): {} events read, {} applied, {} skipped, {} rows, checkpoint at position {}, in {:.2}s ({:.0} events/s)",
        report.projection,
        report.table,
        report.events_read,
        report.events_applied,
        report.skipped,
        report.rows,
        report.position.position,
        seconds,
        report.events_read as f64 / seconds.max(f64::EPSILON),
    ));
    Ok(())
}
