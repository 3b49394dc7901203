//! The account aggregate: the write model that enforces the ledger's rules.

use fidelis_core::prelude::*;

use crate::events::{AccountClosed, AccountOpened, DepositMade, SignatoryAdded, WithdrawalMade};
use crate::signatory::AuthorizedSignatory;

/// Whether an account takes movements: a Rust enum as a field (stored as its variant name).
#[value_object]
pub enum AccountStatus {
    /// Open for deposits and withdrawals.
    Active,
    /// Closed: no more movements.
    Closed,
}

/// The ledger's business rules that are not about one field: a typed error the caller can
/// match on (`error.domain::<AccountError>()`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A deposit or withdrawal on a closed account.
    #[error("account {account_id} is closed")]
    Closed {
        /// The closed account.
        account_id: Identifier,
    },
}

impl DomainError for AccountError {}

/// A bank account, rebuilt from its events.
#[aggregate(event_sourced)]
pub struct Account {
    /// Its human-facing number (`ACC-001`).
    #[field(max_length = 20)]
    pub account_number: String,
    /// Who holds it.
    #[field(max_length = 100)]
    pub holder_name: String,
    /// The current balance.
    #[field(default = Decimal::ZERO)]
    pub balance: Decimal,
    /// Active or closed.
    #[field(default = AccountStatus::Active)]
    pub status: AccountStatus,
    /// Who may act on it besides the holder.
    pub signatories: Vec<AuthorizedSignatory>,
}

#[aggregate]
impl Account {
    #[invariant(post)]
    fn balance_must_not_be_negative(&self) -> Result<(), ValidationError> {
        if self.balance < Decimal::ZERO {
            return Err(ValidationError::field(
                "balance",
                "Insufficient funds: balance cannot be negative",
            ));
        }
        Ok(())
    }

    #[invariant(post)]
    fn closed_account_must_have_zero_balance(&self) -> Result<(), ValidationError> {
        if self.status == AccountStatus::Closed && !self.balance.is_zero() {
            return Err(ValidationError::field(
                "status",
                "Cannot close account with non-zero balance",
            ));
        }
        Ok(())
    }

    /// Opens an account with an opening deposit.
    pub fn open(number: &str, holder: &str, opening_deposit: Decimal) -> Result<Self> {
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

    /// Refuses movements on a closed account.
    fn ensure_active(&self) -> Result<()> {
        match self.status {
            AccountStatus::Active => Ok(()),
            AccountStatus::Closed => Err(AccountError::Closed {
                account_id: self.id.clone(),
            }
            .into()),
        }
    }

    /// Pays money in; refused on a closed account ([`AccountError::Closed`]).
    pub fn deposit(&mut self, amount: Decimal, reference: Option<String>) -> Result<()> {
        self.ensure_active()?;
        if amount <= Decimal::ZERO {
            return Err(ValidationError::field("amount", "Deposit amount must be positive").into());
        }
        self.raise(DepositMade {
            account_id: self.id.clone(),
            amount,
            reference,
        })
    }

    /// Takes money out; refused when the balance would go negative, or the account is closed.
    pub fn withdraw(&mut self, amount: Decimal, reference: Option<String>) -> Result<()> {
        self.ensure_active()?;
        if amount <= Decimal::ZERO {
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

    /// Authorizes someone to act on the account, with a new id; gives the id. Refused, with
    /// every failing field, when the signatory is invalid.
    pub fn add_signatory(&mut self, name: String, role: String) -> Result<Identifier> {
        self.ensure_active()?;
        let signatory_id = Identifier::generate();
        self.raise(SignatoryAdded {
            account_id: self.id.clone(),
            signatory_id: signatory_id.clone(),
            name,
            role,
        })?;
        Ok(signatory_id)
    }

    /// Closes the account; refused unless the balance is zero.
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
        self.status = AccountStatus::Active;
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
    fn on_signatory_added(&mut self, event: &SignatoryAdded) {
        self.signatories.push(AuthorizedSignatory {
            id: event.signatory_id.clone(),
            name: event.name.clone(),
            role: event.role.clone(),
        });
    }

    #[apply]
    fn on_account_closed(&mut self, _event: &AccountClosed) {
        self.status = AccountStatus::Closed;
    }
}
