//! Typed queries on a projection through its generated field handles (memory adapter; the
//! storage conformance suite runs the same operators on every adapter).

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use fidelis_example::dashboard::AccountSummary;

async fn ledger() -> Domain {
    let domain = fidelis_example::domain().build().await.unwrap();
    let rows = [
        ("a", "ACC-001", "Alice", Decimal::from(1500), 2, true),
        ("b", "ACC-002", "Bob", Decimal::from(20), 1, false),
        ("c", "ACC-010", "Carol", Decimal::from(700), 5, true),
        ("d", "SAV_100", "Dan", Decimal::from(700), 3, false),
        ("e", "SAV%200", "Eve", Decimal::from(-5), 9, true),
    ];
    for (id, number, holder, balance, count, active) in rows {
        domain
            .repository::<AccountSummary>()
            .add(AccountSummary {
                account_id: id.into(),
                account_number: number.into(),
                holder_name: holder.into(),
                balance,
                transaction_count: count,
                last_transaction_at: active.then(Utc::now),
            })
            .await
            .unwrap();
    }
    domain
}

/// The ids of the matching rows, ordered by id.
async fn by_id(query: fidelis_core::Query<'_, AccountSummary>) -> Vec<AccountSummary> {
    query
        .order_by(AccountSummary::fields().account_id.asc())
        .all()
        .await
        .unwrap()
}

fn ids(rows: &[AccountSummary]) -> Vec<&str> {
    rows.iter().map(|row| row.account_id.as_str()).collect()
}

#[tokio::test]
async fn every_operator_filters_as_documented() {
    let domain = ledger().await;
    let repo = domain.repository::<AccountSummary>();
    let f = AccountSummary::fields();

    assert_eq!(
        ids(&by_id(repo.query().filter(f.balance.eq(Decimal::from(700)))).await),
        ["c", "d"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.balance.ne(Decimal::from(700)))).await),
        ["a", "b", "e"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.balance.lt(Decimal::from(20)))).await),
        ["e"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.balance.le(Decimal::from(20)))).await),
        ["b", "e"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.balance.gt(Decimal::from(700)))).await),
        ["a"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.balance.ge(Decimal::from(700)))).await),
        ["a", "c", "d"]
    );
    assert_eq!(
        ids(&by_id(
            repo.query()
                .filter(f.holder_name.is_in(["Bob", "Eve", "Zed"]))
        )
        .await),
        ["b", "e"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.last_transaction_at.is_null())).await),
        ["b", "d"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.last_transaction_at.is_not_null())).await),
        ["a", "c", "e"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.account_number.starts_with("ACC-0"))).await),
        ["a", "b", "c"]
    );
    // The prefix is literal: `%` and `_` are not wildcards.
    assert_eq!(
        ids(&by_id(repo.query().filter(f.account_number.starts_with("SAV%"))).await),
        ["e"]
    );
    assert_eq!(
        ids(&by_id(repo.query().filter(f.account_number.starts_with("SAV_"))).await),
        ["d"]
    );
    // Filters combine with AND.
    let both = repo
        .query()
        .filter(f.balance.ge(Decimal::from(700)))
        .filter(f.transaction_count.gt(2));
    assert_eq!(ids(&by_id(both).await), ["c", "d"]);
}

#[tokio::test]
async fn ordering_paging_and_counting() {
    let domain = ledger().await;
    let repo = domain.repository::<AccountSummary>();
    let f = AccountSummary::fields();

    let rows = repo
        .query()
        .order_by(f.balance.desc())
        .order_by(f.holder_name.asc())
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&rows), ["a", "c", "d", "b", "e"]);
    let page = repo
        .query()
        .order_by(f.balance.asc())
        .offset(1)
        .limit(2)
        .all()
        .await
        .unwrap();
    assert_eq!(ids(&page), ["b", "c"]);
    // Rows without a value sort last, whichever the direction.
    let rows = repo
        .query()
        .order_by(f.last_transaction_at.asc())
        .order_by(f.account_id.asc())
        .all()
        .await
        .unwrap();
    assert_eq!(&ids(&rows)[3..], ["b", "d"]);

    assert_eq!(repo.query().count().await.unwrap(), 5);
    assert_eq!(
        repo.query()
            .filter(f.balance.gt(Decimal::ZERO))
            .limit(1)
            .count()
            .await
            .unwrap(),
        4
    );
    let first = repo
        .query()
        .order_by(f.transaction_count.desc())
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.holder_name, "Eve");
    assert!(
        repo.query()
            .filter(f.balance.gt(Decimal::from(1_000_000_000)))
            .first()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn rows_are_removed_and_missing_rows_are_not_found() {
    let domain = ledger().await;
    let repo = domain.repository::<AccountSummary>();
    repo.remove("b").await.unwrap();
    assert!(repo.find("b").await.unwrap().is_none());
    assert!(repo.get("b").await.unwrap_err().is_not_found());
    assert_eq!(repo.query().count().await.unwrap(), 4);
}

#[tokio::test]
async fn an_invalid_row_is_refused() {
    let domain = ledger().await;
    let error = domain
        .repository::<AccountSummary>()
        .add(AccountSummary {
            account_id: "z".into(),
            account_number: "X".repeat(21),
            holder_name: String::new(),
            balance: Decimal::ZERO,
            transaction_count: 0,
            last_transaction_at: None,
        })
        .await
        .unwrap_err();
    let errors = error.as_validation().unwrap();
    assert_eq!(
        errors.messages_for("account_number"),
        ["is too long (max 20)"]
    );
    assert_eq!(errors.messages_for("holder_name"), ["is required"]);
    assert_eq!(
        domain
            .repository::<AccountSummary>()
            .query()
            .count()
            .await
            .unwrap(),
        5
    );
}
