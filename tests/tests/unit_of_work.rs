//! Units of work: what commits together, what a failure leaves behind, version conflicts
//! and their retry, rehydration of long streams, and what happens after the commit.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::atomic::{AtomicUsize, Ordering};

use fidelis_core::prelude::*;
use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{DomainBuilder, RecordedEvent};
use fidelis_example::account::Account;
use fidelis_example::alerts::ComplianceDesk;
use fidelis_example::commands::{MakeDeposit, MakeWithdrawal, OpenAccount};
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::events::{AccountOpened, DepositMade};
use tokio::sync::Barrier;

// ---- elements of this test ------------------------------------------------------------

/// One row per deposit: written by a projector that refuses deposits referenced "explode".
#[projection]
pub struct DepositAudit {
    #[field(identifier)]
    pub event_id: Identifier,
    pub amount: Decimal,
}

#[derive(Default)]
pub struct FragileProjector;

#[projector(for = DepositAudit, aggregates = [Account])]
impl FragileProjector {
    #[on(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        if event.reference.as_deref() == Some("explode") {
            return Err(Error::handler(
                "FragileProjector",
                "refuses explosive deposits",
            ));
        }
        ctx.repository::<DepositAudit>()
            .add(DepositAudit {
                event_id: event.metadata().id.clone(),
                amount: event.amount,
            })
            .await
    }
}

/// Open an account and deposit a bonus in the same unit of work.
#[command(part_of = Account)]
pub struct OpenWithBonus {
    pub account_number: String,
    pub bonus: Decimal,
}

/// Deposit, but wait at a gate between loading the account and saving it, so that two
/// commands load the same version.
#[command(part_of = Account)]
pub struct GatedDeposit {
    pub account_id: Identifier,
    pub amount: Decimal,
}

/// The first two arrivals wait for each other; later ones (retries) pass.
pub struct Gate {
    arrivals: AtomicUsize,
    barrier: Barrier,
}

impl Gate {
    fn new() -> Self {
        Self {
            arrivals: AtomicUsize::new(0),
            barrier: Barrier::new(2),
        }
    }
    async fn pass(&self) {
        if self.arrivals.fetch_add(1, Ordering::SeqCst) < 2 {
            self.barrier.wait().await;
        }
    }
}

#[derive(Default)]
pub struct TestHandler;

#[command_handler(part_of = Account)]
impl TestHandler {
    #[handle(OpenWithBonus)]
    async fn open_with_bonus(
        &self,
        command: OpenWithBonus,
        ctx: &mut Context,
    ) -> Result<Identifier> {
        let mut account =
            Account::open(&command.account_number, "Bonus Holder", Decimal::from(100))?;
        account.deposit(command.bonus, Some("welcome".into()))?;
        let id = account.id.clone();
        ctx.repository::<Account>().add(account).await?;
        Ok(id)
    }

    #[handle(GatedDeposit)]
    async fn gated_deposit(&self, command: GatedDeposit, ctx: &mut Context) -> Result<()> {
        let mut account = ctx.repository::<Account>().get(&command.account_id).await?;
        ctx.resource::<Gate>()?.pass().await;
        account.deposit(command.amount, None)?;
        ctx.repository::<Account>().add(account).await
    }
}

/// Deposits a welcome bonus of 5 into every new account, through `ctx.process`.
#[derive(Default)]
pub struct WelcomeBonus;

#[event_handler(part_of = Account)]
impl WelcomeBonus {
    #[handle(AccountOpened)]
    async fn on_account_opened(
        &self,
        event: &Event<AccountOpened>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        if event.account_number.starts_with("WELCOME") {
            ctx.process(MakeDeposit {
                account_id: event.account_id.clone(),
                amount: Decimal::from(5),
                reference: Some("welcome bonus".into()),
            })
            .await?;
        }
        Ok(())
    }
}

// ---- helpers ---------------------------------------------------------------------------

fn builder() -> DomainBuilder {
    Domain::builder("fidelis")
        .discover_crate("fidelis_example")
        .discover_crate("unit_of_work")
        .resource(ComplianceDesk::default())
        .resource(Gate::new())
}

async fn open(domain: &Domain, deposit: Decimal) -> Identifier {
    domain
        .process(OpenAccount {
            account_number: "ACC-001".into(),
            holder_name: "Alice Johnson".into(),
            opening_deposit: deposit,
        })
        .await
        .expect("the account opens")
}

/// Everything a failed command must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    events: Vec<RecordedEvent>,
    summaries: Vec<AccountSummary>,
    audits: Vec<DepositAudit>,
}

async fn snapshot(domain: &Domain) -> Snapshot {
    Snapshot {
        events: domain
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap(),
        summaries: domain
            .repository::<AccountSummary>()
            .query()
            .all()
            .await
            .unwrap(),
        audits: domain
            .repository::<DepositAudit>()
            .query()
            .all()
            .await
            .unwrap(),
    }
}

// ---- failures change nothing ------------------------------------------------------------

#[tokio::test]
async fn an_invalid_command_changes_nothing() {
    let domain = builder().build().await.unwrap();
    open(&domain, Decimal::from(1000)).await;
    let before = snapshot(&domain).await;

    let error = domain
        .process(OpenAccount {
            account_number: "ACC-0000000000000000000000001".into(),
            holder_name: "  ".into(),
            opening_deposit: Decimal::from(-5),
        })
        .await
        .unwrap_err();
    let messages = error.as_validation().unwrap();
    assert_eq!(
        messages.messages_for("account_number"),
        ["is too long (max 20)"]
    );
    assert_eq!(messages.messages_for("holder_name"), ["is required"]);
    assert_eq!(
        messages.messages_for("opening_deposit"),
        ["is too small (min 0)"]
    );
    assert!(matches!(error, Error::Validation { ref element, .. } if element == "OpenAccount"));
    assert_eq!(snapshot(&domain).await, before);
}

#[tokio::test]
async fn a_broken_invariant_changes_nothing() {
    let domain = builder().build().await.unwrap();
    let id = open(&domain, Decimal::from(1500)).await;
    let before = snapshot(&domain).await;

    let error = domain
        .process(MakeWithdrawal {
            account_id: id.clone(),
            amount: Decimal::from(5000),
            reference: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invariant { ref aggregate, .. } if aggregate == "Account"));
    assert_eq!(
        error.as_validation().unwrap().messages_for("balance"),
        ["Insufficient funds: balance cannot be negative"]
    );
    assert_eq!(snapshot(&domain).await, before);
    assert_eq!(
        domain
            .repository::<Account>()
            .get(&id)
            .await
            .unwrap()
            .balance,
        Decimal::from(1500)
    );
}

#[tokio::test]
async fn a_failing_projector_changes_nothing() {
    let domain = builder().build().await.unwrap();
    let id = open(&domain, Decimal::from(1000)).await;
    domain
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(1),
            reference: None,
        })
        .await
        .unwrap();
    let before = snapshot(&domain).await;
    assert_eq!(before.audits.len(), 1);

    let error = domain
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(50),
            reference: Some("explode".into()),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Handler { ref handler, .. } if handler == "FragileProjector::on_deposit_made")
    );
    assert_eq!(snapshot(&domain).await, before);
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(
        (account.balance, account.version()),
        (Decimal::from(1001), 1)
    );
}

#[tokio::test]
async fn an_unknown_aggregate_is_not_found() {
    let domain = builder().build().await.unwrap();
    let error = domain
        .process(MakeDeposit {
            account_id: "nobody".into(),
            amount: Decimal::from(1),
            reference: None,
        })
        .await
        .unwrap_err();
    assert!(error.is_not_found());
    assert_eq!(error.to_string(), "Account `nobody` not found");
}

// ---- concurrency -------------------------------------------------------------------------

#[tokio::test]
async fn the_second_of_two_units_of_work_on_one_version_conflicts() {
    let domain = builder().build().await.unwrap();
    let id = open(&domain, Decimal::from(1500)).await;

    let mut first = domain.unit_of_work();
    let mut second = domain.unit_of_work();
    let mut mine = first.repository::<Account>().get(&id).await.unwrap();
    let mut theirs = second.repository::<Account>().get(&id).await.unwrap();
    assert_eq!((mine.version(), theirs.version()), (0, 0));

    mine.deposit(Decimal::from(10), None).unwrap();
    first.repository::<Account>().add(mine).await.unwrap();
    theirs.deposit(Decimal::from(20), None).unwrap();
    second.repository::<Account>().add(theirs).await.unwrap();

    first.commit().await.unwrap();
    let error = second.commit().await.unwrap_err();
    match error {
        Error::VersionConflict {
            stream,
            expected,
            actual,
        } => {
            assert_eq!(stream, format!("fidelis::account-{id}"));
            assert_eq!((expected, actual), (0, 1));
        }
        other => panic!("expected a version conflict, got {other}"),
    }
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(
        (account.balance, account.version()),
        (Decimal::from(1510), 1)
    );
    assert_eq!(
        domain
            .repository::<AccountSummary>()
            .get(&id)
            .await
            .unwrap()
            .balance,
        Decimal::from(1510)
    );
}

async fn two_gated_deposits(domain: &Domain, id: &Identifier) -> (Result<()>, Result<()>) {
    tokio::join!(
        domain.process(GatedDeposit {
            account_id: id.clone(),
            amount: Decimal::from(10)
        }),
        domain.process(GatedDeposit {
            account_id: id.clone(),
            amount: Decimal::from(20)
        }),
    )
}

#[tokio::test]
async fn without_retry_the_loser_of_a_race_gets_the_conflict() {
    let domain = builder().retry(RetryPolicy::none()).build().await.unwrap();
    let id = open(&domain, Decimal::from(1500)).await;
    let (a, b) = two_gated_deposits(&domain, &id).await;
    let conflicts = [&a, &b]
        .iter()
        .filter(|r| r.as_ref().is_err_and(Error::is_version_conflict))
        .count();
    assert_eq!(conflicts, 1, "{a:?} {b:?}");
    assert!(a.is_ok() || b.is_ok());
}

#[tokio::test]
async fn with_retry_both_racing_commands_succeed_and_the_balance_is_exact() {
    let domain = builder()
        .retry(RetryPolicy::attempts(3))
        .build()
        .await
        .unwrap();
    let id = open(&domain, Decimal::from(1500)).await;
    let (a, b) = two_gated_deposits(&domain, &id).await;
    a.unwrap();
    b.unwrap();
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(
        (account.balance, account.version()),
        (Decimal::from(1530), 2)
    );
    let summary = domain
        .repository::<AccountSummary>()
        .get(&id)
        .await
        .unwrap();
    assert_eq!(
        (summary.balance, summary.transaction_count),
        (Decimal::from(1530), 3)
    );
}

// ---- loading -------------------------------------------------------------------------------

#[tokio::test]
async fn an_aggregate_with_ten_thousand_events_rehydrates() {
    let storage = MemoryStorage::new();
    let writer = builder().storage(storage.clone()).build().await.unwrap();
    let id = open(&writer, Decimal::from(1000)).await;
    for _ in 0..9_999 {
        writer
            .process(MakeDeposit {
                account_id: id.clone(),
                amount: Decimal::from(1),
                reference: None,
            })
            .await
            .unwrap();
    }

    // A second domain on the same storage, without a cache, replays the whole stream.
    let reader = builder()
        .storage(storage)
        .aggregate_cache(0)
        .build()
        .await
        .unwrap();
    let account = reader.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(account.balance, Decimal::from(10_999));
    assert_eq!(account.version(), 9_999);
    assert_eq!(account.holder_name, "Alice Johnson");
    let stream = reader.event_store().stream_of::<Account>(&id).unwrap();
    assert_eq!(
        reader.event_store().stream_version(&stream).await.unwrap(),
        9_999
    );
}

#[tokio::test]
async fn a_cached_aggregate_catches_up_with_events_written_elsewhere() {
    let storage = MemoryStorage::new();
    let first = builder().storage(storage.clone()).build().await.unwrap();
    let second = builder().storage(storage).build().await.unwrap();
    let id = open(&first, Decimal::from(100)).await;
    assert_eq!(
        first
            .repository::<Account>()
            .get(&id)
            .await
            .unwrap()
            .balance,
        Decimal::from(100)
    );

    second
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(7),
            reference: None,
        })
        .await
        .unwrap();
    first
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(3),
            reference: None,
        })
        .await
        .unwrap();
    let account = first.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(
        (account.balance, account.version()),
        (Decimal::from(110), 2)
    );
}

// ---- within and after the unit of work ----------------------------------------------------

#[tokio::test]
async fn projectors_read_their_own_writes_within_a_unit_of_work() {
    let domain = builder().build().await.unwrap();
    let id = domain
        .process(OpenWithBonus {
            account_number: "ACC-B".into(),
            bonus: Decimal::from(25),
        })
        .await
        .unwrap();
    let summary = domain
        .repository::<AccountSummary>()
        .get(&id)
        .await
        .unwrap();
    assert_eq!(
        (summary.balance, summary.transaction_count),
        (Decimal::from(125), 2)
    );
    let events = domain
        .event_store()
        .read_stream(&format!("fidelis::account-{id}"))
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0].metadata.correlation_id,
        events[1].metadata.correlation_id
    );
}

#[tokio::test]
async fn a_repository_add_outside_a_handler_commits_through_the_pipeline() {
    let domain = builder().build().await.unwrap();
    let account = Account::open("ACC-9", "Direct Writer", Decimal::from(40)).unwrap();
    let id = account.id.clone();
    domain.repository::<Account>().add(account).await.unwrap();
    assert_eq!(
        domain
            .repository::<AccountSummary>()
            .get(&id)
            .await
            .unwrap()
            .balance,
        Decimal::from(40)
    );
    assert_eq!(
        domain
            .repository::<Account>()
            .get(&id)
            .await
            .unwrap()
            .version(),
        0
    );
}

#[tokio::test]
async fn a_dropped_unit_of_work_writes_nothing() {
    let domain = builder().build().await.unwrap();
    let before = snapshot(&domain).await;
    {
        let mut uow = domain.unit_of_work();
        uow.repository::<Account>()
            .add(Account::open("ACC-X", "Nobody", Decimal::from(1)).unwrap())
            .await
            .unwrap();
        assert_eq!(uow.pending_events().len(), 1);
    }
    assert_eq!(snapshot(&domain).await, before);
}

#[tokio::test]
async fn event_handlers_run_after_the_commit_with_the_correlation_id() {
    let domain = builder().build().await.unwrap();
    let id = open(&domain, Decimal::from(10)).await;
    domain
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(25_000),
            reference: None,
        })
        .await
        .unwrap();
    let alerts = domain.resource::<ComplianceDesk>().unwrap().alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind, alerts[0].amount),
        ("deposit", Decimal::from(25_000))
    );
    let events = domain
        .event_store()
        .read_stream(&format!("fidelis::account-{id}"))
        .await
        .unwrap();
    assert_eq!(alerts[0].correlation_id, events[1].metadata.correlation_id);
    assert_eq!(domain.metrics().failed_event_handlers, 0);
}

#[tokio::test]
async fn a_failing_event_handler_does_not_undo_the_command() {
    // No ComplianceDesk resource: the alert handler fails after the commit.
    let domain = Domain::builder("fidelis")
        .discover_crate("fidelis_example")
        .discover_crate("unit_of_work")
        .resource(Gate::new())
        .build()
        .await
        .unwrap();
    let id = open(&domain, Decimal::from(10)).await;
    domain
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: Decimal::from(50_000),
            reference: None,
        })
        .await
        .expect("the command stands");
    assert_eq!(
        domain
            .repository::<Account>()
            .get(&id)
            .await
            .unwrap()
            .balance,
        Decimal::from(50_010)
    );
    assert_eq!(domain.metrics().failed_event_handlers, 1);
}

#[tokio::test]
async fn an_event_handler_issues_a_command_in_the_same_correlation() {
    let domain = builder().build().await.unwrap();
    let id = domain
        .process(OpenAccount {
            account_number: "WELCOME-1".into(),
            holder_name: "New Customer".into(),
            opening_deposit: Decimal::from(100),
        })
        .await
        .unwrap();
    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(
        (account.balance, account.version()),
        (Decimal::from(105), 1)
    );

    let events = domain
        .event_store()
        .read_stream(&format!("fidelis::account-{id}"))
        .await
        .unwrap();
    let (opened, bonus) = (&events[0].metadata, &events[1].metadata);
    assert_eq!(opened.correlation_id, bonus.correlation_id);
    // Each event's cause is the command that raised it; the bonus command is a new one.
    assert_ne!(opened.causation_id, bonus.causation_id);
    assert_eq!(
        domain
            .repository::<AccountSummary>()
            .get(&id)
            .await
            .unwrap()
            .balance,
        Decimal::from(105)
    );
}

#[tokio::test]
async fn shared_clones_of_a_domain_see_the_same_state() {
    let domain = builder().build().await.unwrap();
    let clone = domain.clone();
    let id = open(&domain, Decimal::from(1)).await;
    let handle = tokio::spawn(async move {
        clone
            .process(MakeDeposit {
                account_id: id,
                amount: Decimal::from(2),
                reference: None,
            })
            .await
    });
    handle.await.unwrap().unwrap();
    let count = domain
        .repository::<AccountSummary>()
        .query()
        .count()
        .await
        .unwrap();
    assert_eq!(count, 1);
}
