//! A state-stored aggregate whose identifier field is not named `id`
//! (`#[field(identifier)] pub loan_id: Identifier`): its table's primary key is that field, on
//! every adapter — the tables are set up (and set up again without drift), and rows are
//! added, changed, found by id and queried.

#![allow(missing_docs)]

use fidelis_core::prelude::*;

mod support;
use support::{Backend, on_every_adapter};

on_every_adapter!(stored_aggregate_with_a_named_identifier,);

/// A loan, identified by its `loan_id`.
#[aggregate]
pub struct Loan {
    #[field(identifier)]
    pub loan_id: Identifier,
    #[field(max_length = 100)]
    pub borrower: String,
    pub amount: i64,
}

#[command(part_of = Loan)]
pub struct GrantLoan {
    pub borrower: String,
    pub amount: i64,
}

#[command(part_of = Loan)]
pub struct RaiseLoan {
    pub loan_id: Identifier,
    pub amount: i64,
}

#[derive(Default)]
pub struct LoanHandler;

#[command_handler(part_of = Loan)]
impl LoanHandler {
    #[handle(GrantLoan)]
    async fn grant(&self, command: GrantLoan, ctx: &mut Context) -> Result<Identifier> {
        let mut loan = Loan::create_new();
        loan.borrower = command.borrower;
        loan.amount = command.amount;
        let id = loan.loan_id.clone();
        ctx.repository::<Loan>().add(loan).await?;
        Ok(id)
    }

    #[handle(RaiseLoan)]
    async fn raise(&self, command: RaiseLoan, ctx: &mut Context) -> Result<()> {
        let mut loan = ctx.repository::<Loan>().get(&command.loan_id).await?;
        loan.amount += command.amount;
        ctx.repository::<Loan>().add(loan).await
    }
}

async fn stored_aggregate_with_a_named_identifier(backend: &Backend) {
    let domain = backend
        .build(Domain::builder("bank").discover_crate(module_path!()))
        .await;
    // Set up again: the existing table matches its schema.
    domain.setup_database().await.unwrap();

    let ada = domain
        .process(GrantLoan {
            borrower: "Ada".into(),
            amount: 100,
        })
        .await
        .unwrap();
    let bob = domain
        .process(GrantLoan {
            borrower: "Bob".into(),
            amount: 50,
        })
        .await
        .unwrap();
    domain
        .process(RaiseLoan {
            loan_id: ada.clone(),
            amount: 20,
        })
        .await
        .unwrap();

    let loan = domain.repository::<Loan>().get(&ada).await.unwrap();
    assert_eq!(loan.loan_id, ada);
    assert_eq!((loan.borrower.as_str(), loan.amount), ("Ada", 120));

    let f = Loan::fields();
    let found = domain
        .repository::<Loan>()
        .query()
        .filter(f.borrower.eq("Bob".to_owned()))
        .all()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].loan_id.clone(), found[0].amount), (bob, 50));
}
