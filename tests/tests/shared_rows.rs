//! One projection row updated by concurrent units of work, on every adapter: no update is lost.
//!
//! Units of work commit in parallel (no store-wide lock on PostgreSQL or in memory), so two
//! projectors may read the same row at once. Each adapter keeps their read-then-write apart:
//! memory checks at commit that a row read is unchanged (and retries), SQLite has one writer,
//! PostgreSQL locks the row's key before reading it, also while the row does not exist yet.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use fidelis_example::alerts::ComplianceDesk;
use fidelis_example::commands::{MakeDeposit, OpenAccount};
use fidelis_example::events::DepositMade;

mod support;
use support::{Backend, on_every_adapter};

on_every_adapter!(concurrent_updates_of_one_row_lose_nothing);

/// Deposits counted across every account: one row, created by the first deposit.
#[projection]
pub struct DepositCount {
    #[field(identifier)]
    pub id: Identifier,
    pub deposits: i64,
}

const COUNT: &str = "all";

#[derive(Default)]
pub struct DepositCounter;

#[projector(for = DepositCount, aggregates = [fidelis_example::account::Account])]
impl DepositCounter {
    #[on(DepositMade)]
    async fn on_deposit_made(
        &self,
        _event: &Event<DepositMade>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut rows = ctx.repository::<DepositCount>();
        let mut count = rows.find(COUNT).await?.unwrap_or(DepositCount {
            id: Identifier::new(COUNT),
            deposits: 0,
        });
        // Widens the window between the read and the write.
        tokio::task::yield_now().await;
        count.deposits += 1;
        rows.add(count).await
    }
}

async fn concurrent_updates_of_one_row_lose_nothing(backend: &Backend) {
    const WRITERS: usize = 8;
    const DEPOSITS: usize = 10;
    let domain = backend
        .build(
            Domain::builder("fidelis")
                .discover_crate("fidelis_example")
                .discover_crate("shared_rows")
                .resource(ComplianceDesk::default()),
        )
        .await;
    let mut accounts = Vec::new();
    for writer in 0..WRITERS {
        let id = domain
            .process(OpenAccount {
                account_number: format!("ACC-{writer}"),
                holder_name: "Alice Johnson".into(),
                opening_deposit: Decimal::from(100),
            })
            .await
            .expect("the account opens");
        accounts.push(id);
    }
    let writers: Vec<_> = accounts
        .into_iter()
        .map(|account_id| {
            let domain = domain.clone();
            tokio::spawn(async move {
                for _ in 0..DEPOSITS {
                    domain
                        .process(MakeDeposit {
                            account_id: account_id.clone(),
                            amount: Decimal::from(1),
                            reference: None,
                        })
                        .await?;
                }
                Ok::<_, Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer
            .await
            .expect("the writer runs")
            .expect("every deposit commits");
    }
    let count = domain
        .repository::<DepositCount>()
        .get(COUNT)
        .await
        .expect("the count");
    assert_eq!(count.deposits, (WRITERS * DEPOSITS) as i64);
}
