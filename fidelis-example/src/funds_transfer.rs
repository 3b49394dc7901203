//! The process manager that moves a transfer's money (chapter 9): withdraw from the source,
//! deposit into the target, then complete the transfer; or fail it with the reason when the
//! withdrawal is refused (nothing moved), and return the money when the deposit is refused
//! after the withdrawal (compensation). A transfer always completes or fails, never stops
//! halfway.
//!
//! The account movements carry the transfer's id as their `reference`, which is how the
//! withdrawal's event finds its way back to this transfer's instance.

use fidelis_core::prelude::*;

use crate::account::Account;
use crate::commands::{MakeDeposit, MakeWithdrawal};
use crate::events::WithdrawalMade;
use crate::transfer::{
    CompleteTransfer, FailTransfer, Transfer, TransferCompleted, TransferFailed, TransferInitiated,
};

/// The state of one transfer's process; its key is the transfer's id.
#[process_manager(aggregates = [Transfer, Account])]
pub struct FundsTransfer {
    /// The transfer.
    pub transfer_id: Identifier,
    /// The account the money leaves.
    pub source: Identifier,
    /// The account the money goes to.
    pub target: Identifier,
    /// How much.
    #[field(default = Decimal::ZERO)]
    pub amount: Decimal,
    /// `NEW`, `WITHDRAWN`, `DEPOSITED`, `REFUNDED`, `COMPLETED` or `FAILED`.
    #[field(default = "NEW", choices = ["NEW", "WITHDRAWN", "DEPOSITED", "REFUNDED", "COMPLETED", "FAILED"])]
    pub status: String,
}

/// Whether a command was refused by the domain's rules (the transfer then fails), rather than
/// by the infrastructure (the step fails and is retried or logged).
fn refused(error: &Error) -> bool {
    error.as_validation().is_some() || matches!(error, Error::NotFound { .. } | Error::Domain(_))
}

#[process_manager]
impl FundsTransfer {
    #[handle(TransferInitiated, start, correlate = transfer_id)]
    async fn initiated(
        &mut self,
        event: &Event<TransferInitiated>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        self.transfer_id = event.transfer_id.clone();
        self.source = event.source.clone();
        self.target = event.target.clone();
        self.amount = event.amount;
        let withdrawal = ctx
            .process(MakeWithdrawal {
                account_id: event.source.clone(),
                amount: event.amount,
                reference: Some(event.transfer_id.to_string()),
            })
            .await;
        match withdrawal {
            Ok(()) => {
                self.status = "WITHDRAWN".into();
                Ok(())
            }
            Err(error) if refused(&error) => {
                tracing::info!(transfer = %event.transfer_id, %error, "withdrawal refused; the transfer fails");
                self.status = "FAILED".into();
                ctx.process(FailTransfer {
                    transfer_id: event.transfer_id.clone(),
                    reason: format!("withdrawal refused: {error}"),
                })
                .await
            }
            Err(error) => Err(error),
        }
    }

    #[handle(WithdrawalMade, correlate = reference)]
    async fn withdrawn(
        &mut self,
        _event: &Event<WithdrawalMade>,
        ctx: &mut EventHandlerContext,
    ) -> Result<()> {
        if self.status != "WITHDRAWN" {
            return Ok(());
        }
        let reference = Some(self.transfer_id.to_string());
        let deposit = ctx
            .process(MakeDeposit {
                account_id: self.target.clone(),
                amount: self.amount,
                reference: reference.clone(),
            })
            .await;
        match deposit {
            Ok(()) => {
                self.status = "DEPOSITED".into();
                ctx.process(CompleteTransfer {
                    transfer_id: self.transfer_id.clone(),
                })
                .await
            }
            Err(error) if refused(&error) => {
                tracing::info!(transfer = %self.transfer_id, %error, "deposit refused; returning the money");
                // Compensation: the money goes back where it came from.
                ctx.process(MakeDeposit {
                    account_id: self.source.clone(),
                    amount: self.amount,
                    reference,
                })
                .await?;
                self.status = "REFUNDED".into();
                ctx.process(FailTransfer {
                    transfer_id: self.transfer_id.clone(),
                    reason: format!("deposit refused: {error}; the withdrawal was returned"),
                })
                .await
            }
            Err(error) => Err(error),
        }
    }

    #[handle(TransferCompleted, correlate = transfer_id, end)]
    fn completed(
        &mut self,
        _: &Event<TransferCompleted>,
        _: &mut EventHandlerContext,
    ) -> Result<()> {
        self.status = "COMPLETED".into();
        Ok(())
    }

    #[handle(TransferFailed, correlate = transfer_id, end)]
    fn failed(&mut self, _: &Event<TransferFailed>, _: &mut EventHandlerContext) -> Result<()> {
        self.status = "FAILED".into();
        Ok(())
    }
}
