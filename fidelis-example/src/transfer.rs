//! Transfers between two accounts (chapter 9): the `Transfer` aggregate records the request
//! and its outcome; the [`FundsTransfer`](crate::funds_transfer::FundsTransfer) process
//! manager moves the money.

use fidelis_core::prelude::*;

/// Where a transfer stands.
#[value_object]
pub enum TransferStatus {
    /// Asked for; the money is moving.
    Pending,
    /// The money left the source and reached the target.
    Completed,
    /// Nothing moved (or what moved was returned); `reason` says why.
    Failed,
}

/// A transfer of money from one account to another.
#[aggregate(event_sourced)]
pub struct Transfer {
    /// The account the money leaves.
    pub source: Identifier,
    /// The account the money goes to.
    pub target: Identifier,
    /// How much.
    #[field(default = Decimal::ZERO)]
    pub amount: Decimal,
    /// Where it stands.
    #[field(default = TransferStatus::Pending)]
    pub status: TransferStatus,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// A transfer was asked for.
#[event(part_of = Transfer)]
pub struct TransferInitiated {
    /// The transfer.
    pub transfer_id: Identifier,
    /// The account the money leaves.
    pub source: Identifier,
    /// The account the money goes to.
    pub target: Identifier,
    /// How much.
    pub amount: Decimal,
}

/// The money reached the target account.
#[event(part_of = Transfer)]
pub struct TransferCompleted {
    /// The transfer.
    pub transfer_id: Identifier,
}

/// The transfer did not happen (anything withdrawn was returned).
#[event(part_of = Transfer)]
pub struct TransferFailed {
    /// The transfer.
    pub transfer_id: Identifier,
    /// Why.
    pub reason: String,
}

/// Move money from one account to another.
#[command(part_of = Transfer)]
pub struct InitiateTransfer {
    /// The account the money leaves.
    pub source: Identifier,
    /// The account the money goes to.
    pub target: Identifier,
    /// How much, in dollars and cents.
    #[field(decimal_places = 2)]
    pub amount: Decimal,
}

/// Record that a transfer's money arrived.
#[command(part_of = Transfer)]
pub struct CompleteTransfer {
    /// The transfer.
    pub transfer_id: Identifier,
}

/// Record that a transfer failed.
#[command(part_of = Transfer)]
pub struct FailTransfer {
    /// The transfer.
    pub transfer_id: Identifier,
    /// Why.
    pub reason: String,
}

#[aggregate]
impl Transfer {
    #[handle(InitiateTransfer, create)]
    fn initiate(command: InitiateTransfer) -> Result<Self> {
        let mut errors = ValidationError::new();
        if command.amount <= Decimal::ZERO {
            errors.add("amount", "Transfer amount must be positive");
        }
        if command.source == command.target {
            errors.add("target", "Cannot transfer to the source account");
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let mut transfer = Self::create_new();
        let transfer_id = transfer.id.clone();
        transfer.raise(TransferInitiated {
            transfer_id,
            source: command.source,
            target: command.target,
            amount: command.amount,
        })?;
        Ok(transfer)
    }

    #[handle(CompleteTransfer)]
    fn complete(&mut self, _: CompleteTransfer) -> Result<()> {
        self.ensure_pending()?;
        self.raise(TransferCompleted {
            transfer_id: self.id.clone(),
        })
    }

    #[handle(FailTransfer)]
    fn fail(&mut self, command: FailTransfer) -> Result<()> {
        self.ensure_pending()?;
        self.raise(TransferFailed {
            transfer_id: self.id.clone(),
            reason: command.reason,
        })
    }

    /// A transfer ends once.
    fn ensure_pending(&self) -> Result<()> {
        if self.status == TransferStatus::Pending {
            Ok(())
        } else {
            Err(ValidationError::field("status", "The transfer has already ended").into())
        }
    }

    #[apply]
    fn on_initiated(&mut self, event: &TransferInitiated) {
        self.source = event.source.clone();
        self.target = event.target.clone();
        self.amount = event.amount;
        self.status = TransferStatus::Pending;
    }

    #[apply]
    fn on_completed(&mut self, _: &TransferCompleted) {
        self.status = TransferStatus::Completed;
    }

    #[apply]
    fn on_failed(&mut self, event: &TransferFailed) {
        self.status = TransferStatus::Failed;
        self.reason = Some(event.reason.clone());
    }
}
