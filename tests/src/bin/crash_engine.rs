//! An engine process for the engine crash test (`tests/tests/engine_crash.rs`): runs the
//! meters domain's engine on the given PostgreSQL database until it is killed.
//!
//! Usage: `crash_engine <database-url> <partitions> <lease-ms>`

#![allow(missing_docs)]

use std::time::Duration;

use fidelis_core::Processing;
use fidelis_core::prelude::*;

#[path = "../../tests/support/meters.rs"]
mod meters;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let usage = || Error::configuration("usage: crash_engine <url> <partitions> <lease-ms>");
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(usage)?;
    let partitions: u32 = args.next().and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    let lease_ms: u64 = args.next().and_then(|a| a.parse().ok()).ok_or_else(usage)?;
    // `FIDELIS_CRASH_LOG=<dir>`: this process logs (as `RUST_LOG` says, default `info`) to
    // `<dir>/engine-<pid>.log`, to see what an engine did before it was killed.
    if let Some(dir) = std::env::var_os("FIDELIS_CRASH_LOG") {
        let path = std::path::Path::new(&dir).join(format!("engine-{}.log", std::process::id()));
        let file = std::fs::File::create(&path).map_err(|error| {
            Error::configuration(format!("cannot create {}: {error}", path.display()))
        })?;
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::sync::Mutex::new(file))
            .with_ansi(false)
            .init();
    }
    let domain = Domain::builder("meters")
        .discover_crate(module_path!())
        .database(url)
        .processing(Processing::Async)
        .engine_partitions(partitions)
        .engine_lease(Duration::from_millis(lease_ms))
        .build()
        .await?;
    // Until SIGKILL: the test never asks it to stop.
    domain.engine().run(std::future::pending()).await
}
