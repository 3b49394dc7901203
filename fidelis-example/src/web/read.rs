//! What the pages and the API show: the dashboard's rows, one account, its history. Read
//! once here, rendered as HTML by `views` and as JSON by `api`.

use fidelis_core::prelude::*;
use fidelis_core::{Domain, Error};
use serde::Serialize;

use crate::account::{Account, AccountStatus};
use crate::dashboard::AccountSummary;
use crate::transfer::{Transfer, TransferStatus};

/// A row of the dashboard.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct AccountRow {
    /// The account's identifier.
    pub(crate) id: String,
    /// Its number (`ACC-001`).
    pub(crate) account_number: String,
    /// Who holds it.
    pub(crate) holder_name: String,
    /// Its balance.
    pub(crate) balance: Decimal,
    /// Deposits and withdrawals so far, the opening deposit included.
    pub(crate) transaction_count: i64,
    /// When money last moved.
    pub(crate) last_activity: Option<DateTime<Utc>>,
}

impl From<AccountSummary> for AccountRow {
    fn from(summary: AccountSummary) -> Self {
        Self {
            id: summary.account_id.into_string(),
            account_number: summary.account_number,
            holder_name: summary.holder_name,
            balance: summary.balance,
            transaction_count: summary.transaction_count,
            last_activity: summary.last_transaction_at,
        }
    }
}

/// Every account of the `AccountSummary` projection, by account number.
pub(crate) async fn accounts(domain: &Domain) -> Result<Vec<AccountRow>> {
    let mut rows: Vec<AccountRow> = domain
        .repository::<AccountSummary>()
        .query()
        .order_by(AccountSummary::fields().account_number.asc())
        .all()
        .await?
        .into_iter()
        .map(AccountRow::from)
        .collect();
    // Equal numbers are allowed: keep their order stable between refreshes.
    rows.sort_by(|a, b| (&a.account_number, &a.id).cmp(&(&b.account_number, &b.id)));
    Ok(rows)
}

/// One account: its state from its events, and its dashboard figures when the projection
/// has them (in asynchronous processing it may not have caught up yet).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct AccountView {
    /// The account's identifier.
    pub(crate) id: String,
    /// Its number.
    pub(crate) account_number: String,
    /// Who holds it.
    pub(crate) holder_name: String,
    /// Its balance.
    pub(crate) balance: Decimal,
    /// `active` or `closed`.
    pub(crate) status: &'static str,
    /// The version of its stream (its last event's, from 0).
    pub(crate) version: i64,
    /// Deposits and withdrawals so far (from the projection).
    pub(crate) transaction_count: Option<i64>,
    /// When money last moved (from the projection).
    pub(crate) last_activity: Option<DateTime<Utc>>,
}

impl AccountView {
    /// Whether it still takes movements.
    pub(crate) fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// One account, or `None` when there is none with this id.
pub(crate) async fn account(domain: &Domain, id: &str) -> Result<Option<AccountView>> {
    let Some(account) = find_account(domain, id).await? else {
        return Ok(None);
    };
    let summary = domain.repository::<AccountSummary>().find(id).await?;
    Ok(Some(AccountView {
        id: account.id.to_string(),
        account_number: account.account_number.clone(),
        holder_name: account.holder_name.clone(),
        balance: account.balance,
        status: match account.status {
            AccountStatus::Active => "active",
            AccountStatus::Closed => "closed",
        },
        version: account.version(),
        transaction_count: summary.as_ref().map(|s| s.transaction_count),
        last_activity: summary.and_then(|s| s.last_transaction_at),
    }))
}

async fn find_account(domain: &Domain, id: &str) -> Result<Option<Account>> {
    match domain.repository::<Account>().get(id).await {
        Ok(account) => Ok(Some(account)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// What an account number or id names.
#[derive(Clone, Debug)]
pub(crate) enum Named {
    /// This account.
    One(Box<Account>),
    /// No account.
    None,
    /// This many accounts share the number (numbers need not be unique).
    Several(usize),
}

/// The account whose id is `text`, else the one whose number it is (found through the
/// `AccountSummary` projection, so in asynchronous processing a new account is found by
/// its number once projected, and by its id at once).
pub(crate) async fn account_named(domain: &Domain, text: &str) -> Result<Named> {
    if let Some(account) = find_account(domain, text).await? {
        return Ok(Named::One(Box::new(account)));
    }
    let numbered = domain
        .repository::<AccountSummary>()
        .query()
        .filter(AccountSummary::fields().account_number.eq(text))
        .limit(2)
        .all()
        .await?;
    match numbered.as_slice() {
        [] => Ok(Named::None),
        [summary] => Ok(find_account(domain, summary.account_id.as_str())
            .await?
            .map_or(Named::None, |account| Named::One(Box::new(account)))),
        _ => Ok(Named::Several(
            domain
                .repository::<AccountSummary>()
                .query()
                .filter(AccountSummary::fields().account_number.eq(text))
                .count()
                .await? as usize,
        )),
    }
}

/// A transfer and where it stands.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct TransferView {
    /// The transfer's identifier.
    pub(crate) id: String,
    /// The account the money leaves.
    pub(crate) source: String,
    /// Its number (`None` if the account is gone from the store).
    pub(crate) source_number: Option<String>,
    /// The account the money goes to.
    pub(crate) target: String,
    /// Its number.
    pub(crate) target_number: Option<String>,
    /// How much.
    pub(crate) amount: Decimal,
    /// `pending` (the money is moving: in asynchronous processing, until the engine has
    /// run the process manager), `completed` or `failed`.
    pub(crate) status: &'static str,
    /// Why it failed, when it did.
    pub(crate) reason: Option<String>,
}

/// One transfer, or `None` when there is none with this id.
pub(crate) async fn transfer(domain: &Domain, id: &str) -> Result<Option<TransferView>> {
    let transfer = match domain.repository::<Transfer>().get(id).await {
        Ok(transfer) => transfer,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let number = |id: Identifier| async move {
        find_account(domain, id.as_str())
            .await
            .map(|account| account.map(|account| account.account_number))
    };
    Ok(Some(TransferView {
        id: transfer.id.to_string(),
        source_number: number(transfer.source.clone()).await?,
        target_number: number(transfer.target.clone()).await?,
        source: transfer.source.into_string(),
        target: transfer.target.into_string(),
        amount: transfer.amount,
        status: match transfer.status {
            TransferStatus::Pending => "pending",
            TransferStatus::Completed => "completed",
            TransferStatus::Failed => "failed",
        },
        reason: transfer.reason,
    }))
}

/// One event of an account's history.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HistoryEntry {
    /// Its version in the account's stream, from 0.
    pub(crate) version: i64,
    /// Its position in the store's global order.
    pub(crate) global_position: i64,
    /// When it was recorded.
    pub(crate) time: DateTime<Utc>,
    /// Its short name (`DepositMade`).
    pub(crate) event: String,
    /// Its full type name (`Fidelis.DepositMade.v1`).
    pub(crate) type_name: String,
    /// Its fields, but the account's id.
    pub(crate) data: serde_json::Map<String, serde_json::Value>,
}

/// The events of an account's stream, oldest first; `None` when the stream is empty.
pub(crate) async fn history(domain: &Domain, id: &str) -> Result<Option<Vec<HistoryEntry>>> {
    let store = domain.event_store();
    let stream = store.stream_of::<Account>(id)?;
    let events = store.read_stream(&stream).await?;
    if events.is_empty() {
        return Ok(None);
    }
    events
        .into_iter()
        .map(|event| {
            let mut data = match event.data()? {
                serde_json::Value::Object(fields) => fields,
                other => serde_json::Map::from_iter([("value".to_owned(), other)]),
            };
            data.remove("account_id");
            let metadata = event.metadata;
            Ok(HistoryEntry {
                version: metadata.version,
                global_position: metadata.global_position,
                time: metadata.time,
                event: short_name(&metadata.type_name).to_owned(),
                type_name: metadata.type_name,
                data,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// `Fidelis.DepositMade.v1` → `DepositMade`.
fn short_name(type_name: &str) -> &str {
    type_name.split('.').nth(1).unwrap_or(type_name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_is_shown_by_its_short_name() {
        assert_eq!(super::short_name("Fidelis.DepositMade.v1"), "DepositMade");
        assert_eq!(super::short_name("Odd"), "Odd");
    }
}
