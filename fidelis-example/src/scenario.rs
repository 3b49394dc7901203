//! The chapter's walk-through: open an account, deposit, read the dashboard.

use std::time::{Duration, Instant};

use fidelis_core::prelude::*;

use crate::commands::{MakeDeposit, OpenAccount};
use crate::dashboard::AccountSummary;

/// What the walk-through produced.
#[derive(Clone, Debug)]
pub struct Walkthrough {
    /// The account it opened.
    pub account_id: Identifier,
    /// Its dashboard row after the deposit.
    pub summary: AccountSummary,
    /// How many accounts the ledger holds (more than one when a database keeps earlier runs).
    pub accounts_on_record: u64,
}

/// Opens `ACC-001` for Alice Johnson with $1000, deposits $500, and reads the dashboard
/// (in asynchronous processing, after running the engine until it is idle).
pub async fn run(domain: &Domain) -> Result<Walkthrough> {
    let account_id = commit(domain).await?;
    domain.settle().await?;
    read(domain, account_id).await
}

/// The walk-through's commands: opens `ACC-001` for Alice Johnson with $1000 and deposits
/// $500; returns the account's id.
pub async fn commit(domain: &Domain) -> Result<Identifier> {
    let account_id = domain
        .process(OpenAccount {
            account_number: "ACC-001".into(),
            holder_name: "Alice Johnson".into(),
            opening_deposit: Decimal::from(1000),
        })
        .await?;
    tracing::info!(%account_id, "account opened");
    domain
        .process(MakeDeposit {
            account_id: account_id.clone(),
            amount: Decimal::from(500),
            reference: Some("paycheck".into()),
        })
        .await?;
    Ok(account_id)
}

/// Reads the account's dashboard row and counts the ledger's accounts.
pub async fn read(domain: &Domain, account_id: Identifier) -> Result<Walkthrough> {
    let summary = domain
        .repository::<AccountSummary>()
        .get(&account_id)
        .await?;
    let accounts_on_record = domain
        .repository::<AccountSummary>()
        .query()
        .count()
        .await?;
    Ok(Walkthrough {
        account_id,
        summary,
        accounts_on_record,
    })
}

/// Waits until another process's engine has applied both of the walk-through's events to
/// the account's dashboard row; a timeout error after `timeout`.
pub async fn wait_for_dashboard(
    domain: &Domain,
    account_id: &Identifier,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let row = domain
            .repository::<AccountSummary>()
            .find(account_id)
            .await?;
        if row.is_some_and(|summary| summary.transaction_count >= 2) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fidelis_core::Error::usage(format!(
                "no engine updated the dashboard of account {account_id} within {timeout:?}: \
                 is `fidelis-example engine` running on the same database?"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The dashboard block, as the chapter prints it.
pub fn dashboard(summary: &AccountSummary) -> String {
    let last_activity = summary
        .last_transaction_at
        .map_or_else(|| "never".to_owned(), |time| time.to_string());
    format!(
        "=== Account Dashboard ===\n\
         Account: {}\n\
         Holder: {}\n\
         Balance: ${:.2}\n\
         Transactions: {}\n\
         Last activity: {}",
        summary.account_number,
        summary.holder_name,
        summary.balance,
        summary.transaction_count,
        last_activity
    )
}

/// Checks the chapter's assertions: balance $1500 and two transactions.
pub fn check(summary: &AccountSummary) -> Result<()> {
    let mut errors = ValidationError::new();
    if summary.balance != Decimal::from(1500) {
        errors.add(
            "balance",
            format!("expected 1500.00, got {:.2}", summary.balance),
        );
    }
    if summary.transaction_count != 2 {
        errors.add(
            "transaction_count",
            format!("expected 2, got {}", summary.transaction_count),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}
