//! `dlq list|inspect|replay|replay-all|purge|purge-all`.

use fidelis_core::Domain;
use fidelis_core::store::system::DeadLetter;

use super::DlqCommand;
use crate::error::{CliError, Exit};
use crate::output::Output;

pub(super) async fn run(
    domain: &Domain,
    out: &Output,
    command: DlqCommand,
) -> Result<(), CliError> {
    let letters = domain.dead_letters();
    match command {
        DlqCommand::List { subscription } => {
            let list = match subscription {
                Some(name) => {
                    known_subscription(domain, &name).await?;
                    letters.list_of(&name).await?
                }
                None => letters.list().await?,
            };
            list_letters(out, &list)
        }
        DlqCommand::Inspect { id } => {
            let letter = letter(domain, &id).await?;
            if out.json() {
                return out.document(&letter);
            }
            out.table(
                &["field", "value"],
                [
                    ("id", letter.id.clone()),
                    ("subscription", letter.subscription.clone()),
                    ("stream", letter.stream.clone()),
                    ("version", letter.version.to_string()),
                    ("type", letter.type_name.clone()),
                    ("global position", letter.position.to_string()),
                    ("event id", letter.event_id.clone()),
                    ("attempts", letter.attempts.to_string()),
                    ("first failed at", super::time(&letter.first_failed_at)),
                    ("last failed at", super::time(&letter.last_failed_at)),
                    ("error", letter.error.clone()),
                ]
                .into_iter()
                .map(|(field, value)| vec![field.to_owned(), value]),
            );
            Ok(())
        }
        DlqCommand::Replay { id } => {
            letter(domain, &id).await?;
            letters.replay(&id).await?;
            done(out, "replayed", &id)
        }
        DlqCommand::Purge { id } => {
            letter(domain, &id).await?;
            letters.purge(&id).await?;
            done(out, "purged", &id)
        }
        DlqCommand::ReplayAll { subscription } => {
            known_subscription(domain, &subscription).await?;
            let summary = letters.replay_all(&subscription).await?;
            if out.json() {
                out.document(&serde_json::json!({
                    "subscription": subscription,
                    "replayed": summary.replayed,
                    "failed": summary.failed,
                }))?;
            } else {
                out.line(&format!(
                    "{subscription}: {} replayed, {} failed again",
                    summary.replayed, summary.failed
                ));
            }
            if summary.failed > 0 {
                return Err(CliError::new(
                    Exit::Failure,
                    format!(
                        "{} dead letters of {subscription} failed again (`dlq list --subscription {subscription}` shows their errors)",
                        summary.failed
                    ),
                ));
            }
            Ok(())
        }
        DlqCommand::PurgeAll { subscription } => {
            known_subscription(domain, &subscription).await?;
            let purged = letters.purge_all(&subscription).await?;
            if out.json() {
                return out.document(&serde_json::json!({
                    "subscription": subscription,
                    "purged": purged,
                }));
            }
            out.line(&format!("{subscription}: {purged} purged"));
            Ok(())
        }
    }
}

async fn letter(domain: &Domain, id: &str) -> Result<DeadLetter, CliError> {
    domain.dead_letters().get(id).await?.ok_or_else(|| {
        CliError::new(
            Exit::NotFound,
            format!("no dead letter `{id}` (`dlq list` shows their ids)"),
        )
    })
}

async fn known_subscription(domain: &Domain, name: &str) -> Result<(), CliError> {
    let names = super::subscriptions::names(domain).await?;
    if names.iter().any(|known| known == name) {
        Ok(())
    } else {
        Err(CliError::unknown("subscription", name, &names))
    }
}

fn done(out: &Output, what: &str, id: &str) -> Result<(), CliError> {
    if out.json() {
        return out.document(&serde_json::json!({ "id": id, "outcome": what }));
    }
    out.line(&format!("{id}: {what}"));
    Ok(())
}

fn list_letters(out: &Output, letters: &[DeadLetter]) -> Result<(), CliError> {
    if out.json() {
        return out.document(&letters);
    }
    if letters.is_empty() {
        out.line("No dead letters.");
        return Ok(());
    }
    out.table(
        &[
            "id",
            "subscription",
            "stream",
            "version",
            "type",
            "attempts",
            "last failed at",
            "error",
        ],
        letters.iter().map(|l| {
            vec![
                l.id.clone(),
                l.subscription.clone(),
                l.stream.clone(),
                l.version.to_string(),
                l.type_name.clone(),
                l.attempts.to_string(),
                super::time(&l.last_failed_at),
                super::cut(&l.error, 60),
            ]
        }),
    );
    Ok(())
}
