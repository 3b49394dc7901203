//! Runs the seed chapter: `cargo run -p fidelis-example [-- --database sqlite://fidelis.db]`;
//! `--processing async` runs it in asynchronous processing, and the `engine` subcommand runs
//! the engine of the example's domain until Ctrl-C.

#![allow(clippy::print_stdout)] // printing the dashboard is this binary's job

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fidelis_core::{Domain, DomainBuilder, Processing, Readiness};
use fidelis_example::{scenario, transfer_scenario};
use tracing_subscriber::EnvFilter;

/// The Fidelis banking ledger: opens an account, deposits, prints the account dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Database URL: `memory` (default), `sqlite://fidelis.db`, `postgres://user@host/db`.
    /// Without it, `FIDELIS_DATABASE_URL` or `fidelis.toml` decide.
    #[arg(long, global = true)]
    database: Option<String>,
    /// How projectors run: `sync` in each command, `async` in the engine. Without it,
    /// `FIDELIS_PROCESSING` or `fidelis.toml` decide (sync by default).
    #[arg(long)]
    processing: Option<Mode>,
    /// In async processing, who runs the engine: this process (`in-process`, the default,
    /// which works anywhere), or a separate `fidelis-example engine` process on the same
    /// database (`external`: the walkthrough waits for it to update the dashboard).
    #[arg(long, value_enum, default_value_t = EngineAt::InProcess)]
    engine: EngineAt,
    /// With `--engine external`: how long to wait for the engine process, in seconds.
    #[arg(long, default_value_t = 30)]
    wait: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the engine of the ledger's domain (asynchronous processing) until Ctrl-C, then
    /// drains its in-flight batches and exits.
    Engine {
        /// How often to log the subscriptions' progress, in seconds.
        #[arg(long, default_value_t = 5)]
        progress_every: u64,
        /// Serves `/healthz`, `/readyz` and `/metrics` (Prometheus) on this address beside
        /// the engine, e.g. `127.0.0.1:9100`.
        #[arg(long)]
        http: Option<std::net::SocketAddr>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Sync,
    Async,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum EngineAt {
    InProcess,
    External,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The engine reports its progress at info; the walkthrough keeps stderr quiet.
    let default_filter = if args.command.is_some() {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match args.command {
        Some(Command::Engine {
            progress_every,
            http,
        }) => {
            engine(
                &args.database,
                Duration::from_secs(progress_every.max(1)),
                http,
            )
            .await
        }
        None => walkthrough(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn builder(database: &Option<String>) -> DomainBuilder {
    let builder = fidelis_example::domain();
    match database {
        Some(url) => builder.database(url.clone()),
        None => builder,
    }
}

async fn walkthrough(args: &Args) -> fidelis_core::Result<()> {
    let mut builder = builder(&args.database);
    match args.processing {
        Some(Mode::Sync) => builder = builder.processing(Processing::Sync),
        Some(Mode::Async) => builder = builder.processing(Processing::Async),
        None => {}
    }
    let domain = builder.build().await?;
    let account_id = scenario::commit(&domain).await?;
    if domain.processing() == Processing::Async {
        if args.engine == EngineAt::External {
            println!("Commands committed; waiting for an engine process to update the dashboard");
            scenario::wait_for_dashboard(&domain, &account_id, Duration::from_secs(args.wait))
                .await?;
        } else {
            domain.engine().run_until_idle().await?;
        }
    }
    let walkthrough = scenario::read(&domain, account_id).await?;
    println!("Account opened: {}", walkthrough.account_id);
    println!("Deposit of $500.00 made");
    println!();
    println!("{}", scenario::dashboard(&walkthrough.summary));
    scenario::check(&walkthrough.summary)?;
    println!("Accounts on record: {}", walkthrough.accounts_on_record);
    println!();
    let wait = match (domain.processing(), args.engine) {
        (Processing::Async, EngineAt::External) => {
            transfer_scenario::Wait::Poll(Duration::from_secs(args.wait))
        }
        _ => transfer_scenario::Wait::Settle,
    };
    let transfers = transfer_scenario::run(&domain, &walkthrough.account_id, wait).await?;
    println!("{}", transfer_scenario::report(&transfers));
    transfer_scenario::check(&transfers)?;
    println!();
    println!("All checks passed!");
    Ok(())
}

async fn engine(
    database: &Option<String>,
    progress_every: Duration,
    http: Option<std::net::SocketAddr>,
) -> fidelis_core::Result<()> {
    let domain = builder(database)
        .processing(Processing::Async)
        .build()
        .await?;
    // Bound before the engine starts, so a taken address fails at once; it stops answering
    // only after the engine drained.
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match http {
        Some(address) => {
            let listener = domain
                .engine()
                .bind_http(address, Readiness::default())
                .await?;
            Some(tokio::spawn(listener.serve(async {
                let _ = http_stopped.await;
            })))
        }
        None => None,
    };
    let progress = tokio::spawn(log_progress(domain.clone(), progress_every));
    let result = domain.engine().run(shutdown_signal()).await;
    progress.abort();
    let _ = stop_http.send(());
    if let Some(server) = server {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "the engine's HTTP listener failed"),
            Err(error) => tracing::error!(%error, "the engine's HTTP listener ended abnormally"),
        }
    }
    // The final positions, after the drain.
    match domain.engine().status().await {
        Ok(statuses) => report(&statuses),
        Err(error) => tracing::warn!(%error, "cannot read the engine's final status"),
    }
    result
}

/// Resolves on Ctrl-C (SIGINT), or SIGTERM on Unix; the engine then drains.
async fn shutdown_signal() {
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

fn report(statuses: &[fidelis_core::SubscriptionStatus]) {
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
