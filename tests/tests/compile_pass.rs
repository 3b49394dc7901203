//! Element shapes that must compile, and behave like the hand-written reference: the whole
//! DESIGN §2 domain, plus visibility, doc comments, `#[cfg]` methods, sync and async
//! handlers, handlers returning `()` or values, value objects embedded in an aggregate and a
//! command, and every field option.

#![allow(missing_docs)]

use fidelis_core::prelude::*;

/// The seed chapter's domain, exactly as DESIGN §2 writes it.
pub mod seed {
    use fidelis_core::prelude::*;

    #[event(part_of = Account)]
    pub struct AccountOpened {
        pub account_id: Identifier,
        pub account_number: String,
        pub holder_name: String,
        pub opening_deposit: f64,
    }

    #[event(part_of = Account)]
    pub struct DepositMade {
        pub account_id: Identifier,
        pub amount: f64,
        pub reference: Option<String>,
    }

    #[event(part_of = Account)]
    pub struct WithdrawalMade {
        pub account_id: Identifier,
        pub amount: f64,
        pub reference: Option<String>,
    }

    #[event(part_of = Account)]
    pub struct AccountClosed {
        pub account_id: Identifier,
        pub reason: Option<String>,
    }

    #[aggregate(event_sourced)]
    pub struct Account {
        #[field(max_length = 20)]
        pub account_number: String,
        #[field(max_length = 100)]
        pub holder_name: String,
        #[field(default = 0.0)]
        pub balance: f64,
        #[field(max_length = 20, default = "ACTIVE")]
        pub status: String,
    }

    #[aggregate]
    impl Account {
        #[invariant(post)]
        fn balance_must_not_be_negative(&self) -> Result<(), ValidationError> {
            if self.balance < 0.0 {
                return Err(ValidationError::field(
                    "balance",
                    "Insufficient funds: balance cannot be negative",
                ));
            }
            Ok(())
        }

        #[invariant(post)]
        fn closed_account_must_have_zero_balance(&self) -> Result<(), ValidationError> {
            if self.status == "CLOSED" && self.balance != 0.0 {
                return Err(ValidationError::field(
                    "balance",
                    "Closed account must have zero balance",
                ));
            }
            Ok(())
        }

        pub fn open(number: &str, holder: &str, opening_deposit: f64) -> Result<Self> {
            let mut account = Self::create_new();
            let account_id = account.id.clone();
            account.raise(AccountOpened {
                account_id,
                account_number: number.into(),
                holder_name: holder.into(),
                opening_deposit,
            })?;
            Ok(account)
        }

        pub fn deposit(&mut self, amount: f64, reference: Option<String>) -> Result<()> {
            if amount <= 0.0 {
                return Err(
                    ValidationError::field("amount", "Deposit amount must be positive").into(),
                );
            }
            self.raise(DepositMade {
                account_id: self.id.clone(),
                amount,
                reference,
            })
        }

        pub fn withdraw(&mut self, amount: f64, reference: Option<String>) -> Result<()> {
            if amount <= 0.0 {
                return Err(
                    ValidationError::field("amount", "Withdrawal amount must be positive").into(),
                );
            }
            self.raise(WithdrawalMade {
                account_id: self.id.clone(),
                amount,
                reference,
            })
        }

        pub fn close(&mut self, reason: Option<String>) -> Result<()> {
            self.raise(AccountClosed {
                account_id: self.id.clone(),
                reason,
            })
        }

        #[apply]
        fn on_account_opened(&mut self, event: &AccountOpened) {
            self.account_number = event.account_number.clone();
            self.holder_name = event.holder_name.clone();
            self.balance = event.opening_deposit;
            self.status = "ACTIVE".into();
        }

        #[apply]
        fn on_deposit_made(&mut self, event: &DepositMade) {
            self.balance += event.amount;
        }

        #[apply]
        fn on_withdrawal_made(&mut self, event: &WithdrawalMade) {
            self.balance -= event.amount;
        }

        #[apply]
        fn on_account_closed(&mut self, _event: &AccountClosed) {
            self.status = "CLOSED".into();
        }
    }

    #[command(part_of = Account)]
    pub struct OpenAccount {
        pub account_number: String,
        pub holder_name: String,
        pub opening_deposit: f64,
    }

    #[command(part_of = Account)]
    pub struct MakeDeposit {
        pub account_id: Identifier,
        pub amount: f64,
        pub reference: Option<String>,
    }

    #[command(part_of = Account)]
    pub struct MakeWithdrawal {
        pub account_id: Identifier,
        pub amount: f64,
        pub reference: Option<String>,
    }

    #[command(part_of = Account)]
    pub struct CloseAccount {
        pub account_id: Identifier,
        pub reason: Option<String>,
    }

    #[derive(Default)]
    pub struct AccountCommandHandler;

    #[command_handler(part_of = Account)]
    impl AccountCommandHandler {
        #[handle(OpenAccount)]
        async fn open_account(
            &self,
            command: OpenAccount,
            ctx: &mut Context,
        ) -> Result<Identifier> {
            let account = Account::open(
                &command.account_number,
                &command.holder_name,
                command.opening_deposit,
            )?;
            let id = account.id.clone();
            ctx.repository::<Account>().add(account).await?;
            Ok(id)
        }

        #[handle(MakeDeposit)]
        async fn make_deposit(&self, command: MakeDeposit, ctx: &mut Context) -> Result<()> {
            let mut account = ctx.repository::<Account>().get(&command.account_id).await?;
            account.deposit(command.amount, command.reference)?;
            ctx.repository::<Account>().add(account).await
        }

        #[handle(MakeWithdrawal)]
        async fn make_withdrawal(&self, command: MakeWithdrawal, ctx: &mut Context) -> Result<()> {
            let mut account = ctx.repository::<Account>().get(&command.account_id).await?;
            account.withdraw(command.amount, command.reference)?;
            ctx.repository::<Account>().add(account).await
        }

        #[handle(CloseAccount)]
        async fn close_account(&self, command: CloseAccount, ctx: &mut Context) -> Result<()> {
            let mut account = ctx.repository::<Account>().get(&command.account_id).await?;
            account.close(command.reason)?;
            ctx.repository::<Account>().add(account).await
        }
    }

    #[projection]
    pub struct AccountSummary {
        #[field(identifier)]
        pub account_id: Identifier,
        #[field(max_length = 20)]
        pub account_number: String,
        #[field(max_length = 100)]
        pub holder_name: String,
        #[field(default = 0.0)]
        pub balance: f64,
        #[field(default = 0)]
        pub transaction_count: i64,
        pub last_transaction_at: Option<DateTime<Utc>>,
    }

    #[derive(Default)]
    pub struct AccountSummaryProjector;

    #[projector(for = AccountSummary, aggregates = [Account])]
    impl AccountSummaryProjector {
        #[on(AccountOpened)]
        async fn on_account_opened(
            &self,
            event: &Event<AccountOpened>,
            ctx: &mut Context,
        ) -> Result<()> {
            ctx.repository::<AccountSummary>()
                .add(AccountSummary {
                    account_id: event.account_id.clone(),
                    account_number: event.account_number.clone(),
                    holder_name: event.holder_name.clone(),
                    balance: event.opening_deposit,
                    transaction_count: 1,
                    last_transaction_at: Some(event.metadata().time),
                })
                .await
        }

        #[on(DepositMade)]
        async fn on_deposit_made(
            &self,
            event: &Event<DepositMade>,
            ctx: &mut Context,
        ) -> Result<()> {
            let repo = ctx.repository::<AccountSummary>();
            let mut summary = repo.get(&event.account_id).await?;
            summary.balance += event.amount;
            summary.transaction_count += 1;
            summary.last_transaction_at = Some(event.metadata().time);
            repo.add(summary).await
        }

        #[on(WithdrawalMade)]
        async fn on_withdrawal_made(
            &self,
            event: &Event<WithdrawalMade>,
            ctx: &mut Context,
        ) -> Result<()> {
            let repo = ctx.repository::<AccountSummary>();
            let mut summary = repo.get(&event.account_id).await?;
            summary.balance -= event.amount;
            summary.transaction_count += 1;
            summary.last_transaction_at = Some(event.metadata().time);
            repo.add(summary).await
        }
    }
}

use seed::*;

#[tokio::test]
async fn the_seed_chapter_runs() -> Result<()> {
    let domain = Domain::builder("fidelis").build().await?;
    let account_id = domain
        .process(OpenAccount {
            account_number: "ACC-001".into(),
            holder_name: "Alice Johnson".into(),
            opening_deposit: 1000.0,
        })
        .await?;
    domain
        .process(MakeDeposit {
            account_id: account_id.clone(),
            amount: 500.0,
            reference: Some("paycheck".into()),
        })
        .await?;
    let summary = domain
        .repository::<AccountSummary>()
        .get(&account_id)
        .await?;
    assert_eq!(summary.balance, 1500.0);
    assert_eq!(summary.transaction_count, 2);

    let account = domain.repository::<Account>().get(&account_id).await?;
    assert_eq!(account.balance, 1500.0);
    assert_eq!(account.status, "ACTIVE");
    assert_eq!(account.version(), 1);

    let error = domain
        .process(MakeWithdrawal {
            account_id: account_id.clone(),
            amount: 5000.0,
            reference: None,
        })
        .await
        .unwrap_err();
    let messages = error
        .as_validation()
        .expect("an invariant failure")
        .messages_for("balance");
    assert_eq!(messages, ["Insufficient funds: balance cannot be negative"]);
    let account = domain.repository::<Account>().get(&account_id).await?;
    assert_eq!(account.balance, 1500.0);
    Ok(())
}

#[test]
fn create_new_gives_defaults_and_a_fresh_id() {
    let account = Account::create_new();
    assert_eq!(account.balance, 0.0);
    assert_eq!(account.status, "ACTIVE");
    assert_eq!(account.version(), -1);
    assert_ne!(account.id, Account::create_new().id);
}

#[test]
fn raise_runs_invariants_and_leaves_state_on_failure() {
    let mut account = Account::open("ACC-1", "Ada", 10.0).unwrap();
    assert_eq!(account.version(), 0);
    let error = account.withdraw(50.0, None).unwrap_err();
    assert!(error.as_validation().is_some());
    assert_eq!(account.balance, 10.0);
    assert_eq!(account.version(), 0);
}

#[test]
fn field_definitions_follow_the_options() {
    use fidelis_core::{FieldKind, HasFields};
    let fields = Account::FIELDS;
    let names: Vec<_> = fields.iter().map(|f| f.name).collect();
    assert_eq!(
        names,
        ["id", "account_number", "holder_name", "balance", "status"]
    );
    assert!(fields[0].identifier);
    assert_eq!(fields[1].max_length, Some(20));
    assert_eq!(fields[3].kind, FieldKind::Float);
    assert!(fields[3].has_default);
    let summary = AccountSummary::FIELDS;
    assert_eq!(summary[5].rust_type, "Option<DateTime<Utc>>");
    assert!(!summary[5].required);
    assert!(summary[1].required);
}

#[test]
fn from_json_reports_every_field_at_once() {
    let error = MakeDeposit::from_json(r#"{"amount": "ten", "extra": 1}"#).unwrap_err();
    let errors = error.as_validation().expect("a validation error");
    assert_eq!(errors.messages_for("account_id"), ["is required"]);
    assert_eq!(errors.messages_for("amount").len(), 1);
    assert_eq!(
        errors.messages_for("extra"),
        ["is not a field of this element"]
    );
    let ok = MakeDeposit::from_json(r#"{"account_id": "a-1", "amount": 10.0}"#).unwrap();
    assert_eq!(ok.reference, None);
    let error = OpenAccount::from_json(
        r#"{"account_number": " ", "holder_name": "A", "opening_deposit": 1}"#,
    )
    .unwrap_err();
    assert_eq!(
        error
            .as_validation()
            .unwrap()
            .messages_for("account_number"),
        ["is required"]
    );
}

#[test]
fn events_know_their_aggregate_id() {
    let event = DepositMade {
        account_id: "a-1".into(),
        amount: 1.0,
        reference: None,
    };
    assert_eq!(
        DomainEvent::aggregate_id(&event).map(Identifier::as_str),
        Some("a-1")
    );
}

#[test]
fn projections_have_typed_field_handles() {
    let fields = AccountSummary::fields();
    assert_eq!(fields.balance.name(), "balance");
    assert_eq!(fields.account_id.name(), "account_id");
}

/// Shapes beyond §2: crate-private elements, docs, `#[cfg]` methods, sync handlers,
/// handlers returning `()` or a value, embedded value objects and every field option.
mod shapes {
    use fidelis_core::prelude::*;

    /// A postal address.
    #[value_object]
    #[derive(Default)]
    pub(crate) struct Address {
        #[field(min_length = 1, max_length = 40)]
        pub street: String,
        #[field(choices = ["NL", "BE"])]
        pub country: String,
    }

    /// A customer, state-stored.
    #[aggregate]
    pub(crate) struct Customer {
        #[field(identifier)]
        pub customer_id: Identifier,
        #[field(required, unique, max_length = 30)]
        pub name: String,
        #[field(min_value = 0, max_value = 150)]
        pub age: i64,
        #[field(min_value = -1.5, max_value = 1e3)]
        pub score: f64,
        pub address: Address,
        #[field(max_length = 3)]
        pub tags: Vec<String>,
        pub extra: Option<serde_json::Value>,
        pub since: Option<NaiveDate>,
        #[field(default = true)]
        pub active: bool,
    }

    /// Registered a customer.
    #[event(part_of = Customer)]
    pub(crate) struct CustomerRegistered {
        #[field(identifier)]
        pub customer: Identifier,
        pub address: Address,
    }

    /// Register a customer.
    #[command(part_of = Customer)]
    pub(crate) struct RegisterCustomer {
        #[field(max_length = 30)]
        pub name: String,
        pub address: Address,
    }

    /// Rename a customer.
    #[command(part_of = Customer)]
    pub(crate) struct RenameCustomer {
        pub customer_id: Identifier,
        pub name: String,
    }

    #[derive(Default)]
    pub(crate) struct Customers;

    #[command_handler(part_of = Customer)]
    impl Customers {
        /// Sync, returning a value.
        #[handle(RegisterCustomer)]
        fn register(&self, command: RegisterCustomer, _ctx: &mut Context) -> Result<Identifier> {
            let mut customer = Customer::create_new();
            customer.name = command.name;
            customer.address = command.address.clone();
            let customer_id = customer.customer_id.clone();
            customer.raise(CustomerRegistered {
                customer: customer_id.clone(),
                address: command.address,
            })?;
            Ok(customer_id)
        }

        /// Async, returning nothing.
        #[handle(RenameCustomer)]
        async fn rename(&self, _command: RenameCustomer, _ctx: &mut Context) {}

        /// Compiled out: without the `#[cfg]` on its generated impls, this second handler of
        /// `RenameCustomer` would conflict with the first.
        #[cfg(any())]
        #[handle(RenameCustomer)]
        async fn rename_again(&self, _command: RenameCustomer, _ctx: &mut Context) -> Result<()> {
            Ok(())
        }
    }

    pub(crate) fn helper_is_plain(_: &Customers) {}
}

#[test]
fn shapes_have_their_field_definitions() {
    use fidelis_core::{FieldKind, HasFields};
    use shapes::*;
    let fields = Customer::FIELDS;
    let by_name = |name: &str| fields.iter().find(|f| f.name == name).unwrap();
    assert!(by_name("customer_id").identifier);
    assert!(by_name("name").unique);
    assert_eq!(by_name("age").max_value, Some(150.0));
    assert_eq!(by_name("score").min_value, Some(-1.5));
    assert_eq!(by_name("address").kind, FieldKind::Embedded);
    assert!(by_name("address").embedded.is_some());
    assert_eq!(by_name("tags").kind, FieldKind::List);
    assert!(!by_name("extra").required);
    assert!(by_name("active").has_default);
    assert!(Customer::create_new().active);
    assert_eq!(Address::FIELDS[1].choices, ["NL", "BE"]);
    assert_eq!(fields.len(), 9);
}

#[tokio::test]
async fn sync_handlers_values_and_units_dispatch() {
    use shapes::*;
    let domain = Domain::builder("shapes").build().await.unwrap();
    let address = Address {
        street: "Dam 1".into(),
        country: "NL".into(),
    };
    let id = domain
        .process(RegisterCustomer {
            name: "Ada".into(),
            address,
        })
        .await
        .unwrap();
    let () = domain
        .process(RenameCustomer {
            customer_id: id,
            name: "Bea".into(),
        })
        .await
        .unwrap();
    let bad = Address {
        street: String::new(),
        country: "FR".into(),
    };
    let error = domain
        .process(RegisterCustomer {
            name: "Ada".into(),
            address: bad,
        })
        .await
        .unwrap_err();
    let errors = error.as_validation().unwrap();
    assert_eq!(errors.messages_for("address.country").len(), 1);
    assert_eq!(errors.messages_for("address.street").len(), 1);
    shapes::helper_is_plain(&Customers);
}
