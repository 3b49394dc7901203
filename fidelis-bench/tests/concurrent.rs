//! The concurrent workload's harness: it counts the commands it runs, and its balance check
//! passes for Fidelis and catches a ledger that loses deposits. Nothing here is timed.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use fidelis_bench::BenchError;
use fidelis_bench::concurrent::{self, ConcurrentSizes, FidelisShared, SharedLedger};
use fidelis_bench::db::{POSTGRES_URL_VAR, SqliteScratch};
use fidelis_bench::raw::RawSqlx;
use fidelis_bench::workload::{Money, opening_deposit};

const SIZES: ConcurrentSizes = ConcurrentSizes {
    clients: 8,
    accounts_per_client: 2,
    deposits_per_client: 12,
    hot_accounts: 2,
};

fn multi_threaded() -> tokio::runtime::Runtime {
    concurrent::runtime().expect("the runtime builds")
}

#[test]
fn fidelis_in_memory_ends_with_the_deposits_made() {
    let pass = multi_threaded()
        .block_on(concurrent::pass_of(
            concurrent::FIDELIS_MEMORY,
            SIZES,
            4,
            None,
        ))
        .expect("the pass runs");
    assert_eq!(pass.commands, 8 * (2 + 12));
    assert_eq!(pass.latencies.len(), pass.commands);
    assert!(pass.mismatches.is_empty(), "{:?}", pass.mismatches);
}

#[test]
fn fidelis_on_sqlite_ends_with_the_deposits_made() {
    let runtime = multi_threaded();
    let pass = runtime
        .block_on(async {
            let scratch = SqliteScratch::new()?;
            let ledger = Arc::new(FidelisShared::on_database(&scratch.url(), 4).await?);
            concurrent::run(ledger, SIZES).await
        })
        .expect("the pass runs");
    assert!(pass.mismatches.is_empty(), "{:?}", pass.mismatches);
}

/// Fidelis, postgres-es and the raw baseline on the server of `FIDELIS_BENCH_POSTGRES_URL`
/// (read when the test runs; `SKIPPED: …` when unset). postgres-es may end with stale summary
/// rows, which its lost view updates explain; no aggregate may be off.
#[test]
fn on_postgresql_every_implementation_ends_with_the_deposits_made() {
    let Some(url) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|url| !url.trim().is_empty())
    else {
        eprintln!("SKIPPED: {POSTGRES_URL_VAR} is unset");
        return;
    };
    let runtime = multi_threaded();
    for name in [
        concurrent::FIDELIS_POSTGRES,
        concurrent::POSTGRES_ES,
        RawSqlx::NAME,
    ] {
        let pass = runtime
            .block_on(concurrent::pass_of(name, SIZES, 4, Some(&url)))
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(pass.latencies.len(), pass.commands, "{name}");
        assert!(pass.mismatches.is_empty(), "{name}: {:?}", pass.mismatches);
        if name != concurrent::POSTGRES_ES {
            assert_eq!(pass.stale_summaries, 0, "{name}");
        }
    }
}

/// A ledger in a map that can drop every `lose_every`th deposit while reporting it committed,
/// or report its read model as having dropped updates.
#[derive(Default)]
struct Lossy {
    balances: Mutex<HashMap<String, Money>>,
    deposits: AtomicUsize,
    next_id: AtomicUsize,
    lose_every: usize,
    summary_lost: bool,
    lost_view_updates: AtomicU64,
}

impl SharedLedger for Lossy {
    async fn open(&self, i: usize) -> Result<String, BenchError> {
        let id = format!("account-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        self.balances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), opening_deposit(i));
        Ok(id)
    }

    async fn deposit(&self, id: &str, amount: Money) -> Result<bool, BenchError> {
        let n = self.deposits.fetch_add(1, Ordering::Relaxed) + 1;
        if self.lose_every > 0 && n.is_multiple_of(self.lose_every) {
            return Ok(true);
        }
        let mut balances = self.balances.lock().unwrap_or_else(PoisonError::into_inner);
        *balances.get_mut(id).ok_or("no such account")? += amount;
        Ok(true)
    }

    fn retries(&self) -> u64 {
        0
    }

    fn lost_view_updates(&self) -> u64 {
        self.lost_view_updates.load(Ordering::Relaxed)
    }

    async fn balances(&self, ids: &[String]) -> Result<Vec<(Money, Money)>, BenchError> {
        let balances = self.balances.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(ids
            .iter()
            .map(|id| {
                let balance = balances[id];
                // A summary that missed the opening deposit, when asked to.
                let summary = if self.summary_lost {
                    Money::ZERO
                } else {
                    balance
                };
                (summary, balance)
            })
            .collect())
    }
}

#[test]
fn the_check_reports_lost_deposits() {
    let ledger = Arc::new(Lossy {
        lose_every: 10,
        ..Lossy::default()
    });
    let pass = multi_threaded()
        .block_on(concurrent::run(ledger, SIZES))
        .expect("the pass runs");
    assert!(!pass.mismatches.is_empty());
    assert!(
        pass.mismatches[0].contains("aggregate balance"),
        "{:?}",
        pass.mismatches
    );
}

#[test]
fn stale_summaries_fail_unless_the_ledger_reports_lost_view_updates() {
    let runtime = multi_threaded();
    let unexplained = runtime
        .block_on(concurrent::run(
            Arc::new(Lossy {
                summary_lost: true,
                ..Lossy::default()
            }),
            SIZES,
        ))
        .expect("the pass runs");
    let accounts = SIZES.clients * SIZES.accounts_per_client + SIZES.hot_accounts;
    assert_eq!(unexplained.mismatches.len(), accounts);
    assert_eq!(unexplained.stale_summaries, 0);

    let explained = runtime
        .block_on(concurrent::run(
            Arc::new(Lossy {
                summary_lost: true,
                lost_view_updates: AtomicU64::new(1),
                ..Lossy::default()
            }),
            SIZES,
        ))
        .expect("the pass runs");
    assert!(
        explained.mismatches.is_empty(),
        "{:?}",
        explained.mismatches
    );
    assert_eq!(explained.stale_summaries, accounts);
}
