//! The activity feed: one row per thing that happened to an account or a transfer, newest
//! last, for the dashboard's history.

use fidelis_core::prelude::*;

use crate::account::Account;
use crate::events::{AccountClosed, AccountOpened, DepositMade, SignatoryAdded, WithdrawalMade};
use crate::transfer::{Transfer, TransferCompleted, TransferFailed, TransferInitiated};

/// One entry of the feed.
#[projection]
pub struct ActivityFeed {
    /// The event's id (the row's key: a redelivered event writes the same row).
    #[field(identifier)]
    pub entry_id: Identifier,
    /// The account or transfer it is about.
    pub subject: Identifier,
    /// `account` or `transfer`.
    #[field(max_length = 20)]
    pub kind: String,
    /// What happened, in words.
    pub description: String,
    /// The money involved, if any.
    pub amount: Option<Decimal>,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// Its global position, to list the feed in order.
    pub position: i64,
}

/// Maintains [`ActivityFeed`] from the events of accounts and transfers.
#[derive(Default)]
pub struct ActivityFeedProjector;

impl ActivityFeedProjector {
    async fn record<E>(
        ctx: &mut ProjectorContext<'_>,
        event: &Event<E>,
        subject: &Identifier,
        kind: &str,
        description: String,
        amount: Option<Decimal>,
    ) -> Result<()> {
        let metadata = event.metadata();
        ctx.repository::<ActivityFeed>()
            .add(ActivityFeed {
                entry_id: metadata.id.clone(),
                subject: subject.clone(),
                kind: kind.into(),
                description,
                amount,
                occurred_at: metadata.time,
                position: metadata.global_position,
            })
            .await
    }
}

fn with_reference(text: String, reference: &Option<String>) -> String {
    match reference {
        Some(reference) => format!("{text} ({reference})"),
        None => text,
    }
}

#[projector(for = ActivityFeed, aggregates = [Account, Transfer])]
impl ActivityFeedProjector {
    #[on(AccountOpened)]
    async fn opened(event: &Event<AccountOpened>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let text = format!("{} opened for {}", event.account_number, event.holder_name);
        Self::record(
            ctx,
            event,
            &event.account_id,
            "account",
            text,
            Some(event.opening_deposit),
        )
        .await
    }

    #[on(DepositMade)]
    async fn deposited(event: &Event<DepositMade>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let text = with_reference(format!("deposit of ${:.2}", event.amount), &event.reference);
        Self::record(
            ctx,
            event,
            &event.account_id,
            "account",
            text,
            Some(event.amount),
        )
        .await
    }

    #[on(WithdrawalMade)]
    async fn withdrawn(
        event: &Event<WithdrawalMade>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let text = with_reference(
            format!("withdrawal of ${:.2}", event.amount),
            &event.reference,
        );
        Self::record(
            ctx,
            event,
            &event.account_id,
            "account",
            text,
            Some(-event.amount),
        )
        .await
    }

    #[on(SignatoryAdded)]
    async fn signatory(
        event: &Event<SignatoryAdded>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let text = format!("{} added as {}", event.name, event.role);
        Self::record(ctx, event, &event.account_id, "account", text, None).await
    }

    #[on(AccountClosed)]
    async fn closed(event: &Event<AccountClosed>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let text = with_reference("account closed".to_owned(), &event.reason);
        Self::record(ctx, event, &event.account_id, "account", text, None).await
    }

    #[on(TransferInitiated)]
    async fn initiated(
        event: &Event<TransferInitiated>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let text = format!(
            "transfer of ${:.2} from {} to {} initiated",
            event.amount, event.source, event.target
        );
        Self::record(
            ctx,
            event,
            &event.transfer_id,
            "transfer",
            text,
            Some(event.amount),
        )
        .await
    }

    #[on(TransferCompleted)]
    async fn completed(
        event: &Event<TransferCompleted>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let text = "transfer completed".to_owned();
        Self::record(ctx, event, &event.transfer_id, "transfer", text, None).await
    }

    #[on(TransferFailed)]
    async fn failed(event: &Event<TransferFailed>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let text = format!("transfer failed: {}", event.reason);
        Self::record(ctx, event, &event.transfer_id, "transfer", text, None).await
    }
}
