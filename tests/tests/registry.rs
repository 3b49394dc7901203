//! The domain registry: whole-domain validation with every problem at once, isolation of
//! two bounded contexts, and explicit registration without discovery.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use fidelis_core::__private::{self as fp, AggregateRef, CommandRoute, ListenerRoute};
use fidelis_core::__private::{ElementKind, Registrar};
use fidelis_core::Element;
use fidelis_core::prelude::*;
use fidelis_example::account::Account;
use fidelis_example::alerts::ComplianceAlerts;
use fidelis_example::commands::{AccountCommandHandler, MakeDeposit, OpenAccount};
use fidelis_example::dashboard::{AccountSummary, AccountSummaryProjector};
use fidelis_example::events::{AccountClosed, AccountOpened, DepositMade, WithdrawalMade};
use fidelis_example::{commands, scenario};
use second_context::{GrantLoan, Loan, LoanGranted};

fn problems(error: Error) -> Vec<String> {
    match error {
        Error::Configuration { problems } => problems,
        other => panic!("expected a configuration error, got {other}"),
    }
}

async fn build_error(builder: fidelis_core::DomainBuilder) -> Vec<String> {
    problems(builder.build().await.expect_err("the domain is not whole"))
}

#[tokio::test]
async fn every_problem_of_a_domain_is_reported_at_once() {
    let problems = build_error(
        Domain::builder("broken")
            .without_discovery()
            .register::<MakeDeposit>()
            .register::<DepositMade>()
            .register::<AccountSummaryProjector>(),
    )
    .await;
    let expected = [
        "command `MakeDeposit` is part of aggregate `Account`, which is not registered in domain `broken`",
        "command `MakeDeposit` has no handler in domain `broken`: register a `#[command_handler]` with `#[handle(MakeDeposit)]`",
        "event `DepositMade` is part of aggregate `Account`, which is not registered in domain `broken`",
        "projector `AccountSummaryProjector` is for projection `AccountSummary`, which is not registered in domain `broken`",
        "`AccountSummaryProjector` listens to aggregate `Account`, which is not registered in domain `broken`",
        "`AccountSummaryProjector::on_account_opened` handles `AccountOpened`, which is not registered in domain `broken`",
    ];
    for problem in expected {
        assert!(
            problems.iter().any(|p| p == problem),
            "missing {problem:?} in {problems:#?}"
        );
    }
    let rendered = Domain::builder("broken")
        .without_discovery()
        .register::<MakeDeposit>()
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        rendered.starts_with("domain configuration is invalid:\n  - "),
        "{rendered}"
    );
}

/// A second handler for `OpenAccount`, written by hand: the macros make this a compile
/// error, so only hand-written registration can reach the runtime check.
struct RogueHandler;

impl Element for RogueHandler {
    const NAME: &'static str = "RogueHandler";
    const KIND: ElementKind = ElementKind::CommandHandler;
    fn register(registrar: &mut Registrar) {
        registrar.command_handler::<Self>(
            Some(|| RogueHandler),
            vec![CommandRoute::of::<OpenAccount>("open_again")],
        );
    }
}

#[tokio::test]
async fn a_command_with_two_handlers_is_refused() {
    let problems = build_error(fidelis_example::domain().register::<RogueHandler>()).await;
    assert_eq!(
        problems,
        [
            "command `OpenAccount` has 2 handlers (`AccountCommandHandler::open_account`, `RogueHandler::open_again`); a command must have exactly one"
        ]
    );
}

/// A projector that says it listens to loans but handles an account event.
struct StrayProjector;

fn stray<'a>(
    _: &'a StrayProjector,
    _: &'a Event<DepositMade>,
    _: &'a mut ProjectorContext<'_>,
) -> fp::BoxFuture<'a, Result<()>> {
    Box::pin(async { Ok(()) })
}

impl Element for StrayProjector {
    const NAME: &'static str = "StrayProjector";
    const KIND: ElementKind = ElementKind::Projector;
    fn register(registrar: &mut Registrar) {
        registrar.projector::<Self, AccountSummary>(
            Some(|| StrayProjector),
            vec![AggregateRef::of::<Loan>()],
            vec![ListenerRoute::projector::<Self, DepositMade>(
                "on_deposit",
                stray,
            )],
        );
    }
}

#[tokio::test]
async fn a_projector_handling_an_event_outside_its_aggregates_is_refused() {
    let problems = build_error(
        fidelis_example::domain()
            .discover_crate("second_context")
            .register::<StrayProjector>(),
    )
    .await;
    assert_eq!(
        problems,
        [
            "`StrayProjector::on_deposit` handles `DepositMade` of aggregate `Account`, which is not among the aggregates it listens to (Loan)"
        ]
    );
}

/// Two events claiming one type name.
#[event(part_of = Loan, type_name = "Loans.LoanGranted.v1")]
pub struct LegacyLoanGranted {
    pub loan_id: Identifier,
}

#[tokio::test]
async fn duplicate_type_names_are_refused() {
    let problems = build_error(
        Domain::builder("loans")
            .without_discovery()
            .register::<Loan>()
            .register::<LoanGranted>()
            .register::<LegacyLoanGranted>(),
    )
    .await;
    assert_eq!(
        problems,
        [
            "duplicate event type name `Loans.LoanGranted.v1`: 2 elements share it; rename one (or set its type name)"
        ]
    );
}

#[tokio::test]
async fn a_handler_without_default_needs_an_instance() {
    let problems = build_error(
        Domain::builder("loans")
            .without_discovery()
            .register::<Loan>()
            .register::<LoanGranted>()
            .register::<Stateful>(),
    )
    .await;
    assert_eq!(
        problems,
        [
            "`Stateful` has no instance: implement `Default` for it, register one with `Domain::builder(..).instance(..)`, or write its methods without `self` if it holds no state"
        ]
    );
}

/// An event handler with state and no `Default`.
pub struct Stateful {
    pub seen: Arc<AtomicUsize>,
}

#[event_handler(part_of = Loan)]
impl Stateful {
    #[handle(LoanGranted)]
    fn on_granted(
        &self,
        _event: &Event<LoanGranted>,
        _ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        self.seen.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_stateful_handler_instance_is_registered_explicitly() {
    let seen = Arc::new(AtomicUsize::new(0));
    let domain = Domain::builder("loans")
        .discover_crate("second_context")
        .instance(Stateful { seen: seen.clone() })
        .build()
        .await
        .unwrap();
    domain
        .process(GrantLoan {
            borrower: "Bo".into(),
            principal: 10.0,
        })
        .await
        .unwrap();
    domain
        .process(GrantLoan {
            borrower: "Cy".into(),
            principal: 20.0,
        })
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert_eq!(domain.metrics().failed_event_handlers, 0);
    assert_eq!(
        domain
            .event_store()
            .read_category("loans::loan", fidelis_core::Cursor::START)
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn two_domains_in_one_process_are_isolated() {
    let ledger = fidelis_example::domain().build().await.unwrap();
    let loans = Domain::builder("loans")
        .discover_crate("second_context")
        .build()
        .await
        .unwrap();

    assert!(ledger.registry().contains::<Account>());
    assert!(!ledger.registry().contains::<Loan>());
    assert!(loans.registry().contains::<Loan>());
    assert!(!loans.registry().contains::<Account>());
    assert!(!loans.registry().contains::<AccountCommandHandler>());

    let loan_id = loans
        .process(GrantLoan {
            borrower: "Ada".into(),
            principal: 250.0,
        })
        .await
        .unwrap();
    let loan = loans.repository::<Loan>().get(&loan_id).await.unwrap();
    assert_eq!(loan.principal, 250.0);

    let error = ledger
        .process(GrantLoan {
            borrower: "Eve".into(),
            principal: 1.0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "domain configuration is invalid:\n  - command `GrantLoan` is not registered in domain `fidelis`"
    );
    let error = loans
        .process(OpenAccount {
            account_number: "A".into(),
            holder_name: "B".into(),
            opening_deposit: Decimal::from(1),
        })
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("command `OpenAccount` is not registered in domain `loans`")
    );

    scenario::run(&ledger).await.unwrap();
    assert_eq!(
        ledger
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        loans
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        loans
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap()[0]
            .metadata
            .type_name,
        "Loans.LoanGranted.v1"
    );
}

#[tokio::test]
async fn a_domain_can_be_registered_by_hand_without_discovery() {
    let domain = Domain::builder("fidelis")
        .without_discovery()
        .register::<Account>()
        .register::<AccountOpened>()
        .register::<DepositMade>()
        .register::<WithdrawalMade>()
        .register::<AccountClosed>()
        .register::<commands::OpenAccount>()
        .register::<commands::MakeDeposit>()
        .register::<commands::MakeWithdrawal>()
        .register::<commands::CloseAccount>()
        .register::<commands::AddSignatory>()
        .register::<fidelis_example::events::SignatoryAdded>()
        .register::<AccountCommandHandler>()
        .register::<AccountSummary>()
        .register::<AccountSummaryProjector>()
        .register::<ComplianceAlerts>()
        .build()
        .await
        .unwrap();
    let walkthrough = scenario::run(&domain).await.unwrap();
    assert_eq!(walkthrough.summary.balance, Decimal::from(1500));
    assert_eq!(domain.registry().aggregates().len(), 1);
    assert_eq!(domain.registry().events().len(), 5);
    assert_eq!(domain.registry().commands().len(), 5);
}
