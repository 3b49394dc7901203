//! `subscriptions status`.

use fidelis_core::{Domain, SubscriptionStatus};

use crate::error::CliError;
use crate::output::Output;

pub(super) async fn status(domain: &Domain, out: &Output) -> Result<(), CliError> {
    let statuses = domain.engine().status().await?;
    let relay = domain.engine().relay_status().await?;
    if out.json() {
        let statuses: Vec<_> = statuses
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "kind": kind(s),
                    "partition": s.partition,
                    "partitions": s.partitions,
                    "owner": s.owner,
                    "position": s.position.position,
                    "head": s.head.position,
                    "lag": s.lag,
                    "behind_seconds": s.behind.as_secs_f64(),
                    "dead_letters": s.dead_letters,
                    "last_error": s.last_error,
                    "handled": s.handled,
                })
            })
            .collect();
        return out.document(&serde_json::json!({
            "processing": format!("{:?}", domain.processing()).to_lowercase(),
            "subscriptions": statuses,
            // `null` when the domain has no broker.
            "outbox": relay.map(|r| serde_json::json!({
                "broker": r.broker,
                "pending": r.pending,
                "oldest_pending_seconds": r.oldest_pending.as_secs_f64(),
                "published": r.published,
                "failures": r.failures,
                "last_error": r.last_error,
            })),
        }));
    }
    out.table(
        &[
            "subscription",
            "kind",
            "partition",
            "owner",
            "position",
            "head",
            "lag",
            "behind",
            "dead letters",
            "last error",
        ],
        statuses.iter().map(|s| {
            vec![
                s.name.clone(),
                kind(s).to_owned(),
                format!("{}/{}", s.partition, s.partitions),
                s.owner.clone().unwrap_or_else(|| "-".to_owned()),
                s.position.position.to_string(),
                s.head.position.to_string(),
                s.lag.to_string(),
                format!("{:.1}s", s.behind.as_secs_f64()),
                s.dead_letters.to_string(),
                super::cut(s.last_error.as_deref().unwrap_or("-"), 60),
            ]
        }),
    );
    if let Some(r) = relay {
        out.line("");
        out.table(
            &[
                "outbox broker",
                "pending",
                "oldest",
                "published",
                "failures",
                "last error",
            ],
            std::iter::once(vec![
                r.broker,
                r.pending.to_string(),
                format!("{:.1}s", r.oldest_pending.as_secs_f64()),
                r.published.to_string(),
                r.failures.to_string(),
                super::cut(r.last_error.as_deref().unwrap_or("-"), 60),
            ]),
        );
    }
    Ok(())
}

fn kind(status: &SubscriptionStatus) -> &'static str {
    if status.projector {
        "projector"
    } else if status.handled.is_some() {
        "subscriber"
    } else {
        "event handler"
    }
}

/// The subscriptions' names, for unknown-name errors.
pub(super) async fn names(domain: &Domain) -> Result<Vec<String>, CliError> {
    Ok(domain
        .engine()
        .status()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}
