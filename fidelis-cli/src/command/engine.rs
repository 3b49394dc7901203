//! `engine [--http ADDR]`: runs the engine until Ctrl-C or SIGTERM, logging progress.

use std::time::Duration;

use fidelis_core::{Domain, DomainBuilder, Processing, SubscriptionStatus};

use crate::error::CliError;
use crate::output::Output;

/// The options of `engine`.
#[derive(Clone, Debug, clap::Args)]
pub struct EngineArgs {
    /// How often to log the subscriptions' progress (at `info`, when they moved), in seconds.
    #[arg(long, default_value_t = 5)]
    pub progress_every: u64,
    /// Serves `/healthz`, `/readyz` and `/metrics` (Prometheus) on this address beside the
    /// engine, e.g. `127.0.0.1:9100`.
    #[cfg(feature = "http")]
    #[arg(long)]
    pub http: Option<std::net::SocketAddr>,
}

pub(super) async fn run(
    builder: DomainBuilder,
    out: &Output,
    args: EngineArgs,
) -> Result<(), CliError> {
    let domain = super::build(builder.processing(Processing::Async)).await?;
    #[cfg(feature = "http")]
    let http = serve_http(&domain, args.http).await?;
    let progress = tokio::spawn(log_progress(
        domain.clone(),
        Duration::from_secs(args.progress_every.max(1)),
    ));
    let result = domain.engine().run(shutdown_signal()).await;
    progress.abort();
    #[cfg(feature = "http")]
    http.stop().await;
    result?;
    // Where the subscriptions stand after the drain.
    super::subscriptions::status(&domain, out).await
}

/// The health listener, bound before the engine starts (a taken address fails at once) and
/// stopped after it drained.
#[cfg(feature = "http")]
struct Http {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<fidelis_core::Result<()>>>,
}

#[cfg(feature = "http")]
async fn serve_http(
    domain: &Domain,
    address: Option<std::net::SocketAddr>,
) -> Result<Http, CliError> {
    let Some(address) = address else {
        return Ok(Http {
            stop: None,
            server: None,
        });
    };
    let listener = domain
        .engine()
        .bind_http(address, fidelis_core::Readiness::default())
        .await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));
    Ok(Http {
        stop: Some(stop),
        server: Some(server),
    })
}

#[cfg(feature = "http")]
impl Http {
    async fn stop(self) {
        if let Some(stop) = self.stop {
            let _ = stop.send(());
        }
        if let Some(server) = self.server {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%error, "the engine's HTTP listener failed"),
                Err(error) => {
                    tracing::error!(%error, "the engine's HTTP listener ended abnormally")
                }
            }
        }
    }
}

/// Resolves on Ctrl-C (SIGINT), or SIGTERM on Unix: the shutdown signal of `engine` (which
/// then drains), for a binary's own long-running subcommands too.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C; stop the engine with SIGTERM");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

/// Logs where each subscription stands, every `every`, when it moved since the last report.
async fn log_progress(domain: Domain, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    let mut last = Vec::new();
    loop {
        ticks.tick().await;
        match domain.engine().status().await {
            Ok(statuses) => {
                let now: Vec<_> = statuses.iter().map(|s| (s.position, s.lag)).collect();
                if now != last {
                    report(&statuses);
                    last = now;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the engine's status"),
        }
    }
}

fn report(statuses: &[SubscriptionStatus]) {
    for status in statuses {
        tracing::info!(
            subscription = %status.name,
            position = status.position.position,
            head = status.head.position,
            lag = status.lag,
            behind = ?status.behind,
            dead_letters = status.dead_letters,
            last_error = status.last_error.as_deref().unwrap_or("none"),
            "subscription progress"
        );
    }
}
