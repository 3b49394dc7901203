//! The command line of a Fidelis domain, for a binary of your own.
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! #[tokio::main]
//! async fn main() -> ExitCode {
//!     // `my-ledger setup-db`, `my-ledger events stats --json`, `my-ledger projections
//!     // rebuild AccountSummary`, …
//!     fidelis_cli::run(fidelis_core::Domain::builder("ledger")).await
//! }
//! ```
//!
//! A binary with commands of its own flattens [`Command`] into its subcommand enum and
//! [`GlobalArgs`] into its arguments, then calls [`execute`]:
//!
//! ```no_run
//! use clap::{Parser, Subcommand};
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[command(flatten)]
//!     global: fidelis_cli::GlobalArgs,
//!     #[command(subcommand)]
//!     command: Option<MyCommand>,
//! }
//!
//! #[derive(Subcommand)]
//! enum MyCommand {
//!     #[command(flatten)]
//!     Fidelis(fidelis_cli::Command),
//!     /// Something of this binary's own.
//!     Hello,
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> std::process::ExitCode {
//! let args = Args::parse();
//! match args.command {
//!     Some(MyCommand::Fidelis(command)) => {
//!         let ledger = fidelis_core::Domain::builder("ledger");
//!         fidelis_cli::execute(ledger, &args.global, command).await
//!     }
//!     _ => std::process::ExitCode::SUCCESS,
//! }
//! # }
//! ```
//!
//! # Commands
//!
//! | Command | Does |
//! | --- | --- |
//! | `setup-db` | creates the missing tables and lists them |
//! | `engine [--http ADDR]` | runs the engine (asynchronous processing) until Ctrl-C or SIGTERM |
//! | `events read <stream\|category> [--from N] [--limit N]` | events of a stream (from version N) or a category (from global position N) |
//! | `events stats` | events per category and per type, and the head of the store |
//! | `events search --type T` | events of a type (`DepositMade` or `Fidelis.DepositMade.v1`) |
//! | `events history <Aggregate> <id>` | an event-sourced aggregate's events: version, type, time, event id, position |
//! | `dlq list\|inspect <id>\|replay <id>\|replay-all <subscription>\|purge <id>\|purge-all <subscription>` | the dead letters |
//! | `projections status` | each projection's version, table, rows, and its projectors' checkpoints (other versions' too) |
//! | `projections rebuild <Projection>` | rebuilds a projection (a progress bar on a terminal) |
//! | `subscriptions status` | each subscription's partitions, owner, position, lag and dead letters |
//! | `snapshots create <Aggregate> [<id>]` | a snapshot of one event-sourced aggregate (the version taken), or of all of its type (the count) |
//!
//! Every command prints a table for people, or JSON with `--json` (one document on stdout).
//! Errors are one line on stderr (`error: …`; with `--json`, `{"error": "…"}`).
//!
//! # Exit codes
//!
//! | Code | Meaning |
//! | --- | --- |
//! | 0 | done |
//! | 1 | the command failed (a rebuild's projector, a replay that failed again, a store error) |
//! | 2 | usage: bad arguments, or an unknown aggregate, projection, subscription or event type (or a state-stored aggregate where an event-sourced one is needed) |
//! | 3 | the database cannot be reached or set up (the message names its URL, without password) |
//! | 4 | not found: no dead letter with that id, no aggregate with that id |

mod command;
mod error;
mod output;

use std::process::ExitCode;

use clap::Parser;
use fidelis_core::DomainBuilder;

pub use command::engine::shutdown_signal;
pub use command::{
    Command, DlqCommand, EventsCommand, ProjectionsCommand, SnapshotsCommand, SubscriptionsCommand,
};
pub use error::{CliError, Exit};

/// The options every command takes.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct GlobalArgs {
    /// Database URL: `memory`, `sqlite://fidelis.db`, `postgres://user@host/db`. Without it,
    /// `FIDELIS_DATABASE_URL` or `fidelis.toml` decide.
    #[arg(long, global = true)]
    pub database: Option<String>,
    /// Prints JSON for scripts instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A complete command line: the global options and one command.
#[derive(Debug, Parser)]
#[command(version, about = "The command line of a Fidelis domain")]
pub struct Cli {
    /// The options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Parses the process's arguments as a [`Cli`] and runs the command on the domain
/// `builder` describes; clap's own usage errors exit with 2 (and `--help` with 0).
pub async fn run(builder: DomainBuilder) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = error.exit_code();
            if let Err(print) = error.print() {
                tracing::error!(%print, "cannot print the usage error");
            }
            return ExitCode::from(u8::try_from(code).unwrap_or(Exit::Usage as u8));
        }
    };
    execute(builder, &cli.global, cli.command).await
}

/// Runs one command on the domain `builder` describes (`--database` overrides its URL),
/// prints its result, and returns the exit code (see the crate docs).
pub async fn execute(builder: DomainBuilder, global: &GlobalArgs, command: Command) -> ExitCode {
    let builder = match &global.database {
        Some(url) => builder.database(url.clone()),
        None => builder,
    };
    let out = output::Output::new(global.json);
    match command::execute(builder, &out, command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            out.error(&error);
            ExitCode::from(error.exit as u8)
        }
    }
}
