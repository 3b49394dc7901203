//! What happens to an account: the facts its stream records.

use fidelis_core::prelude::*;

use crate::account::Account;

/// An account was opened with an opening deposit.
#[event(part_of = Account, published)]
pub struct AccountOpened {
    /// The account.
    pub account_id: Identifier,
    /// Its human-facing number (`ACC-001`).
    pub account_number: String,
    /// Who holds it.
    pub holder_name: String,
    /// The first balance.
    pub opening_deposit: Decimal,
}

/// Money was paid in.
#[event(part_of = Account, published)]
pub struct DepositMade {
    /// The account.
    pub account_id: Identifier,
    /// How much.
    pub amount: Decimal,
    /// A note for the statement.
    pub reference: Option<String>,
}

/// Money was taken out.
#[event(part_of = Account)]
pub struct WithdrawalMade {
    /// The account.
    pub account_id: Identifier,
    /// How much.
    pub amount: Decimal,
    /// A note for the statement.
    pub reference: Option<String>,
}

/// Someone was authorized to act on the account.
#[event(part_of = Account)]
pub struct SignatoryAdded {
    /// The account.
    pub account_id: Identifier,
    /// The new signatory's id (the entity's identity, the same on every replay).
    pub signatory_id: Identifier,
    /// Their name.
    pub name: String,
    /// `owner` or `signer`.
    pub role: String,
}

/// The account was closed.
#[event(part_of = Account)]
pub struct AccountClosed {
    /// The account.
    pub account_id: Identifier,
    /// Why.
    pub reason: Option<String>,
}
