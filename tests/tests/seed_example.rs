//! The seed chapter as an integration test: the example's walk-through on the memory default.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::events::{AccountOpened, DepositMade};
use fidelis_example::scenario;

#[tokio::test]
async fn the_chapter_walkthrough_updates_the_dashboard() {
    let domain = fidelis_example::domain()
        .build()
        .await
        .expect("the example domain is whole");
    let walkthrough = scenario::run(&domain).await.expect("the walk-through runs");

    let summary = &walkthrough.summary;
    assert_eq!(summary.account_number, "ACC-001");
    assert_eq!(summary.holder_name, "Alice Johnson");
    assert_eq!(summary.balance, Decimal::from(1500));
    assert_eq!(summary.transaction_count, 2);
    assert!(summary.last_transaction_at.is_some());
    assert_eq!(walkthrough.accounts_on_record, 1);
    scenario::check(summary).expect("the chapter's assertions hold");

    let dashboard = scenario::dashboard(summary);
    let lines: Vec<&str> = dashboard.lines().collect();
    assert_eq!(
        &lines[..5],
        [
            "=== Account Dashboard ===",
            "Account: ACC-001",
            "Holder: Alice Johnson",
            "Balance: $1500.00",
            "Transactions: 2",
        ]
    );
    assert!(lines[5].starts_with("Last activity: 20"), "{}", lines[5]);
}

#[tokio::test]
async fn the_walkthrough_records_two_events_in_the_account_stream() {
    let domain = fidelis_example::domain().build().await.unwrap();
    let walkthrough = scenario::run(&domain).await.unwrap();

    let store = domain.event_store();
    let stream = store
        .stream_of::<fidelis_example::account::Account>(&walkthrough.account_id)
        .unwrap();
    assert_eq!(
        stream,
        format!("fidelis::account-{}", walkthrough.account_id)
    );
    let events = store.read_stream(&stream).await.unwrap();
    assert_eq!(events.len(), 2);

    let opened = events[0].decode::<AccountOpened>().unwrap();
    assert_eq!(opened.opening_deposit, Decimal::from(1000));
    let deposit = events[1].decode::<DepositMade>().unwrap();
    assert_eq!(deposit.reference.as_deref(), Some("paycheck"));

    let meta: Vec<_> = events.iter().map(|e| &e.metadata).collect();
    assert_eq!(meta[0].type_name, "Fidelis.AccountOpened.v1");
    assert_eq!(meta[1].type_name, "Fidelis.DepositMade.v1");
    assert_eq!((meta[0].version, meta[1].version), (0, 1));
    assert_eq!((meta[0].global_position, meta[1].global_position), (1, 2));
    assert_eq!(meta[0].category(), "fidelis::account");
    // Two commands, two requests: different correlation ids.
    assert_ne!(meta[0].correlation_id, meta[1].correlation_id);
    assert!(meta.iter().all(|m| m.causation_id.is_some()));

    let category = store
        .read_category("fidelis::account", meta[0].cursor())
        .await
        .unwrap();
    assert_eq!(category.len(), 1);
    assert_eq!(
        store
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap()
            .len(),
        2
    );
    let summaries = domain
        .repository::<AccountSummary>()
        .query()
        .all()
        .await
        .unwrap();
    assert_eq!(summaries.len(), 1);
}

#[test]
fn domain_is_cheap_to_share() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Domain>();
}
