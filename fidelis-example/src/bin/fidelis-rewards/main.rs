//! The rewards context, a second bounded context beside the ledger: members earn loyalty
//! points for the ledger's deposits, which it learns from the broker. `fidelis-rewards
//! --database URL engine` runs its engine, consuming the ledger's published account events
//! (the broker from `FIDELIS_BROKER_URL` or `fidelis.toml`'s `[broker] url`); the other
//! subcommands are the Fidelis command line's (`events read Member`, `subscriptions status`,
//! …).

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

mod rewards;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    fidelis_cli::run(rewards::domain()).await
}
