//! Runs the seed chapter: `cargo run -p fidelis-example [-- --database sqlite://fidelis.db]`.

#![allow(clippy::print_stdout)] // printing the dashboard is this binary's job

use std::process::ExitCode;

use clap::Parser;
use fidelis_example::scenario;
use tracing_subscriber::EnvFilter;

/// The Fidelis banking ledger: opens an account, deposits, prints the account dashboard.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Database URL: `memory` (default), `sqlite://fidelis.db`, `postgres://user@host/db`.
    /// Without it, `FIDELIS_DATABASE_URL` or `fidelis.toml` decide.
    #[arg(long)]
    database: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> fidelis_core::Result<()> {
    let mut builder = fidelis_example::domain();
    if let Some(url) = args.database {
        builder = builder.database(url);
    }
    let domain = builder.build().await?;
    let walkthrough = scenario::run(&domain).await?;
    println!("Account opened: {}", walkthrough.account_id);
    println!("Deposit of $500.00 made");
    println!();
    println!("{}", scenario::dashboard(&walkthrough.summary));
    scenario::check(&walkthrough.summary)?;
    println!("Accounts on record: {}", walkthrough.accounts_on_record);
    println!();
    println!("All checks passed!");
    Ok(())
}
