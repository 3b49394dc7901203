//! What users ask the ledger to do, and the handler that does it.

use fidelis_core::prelude::*;

use crate::account::Account;

/// Open a new account.
#[command(part_of = Account)]
pub struct OpenAccount {
    /// Its human-facing number (`ACC-001`).
    #[field(max_length = 20)]
    pub account_number: String,
    /// Who holds it.
    #[field(max_length = 100)]
    pub holder_name: String,
    /// The first balance, in dollars and cents.
    #[field(min_value = 0, decimal_places = 2)]
    pub opening_deposit: Decimal,
}

/// Pay money into an account.
#[command(part_of = Account)]
pub struct MakeDeposit {
    /// The account.
    pub account_id: Identifier,
    /// How much, in dollars and cents.
    #[field(decimal_places = 2)]
    pub amount: Decimal,
    /// A note for the statement.
    pub reference: Option<String>,
}

/// Take money out of an account.
#[command(part_of = Account)]
pub struct MakeWithdrawal {
    /// The account.
    pub account_id: Identifier,
    /// How much, in dollars and cents.
    #[field(decimal_places = 2)]
    pub amount: Decimal,
    /// A note for the statement.
    pub reference: Option<String>,
}

/// Close an account (its balance must be zero).
#[command(part_of = Account)]
pub struct CloseAccount {
    /// The account.
    pub account_id: Identifier,
    /// Why.
    pub reason: Option<String>,
}

/// Authorize someone to act on an account. The rules of a signatory (name length, role) are
/// the entity's, checked when the account takes it.
#[command(part_of = Account)]
pub struct AddSignatory {
    /// The account.
    pub account_id: Identifier,
    /// Their name.
    pub name: String,
    /// `owner` or `signer`.
    pub role: String,
}

/// Handles every account command.
#[derive(Default)]
pub struct AccountCommandHandler;

#[command_handler(part_of = Account)]
impl AccountCommandHandler {
    #[handle(OpenAccount)]
    async fn open_account(&self, command: OpenAccount, ctx: &mut Context) -> Result<Identifier> {
        let account = Account::open(
            &command.account_number,
            &command.holder_name,
            command.opening_deposit,
        )?;
        let id = account.id.clone();
        ctx.repository::<Account>().add(account).await?;
        Ok(id)
    }

    #[handle(MakeDeposit)]
    async fn make_deposit(&self, command: MakeDeposit, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Account>();
        let mut account = repo.get(&command.account_id).await?;
        account.deposit(command.amount, command.reference)?;
        repo.add(account).await
    }

    #[handle(MakeWithdrawal)]
    async fn make_withdrawal(&self, command: MakeWithdrawal, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Account>();
        let mut account = repo.get(&command.account_id).await?;
        account.withdraw(command.amount, command.reference)?;
        repo.add(account).await
    }

    #[handle(AddSignatory)]
    async fn add_signatory(&self, command: AddSignatory, ctx: &mut Context) -> Result<Identifier> {
        let mut repo = ctx.repository::<Account>();
        let mut account = repo.get(&command.account_id).await?;
        let id = account.add_signatory(command.name, command.role)?;
        repo.add(account).await?;
        Ok(id)
    }

    #[handle(CloseAccount)]
    async fn close_account(&self, command: CloseAccount, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Account>();
        let mut account = repo.get(&command.account_id).await?;
        account.close(command.reason)?;
        repo.add(account).await
    }
}
