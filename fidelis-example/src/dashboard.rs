//! The account dashboard: a read model kept up to date by a projector (chapter 6).

use fidelis_core::prelude::*;

use crate::account::Account;
use crate::events::{AccountOpened, DepositMade, WithdrawalMade};

/// A read-optimized view of an account for the dashboard.
#[projection]
pub struct AccountSummary {
    /// The account (the row's key).
    #[field(identifier)]
    pub account_id: Identifier,
    /// Its human-facing number.
    #[field(max_length = 20)]
    pub account_number: String,
    /// Who holds it.
    #[field(max_length = 100)]
    pub holder_name: String,
    /// The current balance.
    #[field(default = Decimal::ZERO)]
    pub balance: Decimal,
    /// Deposits and withdrawals so far, the opening deposit included.
    #[field(default = 0)]
    pub transaction_count: i64,
    /// When money last moved.
    pub last_transaction_at: Option<DateTime<Utc>>,
}

/// Maintains [`AccountSummary`] from account events.
#[derive(Default)]
pub struct AccountSummaryProjector;

#[projector(for = AccountSummary, aggregates = [Account])]
impl AccountSummaryProjector {
    #[on(AccountOpened)]
    async fn on_account_opened(
        &self,
        event: &Event<AccountOpened>,
        ctx: &mut ProjectorContext<'_>,
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
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<AccountSummary>();
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
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<AccountSummary>();
        let mut summary = repo.get(&event.account_id).await?;
        summary.balance -= event.amount;
        summary.transaction_count += 1;
        summary.last_transaction_at = Some(event.metadata().time);
        repo.add(summary).await
    }
}
