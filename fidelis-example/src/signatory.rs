//! Authorized signatories (chapter 10): people allowed to act on an account, held by the
//! account as entities. Each one's id is carried by the event that adds it, so a replay of
//! the account's stream gives the same ids.

use fidelis_core::prelude::*;

use crate::account::Account;

/// Someone allowed to act on an account.
#[entity(part_of = Account)]
pub struct AuthorizedSignatory {
    /// Their name.
    #[field(max_length = 100)]
    pub name: String,
    /// `owner` or `signer`.
    #[field(choices = ["owner", "signer"])]
    pub role: String,
}

#[entity]
impl AuthorizedSignatory {
    /// A name, not an e-mail address.
    #[invariant]
    fn name_is_not_an_address(&self) -> Result<(), ValidationError> {
        if self.name.contains('@') {
            return Err(ValidationError::field(
                "name",
                "Give the signatory's name, not an e-mail address",
            ));
        }
        Ok(())
    }
}
