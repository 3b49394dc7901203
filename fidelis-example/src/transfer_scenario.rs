//! The transfer part of the walk-through (chapter 9): the account holder sends money to a
//! second account, which completes, and the second account tries to send more than it has,
//! which fails with the reason and moves nothing.

use std::time::{Duration, Instant};

use fidelis_core::prelude::*;

use crate::account::Account;
use crate::commands::OpenAccount;
use crate::transfer::{InitiateTransfer, Transfer, TransferStatus};

/// One transfer as the walk-through shows it.
#[derive(Clone, Debug)]
pub struct TransferLine {
    /// The transfer.
    pub transfer: Transfer,
    /// The source account's number.
    pub from: String,
    /// The target account's number.
    pub to: String,
}

/// What the transfer part produced.
#[derive(Clone, Debug)]
pub struct Transfers {
    /// The transfer that completes, then the one that fails.
    pub lines: Vec<TransferLine>,
    /// The two accounts afterwards: the holder's, then the second one.
    pub accounts: [Account; 2],
}

/// How the walk-through waits for a transfer to end: in sync processing it has ended when
/// `process` returns, with the engine in this process `settle` runs it, and with an engine
/// process of its own the walk-through polls until `timeout`.
#[derive(Clone, Copy, Debug)]
pub enum Wait {
    /// `domain.settle()`.
    Settle,
    /// Polls the transfer until it ends, at most this long.
    Poll(Duration),
}

/// Opens `ACC-002` for Bob Smith with nothing, sends $200 from `holder` to it (completes),
/// then tries to send $5000 back (fails: insufficient funds).
pub async fn run(domain: &Domain, holder: &Identifier, wait: Wait) -> Result<Transfers> {
    let second: Identifier = domain
        .process(OpenAccount {
            account_number: "ACC-002".into(),
            holder_name: "Bob Smith".into(),
            opening_deposit: Decimal::ZERO,
        })
        .await?;
    let mut lines = Vec::new();
    for (from, to, amount) in [(holder, &second, 200), (&second, holder, 5000)] {
        let id: Identifier = domain
            .process(InitiateTransfer {
                source: from.clone(),
                target: to.clone(),
                amount: Decimal::from(amount),
            })
            .await?;
        let transfer = ended(domain, &id, wait).await?;
        let number = |id: &Identifier| {
            let id = id.clone();
            async move {
                domain
                    .repository::<Account>()
                    .get(&id)
                    .await
                    .map(|a| a.account_number)
            }
        };
        lines.push(TransferLine {
            from: number(from).await?,
            to: number(to).await?,
            transfer,
        });
    }
    let accounts = [
        domain.repository::<Account>().get(holder).await?,
        domain.repository::<Account>().get(&second).await?,
    ];
    Ok(Transfers { lines, accounts })
}

async fn ended(domain: &Domain, id: &Identifier, wait: Wait) -> Result<Transfer> {
    match wait {
        Wait::Settle => {
            domain.settle().await?;
            domain.repository::<Transfer>().get(id).await
        }
        Wait::Poll(timeout) => {
            let deadline = Instant::now() + timeout;
            loop {
                let transfer = domain.repository::<Transfer>().get(id).await?;
                if transfer.status != TransferStatus::Pending {
                    return Ok(transfer);
                }
                if Instant::now() >= deadline {
                    return Err(Error::usage(format!(
                        "transfer {id} did not end within {timeout:?}: is `fidelis-example engine` running on the same database?"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The transfers block.
pub fn report(transfers: &Transfers) -> String {
    let mut out = String::from("=== Transfers ===");
    for line in &transfers.lines {
        let status = match line.transfer.status {
            TransferStatus::Pending => "PENDING",
            TransferStatus::Completed => "COMPLETED",
            TransferStatus::Failed => "FAILED",
        };
        out.push_str(&format!(
            "\n${:.2} {} -> {}: {status}",
            line.transfer.amount, line.from, line.to
        ));
        if let Some(reason) = &line.transfer.reason {
            out.push_str(&format!(" ({reason})"));
        }
    }
    for account in &transfers.accounts {
        out.push_str(&format!(
            "\nBalance of {}: ${:.2}",
            account.account_number, account.balance
        ));
    }
    out
}

/// Checks the transfers: the first completed, the second failed for want of funds, and the
/// balances moved by the first only ($1300 and $200).
pub fn check(transfers: &Transfers) -> Result<()> {
    let mut errors = ValidationError::new();
    let statuses: Vec<&TransferStatus> = transfers
        .lines
        .iter()
        .map(|line| &line.transfer.status)
        .collect();
    if statuses != [&TransferStatus::Completed, &TransferStatus::Failed] {
        errors.add(
            "transfers",
            format!("expected one completed and one failed, got {statuses:?}"),
        );
    }
    let funds = transfers
        .lines
        .get(1)
        .and_then(|line| line.transfer.reason.as_deref())
        .is_some_and(|reason| reason.contains("Insufficient funds"));
    if !funds {
        errors.add(
            "reason",
            "the failed transfer does not say `Insufficient funds`",
        );
    }
    let [holder, second] = &transfers.accounts;
    if holder.balance != Decimal::from(1300) || second.balance != Decimal::from(200) {
        errors.add(
            "balance",
            format!(
                "expected 1300.00 and 200.00, got {:.2} and {:.2}",
                holder.balance, second.balance
            ),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}
