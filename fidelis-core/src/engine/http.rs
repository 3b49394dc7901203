//! The engine's health and metrics listener (the `http` feature): `/healthz`, `/readyz` and
//! `/metrics` in the Prometheus text format, read from [`Engine::status`] and
//! [`Domain::metrics`](crate::Domain::metrics) at each request.
//!
//! The text format is written here rather than through a metrics crate: every value is read
//! from the store on demand (nothing is recorded in between), the format is a few fixed lines,
//! and `prometheus` or `metrics-exporter-prometheus` would add a registry (or a global
//! recorder) and their dependencies for no gain.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{Engine, SubscriptionStatus};
use crate::model::error::{Error, Result};

/// When `/readyz` answers 200: the database answers, and every subscription is within these
/// budgets. A subscription's [`last_error`](SubscriptionStatus::last_error) alone does not
/// make the engine unready: it stays set after a retry that succeeded, and an event that
/// kept failing shows as a dead letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// The most events a subscription may have still to handle (default 10,000).
    pub max_lag: u64,
    /// The most dead letters a subscription may have (default 0).
    pub max_dead_letters: u64,
    /// How long ago the oldest event it has still to handle may have been committed (default:
    /// no limit).
    pub max_behind: Option<Duration>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            max_lag: 10_000,
            max_dead_letters: 0,
            max_behind: None,
        }
    }
}

impl Readiness {
    /// Why a subscription is over its budgets, if it is.
    fn problem(&self, status: &SubscriptionStatus) -> Option<String> {
        let name = &status.name;
        if status.dead_letters > self.max_dead_letters {
            let last = status.last_error.as_deref().unwrap_or("unknown error");
            return Some(format!(
                "subscription {name} has {} dead letter(s) (budget {}); last error: {last}",
                status.dead_letters, self.max_dead_letters
            ));
        }
        if status.lag > self.max_lag {
            return Some(format!(
                "subscription {name} lags {} events (budget {})",
                status.lag, self.max_lag
            ));
        }
        match self.max_behind {
            Some(max) if status.behind > max => Some(format!(
                "subscription {name} is {:.3}s behind (budget {:.3}s)",
                status.behind.as_secs_f64(),
                max.as_secs_f64()
            )),
            _ => None,
        }
    }
}

#[derive(Clone)]
struct Served {
    engine: Engine,
    readiness: Readiness,
}

/// A bound listener of [`Engine::bind_http`]: knows its address before it serves.
pub struct HttpListener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    router: Router,
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl HttpListener {
    /// The address it listens on (the port the system chose, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Answers requests until `shutdown` resolves, then lets the requests in flight finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        tracing::info!(address = %self.address, "engine HTTP listener serving /healthz, /readyz, /metrics");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|error| {
                Error::storage_with(
                    format!("the engine's HTTP listener on {} failed", self.address),
                    error,
                )
            })
    }
}

impl Engine {
    /// Binds the health and metrics listener to `address`: `/healthz` (200 while the
    /// process runs), `/readyz` (200 when the database answers and every subscription is
    /// within `readiness`, else 503 with the reasons) and `/metrics` (Prometheus text). Serve
    /// it with [`HttpListener::serve`]. Fails with the address in the message when it cannot
    /// be bound, and in synchronous processing (there is no engine).
    pub async fn bind_http(
        &self,
        address: SocketAddr,
        readiness: Readiness,
    ) -> Result<HttpListener> {
        self.check_async()?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| Error::Configuration {
                problems: vec![format!(
                    "cannot bind the engine's HTTP listener to {address}: {error}"
                )],
            })?;
        let address = listener
            .local_addr()
            .map_err(|error| Error::Configuration {
                problems: vec![format!(
                    "the engine's HTTP listener bound to {address} has no local address: {error}"
                )],
            })?;
        let router = Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(Served {
                engine: self.clone(),
                readiness,
            });
        Ok(HttpListener {
            listener,
            address,
            router,
        })
    }

    /// [`bind_http`](Self::bind_http) then [`serve`](HttpListener::serve) until `shutdown`
    /// resolves.
    pub async fn serve_http(
        &self,
        address: SocketAddr,
        readiness: Readiness,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        self.bind_http(address, readiness)
            .await?
            .serve(shutdown)
            .await
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (status, body).into_response()
}

async fn readyz(State(served): State<Served>) -> Response {
    let storage = served.engine.domain.storage();
    if let Err(error) = storage.head().await {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database does not answer: {error}\n"),
        );
    }
    let statuses = match served.engine.status().await {
        Ok(statuses) => statuses,
        Err(error) => {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: cannot read the engine's status: {error}\n"),
            );
        }
    };
    let problems: Vec<String> = statuses
        .iter()
        .filter_map(|status| served.readiness.problem(status))
        .collect();
    if problems.is_empty() {
        text(StatusCode::OK, "ready\n".to_owned())
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", problems.join("; ")),
        )
    }
}

async fn metrics(State(served): State<Served>) -> Response {
    match served.engine.status().await {
        Ok(statuses) => {
            let mut body = render(
                served.engine.domain.name(),
                &statuses,
                served.engine.domain.metrics().failed_event_handlers,
            );
            match served.engine.relay_status().await {
                Ok(Some(relay)) => {
                    body.push_str(&render_relay(served.engine.domain.name(), &relay))
                }
                Ok(None) => {}
                // The subscriptions' metrics still serve; the relay's are left out this time.
                Err(error) => {
                    tracing::warn!(%error, "cannot read the outbox relay's status for /metrics")
                }
            }
            (
                [(
                    header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                body,
            )
                .into_response()
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the engine's status for /metrics");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot read the engine's status: {error}\n"),
            )
        }
    }
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric of each subscription: name, type, help, value.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SubscriptionStatus) -> String,
);

/// The Prometheus text exposition (format 0.0.4) of a domain's engine.
fn render(domain: &str, statuses: &[SubscriptionStatus], failed_event_handlers: u64) -> String {
    let domain = escape(domain);
    let mut out = String::new();
    let families: [Family; 4] = [
        (
            "fidelis_subscription_lag_events",
            "gauge",
            "Events of the subscription's categories (and partition) it has still to handle.",
            |s| s.lag.to_string(),
        ),
        (
            "fidelis_subscription_dead_letters",
            "gauge",
            "Dead letters of the subscription.",
            |s| s.dead_letters.to_string(),
        ),
        (
            "fidelis_subscription_behind_seconds",
            "gauge",
            "How long ago the oldest event the subscription has still to handle was committed.",
            |s| s.behind.as_secs_f64().to_string(),
        ),
        (
            "fidelis_subscription_position",
            "gauge",
            "Global position of the last event the subscription handled.",
            |s| s.position.position.to_string(),
        ),
    ];
    // Writing to a String cannot fail.
    for (name, kind, help, value) in families {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for status in statuses {
            let _ = writeln!(
                out,
                "{name}{{domain=\"{domain}\",subscription=\"{}\",kind=\"{}\",partition=\"{}\"}} {}",
                escape(&status.name),
                if status.projector {
                    "projector"
                } else {
                    "event_handler"
                },
                status.partition,
                value(status)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP fidelis_failed_event_handlers_total Event handlers that failed after their command committed.\n\
         # TYPE fidelis_failed_event_handlers_total counter\n\
         fidelis_failed_event_handlers_total{{domain=\"{domain}\"}} {failed_event_handlers}"
    );
    out
}

/// The outbox relay's metrics (only for a domain with a broker).
fn render_relay(domain: &str, relay: &super::RelayStatus) -> String {
    let domain = escape(domain);
    let broker = escape(&relay.broker);
    let mut out = String::new();
    let families = [
        (
            "fidelis_outbox_pending",
            "gauge",
            "Events waiting in the outbox for the broker.",
            relay.pending.to_string(),
        ),
        (
            "fidelis_outbox_oldest_pending_seconds",
            "gauge",
            "How long ago the oldest event waiting in the outbox was committed.",
            relay.oldest_pending.as_secs_f64().to_string(),
        ),
        (
            "fidelis_outbox_published_total",
            "counter",
            "Events this process relayed to the broker.",
            relay.published.to_string(),
        ),
        (
            "fidelis_outbox_failures",
            "gauge",
            "Broker failures in a row (0 once a publish succeeds).",
            relay.failures.to_string(),
        ),
    ];
    // Writing to a String cannot fail.
    for (name, kind, help, value) in families {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{domain=\"{domain}\",broker=\"{broker}\"}} {value}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Cursor;

    fn status(name: &str, lag: u64, dead_letters: u64) -> SubscriptionStatus {
        SubscriptionStatus {
            name: name.to_owned(),
            projector: true,
            partition: 0,
            partitions: 1,
            position: Cursor {
                commit: 3,
                position: 7,
            },
            head: Cursor {
                commit: 4,
                position: 8,
            },
            lag,
            behind: Duration::from_millis(1500),
            dead_letters,
            owner: None,
            last_error: Some("boom".to_owned()),
            handled: None,
        }
    }

    #[test]
    fn relay_metrics_name_the_domain_and_broker() {
        let relay = crate::engine::RelayStatus {
            broker: "memory".to_owned(),
            pending: 3,
            oldest_pending: Duration::from_millis(2500),
            published: 10,
            failures: 1,
            last_error: Some("down".to_owned()),
        };
        let text = render_relay("bank", &relay);
        assert!(
            text.contains("fidelis_outbox_pending{domain=\"bank\",broker=\"memory\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "fidelis_outbox_oldest_pending_seconds{domain=\"bank\",broker=\"memory\"} 2.5\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("# TYPE fidelis_outbox_published_total counter\n"),
            "{text}"
        );
    }

    #[test]
    fn metrics_are_written_in_the_text_format_with_escaped_labels() {
        let text = render("b\"ank", &[status("Tallies", 1, 2)], 5);
        assert!(text.contains(
            "fidelis_subscription_lag_events{domain=\"b\\\"ank\",subscription=\"Tallies\",kind=\"projector\",partition=\"0\"} 1\n"
        ), "{text}");
        assert!(
            text.contains("fidelis_subscription_dead_letters{"),
            "{text}"
        );
        assert!(text.contains("\"} 1.5\n"), "{text}");
        assert!(text.contains("partition=\"0\"} 7\n"), "{text}");
        assert!(
            text.contains("fidelis_failed_event_handlers_total{domain=\"b\\\"ank\"} 5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE fidelis_subscription_lag_events gauge\n"),
            "{text}"
        );
    }

    #[test]
    fn readiness_names_the_budget_a_subscription_is_over() {
        let budget = Readiness {
            max_lag: 10,
            max_dead_letters: 0,
            max_behind: Some(Duration::from_secs(1)),
        };
        let dead = budget.problem(&status("A", 0, 1)).unwrap_or_default();
        assert!(
            dead.contains("1 dead letter(s)") && dead.contains("boom"),
            "{dead}"
        );
        let lag = budget.problem(&status("A", 11, 0)).unwrap_or_default();
        assert!(lag.contains("lags 11 events (budget 10)"), "{lag}");
        let behind = budget.problem(&status("A", 10, 0)).unwrap_or_default();
        assert!(behind.contains("1.500s behind"), "{behind}");
        let relaxed = Readiness {
            max_behind: None,
            ..budget
        };
        assert_eq!(relaxed.problem(&status("A", 10, 0)), None);
    }
}
