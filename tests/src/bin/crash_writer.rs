//! A writer process for the crash test (`tests/tests/crash.rs`): commits commands to the test
//! ledger of the given database as fast as it can, until it is killed.
//!
//! Usage: `crash_writer <database-url> <ledger-id>...`

#![allow(missing_docs)]

use fidelis_core::prelude::*;

#[path = "../../tests/support/ledger.rs"]
mod ledger;
use ledger::{Credit, Debit};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or_else(|| Error::configuration("usage: crash_writer <url> <id>..."))?;
    let ids: Vec<Identifier> = args.map(Identifier::new).collect();
    if ids.is_empty() {
        return Err(Error::configuration(
            "crash_writer needs at least one ledger id",
        ));
    }
    let domain = Domain::builder("crash")
        .discover_crate(module_path!())
        .database(url)
        .retry(RetryPolicy::attempts(1_000))
        .build()
        .await?;
    let mut turn: i64 = 0;
    loop {
        turn += 1;
        let ledger_id = ids[turn as usize % ids.len()].clone();
        let result = if turn % 4 == 0 {
            domain
                .process(Debit {
                    ledger_id,
                    amount: 3,
                })
                .await
        } else {
            domain
                .process(Credit {
                    ledger_id,
                    amount: turn % 7 + 1,
                })
                .await
        };
        // Refused debits (insufficient funds) are part of the workload; anything else is not.
        if let Err(error) = result
            && error.as_validation().is_none()
        {
            return Err(error);
        }
    }
}
