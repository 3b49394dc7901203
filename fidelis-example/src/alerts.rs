//! Compliance alerts: an event handler with a side effect outside the ledger (chapter 7's
//! preview). Large movements of money are reported to a [`ComplianceDesk`].

use std::sync::Mutex;

use fidelis_core::prelude::*;

use crate::account::Account;
use crate::events::{DepositMade, WithdrawalMade};

/// Movements at or above this amount are reported.
pub const LARGE_TRANSACTION: Decimal = Decimal::from_parts(10_000, 0, 0, false, 0);

/// One report to the compliance desk.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The account.
    pub account_id: Identifier,
    /// What happened (`deposit` or `withdrawal`).
    pub kind: &'static str,
    /// How much.
    pub amount: Decimal,
    /// The request that caused it.
    pub correlation_id: Identifier,
}

/// Where alerts go: a stand-in for a notification service, shared with handlers as a
/// domain resource (`Domain::builder(..).resource(ComplianceDesk::default())`).
#[derive(Debug, Default)]
pub struct ComplianceDesk {
    alerts: Mutex<Vec<Alert>>,
}

impl ComplianceDesk {
    /// Receives an alert.
    pub fn report(&self, alert: Alert) {
        tracing::warn!(account_id = %alert.account_id, kind = alert.kind, amount = %alert.amount, "compliance alert");
        self.alerts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(alert);
    }

    /// Every alert received so far.
    pub fn alerts(&self) -> Vec<Alert> {
        self.alerts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Reports large deposits and withdrawals, after they are committed.
#[derive(Default)]
pub struct ComplianceAlerts;

#[event_handler(part_of = Account)]
impl ComplianceAlerts {
    #[handle(DepositMade)]
    async fn on_deposit_made(
        &self,
        event: &Event<DepositMade>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        report_if_large(
            ctx,
            &event.account_id,
            "deposit",
            event.amount,
            event.metadata(),
        )
    }

    #[handle(WithdrawalMade)]
    async fn on_withdrawal_made(
        &self,
        event: &Event<WithdrawalMade>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        report_if_large(
            ctx,
            &event.account_id,
            "withdrawal",
            event.amount,
            event.metadata(),
        )
    }
}

fn report_if_large(
    ctx: &EventHandlerContext,
    account_id: &Identifier,
    kind: &'static str,
    amount: Decimal,
    metadata: &EventMetadata,
) -> Result<()> {
    if amount < LARGE_TRANSACTION {
        return Ok(());
    }
    ctx.resource::<ComplianceDesk>()?.report(Alert {
        account_id: account_id.clone(),
        kind,
        amount,
        correlation_id: metadata.correlation_id.clone(),
    });
    Ok(())
}
