//! Runs the seed chapter: `cargo run -p fidelis-example [-- --database sqlite://fidelis.db]`;
//! `--processing async` runs it in asynchronous processing. The subcommands are the Fidelis
//! command line (`fidelis-cli`) on the example's domain: `setup-db`, `engine`, `events`,
//! `dlq`, `projections`, `subscriptions`; `serve` serves the account dashboard on the web.

#![allow(clippy::print_stdout)] // printing the dashboard is this binary's job

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use fidelis_core::{DomainBuilder, Processing};
use fidelis_example::{scenario, transfer_scenario};
use tracing_subscriber::EnvFilter;

/// The Fidelis banking ledger: opens an account, deposits, prints the account dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// `--database URL` and `--json`, taken by every subscommand too.
    #[command(flatten)]
    global: fidelis_cli::GlobalArgs,
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
    /// Without a subcommand, the walkthrough runs.
    #[command(subcommand)]
    command: Option<Command>,
}

/// The subcommands: the Fidelis command line's, and room for the example's own beside them.
#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Fidelis(fidelis_cli::Command),
    /// Serves the account dashboard on the web (pages, forms, live updates, JSON API) until
    /// Ctrl-C.
    #[cfg(feature = "web")]
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: std::net::SocketAddr,
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
    // The engine reports its progress at info; the walkthrough keeps stderr to warnings, and
    // the other commands to errors, so that a failure is the one line they print.
    let default_filter = match &args.command {
        Some(Command::Fidelis(fidelis_cli::Command::Engine(_))) => "info",
        Some(Command::Fidelis(_)) => "error",
        #[cfg(feature = "web")]
        Some(Command::Serve { .. }) => "info",
        None => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    match args.command {
        Some(Command::Fidelis(command)) => {
            fidelis_cli::execute(fidelis_example::domain(), &args.global, command).await
        }
        #[cfg(feature = "web")]
        Some(Command::Serve { addr }) => exit(serve(&args.global.database, addr).await),
        None => exit(walkthrough(&args).await),
    }
}

fn exit(result: fidelis_core::Result<()>) -> ExitCode {
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
    let mut builder = builder(&args.global.database);
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

/// Serves the web dashboard of the ledger on `address` until Ctrl-C or SIGTERM. In
/// asynchronous processing, an engine process on the same database keeps it current.
#[cfg(feature = "web")]
async fn serve(
    database: &Option<String>,
    address: std::net::SocketAddr,
) -> fidelis_core::Result<()> {
    let domain = builder(database).build().await?;
    if domain.processing() == Processing::Async {
        tracing::info!(
            "asynchronous processing: run `fidelis-example engine` on the same database to keep the dashboard current"
        );
    }
    let listener = fidelis_example::web::WebApp::new(domain)
        .bind(address)
        .await?;
    println!("Account dashboard: http://{}/", listener.local_addr());
    listener.serve(fidelis_cli::shutdown_signal()).await
}
