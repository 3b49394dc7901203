#![allow(missing_docs)]
// The autoref probes need the explicit `&` that clippy calls needless.
#![allow(clippy::needless_borrow)]
//! A domain written without the macros, through the same traits they implement: the
//! explicit registration path (no `inventory`), and the reference for what the macros
//! generate.

use fidelis_core::__private::{
    self as fp, AggregateMeta, Apply, ElementKind, HandlesCommandsOf, ListensTo, Registrar,
    StorageKind,
};
use fidelis_core::prelude::*;
use fidelis_core::{
    Aggregate, BelongsTo, Element, FieldDef, FieldKind, Handled, HasFields, Invariant,
    InvariantStage, Persisted, Projector,
};
use serde::{Deserialize, Serialize};

// ---- aggregate -------------------------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(crate = "fidelis_core::__private::serde")]
pub struct Account {
    pub id: Identifier,
    pub holder_name: String,
    #[serde(default = "default_balance")]
    pub balance: f64,
    #[serde(skip)]
    __fidelis: AggregateMeta,
}

fn default_balance() -> f64 {
    0.0
}

impl Account {
    pub fn create_new() -> Self {
        fp::create_new::<Self>()
    }
    pub fn raise<E: BelongsTo<Self>>(&mut self, event: E) -> Result<()> {
        fp::raise(self, event)
    }
    pub fn version(&self) -> i64 {
        self.__fidelis.version()
    }

    pub fn open(holder: &str, opening_deposit: f64) -> Result<Self> {
        let mut account = Self::create_new();
        let account_id = account.id.clone();
        account.raise(AccountOpened {
            account_id,
            holder_name: holder.into(),
            opening_deposit,
        })?;
        Ok(account)
    }

    pub fn deposit(&mut self, amount: f64) -> Result<()> {
        if amount <= 0.0 {
            return Err(ValidationError::field("amount", "Deposit amount must be positive").into());
        }
        self.raise(DepositMade {
            account_id: self.id.clone(),
            amount,
        })
    }

    fn balance_must_not_be_negative(&self) -> std::result::Result<(), ValidationError> {
        if self.balance < 0.0 {
            return Err(ValidationError::field("balance", "Insufficient funds"));
        }
        Ok(())
    }
}

const ACCOUNT_FIELDS: &[FieldDef] = &[
    FieldDef {
        identifier: true,
        ..FieldDef::new("id", FieldKind::Identifier, "Identifier")
    },
    FieldDef {
        max_length: Some(100),
        ..FieldDef::new("holder_name", FieldKind::String, "String")
    },
    FieldDef {
        has_default: true,
        ..FieldDef::new("balance", FieldKind::Float, "f64")
    },
];

impl Element for Account {
    const NAME: &'static str = "Account";
    const KIND: ElementKind = ElementKind::Aggregate;
    fn register(registrar: &mut Registrar) {
        registrar.aggregate::<Self>();
    }
}

impl HasFields for Account {
    const FIELDS: &'static [FieldDef] = ACCOUNT_FIELDS;
    fn validate(&self) -> std::result::Result<(), ValidationError> {
        let mut errors = ValidationError::new();
        fp::check_field(&self.id, &Self::FIELDS[0], &mut errors);
        fp::check_field(&self.holder_name, &Self::FIELDS[1], &mut errors);
        fp::check_field(&self.balance, &Self::FIELDS[2], &mut errors);
        errors.into_result()
    }
}

impl Persisted for Account {
    const STORAGE: StorageKind = StorageKind::EventStream;
    fn identity(&self) -> Identifier {
        self.id.clone()
    }
    fn load<'a>(ctx: &'a Context, id: Identifier) -> fp::BoxFuture<'a, Result<Option<Self>>> {
        Box::pin(fp::load_aggregate::<Self>(ctx, id))
    }
    fn save<'a>(ctx: &'a mut Context, value: Self) -> fp::BoxFuture<'a, Result<()>> {
        Box::pin(fp::save_aggregate::<Self>(ctx, value))
    }
}

impl Aggregate for Account {
    const EVENT_SOURCED: bool = true;
    fn id(&self) -> &Identifier {
        &self.id
    }
    fn blank(id: Identifier) -> Self {
        Self {
            id,
            holder_name: Default::default(),
            balance: default_balance(),
            __fidelis: AggregateMeta::default(),
        }
    }
    fn meta(&self) -> &AggregateMeta {
        &self.__fidelis
    }
    fn meta_mut(&mut self) -> &mut AggregateMeta {
        &mut self.__fidelis
    }
    fn invariants() -> &'static [Invariant<Self>] {
        #[allow(unused_imports)]
        use fp::{InvariantsFallback as _, InvariantsViaImpl as _};
        (&fp::InvariantProbe::<Self>::new()).invariants()
    }
}

// What `#[aggregate] impl Account { #[invariant(post)] … #[apply] … }` generates.
impl fp::AggregateInvariants for Account {
    const INVARIANTS: &'static [Invariant<Self>] = &[Invariant {
        name: "balance_must_not_be_negative",
        stage: InvariantStage::Post,
        check: Account::balance_must_not_be_negative,
    }];
}
impl Apply<AccountOpened> for Account {
    fn apply(&mut self, event: &AccountOpened) {
        self.holder_name = event.holder_name.clone();
        self.balance = event.opening_deposit;
    }
}
impl Apply<DepositMade> for Account {
    fn apply(&mut self, event: &DepositMade) {
        self.balance += event.amount;
    }
}

// ---- events ----------------------------------------------------------------------------

macro_rules! event_impls {
    ($event:ident, $fields:expr, [$($field:ident: $index:expr),*]) => {
        impl Element for $event {
            const NAME: &'static str = stringify!($event);
            const KIND: ElementKind = ElementKind::Event;
            fn register(registrar: &mut Registrar) {
                registrar.event::<Self>();
            }
        }
        impl HasFields for $event {
            const FIELDS: &'static [FieldDef] = $fields;
            fn validate(&self) -> std::result::Result<(), ValidationError> {
                let mut errors = ValidationError::new();
                $(fp::check_field(&self.$field, &Self::FIELDS[$index], &mut errors);)*
                errors.into_result()
            }
        }
        impl BelongsTo<Account> for $event {}
        impl DomainEvent for $event {
            type Aggregate = Account;
            const VERSION: u32 = 1;
            const TYPE_NAME: Option<&'static str> = None;
            fn aggregate_id(&self) -> Option<&Identifier> {
                Some(&self.account_id)
            }
            fn apply_to(&self, aggregate: &mut Account) {
                <Account as Apply<Self>>::apply(aggregate, self)
            }
        }
    };
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "fidelis_core::__private::serde")]
pub struct AccountOpened {
    pub account_id: Identifier,
    pub holder_name: String,
    pub opening_deposit: f64,
}
event_impls!(
    AccountOpened,
    &[
        FieldDef::new("account_id", FieldKind::Identifier, "Identifier"),
        FieldDef::new("holder_name", FieldKind::String, "String"),
        FieldDef::new("opening_deposit", FieldKind::Float, "f64"),
    ],
    [account_id: 0, holder_name: 1, opening_deposit: 2]
);

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "fidelis_core::__private::serde")]
pub struct DepositMade {
    pub account_id: Identifier,
    pub amount: f64,
}
event_impls!(
    DepositMade,
    &[
        FieldDef::new("account_id", FieldKind::Identifier, "Identifier"),
        FieldDef::new("amount", FieldKind::Float, "f64"),
    ],
    [account_id: 0, amount: 1]
);

// ---- commands and their handler --------------------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(crate = "fidelis_core::__private::serde")]
pub struct OpenAccount {
    pub holder_name: String,
    pub opening_deposit: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(crate = "fidelis_core::__private::serde")]
pub struct MakeDeposit {
    pub account_id: Identifier,
    pub amount: f64,
}

macro_rules! command_impls {
    ($command:ident, $fields:expr, [$($field:ident: $index:expr),*]) => {
        impl Element for $command {
            const NAME: &'static str = stringify!($command);
            const KIND: ElementKind = ElementKind::Command;
            fn register(registrar: &mut Registrar) {
                registrar.command::<Self>();
            }
        }
        impl HasFields for $command {
            const FIELDS: &'static [FieldDef] = $fields;
            fn validate(&self) -> std::result::Result<(), ValidationError> {
                let mut errors = ValidationError::new();
                $(fp::check_field(&self.$field, &Self::FIELDS[$index], &mut errors);)*
                errors.into_result()
            }
        }
        impl Command for $command {
            type Aggregate = Account;
        }
    };
}
command_impls!(
    OpenAccount,
    &[
        FieldDef { max_length: Some(100), ..FieldDef::new("holder_name", FieldKind::String, "String") },
        FieldDef { min_value: Some(0.0), ..FieldDef::new("opening_deposit", FieldKind::Float, "f64") },
    ],
    [holder_name: 0, opening_deposit: 1]
);
command_impls!(
    MakeDeposit,
    &[
        FieldDef::new("account_id", FieldKind::Identifier, "Identifier"),
        FieldDef::new("amount", FieldKind::Float, "f64"),
    ],
    [account_id: 0, amount: 1]
);

#[derive(Default)]
pub struct AccountHandler;

impl AccountHandler {
    async fn open_account(&self, command: OpenAccount, ctx: &mut Context) -> Result<Identifier> {
        let account = Account::open(&command.holder_name, command.opening_deposit)?;
        let id = account.id.clone();
        ctx.repository::<Account>().add(account).await?;
        Ok(id)
    }

    fn make_deposit_sync_prelude(&self) {}

    async fn make_deposit(&self, command: MakeDeposit, ctx: &mut Context) -> Result<()> {
        self.make_deposit_sync_prelude();
        let mut account = ctx.repository::<Account>().get(&command.account_id).await?;
        account.deposit(command.amount)?;
        ctx.repository::<Account>().add(account).await
    }
}

impl Element for AccountHandler {
    const NAME: &'static str = "AccountHandler";
    const KIND: ElementKind = ElementKind::CommandHandler;
    fn register(registrar: &mut Registrar) {
        #[allow(unused_imports)]
        use fp::{FactoryFallback as _, FactoryViaDefault as _};
        registrar.command_handler::<Self>(
            (&fp::DefaultProbe::<Self>::new()).factory(),
            vec![
                fp::CommandRoute::of::<OpenAccount>("open_account"),
                fp::CommandRoute::of::<MakeDeposit>("make_deposit"),
            ],
        );
    }
}
impl HandlesCommandsOf<Account> for AccountHandler {}
impl Handled for OpenAccount {
    type Handler = AccountHandler;
    type Output = <Result<Identifier> as fp::HandlerReturn>::Output;
    fn dispatch<'a>(
        handler: &'a AccountHandler,
        command: Self,
        ctx: &'a mut Context,
    ) -> fp::BoxFuture<'a, Result<Self::Output>> {
        Box::pin(
            async move { fp::HandlerReturn::into_result(handler.open_account(command, ctx).await) },
        )
    }
}
impl Handled for MakeDeposit {
    type Handler = AccountHandler;
    type Output = <Result<()> as fp::HandlerReturn>::Output;
    fn dispatch<'a>(
        handler: &'a AccountHandler,
        command: Self,
        ctx: &'a mut Context,
    ) -> fp::BoxFuture<'a, Result<Self::Output>> {
        Box::pin(
            async move { fp::HandlerReturn::into_result(handler.make_deposit(command, ctx).await) },
        )
    }
}

// ---- projection and projector ----------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(crate = "fidelis_core::__private::serde")]
pub struct Summary {
    pub account_id: Identifier,
    pub balance: f64,
    pub transactions: i64,
}

impl Element for Summary {
    const NAME: &'static str = "Summary";
    const KIND: ElementKind = ElementKind::Projection;
    fn register(registrar: &mut Registrar) {
        registrar.projection::<Self>();
    }
}
impl HasFields for Summary {
    const FIELDS: &'static [FieldDef] = &[
        FieldDef {
            identifier: true,
            ..FieldDef::new("account_id", FieldKind::Identifier, "Identifier")
        },
        FieldDef::new("balance", FieldKind::Float, "f64"),
        FieldDef::new("transactions", FieldKind::Integer, "i64"),
    ];
    fn validate(&self) -> std::result::Result<(), ValidationError> {
        let mut errors = ValidationError::new();
        fp::check_field(&self.account_id, &Self::FIELDS[0], &mut errors);
        fp::check_field(&self.balance, &Self::FIELDS[1], &mut errors);
        fp::check_field(&self.transactions, &Self::FIELDS[2], &mut errors);
        errors.into_result()
    }
}
impl Persisted for Summary {
    const STORAGE: StorageKind = StorageKind::ProjectionRow;
    fn identity(&self) -> Identifier {
        fp::IdentityField::identity(&self.account_id)
    }
    fn load<'a>(ctx: &'a Context, id: Identifier) -> fp::BoxFuture<'a, Result<Option<Self>>> {
        Box::pin(fp::load_projection::<Self>(ctx, id))
    }
    fn save<'a>(ctx: &'a mut Context, value: Self) -> fp::BoxFuture<'a, Result<()>> {
        Box::pin(fp::save_projection::<Self>(ctx, value))
    }
}
impl Projection for Summary {
    const IDENTIFIER: &'static str = "account_id";
}

#[derive(Default)]
pub struct SummaryProjector;

impl SummaryProjector {
    async fn on_opened(
        &self,
        event: &Event<AccountOpened>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        ctx.repository::<Summary>()
            .add(Summary {
                account_id: event.account_id.clone(),
                balance: event.opening_deposit,
                transactions: 1,
            })
            .await
    }
    fn on_deposit(
        &self,
        event: &Event<DepositMade>,
        _ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        // A plain `fn` listener: it records nothing here, to show the sync shape.
        let _ = event.amount;
        Ok(())
    }
}

impl Element for SummaryProjector {
    const NAME: &'static str = "SummaryProjector";
    const KIND: ElementKind = ElementKind::Projector;
    fn register(registrar: &mut Registrar) {
        #[allow(unused_imports)]
        use fp::{FactoryFallback as _, FactoryViaDefault as _};
        fn on_opened<'a>(
            this: &'a SummaryProjector,
            event: &'a Event<AccountOpened>,
            ctx: &'a mut ProjectorContext<'_>,
        ) -> fp::BoxFuture<'a, Result<()>> {
            Box::pin(
                async move { fp::HandlerReturn::into_result(this.on_opened(event, ctx).await) },
            )
        }
        fn on_deposit<'a>(
            this: &'a SummaryProjector,
            event: &'a Event<DepositMade>,
            ctx: &'a mut ProjectorContext<'_>,
        ) -> fp::BoxFuture<'a, Result<()>> {
            Box::pin(async move { fp::HandlerReturn::into_result(this.on_deposit(event, ctx)) })
        }
        registrar.projector::<Self, Summary>(
            (&fp::DefaultProbe::<Self>::new()).factory(),
            vec![fp::AggregateRef::of::<Account>()],
            vec![
                fp::ListenerRoute::projector::<Self, AccountOpened>("on_opened", on_opened),
                fp::ListenerRoute::projector::<Self, DepositMade>("on_deposit", on_deposit),
            ],
        );
    }
}
impl Projector for SummaryProjector {
    type Projection = Summary;
}
impl ListensTo<Account> for SummaryProjector {}

// ---- tests ------------------------------------------------------------------------------

async fn domain() -> Domain {
    Domain::builder("hand")
        .without_discovery()
        .register::<Account>()
        .register::<AccountOpened>()
        .register::<DepositMade>()
        .register::<OpenAccount>()
        .register::<MakeDeposit>()
        .register::<AccountHandler>()
        .register::<Summary>()
        .register::<SummaryProjector>()
        .build()
        .await
        .expect("the hand-written domain is whole")
}

#[tokio::test]
async fn explicit_registration_without_inventory_runs_commands() {
    let domain = domain().await;
    let id = domain
        .process(OpenAccount {
            holder_name: "Ada".into(),
            opening_deposit: 10.0,
        })
        .await
        .unwrap();
    domain
        .process(MakeDeposit {
            account_id: id.clone(),
            amount: 5.0,
        })
        .await
        .unwrap();

    let account = domain.repository::<Account>().get(&id).await.unwrap();
    assert_eq!(account.balance, 15.0);
    assert_eq!(account.version(), 1);
    let summary = domain.repository::<Summary>().get(&id).await.unwrap();
    assert_eq!(summary.balance, 10.0);

    let stream = domain.event_store().stream_of::<Account>(&id).unwrap();
    assert_eq!(stream, format!("hand::account-{id}"));
    let events = domain.event_store().read_stream(&stream).await.unwrap();
    let names: Vec<_> = events
        .iter()
        .map(|e| e.metadata.type_name.as_str())
        .collect();
    assert_eq!(names, ["Hand.AccountOpened.v1", "Hand.DepositMade.v1"]);
    assert_eq!(events[1].metadata.version, 1);
    assert_eq!(events[1].metadata.global_position, 2);
}

#[tokio::test]
async fn invariant_failure_leaves_the_aggregate_as_it_was() {
    let mut account = Account::open("Ada", 10.0).unwrap();
    let error = account
        .raise(DepositMade {
            account_id: account.id.clone(),
            amount: -50.0,
        })
        .unwrap_err();
    assert_eq!(
        error.as_validation().unwrap().messages_for("balance"),
        ["Insufficient funds"]
    );
    assert_eq!(account.balance, 10.0);
    assert_eq!(account.version(), 0);
    assert_eq!(Aggregate::meta(&account).pending().len(), 1);
}
