//! The example's transfers (DESIGN §8.2, §8.11) on every adapter, in sync and async
//! processing: a transfer completes with both balances right; one without the funds fails
//! with the reason and moves nothing; one whose deposit is refused after the withdrawal is
//! compensated (the money returns, the transfer fails). Never halfway.

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use fidelis_core::{DomainBuilder, Processing};
use fidelis_example::account::Account;
use fidelis_example::activity::ActivityFeed;
use fidelis_example::commands::{CloseAccount, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::funds_transfer::FundsTransfer;
use fidelis_example::transfer::{InitiateTransfer, Transfer, TransferStatus};

mod support;
use support::{Backend, on_every_adapter};

async fn open(domain: &Domain, number: &str, deposit: i64) -> Identifier {
    domain
        .process(OpenAccount {
            account_number: number.into(),
            holder_name: format!("Holder of {number}"),
            opening_deposit: Decimal::from(deposit),
        })
        .await
        .unwrap()
}

async fn balance(domain: &Domain, account: &Identifier) -> Decimal {
    let aggregate = domain.repository::<Account>().get(account).await.unwrap();
    let summary = domain
        .repository::<AccountSummary>()
        .get(account)
        .await
        .unwrap();
    assert_eq!(aggregate.balance, summary.balance, "the dashboard agrees");
    aggregate.balance
}

async fn transfer(
    domain: &Domain,
    source: &Identifier,
    target: &Identifier,
    amount: i64,
) -> Transfer {
    let id: Identifier = domain
        .process(InitiateTransfer {
            source: source.clone(),
            target: target.clone(),
            amount: Decimal::from(amount),
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    let process = domain
        .process_state::<FundsTransfer>(&id)
        .await
        .unwrap()
        .expect("the transfer's process started");
    assert!(process.is_complete(), "{process:?}");
    domain.repository::<Transfer>().get(&id).await.unwrap()
}

async fn transfers(domain: Domain) {
    let alice = open(&domain, "ACC-A", 1000).await;
    let bob = open(&domain, "ACC-B", 100).await;

    // Completes: both balances move.
    let done = transfer(&domain, &alice, &bob, 250).await;
    assert_eq!(done.status, TransferStatus::Completed);
    assert_eq!(done.reason, None);
    assert_eq!(balance(&domain, &alice).await, Decimal::from(750));
    assert_eq!(balance(&domain, &bob).await, Decimal::from(350));
    let state = domain
        .process_state::<FundsTransfer>(&done.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "COMPLETED");

    // Without the funds: fails with the reason, nothing moves.
    let refused = transfer(&domain, &bob, &alice, 5000).await;
    assert_eq!(refused.status, TransferStatus::Failed);
    let reason = refused.reason.clone().unwrap();
    assert!(reason.contains("Insufficient funds"), "{reason}");
    assert_eq!(balance(&domain, &alice).await, Decimal::from(750));
    assert_eq!(balance(&domain, &bob).await, Decimal::from(350));

    // The deposit is refused after the withdrawal (the target is closed): the money returns.
    let closed = open(&domain, "ACC-C", 0).await;
    domain
        .process(CloseAccount {
            account_id: closed.clone(),
            reason: None,
        })
        .await
        .unwrap();
    let compensated = transfer(&domain, &alice, &closed, 100).await;
    assert_eq!(compensated.status, TransferStatus::Failed);
    let reason = compensated.reason.clone().unwrap();
    assert!(reason.contains("is closed"), "{reason}");
    assert!(reason.contains("returned"), "{reason}");
    assert_eq!(balance(&domain, &alice).await, Decimal::from(750));
    let state = domain
        .process_state::<FundsTransfer>(&compensated.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state.status, "FAILED");
    // Alice's stream shows the withdrawal and its return, both naming the transfer.
    let stream = domain.event_store().stream_of::<Account>(&alice).unwrap();
    let events = domain.event_store().read_stream(&stream).await.unwrap();
    let referencing = events
        .iter()
        .filter(|e| e.data().unwrap()["reference"].as_str() == Some(compensated.id.as_str()))
        .count();
    assert_eq!(referencing, 2);

    // The activity feed lists both aggregates' events.
    let feed = domain
        .repository::<ActivityFeed>()
        .query()
        .filter(ActivityFeed::fields().subject.eq(compensated.id.clone()))
        .order_by(ActivityFeed::fields().position.asc())
        .all()
        .await
        .unwrap();
    let kinds: Vec<&str> = feed.iter().map(|e| e.description.as_str()).collect();
    assert_eq!(feed.len(), 2, "{kinds:?}");
    assert!(kinds[0].contains("initiated"), "{kinds:?}");
    assert!(kinds[1].contains("transfer failed"), "{kinds:?}");
    assert_eq!(domain.metrics().failed_event_handlers, 0);
}

fn builder() -> DomainBuilder {
    fidelis_example::domain()
}

async fn sync_transfers(backend: &Backend) {
    transfers(backend.build(builder()).await).await;
}

async fn async_transfers(backend: &Backend) {
    let domain = backend.build(builder().processing(Processing::Async)).await;
    transfers(domain.clone()).await;
    assert!(domain.dead_letters().list().await.unwrap().is_empty());
}

/// A transfer reloaded by another domain on the same database (another process) reads the
/// same; the process state too.
async fn reload(backend: &Backend) {
    let domain = backend.build(builder()).await;
    let alice = open(&domain, "ACC-A", 300).await;
    let bob = open(&domain, "ACC-B", 0).await;
    let done = transfer(&domain, &alice, &bob, 300).await;
    let other = backend.build(builder()).await;
    let again = other.repository::<Transfer>().get(&done.id).await.unwrap();
    assert_eq!(again.status, TransferStatus::Completed);
    assert_eq!(again.version(), done.version());
    let state = other
        .process_state::<FundsTransfer>(&done.id)
        .await
        .unwrap()
        .unwrap();
    assert!(state.is_complete());
    assert_eq!(state.amount, Decimal::from(300));
}

on_every_adapter!(sync_transfers, async_transfers, reload);
