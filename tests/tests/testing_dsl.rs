//! The given / after / process testing DSL on the example domain.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use fidelis_core::testing::given;
use fidelis_example::account::Account;
use fidelis_example::commands::{CloseAccount, MakeDeposit, MakeWithdrawal, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::events::{AccountClosed, AccountOpened, DepositMade, WithdrawalMade};

fn opened(id: &Identifier, deposit: Decimal) -> AccountOpened {
    AccountOpened {
        account_id: id.clone(),
        account_number: "ACC-042".into(),
        holder_name: "Grace Hopper".into(),
        opening_deposit: deposit,
    }
}

#[tokio::test]
async fn an_accepted_command_raises_its_event_and_changes_state() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(1000)))
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(500),
            reference: Some("paycheck".into()),
        })
        .await;

    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert!(!outcome.rejected());
    assert_eq!(outcome.events().len(), 1);
    assert!(outcome.events().contains::<DepositMade>());
    assert!(!outcome.events().contains::<WithdrawalMade>());
    let deposit = outcome.events().get::<DepositMade>().unwrap();
    assert_eq!(deposit.amount, Decimal::from(500));
    assert_eq!(deposit.metadata().version, 1);
    assert_eq!(outcome.aggregate().balance, Decimal::from(1500));
    assert_eq!(outcome.aggregate().version(), 1);
}

#[tokio::test]
async fn a_rejected_command_leaves_the_state_before_it() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(100)))
        .after(DepositMade {
            account_id: id.clone(),
            amount: Decimal::from(50),
            reference: None,
        })
        .process(MakeWithdrawal {
            account_id: id.clone(),
            amount: Decimal::from(500),
            reference: None,
        })
        .await;

    assert!(outcome.rejected());
    let messages = outcome.rejection().and_then(Error::as_validation).unwrap();
    assert_eq!(
        messages.messages_for("balance"),
        ["Insufficient funds: balance cannot be negative"]
    );
    assert!(outcome.events().is_empty());
    assert_eq!(outcome.aggregate().balance, Decimal::from(150));
}

#[tokio::test]
async fn commands_chain_and_projections_follow_the_history() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(100)))
        .process(MakeWithdrawal {
            account_id: id.clone(),
            amount: Decimal::from(100),
            reference: None,
        })
        .await
        .process(CloseAccount {
            account_id: id.clone(),
            reason: Some("moving".into()),
        })
        .await;

    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(outcome.events().of_type::<AccountClosed>().len(), 1);
    assert_eq!(outcome.aggregate().status, "CLOSED");
    let summary = outcome
        .domain()
        .unwrap()
        .repository::<AccountSummary>()
        .get(&id)
        .await
        .unwrap();
    assert_eq!(summary.balance, Decimal::ZERO);
    assert_eq!(summary.transaction_count, 2);
}

#[tokio::test]
async fn closing_with_money_in_the_account_is_refused() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(10)))
        .process(CloseAccount {
            account_id: id.clone(),
            reason: None,
        })
        .await;
    let messages = outcome.rejection().and_then(Error::as_validation).unwrap();
    assert_eq!(
        messages.messages_for("status"),
        ["Cannot close account with non-zero balance"]
    );
    assert_eq!(outcome.aggregate().status, "ACTIVE");
}

#[tokio::test]
async fn without_history_the_command_creates_the_aggregate() {
    let outcome = given::<Account>()
        .process(OpenAccount {
            account_number: "ACC-7".into(),
            holder_name: "Alan Turing".into(),
            opening_deposit: Decimal::from(5),
        })
        .await;
    assert!(outcome.accepted());
    let id = outcome.output::<Identifier>().unwrap().clone();
    assert_eq!(outcome.aggregate().id, id);
    assert_eq!(outcome.aggregate().holder_name, "Alan Turing");
    assert_eq!(outcome.events().type_names(), ["Test.AccountOpened.v1"]);
}

#[tokio::test]
async fn an_invalid_command_is_a_rejection() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(10)))
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(-3),
            reference: None,
        })
        .await;
    let messages = outcome.rejection().and_then(Error::as_validation).unwrap();
    assert_eq!(
        messages.messages_for("amount"),
        ["Deposit amount must be positive"]
    );
    assert_eq!(outcome.aggregate().balance, Decimal::from(10));
}

#[tokio::test]
async fn a_history_for_a_stored_aggregate_is_refused_with_the_fix() {
    use second_context::{GrantLoan, Loan, LoanGranted};
    let outcome = given::<Loan>()
        .after(LoanGranted {
            loan_id: Identifier::generate(),
            principal: 5.0,
        })
        .process(GrantLoan {
            borrower: "Bo".into(),
            principal: 1.0,
        })
        .await;
    let error = outcome.rejection().unwrap().to_string();
    assert!(error.contains("`Loan` is a stored aggregate"), "{error}");

    let outcome = given::<Loan>()
        .process(GrantLoan {
            borrower: "Bo".into(),
            principal: 1.0,
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(outcome.aggregate().principal, 1.0);
}
