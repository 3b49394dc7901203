//! Generated code is warning-free: every macro, under `#![deny(warnings)]` (which, with the
//! workspace lints, includes `missing_docs`).

#![deny(warnings)]

/// A small domain using every macro.
pub mod bank {
    use fidelis_core::prelude::*;

    /// An amount of money.
    #[value_object]
    pub struct Money {
        /// How much.
        #[field(min_value = 0)]
        pub amount: f64,
        /// In which currency.
        #[field(max_length = 3, min_length = 3)]
        pub currency: String,
        /// The same amount, exactly.
        #[field(min_value = 0.01, max_value = 1e6, decimal_places = 2)]
        pub exact: Option<Decimal>,
        /// An exchange rate, possibly unknown (NaN).
        #[field(allow_non_finite)]
        pub rate: Option<f64>,
    }

    /// Where a wallet stands: data in one variant.
    #[value_object]
    pub enum WalletStatus {
        /// In use.
        Active,
        /// Frozen, and why.
        Frozen {
            /// Why.
            reason: String,
        },
        /// Closed on a date.
        Closed(NaiveDate),
    }

    /// A kind of wallet: unit variants only, a projection column.
    #[value_object]
    #[serde(rename_all = "lowercase")]
    pub enum WalletKind {
        /// A person's.
        Personal,
        /// A company's.
        Business,
    }

    /// A wallet.
    #[aggregate(event_sourced)]
    pub struct Wallet {
        /// Its owner.
        #[field(max_length = 50, required)]
        pub owner: String,
        /// What it holds.
        #[field(default = 0.0)]
        pub balance: f64,
        /// Its tier.
        #[field(choices = ["basic", "gold"], default = "basic")]
        pub tier: String,
        /// Its limit.
        pub limit: Option<Money>,
        /// Its status.
        #[field(default = WalletStatus::Active)]
        pub status: WalletStatus,
    }

    #[aggregate]
    impl Wallet {
        #[invariant(pre)]
        fn has_owner(&self) -> Result<(), ValidationError> {
            Ok(())
        }

        #[invariant(post)]
        fn not_negative(&self) -> Result<(), ValidationError> {
            if self.balance < 0.0 {
                return Err(ValidationError::field("balance", "negative"));
            }
            Ok(())
        }

        #[handle(OpenSpareWallet, create)]
        fn open_spare(command: OpenSpareWallet) -> Result<Self> {
            let mut wallet = Self::create_new();
            let wallet_id = wallet.id.clone();
            wallet.raise(WalletOpened {
                wallet_id,
                owner: command.owner,
            })?;
            Ok(wallet)
        }

        #[handle(TopUp)]
        async fn top_up(&mut self, command: TopUp) -> Result<f64> {
            let wallet_id = self.id.clone();
            self.raise(WalletFunded {
                wallet_id,
                amount: command.amount,
            })?;
            Ok(self.balance)
        }

        #[apply]
        fn on_opened(&mut self, event: &WalletOpened) {
            self.owner = event.owner.clone();
        }

        #[apply]
        fn on_funded(&mut self, event: &WalletFunded) {
            self.balance += event.amount.amount;
        }
    }

    /// A wallet was opened.
    #[event(part_of = Wallet, version = 2, type_name = "Bank.WalletOpened.v2")]
    pub struct WalletOpened {
        /// The wallet.
        pub wallet_id: Identifier,
        /// Its owner.
        pub owner: String,
    }

    /// Money was added.
    #[event(part_of = Wallet)]
    pub struct WalletFunded {
        /// The wallet.
        pub wallet_id: Identifier,
        /// How much.
        pub amount: Money,
    }

    /// Open a wallet.
    #[command(part_of = Wallet)]
    pub struct OpenWallet {
        /// Its owner.
        #[field(max_length = 50)]
        pub owner: String,
    }

    /// Fund a wallet.
    #[command(part_of = Wallet)]
    pub struct FundWallet {
        /// The wallet.
        pub wallet_id: Identifier,
        /// How much.
        pub amount: Money,
    }

    /// Open a spare wallet (handled by the aggregate).
    #[command(part_of = Wallet)]
    pub struct OpenSpareWallet {
        /// Its owner.
        pub owner: String,
    }

    /// Top a wallet up (handled by the aggregate).
    #[command(part_of = Wallet)]
    pub struct TopUp {
        /// The wallet.
        pub wallet_id: Identifier,
        /// How much.
        pub amount: Money,
    }

    /// Handles wallet commands.
    #[derive(Default)]
    pub struct WalletHandler;

    #[command_handler(part_of = Wallet)]
    impl WalletHandler {
        #[handle(OpenWallet)]
        async fn open(&self, command: OpenWallet, ctx: &mut Context) -> Result<Identifier> {
            let mut wallet = Wallet::create_new();
            let wallet_id = wallet.id.clone();
            wallet.raise(WalletOpened {
                wallet_id: wallet_id.clone(),
                owner: command.owner,
            })?;
            ctx.repository::<Wallet>().add(wallet).await?;
            Ok(wallet_id)
        }

        #[handle(FundWallet)]
        async fn fund(&self, command: FundWallet, ctx: &mut Context) -> Result<()> {
            let mut wallet = ctx.repository::<Wallet>().get(&command.wallet_id).await?;
            wallet.raise(WalletFunded {
                wallet_id: command.wallet_id,
                amount: command.amount,
            })?;
            ctx.repository::<Wallet>().add(wallet).await
        }
    }

    /// A row per wallet.
    #[projection]
    pub struct WalletRow {
        /// The wallet.
        #[field(identifier)]
        pub wallet_id: Identifier,
        /// Its owner.
        #[field(unique)]
        pub owner: String,
        /// Tags.
        pub tags: Vec<String>,
        /// Its kind, when known.
        pub kind: Option<WalletKind>,
    }

    /// Keeps [`WalletRow`] up to date.
    #[derive(Default)]
    pub struct WalletRows;

    #[projector(for = WalletRow, aggregates = [Wallet])]
    impl WalletRows {
        #[on(WalletOpened)]
        async fn opened(
            &self,
            event: &Event<WalletOpened>,
            ctx: &mut ProjectorContext<'_>,
        ) -> Result<()> {
            let row = WalletRow {
                wallet_id: event.wallet_id.clone(),
                owner: event.owner.clone(),
                tags: vec![],
                kind: None,
            };
            ctx.repository::<WalletRow>().add(row).await
        }
    }

    /// Reacts to funding (without state, so without `Default`).
    pub struct Notifier;

    #[event_handler(part_of = Wallet)]
    impl Notifier {
        #[handle(WalletFunded)]
        fn funded(_event: &Event<WalletFunded>, _ctx: &mut EventHandlerContext) {}
    }

    /// Reads a broker stream: one stateless, one with state.
    pub struct Webhooks;

    #[subscriber(stream = "bank.webhooks")]
    impl Webhooks {
        async fn handle(message: &BrokerMessage, _ctx: &mut EventHandlerContext) -> Result<()> {
            let _body: serde_json::Value = message.json()?;
            Ok(())
        }
    }

    /// Counts nothing, but takes `&self`.
    #[derive(Default)]
    pub struct Audit;

    #[subscriber(stream = "bank.audit")]
    impl Audit {
        fn handle(&self, _message: &BrokerMessage, _ctx: &mut EventHandlerContext) {}
    }
}

#[tokio::test]
async fn the_warning_free_domain_runs() {
    use bank::*;
    use fidelis_core::prelude::*;
    let domain = Domain::builder("bank").build().await.unwrap();
    let id = domain
        .process(OpenWallet {
            owner: "Ada".into(),
        })
        .await
        .unwrap();
    let amount = Money {
        amount: 5.0,
        currency: "EUR".into(),
        exact: Some(Decimal::new(500, 2)),
        rate: Some(f64::NAN),
    };
    domain
        .process(FundWallet {
            wallet_id: id.clone(),
            amount,
        })
        .await
        .unwrap();
    let wallet = domain.repository::<Wallet>().get(&id).await.unwrap();
    assert_eq!(wallet.balance, 5.0);
    let spare = domain
        .process(OpenSpareWallet { owner: "Bo".into() })
        .await
        .unwrap();
    let topped = domain
        .process(TopUp {
            wallet_id: spare,
            amount: Money {
                amount: 2.0,
                currency: "EUR".into(),
                exact: None,
                rate: None,
            },
        })
        .await
        .unwrap();
    assert_eq!(topped, 2.0);
    assert_eq!(wallet.tier, "basic");
    let row = domain.repository::<WalletRow>().get(&id).await.unwrap();
    assert_eq!(row.owner, "Ada");
    let bad = Money {
        amount: -1.0,
        currency: "EURO".into(),
        exact: None,
        rate: None,
    };
    let error = domain
        .process(FundWallet {
            wallet_id: id,
            amount: bad,
        })
        .await
        .unwrap_err();
    let errors = error.as_validation().unwrap();
    assert_eq!(
        errors.messages_for("amount.amount"),
        ["is too small (min 0)"]
    );
    assert_eq!(
        errors.messages_for("amount.currency"),
        ["is too long (max 3)"]
    );
}
