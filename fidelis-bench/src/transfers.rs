//! Workload (h), transfers: the example's `FundsTransfer` process manager end to end in
//! synchronous processing. Each `InitiateTransfer` returns once its whole chain ran
//! (withdrawal, deposit, completion, five commits and the process manager's state rows), so
//! transfers per second is the rate of complete transfers. Every tenth transfer asks for more
//! than the source holds and fails with nothing moved; the balances are checked afterwards.

use std::time::{Duration, Instant};

use fidelis_core::{Decimal, Identifier};
use fidelis_example::account::Account;
use fidelis_example::commands::OpenAccount;
use fidelis_example::transfer::{InitiateTransfer, Transfer, TransferStatus};

use crate::db::Scratch;
use crate::workload::BenchError;

/// The stores workload (h) runs on.
pub const BACKENDS: &[&str] = &["memory", "sqlite", "postgres"];

/// How much workload (h) does.
#[derive(Clone, Copy, Debug)]
pub struct TransferSizes {
    /// Accounts the transfers go around.
    pub accounts: usize,
    /// Transfers, one after the other.
    pub transfers: usize,
}

impl TransferSizes {
    /// The full run.
    pub const FULL: Self = Self {
        accounts: 20,
        transfers: 2_000,
    };
    /// `--quick`.
    pub const QUICK: Self = Self {
        accounts: 5,
        transfers: 100,
    };
}

/// One pass of workload (h).
#[derive(Debug)]
pub struct TransfersPass {
    /// Transfers made (completed and failed).
    pub transfers: usize,
    /// How many failed (for want of funds, as intended).
    pub failed: usize,
    /// The time they took.
    pub elapsed: Duration,
    /// What the check afterwards found wrong (empty when all is right).
    pub mismatches: Vec<String>,
}

impl TransfersPass {
    /// Transfers per second.
    pub fn rate(&self) -> f64 {
        self.transfers as f64 / self.elapsed.as_secs_f64()
    }
}

const OPENING: i64 = 1_000_000;

/// Workload (h) on `backend`, on a fresh store dropped afterwards.
pub async fn transfers(
    backend: &str,
    sizes: TransferSizes,
    postgres_url: Option<&str>,
) -> Result<TransfersPass, BenchError> {
    let store = Scratch::new(backend, postgres_url, "transfers").await?;
    let result = transfers_on(&store, sizes).await;
    store.drop_store().await?;
    result
}

async fn transfers_on(store: &Scratch, sizes: TransferSizes) -> Result<TransfersPass, BenchError> {
    let domain = store.connect(fidelis_example::domain()).build().await?;
    let mut accounts: Vec<Identifier> = Vec::with_capacity(sizes.accounts);
    for i in 0..sizes.accounts {
        let id: Identifier = domain
            .process(OpenAccount {
                account_number: format!("T-{i:04}"),
                holder_name: format!("Holder {i}"),
                opening_deposit: Decimal::from(OPENING),
            })
            .await?;
        accounts.push(id);
    }
    let mut expected = vec![Decimal::from(OPENING); sizes.accounts];
    let mut made = Vec::with_capacity(sizes.transfers);
    let started = Instant::now();
    for t in 0..sizes.transfers {
        let (from, to) = (t % sizes.accounts, (t + 1) % sizes.accounts);
        let refused = t % 10 == 9;
        let amount = if refused {
            Decimal::from(OPENING * 1_000)
        } else {
            Decimal::new(1 + (t as i64 % 500), 2)
        };
        let id: Identifier = domain
            .process(InitiateTransfer {
                source: accounts[from].clone(),
                target: accounts[to].clone(),
                amount,
            })
            .await?;
        if !refused {
            expected[from] -= amount;
            expected[to] += amount;
        }
        made.push((id, refused));
    }
    let elapsed = started.elapsed();

    let mut mismatches = Vec::new();
    for (id, refused) in &made {
        let transfer = domain.repository::<Transfer>().get(id).await?;
        let wanted = if *refused {
            TransferStatus::Failed
        } else {
            TransferStatus::Completed
        };
        if transfer.status != wanted {
            mismatches.push(format!(
                "transfer {id}: {:?}, expected {wanted:?}",
                transfer.status
            ));
        }
    }
    for (id, balance) in accounts.iter().zip(&expected) {
        let account = domain.repository::<Account>().get(id).await?;
        if account.balance != *balance {
            mismatches.push(format!(
                "account {}: balance {}, expected {balance}",
                account.account_number, account.balance
            ));
        }
    }
    if domain.metrics().failed_event_handlers != 0 {
        mismatches.push(format!(
            "{} event handlers failed",
            domain.metrics().failed_event_handlers
        ));
    }
    Ok(TransfersPass {
        transfers: made.len(),
        failed: made.iter().filter(|(_, refused)| *refused).count(),
        elapsed,
        mismatches,
    })
}
