//! The given / after / process testing DSL on the example domain.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use std::collections::BTreeMap;

use fidelis_core::testing::{given, given_events, given_in};
use fidelis_example::account::{Account, AccountError, AccountStatus};
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
        .with_projections()
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
    assert_eq!(outcome.aggregate().status, AccountStatus::Closed);
    let summary = outcome
        .domain()
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
    assert_eq!(outcome.aggregate().status, AccountStatus::Active);
}

#[tokio::test]
async fn a_deposit_on_a_closed_account_is_a_typed_error() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::ZERO))
        .after(AccountClosed {
            account_id: id.clone(),
            reason: None,
        })
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::ONE,
            reference: None,
        })
        .await;
    let error = outcome.rejection().expect("refused");
    assert_eq!(
        error.domain::<AccountError>(),
        Some(&AccountError::Closed {
            account_id: id.clone()
        })
    );
    assert_eq!(error.to_string(), format!("account {id} is closed"));
    assert_eq!(outcome.aggregate().balance, Decimal::ZERO);
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
    let id: Identifier = outcome.output().cloned().unwrap(); // typed: the handler's output

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
#[should_panic(expected = "test setup error: the history of `Loan`")]
async fn a_history_for_a_stored_aggregate_is_a_setup_error_not_a_rejection() {
    use second_context::{GrantLoan, Loan, LoanGranted};
    let _ = given::<Loan>()
        .after(LoanGranted {
            loan_id: Identifier::generate(),
            principal: 5.0,
        })
        .process(GrantLoan {
            borrower: "Bo".into(),
            principal: 1.0,
        })
        .await;
}

#[tokio::test]
async fn a_stored_aggregate_is_created_by_a_command() {
    use second_context::{GrantLoan, Loan};
    let outcome = given::<Loan>()
        .process(GrantLoan {
            borrower: "Bo".into(),
            principal: 1.0,
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(outcome.aggregate().principal, 1.0);
}

// ---- the history is replayed into the aggregate only -------------------------------------

#[tokio::test]
async fn the_history_reaches_neither_projectors_nor_event_handlers() {
    use fidelis_example::alerts::{ComplianceDesk, LARGE_TRANSACTION};
    let id = Identifier::generate();
    let outcome = given_in::<Account>(
        Domain::builder("test")
            .database("memory")
            .resource(ComplianceDesk::default()),
    )
    .after(opened(&id, Decimal::from(10)))
    .after(DepositMade {
        account_id: id.clone(),
        amount: LARGE_TRANSACTION, // a compliance alert, had it happened now
        reference: None,
    })
    .process(MakeDeposit {
        account_id: id.clone(),
        amount: Decimal::from(1),
        reference: None,
    })
    .await;

    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(
        outcome.aggregate().balance,
        LARGE_TRANSACTION + Decimal::from(11)
    );
    let desk = outcome.domain().resource::<ComplianceDesk>().unwrap();
    assert!(desk.alerts().is_empty(), "{:?}", desk.alerts());
    let summary = outcome
        .domain()
        .repository::<AccountSummary>()
        .find(&id)
        .await
        .unwrap();
    assert!(summary.is_none(), "no projector ran: {summary:?}");
}

#[tokio::test]
async fn with_projections_the_read_side_sees_the_history_and_the_command() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(10)))
        .with_projections()
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(5),
            reference: None,
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    let summary = outcome
        .domain()
        .repository::<AccountSummary>()
        .get(&id)
        .await
        .unwrap();
    assert_eq!(
        (summary.balance, summary.transaction_count),
        (Decimal::from(15), 2)
    );
}

#[tokio::test]
#[should_panic(
    expected = "test setup error: `after(..)` event #2 (`DepositMade`) happened to `Account`"
)]
async fn a_history_about_two_accounts_is_a_setup_error() {
    let id = Identifier::generate();
    let _ = given::<Account>()
        .after(opened(&id, Decimal::from(10)))
        .after(DepositMade {
            account_id: Identifier::generate(),
            amount: Decimal::from(1),
            reference: None,
        })
        .process(MakeDeposit {
            account_id: id,
            amount: Decimal::from(1),
            reference: None,
        })
        .await;
}

#[tokio::test]
#[should_panic(expected = "test setup error: the scenario's domain does not build")]
async fn a_domain_that_does_not_build_is_a_setup_error() {
    let _ = given_in::<Account>(
        Domain::builder("test")
            .database("memory")
            .discover_crate("no_such_crate"),
    )
    .process(OpenAccount {
        account_number: "ACC-1".into(),
        holder_name: "Ada".into(),
        opening_deposit: Decimal::from(1),
    })
    .await;
}

#[tokio::test]
async fn rejection_messages_name_fields_or_say_why_under_underscore() {
    let id = Identifier::generate();
    let outcome = given::<Account>()
        .after(opened(&id, Decimal::from(10)))
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(-3),
            reference: None,
        })
        .await;
    assert_eq!(
        outcome.rejection_messages(),
        BTreeMap::from([(
            "amount".to_owned(),
            vec!["Deposit amount must be positive".to_owned()]
        )])
    );
    assert_eq!(outcome.output(), None);

    let outcome = outcome
        .process(MakeDeposit {
            account_id: Identifier::generate(),
            amount: Decimal::from(3),
            reference: None,
        })
        .await;
    let messages = outcome.rejection_messages();
    assert_eq!(messages.keys().collect::<Vec<_>>(), ["_"]);
    assert!(messages["_"][0].contains("not found"), "{messages:?}");

    let outcome = outcome
        .process(MakeDeposit {
            account_id: id,
            amount: Decimal::from(3),
            reference: None,
        })
        .await;
    assert!(outcome.rejection_messages().is_empty());
    assert_eq!(outcome.output(), Some(&()));
}

// ---- several aggregates: a library where joining issues a card ---------------------------

#[event(part_of = Member)]
pub struct MemberJoined {
    pub member_id: Identifier,
    pub name: String,
}

#[aggregate(event_sourced)]
pub struct Member {
    #[field(max_length = 50)]
    pub name: String,
}

#[aggregate]
impl Member {
    #[handle(Join, create)]
    fn join(command: Join) -> Result<Self> {
        let mut member = Self::create_new();
        member.raise(MemberJoined {
            member_id: member.id.clone(),
            name: command.name,
        })?;
        Ok(member)
    }

    #[apply]
    fn on_joined(&mut self, event: &MemberJoined) {
        self.name = event.name.clone();
    }
}

#[command(part_of = Member)]
pub struct Join {
    pub name: String,
}

#[event(part_of = Card)]
pub struct CardIssued {
    pub card_id: Identifier,
    pub member_id: Identifier,
}

#[aggregate(event_sourced)]
pub struct Card {
    pub member_id: Option<Identifier>,
}

#[aggregate]
impl Card {
    #[handle(IssueCard, create)]
    fn issue(command: IssueCard) -> Result<Self> {
        let mut card = Self::create_new();
        card.raise(CardIssued {
            card_id: card.id.clone(),
            member_id: command.member_id,
        })?;
        Ok(card)
    }

    #[apply]
    fn on_issued(&mut self, event: &CardIssued) {
        self.member_id = Some(event.member_id.clone());
    }
}

#[command(part_of = Card)]
pub struct IssueCard {
    pub member_id: Identifier,
}

/// Joining issues a card: an event handler issuing a command of another aggregate.
pub struct CardDesk;

#[event_handler(part_of = Member)]
impl CardDesk {
    #[handle(MemberJoined)]
    async fn on_joined(event: &Event<MemberJoined>, ctx: &mut EventHandlerContext) -> Result<()> {
        ctx.process(IssueCard {
            member_id: event.member_id.clone(),
        })
        .await?;
        Ok(())
    }
}

/// One row per member, from the events of two aggregates.
#[projection]
pub struct MemberCards {
    #[field(identifier)]
    pub member_id: Identifier,
    #[field(max_length = 50)]
    pub name: String,
    #[field(default = 0)]
    pub cards: i64,
}

pub struct MemberCardsProjector;

#[projector(for = MemberCards, aggregates = [Member, Card])]
impl MemberCardsProjector {
    #[on(MemberJoined)]
    async fn on_joined(event: &Event<MemberJoined>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        ctx.repository::<MemberCards>()
            .add(MemberCards {
                member_id: event.member_id.clone(),
                name: event.name.clone(),
                cards: 0,
            })
            .await
    }

    #[on(CardIssued)]
    async fn on_issued(event: &Event<CardIssued>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let mut repo = ctx.repository::<MemberCards>();
        let mut row = repo.get(&event.member_id).await?;
        row.cards += 1;
        repo.add(row).await
    }
}

#[tokio::test]
async fn all_events_include_those_of_commands_issued_by_event_handlers() {
    let outcome = given::<Member>().process(Join { name: "Ada".into() }).await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(outcome.events().type_names(), ["Test.MemberJoined.v1"]);
    assert_eq!(
        outcome.all_events().type_names(),
        ["Test.MemberJoined.v1", "Test.CardIssued.v1"]
    );
    let member_id = outcome.output().cloned().unwrap();
    let card = outcome.all_events().get::<CardIssued>().unwrap();
    assert_eq!(card.member_id, member_id);
    assert_eq!(outcome.aggregate().name, "Ada");
}

#[tokio::test]
async fn given_events_of_several_aggregates_then_a_projection() {
    let member_id = Identifier::generate();
    let row = given_events()
        .event(MemberJoined {
            member_id: member_id.clone(),
            name: "Grace".into(),
        })
        .event(CardIssued {
            card_id: Identifier::generate(),
            member_id: member_id.clone(),
        })
        .event(CardIssued {
            card_id: Identifier::generate(),
            member_id: member_id.clone(),
        })
        .then_projection::<MemberCards>(&member_id)
        .await
        .expect("the projector made the row");
    assert_eq!((row.name.as_str(), row.cards), ("Grace", 2));
}

#[tokio::test]
async fn a_scenario_takes_events_of_other_aggregates() {
    let member_id = Identifier::generate();
    let card_id = Identifier::generate();
    let outcome = given::<Card>()
        .given_event(MemberJoined {
            member_id: member_id.clone(),
            name: "Grace".into(),
        })
        .after(CardIssued {
            card_id: card_id.clone(),
            member_id: member_id.clone(),
        })
        .with_projections()
        .process(IssueCard {
            member_id: member_id.clone(),
        })
        .await;
    assert!(outcome.accepted(), "{:?}", outcome.rejection());
    assert_eq!(outcome.aggregate().id, card_id, "the `after(..)` aggregate");
    let row = outcome
        .domain()
        .repository::<MemberCards>()
        .get(&member_id)
        .await
        .unwrap();
    assert_eq!(row.cards, 2, "the history's card and the new one");
}
