//! The transfer process manager step by step with `given_process` (each event one step, the
//! commands it issues really processed), and the whole chain through the domain in memory.

use fidelis_core::prelude::*;
use fidelis_core::testing::given_process;
use fidelis_example::account::Account;
use fidelis_example::commands::{MakeDeposit, MakeWithdrawal, OpenAccount};
use fidelis_example::events::{AccountOpened, WithdrawalMade};
use fidelis_example::funds_transfer::FundsTransfer;
use fidelis_example::transfer::{
    CompleteTransfer, FailTransfer, InitiateTransfer, Transfer, TransferCompleted,
    TransferInitiated, TransferStatus,
};

fn opened(id: &Identifier, number: &str, deposit: i64) -> AccountOpened {
    AccountOpened {
        account_id: id.clone(),
        account_number: number.into(),
        holder_name: "Holder".into(),
        opening_deposit: Decimal::from(deposit),
    }
}

fn initiated(
    transfer: &Identifier,
    source: &Identifier,
    target: &Identifier,
    amount: i64,
) -> TransferInitiated {
    TransferInitiated {
        transfer_id: transfer.clone(),
        source: source.clone(),
        target: target.clone(),
        amount: Decimal::from(amount),
    }
}

#[tokio::test]
async fn the_start_step_withdraws_with_the_transfer_as_reference() {
    let (alice, bob, transfer) = (
        Identifier::generate(),
        Identifier::generate(),
        Identifier::generate(),
    );
    let outcome = given_process::<FundsTransfer>()
        .after(opened(&alice, "ACC-A", 1000))
        .after(opened(&bob, "ACC-B", 0))
        .after(initiated(&transfer, &alice, &bob, 250))
        .await;
    assert!(outcome.failures().is_empty(), "{:?}", outcome.failures());
    let state = outcome.state().expect("started");
    assert_eq!(state.status, "WITHDRAWN");
    assert_eq!(state.process_key(), Some(&transfer));
    assert!(!outcome.is_complete());
    assert_eq!(outcome.commands().names(), ["MakeWithdrawal"]);
    let withdrawal = outcome.commands().get::<MakeWithdrawal>().unwrap();
    assert_eq!(withdrawal.account_id, alice);
    assert_eq!(withdrawal.amount, Decimal::from(250));
    assert_eq!(withdrawal.reference.as_deref(), Some(transfer.as_str()));
    // Really processed: Alice's account lost the money.
    let account = outcome
        .domain()
        .repository::<Account>()
        .get(&alice)
        .await
        .unwrap();
    assert_eq!(account.balance, Decimal::from(750));
}

#[tokio::test]
async fn the_withdrawal_step_deposits_and_completes_then_the_end_step_ends() {
    let (alice, bob, transfer) = (
        Identifier::generate(),
        Identifier::generate(),
        Identifier::generate(),
    );
    let withdrawn = WithdrawalMade {
        account_id: alice.clone(),
        amount: Decimal::from(250),
        reference: Some(transfer.to_string()),
    };
    let outcome = given_process::<FundsTransfer>()
        .after(opened(&alice, "ACC-A", 1000))
        .after(opened(&bob, "ACC-B", 0))
        .after(initiated(&transfer, &alice, &bob, 250))
        .after(withdrawn.clone())
        .await;
    assert_eq!(
        outcome.commands().names(),
        ["MakeWithdrawal", "MakeDeposit", "CompleteTransfer"]
    );
    assert_eq!(
        outcome.commands().get::<MakeDeposit>().unwrap().account_id,
        bob
    );
    assert_eq!(
        outcome
            .commands()
            .get::<CompleteTransfer>()
            .unwrap()
            .transfer_id,
        transfer
    );
    assert_eq!(outcome.state().unwrap().status, "DEPOSITED");
    assert!(!outcome.is_complete());

    let outcome = given_process::<FundsTransfer>()
        .after(opened(&alice, "ACC-A", 1000))
        .after(opened(&bob, "ACC-B", 0))
        .after(initiated(&transfer, &alice, &bob, 250))
        .after(withdrawn)
        .after(TransferCompleted {
            transfer_id: transfer.clone(),
        })
        .await;
    assert!(outcome.is_complete());
    assert_eq!(outcome.state().unwrap().status, "COMPLETED");
}

#[tokio::test]
async fn without_the_funds_the_transfer_fails_with_the_reason() {
    let (alice, bob, transfer) = (
        Identifier::generate(),
        Identifier::generate(),
        Identifier::generate(),
    );
    let outcome = given_process::<FundsTransfer>()
        .after(opened(&alice, "ACC-A", 10))
        .after(opened(&bob, "ACC-B", 0))
        .after(initiated(&transfer, &alice, &bob, 250))
        .await;
    assert_eq!(
        outcome.commands().names(),
        ["MakeWithdrawal", "FailTransfer"]
    );
    let fail = outcome.commands().get::<FailTransfer>().unwrap();
    assert!(
        fail.reason.contains("Insufficient funds"),
        "{}",
        fail.reason
    );
    assert_eq!(outcome.state().unwrap().status, "FAILED");
    let account = outcome
        .domain()
        .repository::<Account>()
        .get(&alice)
        .await
        .unwrap();
    assert_eq!(account.balance, Decimal::from(10));
}

#[tokio::test]
async fn events_before_a_start_make_no_instance() {
    let outcome = given_process::<FundsTransfer>()
        .after(opened(&Identifier::from("acc"), "ACC-A", 10))
        .after(WithdrawalMade {
            account_id: Identifier::from("acc"),
            amount: Decimal::ONE,
            reference: Some("no-such-transfer".into()),
        })
        .await;
    assert!(outcome.state().is_none());
    assert!(outcome.commands().is_empty());
}

#[tokio::test]
async fn a_transfer_runs_to_its_end_before_process_returns() {
    let domain = fidelis_example::domain().build().await.unwrap();
    let open = |number: &str, deposit: i64| OpenAccount {
        account_number: number.into(),
        holder_name: "Holder".into(),
        opening_deposit: Decimal::from(deposit),
    };
    let alice: Identifier = domain.process(open("ACC-A", 100)).await.unwrap();
    let bob: Identifier = domain.process(open("ACC-B", 0)).await.unwrap();
    let id: Identifier = domain
        .process(InitiateTransfer {
            source: alice.clone(),
            target: bob.clone(),
            amount: Decimal::from(100),
        })
        .await
        .unwrap();
    let transfer = domain.repository::<Transfer>().get(&id).await.unwrap();
    assert_eq!(transfer.status, TransferStatus::Completed);
    assert_eq!(
        domain
            .repository::<Account>()
            .get(&bob)
            .await
            .unwrap()
            .balance,
        Decimal::from(100)
    );

    // A transfer to itself, or of nothing, is refused before anything starts.
    let refused = domain
        .process(InitiateTransfer {
            source: alice.clone(),
            target: alice.clone(),
            amount: Decimal::ZERO,
        })
        .await
        .unwrap_err();
    let messages = refused.as_validation().unwrap().messages();
    assert!(
        messages.contains_key("amount") && messages.contains_key("target"),
        "{messages:?}"
    );
}
