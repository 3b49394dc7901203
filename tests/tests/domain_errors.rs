//! Typed domain errors: an error type of the user's own (`LoanError`, with `thiserror`)
//! returned by aggregate methods and handlers reaches the caller of `domain.process` with its
//! type, through command handlers, the version-conflict retry and `ctx.process` in an event
//! handler; and validation and invariant failures are displayed with their element and fields.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use fidelis_core::DomainError;
use fidelis_core::prelude::*;
use tokio::sync::Barrier;

// ---- the user's error type --------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoanError {
    #[error("loan {loan} is already repaid")]
    AlreadyRepaid { loan: String },
    #[error("drawing {requested} would exceed the limit of {limit} (outstanding {outstanding})")]
    OverLimit {
        requested: i64,
        limit: i64,
        outstanding: i64,
    },
    #[error("the ledger refused the loan")]
    Ledger(#[source] LedgerDown),
}

impl DomainError for LoanError {}

/// The cause of a [`LoanError::Ledger`], to follow the source chain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the ledger is down")]
pub struct LedgerDown;

// ---- elements ---------------------------------------------------------------------------

#[event(part_of = Loan)]
pub struct LoanGranted {
    pub loan_id: Identifier,
    pub borrower: String,
    pub limit: i64,
}

#[event(part_of = Loan)]
pub struct LoanDrawn {
    pub loan_id: Identifier,
    pub amount: i64,
}

#[event(part_of = Loan)]
pub struct LoanRepaid {
    pub loan_id: Identifier,
    pub amount: i64,
}

#[aggregate(event_sourced)]
pub struct Loan {
    #[field(max_length = 20)]
    pub borrower: String,
    #[field(default = 0)]
    pub limit: i64,
    #[field(default = 0)]
    pub outstanding: i64,
    #[field(default = false)]
    pub closed: bool,
}

#[aggregate]
impl Loan {
    #[invariant(post)]
    fn outstanding_must_not_be_negative(&self) -> std::result::Result<(), ValidationError> {
        if self.outstanding < 0 {
            return Err(ValidationError::field(
                "outstanding",
                "cannot be negative: repaid more than was drawn",
            ));
        }
        Ok(())
    }

    pub fn grant(borrower: &str, limit: i64) -> Result<Self> {
        if borrower == "ledger-down" {
            return Err(LoanError::Ledger(LedgerDown).into());
        }
        let mut loan = Self::create_new();
        let loan_id = loan.id.clone();
        loan.raise(LoanGranted {
            loan_id,
            borrower: borrower.into(),
            limit,
        })?;
        Ok(loan)
    }

    /// Returns the user's error type with `?`, a plain field rejection with `.into()`.
    pub fn draw(&mut self, amount: i64) -> Result<()> {
        if amount <= 0 {
            return Err(ValidationError::field("amount", "must be positive").into());
        }
        self.check_open()?;
        if self.outstanding + amount > self.limit {
            return Err(LoanError::OverLimit {
                requested: amount,
                limit: self.limit,
                outstanding: self.outstanding,
            }
            .into());
        }
        self.raise(LoanDrawn {
            loan_id: self.id.clone(),
            amount,
        })
    }

    pub fn repay(&mut self, amount: i64) -> Result<()> {
        self.raise(LoanRepaid {
            loan_id: self.id.clone(),
            amount,
        })
    }

    /// A method with the user's own error type as its error.
    fn check_open(&self) -> std::result::Result<(), LoanError> {
        if self.closed {
            return Err(LoanError::AlreadyRepaid {
                loan: self.id.to_string(),
            });
        }
        Ok(())
    }

    #[apply]
    fn on_granted(&mut self, event: &LoanGranted) {
        self.borrower = event.borrower.clone();
        self.limit = event.limit;
    }

    #[apply]
    fn on_drawn(&mut self, event: &LoanDrawn) {
        self.outstanding += event.amount;
    }

    #[apply]
    fn on_repaid(&mut self, event: &LoanRepaid) {
        self.outstanding -= event.amount;
        self.closed = self.outstanding == 0;
    }
}

#[command(part_of = Loan)]
pub struct GrantLoan {
    #[field(max_length = 20)]
    pub borrower: String,
    #[field(min_value = 1)]
    pub limit: i64,
}

#[command(part_of = Loan)]
pub struct Draw {
    pub loan_id: Identifier,
    pub amount: i64,
}

#[command(part_of = Loan)]
pub struct Repay {
    pub loan_id: Identifier,
    pub amount: i64,
}

/// Checks the loan is open, in a handler whose error type is the user's own.
#[command(part_of = Loan)]
pub struct AssertOpen {
    pub loan_id: Identifier,
}

/// Draws, but waits at a gate between loading the loan and saving it, so that two commands
/// load the same version and one of them is retried.
#[command(part_of = Loan)]
pub struct GatedDraw {
    pub loan_id: Identifier,
    pub amount: i64,
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
pub struct LoanDesk;

#[command_handler(part_of = Loan)]
impl LoanDesk {
    #[handle(GrantLoan)]
    async fn grant(&self, command: GrantLoan, ctx: &mut Context) -> Result<Identifier> {
        let loan = Loan::grant(&command.borrower, command.limit)?;
        let id = loan.id.clone();
        ctx.repository::<Loan>().add(loan).await?;
        Ok(id)
    }

    #[handle(Draw)]
    async fn draw(&self, command: Draw, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Loan>();
        let mut loan = repo.get(&command.loan_id).await?;
        loan.draw(command.amount)?;
        repo.add(loan).await
    }

    #[handle(Repay)]
    async fn repay(&self, command: Repay, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Loan>();
        let mut loan = repo.get(&command.loan_id).await?;
        loan.repay(command.amount)?;
        repo.add(loan).await
    }

    #[handle(AssertOpen)]
    async fn assert_open(
        &self,
        command: AssertOpen,
        ctx: &mut Context,
    ) -> std::result::Result<(), LoanError> {
        let loan = ctx
            .repository::<Loan>()
            .get(&command.loan_id)
            .await
            .map_err(|_| LoanError::Ledger(LedgerDown))?;
        loan.check_open()
    }

    #[handle(GatedDraw)]
    async fn gated_draw(&self, command: GatedDraw, ctx: &mut Context) -> Result<()> {
        let mut loan = ctx.repository::<Loan>().get(&command.loan_id).await?;
        ctx.resource::<Gate>()?.pass().await;
        loan.draw(command.amount)?;
        ctx.repository::<Loan>().add(loan).await
    }
}

/// What the event handler saw when its `ctx.process` failed.
#[derive(Default)]
pub struct Seen(Mutex<Vec<(Option<LoanError>, String)>>);

/// Draws twice the limit of every loan granted to "greedy", through `ctx.process`, and
/// records the error it gets back.
#[derive(Default)]
pub struct GreedyDraw;

#[event_handler(part_of = Loan)]
impl GreedyDraw {
    #[handle(LoanGranted)]
    async fn on_granted(
        &self,
        event: &Event<LoanGranted>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        if event.borrower != "greedy" {
            return Ok(());
        }
        let result = ctx
            .process(Draw {
                loan_id: event.loan_id.clone(),
                amount: event.limit * 2,
            })
            .await;
        if let Err(error) = &result {
            let seen = ctx.resource::<Seen>()?;
            if let Ok(mut seen) = seen.0.lock() {
                seen.push((error.domain::<LoanError>().cloned(), error.to_string()));
            }
        }
        result
    }
}

/// Rows of drawn amounts; its projector refuses a draw of exactly 13 with a domain error, to
/// show that a projector's error type survives the commit it fails.
#[projection]
pub struct Drawn {
    #[field(identifier)]
    pub loan_id: Identifier,
    pub total: i64,
}

#[derive(Default)]
pub struct DrawnProjector;

#[projector(for = Drawn, aggregates = [Loan])]
impl DrawnProjector {
    #[on(LoanDrawn)]
    async fn drawn(&self, event: &Event<LoanDrawn>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        if event.amount == 13 {
            return Err(LoanError::Ledger(LedgerDown).into());
        }
        let mut repo = ctx.repository::<Drawn>();
        let total = repo.find(&event.loan_id).await?.map_or(0, |row| row.total);
        repo.add(Drawn {
            loan_id: event.loan_id.clone(),
            total: total + event.amount,
        })
        .await
    }
}

// ---- helpers ----------------------------------------------------------------------------

async fn domain() -> Domain {
    Domain::builder("lending")
        .discover_crate(module_path!())
        .resource(Gate::new())
        .resource(Seen::default())
        .build()
        .await
        .expect("the lending domain builds")
}

async fn grant(domain: &Domain, limit: i64) -> Identifier {
    domain
        .process(GrantLoan {
            borrower: "Ada".into(),
            limit,
        })
        .await
        .expect("the loan is granted")
}

// ---- typed domain errors ----------------------------------------------------------------

#[tokio::test]
async fn a_projector_error_keeps_its_type_and_rolls_back() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;
    let error = domain
        .process(Draw {
            loan_id: loan.clone(),
            amount: 13,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Handler { .. }), "{error}");
    assert!(error.to_string().contains("DrawnProjector"), "{error}");
    assert_eq!(
        error.domain::<LoanError>(),
        Some(&LoanError::Ledger(LedgerDown))
    );
    let stream = domain.event_store().stream_of::<Loan>(&loan).unwrap();
    assert_eq!(
        domain
            .event_store()
            .read_stream(&stream)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_domain_error_reaches_the_caller_with_its_type() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;

    let error = domain
        .process(Draw {
            loan_id: loan.clone(),
            amount: 150,
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.domain::<LoanError>(),
        Some(&LoanError::OverLimit {
            requested: 150,
            limit: 100,
            outstanding: 0
        })
    );
    assert_eq!(
        error.downcast_ref::<LoanError>(),
        error.domain::<LoanError>()
    );
    assert!(matches!(error, Error::Domain(_)));
    assert_eq!(
        error.to_string(),
        "drawing 150 would exceed the limit of 100 (outstanding 0)"
    );
    assert!(error.as_validation().is_none());
    assert!(error.domain::<Other>().is_none());
    assert!(error.downcast_ref::<std::io::Error>().is_none());

    // Nothing was recorded: the loan is as it was.
    let stored = domain.repository::<Loan>().get(&loan).await.unwrap();
    assert_eq!((stored.outstanding, stored.version()), (0, 0));
}

#[derive(Debug, thiserror::Error)]
#[error("another error type")]
pub struct Other;
impl DomainError for Other {}

#[tokio::test]
async fn a_method_returning_its_own_error_type_converts_with_question_mark() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;
    domain
        .process(Draw {
            loan_id: loan.clone(),
            amount: 40,
        })
        .await
        .unwrap();
    domain
        .process(Repay {
            loan_id: loan.clone(),
            amount: 40,
        })
        .await
        .unwrap();

    let error = domain
        .process(Draw {
            loan_id: loan.clone(),
            amount: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.domain::<LoanError>(),
        Some(&LoanError::AlreadyRepaid {
            loan: loan.to_string()
        })
    );
    assert_eq!(error.to_string(), format!("loan {loan} is already repaid"));
}

#[tokio::test]
async fn a_handler_may_return_the_users_error_type() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;
    domain
        .process(AssertOpen {
            loan_id: loan.clone(),
        })
        .await
        .unwrap();
    domain
        .process(Draw {
            loan_id: loan.clone(),
            amount: 5,
        })
        .await
        .unwrap();
    domain
        .process(Repay {
            loan_id: loan.clone(),
            amount: 5,
        })
        .await
        .unwrap();

    let error = domain
        .process(AssertOpen {
            loan_id: loan.clone(),
        })
        .await
        .unwrap_err();
    assert!(matches!(
        error.domain::<LoanError>(),
        Some(LoanError::AlreadyRepaid { .. })
    ));
}

#[tokio::test]
async fn the_source_chain_of_a_domain_error_is_kept() {
    let domain = domain().await;
    let error = domain
        .process(GrantLoan {
            borrower: "ledger-down".into(),
            limit: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "the ledger refused the loan");
    // `Domain` is transparent: its source is the user's error's source.
    let source = std::error::Error::source(&error).expect("`LedgerDown` is the source");
    assert_eq!(source.to_string(), "the ledger is down");
    assert_eq!(error.downcast_ref::<LedgerDown>(), Some(&LedgerDown));
    assert!(matches!(
        error.domain::<LoanError>(),
        Some(LoanError::Ledger(_))
    ));
}

#[tokio::test]
async fn a_domain_error_after_a_version_conflict_retry_keeps_its_type() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;

    // Both load version 0 and draw 60; one commits, the other conflicts, is retried, sees
    // 60 outstanding and is refused with the user's error.
    let (first, second) = tokio::join!(
        domain.process(GatedDraw {
            loan_id: loan.clone(),
            amount: 60,
        }),
        domain.process(GatedDraw {
            loan_id: loan.clone(),
            amount: 60,
        }),
    );
    let errors: Vec<Error> = [first, second]
        .into_iter()
        .filter_map(Result::err)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].domain::<LoanError>(),
        Some(&LoanError::OverLimit {
            requested: 60,
            limit: 100,
            outstanding: 60
        })
    );
    let stored = domain.repository::<Loan>().get(&loan).await.unwrap();
    assert_eq!(stored.outstanding, 60);
}

#[tokio::test]
async fn ctx_process_in_an_event_handler_returns_the_domain_error() {
    let domain = domain().await;
    // The event handler's own failure does not undo the grant.
    let loan = domain
        .process(GrantLoan {
            borrower: "greedy".into(),
            limit: 30,
        })
        .await
        .unwrap();

    let seen = domain.resource::<Seen>().unwrap().0.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(
            Some(LoanError::OverLimit {
                requested: 60,
                limit: 30,
                outstanding: 0
            }),
            "drawing 60 would exceed the limit of 30 (outstanding 0)".to_owned()
        )]
    );
    assert_eq!(domain.metrics().failed_event_handlers, 1);
    let stored = domain.repository::<Loan>().get(&loan).await.unwrap();
    assert_eq!(stored.outstanding, 0);
}

// ---- validation errors name their element and fields ------------------------------------

#[tokio::test]
async fn a_rejection_by_a_method_names_the_command_and_field() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;
    let error = domain
        .process(Draw {
            loan_id: loan,
            amount: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "invalid Draw: amount: must be positive");
    // `as_validation` is unchanged: the field → messages map.
    assert_eq!(
        error.as_validation().unwrap().messages_for("amount"),
        ["must be positive"]
    );
}

#[tokio::test]
async fn a_broken_invariant_names_the_aggregate_and_field() {
    let domain = domain().await;
    let loan = grant(&domain, 100).await;
    domain
        .process(Draw {
            loan_id: loan.clone(),
            amount: 10,
        })
        .await
        .unwrap();
    let error = domain
        .process(Repay {
            loan_id: loan,
            amount: 25,
        })
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invariant { ref aggregate, .. } if aggregate == "Loan"));
    assert_eq!(
        error.to_string(),
        "Loan: outstanding: cannot be negative: repaid more than was drawn"
    );
    assert_eq!(
        error.as_validation().unwrap().messages_for("outstanding"),
        ["cannot be negative: repaid more than was drawn"]
    );
}

#[tokio::test]
async fn an_invalid_command_names_the_command_and_every_field() {
    let domain = domain().await;
    let error = domain
        .process(GrantLoan {
            borrower: "A borrower with a long name".into(),
            limit: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid GrantLoan: borrower: is too long (max 20); limit: is too small (min 1)"
    );
}
