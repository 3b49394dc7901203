//! The HTML: one function per page and per part of a page (maud escapes every value).

use fidelis_core::prelude::*;
use maud::{DOCTYPE, Markup, html};

use super::forms::{CommandForm, FieldErrors, Input, InputKind};
use super::read::{AccountRow, AccountView, HistoryEntry, TransferView};

/// A form shown again after a refused submission: what was typed, and why it was refused.
pub(crate) struct Refused {
    /// The id of the refused form ([`CommandForm::ID`]).
    pub(crate) form: &'static str,
    /// The values as submitted.
    pub(crate) input: Input,
    /// The errors, by field.
    pub(crate) errors: FieldErrors,
}

/// The page around every page's content.
fn layout(title: &str, live: bool, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Fidelis ledger" }
                link rel="stylesheet" href="/static/style.css";
                @if live {
                    script src="/static/live.js" defer {}
                }
            }
            body {
                header.site {
                    a href="/" { "Fidelis ledger" }
                }
                main { (content) }
            }
        }
    }
}

/// The dashboard: every account, live, and the form to open one.
pub(crate) fn dashboard(accounts: &[AccountRow], refused: Option<&Refused>) -> Markup {
    layout(
        "Account dashboard",
        true,
        html! {
            h1 { "Account dashboard" }
            section aria-labelledby="accounts-heading" {
                h2 #accounts-heading { "Accounts" }
                p #live-status role="status" aria-live="polite" { (count(accounts.len())) }
                table #accounts data-live="/live" {
                    thead {
                        tr {
                            th scope="col" { "Number" }
                            th scope="col" { "Holder" }
                            th.num scope="col" { "Balance" }
                            th.num scope="col" { "Transactions" }
                            th scope="col" { "Last activity" }
                        }
                    }
                    tbody #account-rows { (account_rows(accounts)) }
                }
            }
            section.forms {
                (form::<OpenAccount>("/accounts", refused))
            }
        },
    )
}

type OpenAccount = super::forms::OpenAccountForm;

/// "1 account", "3 accounts".
pub(crate) fn count(accounts: usize) -> String {
    match accounts {
        1 => "1 account".to_owned(),
        n => format!("{n} accounts"),
    }
}

/// The dashboard table's rows: what the live feed sends when they change.
pub(crate) fn account_rows(accounts: &[AccountRow]) -> Markup {
    html! {
        @if accounts.is_empty() {
            tr.empty { td colspan="5" { "No accounts yet: open one below." } }
        }
        @for row in accounts {
            tr data-account-id=(row.id) {
                td { a href={ "/accounts/" (row.id) } { (row.account_number) } }
                td { (row.holder_name) }
                td.num { (money(row.balance)) }
                td.num { (row.transaction_count) }
                td { (moment(row.last_activity)) }
            }
        }
    }
}

/// An account's page: its figures, the outcome of a transfer just made, its forms, its
/// history.
pub(crate) fn account(
    view: &AccountView,
    history: &[HistoryEntry],
    transfer: Option<&TransferView>,
    refused: Option<&Refused>,
) -> Markup {
    let base = format!("/accounts/{}", view.id);
    layout(
        &format!("Account {}", view.account_number),
        false,
        html! {
            p { a href="/" { "← All accounts" } }
            h1 { "Account " (view.account_number) }
            dl.figures {
                dt { "Holder" } dd #holder { (view.holder_name) }
                dt { "Balance" } dd #balance { (money(view.balance)) }
                dt { "Status" } dd #status { (view.status) }
                dt { "Transactions" }
                dd #transactions {
                    @match view.transaction_count {
                        Some(count) => (count),
                        None => "not projected yet",
                    }
                }
                dt { "Last activity" } dd { (moment(view.last_activity)) }
            }
            @if let Some(transfer) = transfer {
                (transfer_outcome(transfer, &view.id))
            }
            @if view.is_active() {
                section.forms aria-label="Movements" {
                    (form::<super::forms::DepositForm>(&format!("{base}/deposit"), refused))
                    (form::<super::forms::WithdrawalForm>(&format!("{base}/withdraw"), refused))
                    (form::<super::forms::TransferForm>(&format!("{base}/transfer"), refused))
                    (form::<super::forms::CloseForm>(&format!("{base}/close"), refused))
                }
            } @else {
                p.notice { "This account is closed: it takes no more movements." }
            }
            section aria-labelledby="history-heading" {
                h2 #history-heading { "History" }
                table #history {
                    thead {
                        tr {
                            th.num scope="col" { "#" }
                            th scope="col" { "Recorded" }
                            th scope="col" { "Event" }
                            th scope="col" { "Details" }
                        }
                    }
                    tbody {
                        @for entry in history {
                            tr {
                                td.num { (entry.version) }
                                td { (moment(Some(entry.time))) }
                                td { abbr title=(entry.type_name) { (entry.event) } }
                                td { (details(entry)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Where a transfer of the account `account` stands: completed, failed with the reason
/// (nothing moved, or what moved was returned), or still pending (in asynchronous
/// processing, until the engine has moved the money: reload to follow it).
fn transfer_outcome(transfer: &TransferView, account: &str) -> Markup {
    let outgoing = transfer.source == account;
    let (other, other_number) = if outgoing {
        (&transfer.target, &transfer.target_number)
    } else {
        (&transfer.source, &transfer.source_number)
    };
    let class = format!("transfer-outcome {}", transfer.status);
    html! {
        section #transfer-outcome class=(class) role="status" data-transfer-id=(transfer.id)
            data-status=(transfer.status) {
            h2 { "Transfer " (transfer.status) }
            p {
                "Transfer of " (money(transfer.amount))
                @if outgoing { " to " } @else { " from " }
                a href={ "/accounts/" (other) } {
                    (other_number.as_deref().unwrap_or(other.as_str()))
                }
                @match transfer.status {
                    "completed" => ": completed.",
                    "failed" => ": failed, the balances are as before.",
                    _ => ": pending, the money is moving (reload to follow it).",
                }
            }
            @if let Some(reason) = &transfer.reason {
                p.reason { (reason) }
            }
        }
    }
}

/// A form of `F`, posting to `action`; filled in with the submitted values and errors when
/// it is the one that was refused.
fn form<F: CommandForm>(action: &str, refused: Option<&Refused>) -> Markup {
    let refused = refused.filter(|refused| refused.form == F::ID);
    let errors = refused.map(|refused| &refused.errors);
    html! {
        // `novalidate`: the ledger checks the input, and says why next to each field.
        form #(F::ID) method="post" action=(action) novalidate {
            h2 { (F::TITLE) }
            @if let Some(errors) = errors.filter(|errors| !errors.form.is_empty()) {
                div.form-errors role="alert" {
                    ul { @for message in &errors.form { li { (message) } } }
                }
            }
            @for spec in F::FIELDS {
                @let id = format!("{}-{}", F::ID, spec.name);
                @let messages = errors.map_or(&[][..], |errors| errors.of(spec.name));
                @let value = refused.map_or("", |refused| refused.input.value(spec.name));
                div.field {
                    label for=(id) {
                        (spec.label)
                        @if !spec.required { span.optional { " (optional)" } }
                    }
                    @if messages.is_empty() {
                        input #(id) name=(spec.name) type="text" value=(value)
                            inputmode=[(spec.kind == InputKind::Money).then_some("decimal")]
                            required[spec.required];
                    } @else {
                        input #(id) name=(spec.name) type="text" value=(value)
                            inputmode=[(spec.kind == InputKind::Money).then_some("decimal")]
                            required[spec.required]
                            aria-invalid="true" aria-describedby={ (id) "-error" };
                        p.error #{ (id) "-error" } { (messages.join("; ")) }
                    }
                }
            }
            button type="submit" { (F::SUBMIT) }
        }
    }
}

/// An error page: what went wrong, and the way back.
pub(crate) fn error(status: u16, message: &str) -> Markup {
    layout(
        "Error",
        false,
        html! {
            h1 { "Error " (status) }
            p role="alert" { (message) }
            p { a href="/" { "Back to the dashboard" } }
        },
    )
}

/// `$1500.00`.
fn money(amount: Decimal) -> String {
    format!("${amount:.2}")
}

/// A time, readable and machine-readable.
fn moment(time: Option<DateTime<Utc>>) -> Markup {
    html! {
        @match time {
            Some(time) => time datetime=(time.to_rfc3339()) { (time.format("%Y-%m-%d %H:%M:%S UTC")) },
            None => "—",
        }
    }
}

/// An event's fields, `name: value` one after the other.
fn details(entry: &HistoryEntry) -> Markup {
    html! {
        @for (index, (name, value)) in entry.data.iter().enumerate() {
            @if index > 0 { " · " }
            span.detail {
                (name.replace('_', " ")) ": "
                @match value {
                    serde_json::Value::String(text) => (text),
                    serde_json::Value::Null => "—",
                    other => (other.to_string()),
                }
            }
        }
    }
}
