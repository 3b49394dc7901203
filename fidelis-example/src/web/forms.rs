//! The command forms, shared by the HTML pages and the JSON API: which fields a form has,
//! how its raw text becomes a command, and where the domain's errors go on it.
//!
//! A form is a type implementing [`CommandForm`]; the pages and the API handle every form
//! with one generic handler each. Adding a form is one more implementation here and one
//! route per surface in `web.rs`.

use std::collections::BTreeMap;

use fidelis_core::prelude::*;
use fidelis_core::{Domain, Handled, HasFields};
use serde::Serialize;

use super::read::{self, Named};
use crate::account::{AccountError, AccountStatus};
use crate::commands::{CloseAccount, MakeDeposit, MakeWithdrawal, OpenAccount};
use crate::transfer::InitiateTransfer;

/// The raw values of a submitted form or JSON body, by field name, as the user typed them
/// (shown again next to the errors).
#[derive(Clone, Debug, Default)]
pub(crate) struct Input {
    values: BTreeMap<String, String>,
    /// The accounts the fields name (by number or id), as [`CommandForm::resolve`] found
    /// them: the account's id, or why there is none.
    accounts: BTreeMap<String, Result<Identifier, String>>,
}

impl Input {
    /// An HTML form's `name=value` pairs (the last value wins for a repeated name).
    pub(crate) fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self {
            values: pairs.into_iter().collect(),
            accounts: BTreeMap::new(),
        }
    }

    /// A JSON object's members: strings as they are, numbers as written, `null` as absent.
    /// Anything else is an error on that member.
    pub(crate) fn from_json(value: serde_json::Value) -> Result<Self, FieldErrors> {
        let serde_json::Value::Object(members) = value else {
            return Err(FieldErrors::form(
                "the body must be a JSON object of the form's fields",
            ));
        };
        let mut values = BTreeMap::new();
        let mut errors = FieldErrors::default();
        for (name, value) in members {
            match value {
                serde_json::Value::String(text) => {
                    values.insert(name, text);
                }
                serde_json::Value::Number(number) => {
                    values.insert(name, number.to_string());
                }
                serde_json::Value::Null => {}
                _ => errors.add(&name, "must be a string or a number"),
            }
        }
        if errors.is_empty() {
            Ok(Self {
                values,
                accounts: BTreeMap::new(),
            })
        } else {
            Err(errors)
        }
    }

    /// The value of a field as submitted ("" when absent).
    pub(crate) fn value(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// A text field, trimmed; blank text is left to the command's own `is required` check.
    fn text(&self, name: &str) -> String {
        self.value(name).trim().to_owned()
    }

    /// An optional text field: `None` when blank.
    fn optional_text(&self, name: &str) -> Option<String> {
        Some(self.text(name)).filter(|text| !text.is_empty())
    }

    /// Looks up the account field `name` names, by id or else by account number, and keeps
    /// what was found for [`account`](Self::account). A blank field is left alone (the
    /// command's `is required` check reports it); an unknown, ambiguous or closed account is
    /// an error of the field.
    async fn look_up_account(&mut self, domain: &Domain, name: &str) -> Result<()> {
        let text = self.text(name);
        if text.is_empty() {
            return Ok(());
        }
        let found = match read::account_named(domain, &text).await? {
            Named::One(account) if account.status == AccountStatus::Closed => Err(format!(
                "account {} is closed: it takes no transfers",
                account.account_number
            )),
            Named::One(account) => Ok(account.id),
            Named::None => Err(format!(
                "there is no account with the number or id `{text}`"
            )),
            Named::Several(count) => Err(format!(
                "{count} accounts have the number `{text}`: give the account's id instead"
            )),
        };
        self.accounts.insert(name.to_owned(), found);
        Ok(())
    }

    /// The account field `name` names: the id [`look_up_account`](Self::look_up_account)
    /// found, or the text taken as an id when it was not looked up (blank when blank). A
    /// failed look-up is recorded as the field's error and a blank id stands in.
    fn account(&self, name: &str, errors: &mut FieldErrors) -> Identifier {
        match self.accounts.get(name) {
            Some(Ok(id)) => id.clone(),
            Some(Err(message)) => {
                errors.add(name, message.clone());
                Identifier::new("")
            }
            None => Identifier::new(self.text(name)),
        }
    }

    /// An amount of money. When it is missing or not a number the error is recorded and zero
    /// stands in, so the command's other fields can still be checked.
    fn money(&self, name: &str, errors: &mut FieldErrors) -> Decimal {
        let text = self.value(name).trim();
        if text.is_empty() {
            errors.add(name, "is required");
            return Decimal::ZERO;
        }
        match text.parse::<Decimal>() {
            Ok(amount) => amount,
            Err(_) => {
                errors.add(name, "must be an amount such as 12.50");
                Decimal::ZERO
            }
        }
    }
}

/// The errors of a refused submission: messages by field, and messages about the form as a
/// whole (an error the domain named after no field of this form).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct FieldErrors {
    /// Messages by the form's field names.
    pub(crate) fields: BTreeMap<String, Vec<String>>,
    /// Messages about the whole form.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) form: Vec<String>,
}

impl FieldErrors {
    /// One message about the whole form.
    pub(crate) fn form(message: impl Into<String>) -> Self {
        Self {
            fields: BTreeMap::new(),
            form: vec![message.into()],
        }
    }

    /// Adds a message to a field.
    pub(crate) fn add(&mut self, field: &str, message: impl Into<String>) {
        self.fields
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// Whether there is no message at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_empty()
    }

    /// The messages of one field.
    pub(crate) fn of(&self, field: &str) -> &[String] {
        self.fields.get(field).map_or(&[], Vec::as_slice)
    }

    /// The domain's validation errors placed on form `F`: each on the field it names when
    /// the form has one, else on the form, prefixed with the domain's field name.
    pub(crate) fn from_validation<F: CommandForm>(errors: &ValidationError) -> Self {
        let mut placed = Self::default();
        for (field, messages) in errors.messages() {
            match F::field_for(field) {
                Some(input) => {
                    for message in messages {
                        placed.add(input, message.clone());
                    }
                }
                None => placed
                    .form
                    .extend(messages.iter().map(|message| on_the_form(field, message))),
            }
        }
        placed
    }

    /// Adds the command's own field checks to the errors of the fields that could not be
    /// read, so a refused form lists every failing field at once; a field that could not be
    /// read keeps only its reading error (its stand-in value would be judged otherwise).
    fn with_checks_of<F: CommandForm>(mut self, command: &F::Command) -> Self {
        if let Err(checks) = command.validate() {
            for (field, messages) in FieldErrors::from_validation::<F>(&checks).fields {
                self.fields.entry(field).or_insert(messages);
            }
        }
        self
    }
}

/// A message the domain gave a field this form does not have: a sentence of its own
/// ("Cannot close account with non-zero balance") as it is, a fragment ("is required") after
/// the field's name.
fn on_the_form(field: &str, message: &str) -> String {
    if message.starts_with(char::is_uppercase) {
        message.to_owned()
    } else {
        format!("{field} {message}")
    }
}

/// What an input looks like and how it is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// Free text.
    Text,
    /// An amount in dollars and cents.
    Money,
}

/// One input of a form.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FieldSpec {
    /// The name it is submitted under (the command's field name).
    pub(crate) name: &'static str,
    /// Its label.
    pub(crate) label: &'static str,
    /// How it is read.
    pub(crate) kind: InputKind,
    /// Whether the form refuses it blank.
    pub(crate) required: bool,
}

impl FieldSpec {
    const fn text(name: &'static str, label: &'static str, required: bool) -> Self {
        Self {
            name,
            label,
            kind: InputKind::Text,
            required,
        }
    }

    const fn money(name: &'static str, label: &'static str) -> Self {
        Self {
            name,
            label,
            kind: InputKind::Money,
            required: true,
        }
    }
}

/// A form that submits one command.
pub(crate) trait CommandForm: Send + 'static {
    /// The command it submits.
    type Command: Handled<Output = Self::Output> + HasFields;
    /// What processing the command returns.
    type Output: Send + 'static;
    /// Its HTML id, and the path segment its page form posts to.
    const ID: &'static str;
    /// Its heading.
    const TITLE: &'static str;
    /// Its button's label.
    const SUBMIT: &'static str;
    /// Its inputs, in order.
    const FIELDS: &'static [FieldSpec];
    /// Whether its command creates something (an account, a transfer): the API answers
    /// 201 Created.
    const CREATES: bool = false;

    /// Looks up in the ledger what the submitted text refers to, before
    /// [`command`](Self::command) reads it (the transfer's accounts, by number or id). What
    /// cannot be found is recorded in `input` as the field's error; an `Err` is a failure of
    /// the ledger itself, or an account of the path that does not exist (404) or is closed
    /// (409). By default there is nothing to look up.
    fn resolve(
        _domain: &Domain,
        _account: Option<&Identifier>,
        _input: &mut Input,
    ) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// The command from the submitted text, about `account` (the account of the path, for
    /// the forms of an account's page); every unreadable field is an error.
    fn command(account: Option<Identifier>, input: &Input) -> Result<Self::Command, FieldErrors>;

    /// What to show once the command is processed.
    fn after(account: Option<Identifier>, output: Self::Output) -> After;

    /// The input a field named by the domain's errors is shown at (`None`: on the form).
    fn field_for(domain_field: &str) -> Option<&'static str> {
        Self::FIELDS
            .iter()
            .find(|spec| spec.name == domain_field)
            .map(|spec| spec.name)
    }
}

/// What the pages and the API show once a form's command is processed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum After {
    /// The page of this account, and the API answers with it; `None`: the dashboard, and
    /// the API answers 204 No Content.
    Account(Option<Identifier>),
    /// The page of `account` (when the form was on one) with the outcome of `transfer`;
    /// the API answers with the transfer.
    Transfer {
        /// The account whose page the form was on.
        account: Option<Identifier>,
        /// The transfer the command initiated.
        transfer: Identifier,
    },
}

/// The account of the path, which every form of an account's page needs.
fn the_account(account: Option<Identifier>) -> Result<Identifier, FieldErrors> {
    account.ok_or_else(|| FieldErrors::form("this form acts on an account: post it to its page"))
}

/// `Ok(command)` when every field could be read, else the reading errors and the command's
/// own checks of the other fields.
fn finish<F: CommandForm>(
    command: F::Command,
    errors: FieldErrors,
) -> Result<F::Command, FieldErrors> {
    if errors.is_empty() {
        Ok(command)
    } else {
        Err(errors.with_checks_of::<F>(&command))
    }
}

/// Opens an account (on the dashboard).
pub(crate) struct OpenAccountForm;

impl CommandForm for OpenAccountForm {
    type Command = OpenAccount;
    type Output = Identifier;
    const ID: &'static str = "open-account";
    const TITLE: &'static str = "Open an account";
    const SUBMIT: &'static str = "Open account";
    const FIELDS: &'static [FieldSpec] = &[
        FieldSpec::text("account_number", "Account number", true),
        FieldSpec::text("holder_name", "Holder", true),
        FieldSpec::money("opening_deposit", "Opening deposit"),
    ];
    const CREATES: bool = true;

    fn command(_account: Option<Identifier>, input: &Input) -> Result<OpenAccount, FieldErrors> {
        let mut errors = FieldErrors::default();
        let command = OpenAccount {
            account_number: input.text("account_number"),
            holder_name: input.text("holder_name"),
            opening_deposit: input.money("opening_deposit", &mut errors),
        };
        finish::<Self>(command, errors)
    }

    fn after(_account: Option<Identifier>, opened: Identifier) -> After {
        After::Account(Some(opened))
    }
}

/// The fields of a deposit and of a withdrawal.
const MOVEMENT_FIELDS: &[FieldSpec] = &[
    FieldSpec::money("amount", "Amount"),
    FieldSpec::text("reference", "Reference", false),
];

/// What a deposit or a withdrawal form says: money moving in or out of the page's account.
struct Movement {
    account_id: Identifier,
    amount: Decimal,
    reference: Option<String>,
}

impl Movement {
    /// The movement, with the errors of the fields that could not be read.
    fn read(
        account: Option<Identifier>,
        input: &Input,
    ) -> Result<(Movement, FieldErrors), FieldErrors> {
        let mut errors = FieldErrors::default();
        let movement = Movement {
            account_id: the_account(account)?,
            amount: input.money("amount", &mut errors),
            reference: input.optional_text("reference"),
        };
        Ok((movement, errors))
    }
}

/// Pays money into the account of the page.
pub(crate) struct DepositForm;

impl CommandForm for DepositForm {
    type Command = MakeDeposit;
    type Output = ();
    const ID: &'static str = "deposit";
    const TITLE: &'static str = "Deposit";
    const SUBMIT: &'static str = "Deposit";
    const FIELDS: &'static [FieldSpec] = MOVEMENT_FIELDS;

    fn command(account: Option<Identifier>, input: &Input) -> Result<MakeDeposit, FieldErrors> {
        let (movement, errors) = Movement::read(account, input)?;
        let command = MakeDeposit {
            account_id: movement.account_id,
            amount: movement.amount,
            reference: movement.reference,
        };
        finish::<Self>(command, errors)
    }

    fn after(account: Option<Identifier>, (): ()) -> After {
        After::Account(account)
    }
}

/// Takes money out of the account of the page.
pub(crate) struct WithdrawalForm;

impl CommandForm for WithdrawalForm {
    type Command = MakeWithdrawal;
    type Output = ();
    const ID: &'static str = "withdraw";
    const TITLE: &'static str = "Withdraw";
    const SUBMIT: &'static str = "Withdraw";
    const FIELDS: &'static [FieldSpec] = MOVEMENT_FIELDS;

    fn command(account: Option<Identifier>, input: &Input) -> Result<MakeWithdrawal, FieldErrors> {
        let (movement, errors) = Movement::read(account, input)?;
        let command = MakeWithdrawal {
            account_id: movement.account_id,
            amount: movement.amount,
            reference: movement.reference,
        };
        finish::<Self>(command, errors)
    }

    fn after(account: Option<Identifier>, (): ()) -> After {
        After::Account(account)
    }

    /// "Insufficient funds" is the balance invariant's: it is this amount that is too large.
    fn field_for(domain_field: &str) -> Option<&'static str> {
        match domain_field {
            "balance" | "amount" => Some("amount"),
            "reference" => Some("reference"),
            _ => None,
        }
    }
}

/// Closes the account of the page.
pub(crate) struct CloseForm;

impl CommandForm for CloseForm {
    type Command = CloseAccount;
    type Output = ();
    const ID: &'static str = "close";
    const TITLE: &'static str = "Close the account";
    const SUBMIT: &'static str = "Close account";
    const FIELDS: &'static [FieldSpec] = &[FieldSpec::text("reason", "Reason", false)];

    fn command(account: Option<Identifier>, input: &Input) -> Result<CloseAccount, FieldErrors> {
        Ok(CloseAccount {
            account_id: the_account(account)?,
            reason: input.optional_text("reason"),
        })
    }

    fn after(account: Option<Identifier>, (): ()) -> After {
        After::Account(account)
    }
}

/// Sends money from the account of the page (or, in the API, the `source` field's) to the
/// account the `target` field names by number or id. The `FundsTransfer` process manager
/// moves the money: the transfer is accepted here, and completes or fails after.
pub(crate) struct TransferForm;

impl CommandForm for TransferForm {
    type Command = InitiateTransfer;
    type Output = Identifier;
    const ID: &'static str = "transfer";
    const TITLE: &'static str = "Transfer";
    const SUBMIT: &'static str = "Transfer";
    const FIELDS: &'static [FieldSpec] = &[
        FieldSpec::text("target", "To account (number or id)", true),
        FieldSpec::money("amount", "Amount"),
    ];
    const CREATES: bool = true;

    async fn resolve(
        domain: &Domain,
        account: Option<&Identifier>,
        input: &mut Input,
    ) -> Result<()> {
        match account {
            // The page's account: unknown is 404, and closed 409 as for the other forms.
            Some(id) => {
                let source = domain
                    .repository::<crate::account::Account>()
                    .get(id)
                    .await?;
                if source.status == AccountStatus::Closed {
                    return Err(AccountError::Closed {
                        account_id: source.id,
                    }
                    .into());
                }
            }
            None => input.look_up_account(domain, "source").await?,
        }
        input.look_up_account(domain, "target").await
    }

    fn command(
        account: Option<Identifier>,
        input: &Input,
    ) -> Result<InitiateTransfer, FieldErrors> {
        let mut errors = FieldErrors::default();
        let command = InitiateTransfer {
            source: account.unwrap_or_else(|| input.account("source", &mut errors)),
            target: input.account("target", &mut errors),
            amount: input.money("amount", &mut errors),
        };
        finish::<Self>(command, errors)
    }

    fn after(account: Option<Identifier>, transfer: Identifier) -> After {
        After::Transfer { account, transfer }
    }

    /// `source` is a field of the API's body (the page's form takes it from the path).
    fn field_for(domain_field: &str) -> Option<&'static str> {
        match domain_field {
            "source" => Some("source"),
            "target" => Some("target"),
            "amount" => Some("amount"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(pairs: &[(&str, &str)]) -> Input {
        Input::from_pairs(
            pairs
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn an_unreadable_amount_is_reported_with_the_other_fields_checks() {
        let errors = OpenAccountForm::command(
            None,
            &input(&[
                ("account_number", "ACC-1"),
                ("holder_name", " "),
                ("opening_deposit", "ten"),
            ]),
        )
        .expect_err("refused");
        assert_eq!(
            errors.of("opening_deposit"),
            ["must be an amount such as 12.50"]
        );
        assert_eq!(errors.of("holder_name"), ["is required"]);
        assert!(errors.of("account_number").is_empty());
    }

    #[test]
    fn a_readable_form_becomes_its_command() {
        let command = DepositForm::command(
            Some(Identifier::new("a-1")),
            &input(&[("amount", " 12.50 "), ("reference", "")]),
        )
        .expect("read");
        assert_eq!(command.amount, Decimal::new(1250, 2));
        assert_eq!(command.reference, None);
        assert_eq!(command.account_id, "a-1");
    }

    #[test]
    fn the_balance_invariant_is_shown_at_the_withdrawal_amount() {
        let errors = FieldErrors::from_validation::<WithdrawalForm>(&ValidationError::field(
            "balance",
            "Insufficient funds: balance cannot be negative",
        ));
        assert_eq!(
            errors.of("amount"),
            ["Insufficient funds: balance cannot be negative"]
        );
        let on_close = FieldErrors::from_validation::<CloseForm>(&ValidationError::field(
            "status",
            "Cannot close account with non-zero balance",
        ));
        assert_eq!(
            on_close.form,
            ["Cannot close account with non-zero balance"]
        );
        let fragment = FieldErrors::from_validation::<CloseForm>(&ValidationError::field(
            "account_id",
            "is required",
        ));
        assert_eq!(fragment.form, ["account_id is required"]);
    }

    #[test]
    fn a_transfer_takes_its_source_from_the_page_or_the_body() {
        let on_page = TransferForm::command(
            Some(Identifier::new("a-1")),
            &input(&[("target", " b-2 "), ("amount", "5"), ("source", "ignored")]),
        )
        .expect("read");
        assert_eq!(on_page.source, "a-1");
        assert_eq!(on_page.target, "b-2");
        assert_eq!(on_page.amount, Decimal::from(5));
        let in_body = TransferForm::command(
            None,
            &input(&[("source", "a-1"), ("target", "b-2"), ("amount", "5")]),
        )
        .expect("read");
        assert_eq!(in_body.source, "a-1");
    }

    #[test]
    fn a_failed_account_look_up_is_its_fields_error_beside_the_others() {
        let mut typed = input(&[("target", "ACC-404"), ("amount", "ten")]);
        typed.accounts.insert(
            "target".to_owned(),
            Err("there is no account with the number or id `ACC-404`".to_owned()),
        );
        let errors =
            TransferForm::command(Some(Identifier::new("a-1")), &typed).expect_err("refused");
        assert_eq!(
            errors.of("target"),
            ["there is no account with the number or id `ACC-404`"]
        );
        assert_eq!(errors.of("amount"), ["must be an amount such as 12.50"]);
        // Without a page's account (the API), the source is a field of the body.
        let errors = TransferForm::command(None, &input(&[("amount", "x")])).expect_err("refused");
        assert_eq!(errors.of("source"), ["is required"]);
        assert_eq!(errors.of("target"), ["is required"]);
    }

    #[test]
    fn json_members_are_read_as_text() {
        let input = Input::from_json(serde_json::json!({"amount": 12.5, "reference": null}))
            .expect("an object");
        assert_eq!(input.value("amount"), "12.5");
        assert_eq!(input.value("reference"), "");
        let errors = Input::from_json(serde_json::json!({"amount": [1]})).expect_err("a list");
        assert_eq!(errors.of("amount"), ["must be a string or a number"]);
        assert!(Input::from_json(serde_json::json!([1])).is_err());
    }
}
