//! The hand-written baseline: the same ledger with no framework, our practical floor.
//!
//! Plain structs, a `HashMap` of per-stream event vectors, the account states and summary
//! rows in `HashMap`s, and the one cost Fidelis's memory store cannot avoid and so is kept
//! here too: every event is serialized with `serde_json::to_value` before it is stored.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::workload::{
    BenchError, LARGE_TRANSACTION, Ledger, Money, RuleBroken, account_number, holder_name,
    opening_deposit,
};

/// An account was opened (same fields as the example's `AccountOpened`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountOpened {
    /// The account.
    pub account_id: String,
    /// Its number.
    pub account_number: String,
    /// Its holder.
    pub holder_name: String,
    /// The first balance.
    pub opening_deposit: Money,
}

/// Money was paid in (same fields as the example's `DepositMade`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepositMade {
    /// The account.
    pub account_id: String,
    /// How much.
    pub amount: Money,
    /// A note.
    pub reference: Option<String>,
}

/// A stored event: its type, position, time and serialized data.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// `AccountOpened` or `DepositMade`.
    pub type_name: &'static str,
    /// Position in the stream, from 0.
    pub version: i64,
    /// When it was recorded.
    pub time: DateTime<Utc>,
    /// The event, as JSON.
    pub data: Value,
}

/// The account's state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    /// Its number.
    pub account_number: String,
    /// Its holder.
    pub holder_name: String,
    /// The balance.
    pub balance: Money,
    /// `ACTIVE` or `CLOSED`.
    pub status: String,
    /// Version of the last event applied.
    pub version: i64,
}

/// The summary row (same fields as the example's `AccountSummary`).
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The account.
    pub account_id: String,
    /// Its number.
    pub account_number: String,
    /// Its holder.
    pub holder_name: String,
    /// The balance.
    pub balance: Money,
    /// Deposits so far, the opening included.
    pub transaction_count: i64,
    /// When money last moved.
    pub last_transaction_at: Option<DateTime<Utc>>,
}

/// The baseline ledger.
#[derive(Default)]
pub struct Baseline {
    streams: HashMap<String, Vec<StoredEvent>>,
    accounts: HashMap<String, Account>,
    summaries: HashMap<String, Summary>,
    /// Large movements seen (the compliance check every implementation makes).
    pub alerts: usize,
}

fn encode<T: Serialize>(event: &T) -> Result<Value, BenchError> {
    Ok(serde_json::to_value(event)?)
}

impl Baseline {
    fn replay(events: &[StoredEvent]) -> Result<Account, BenchError> {
        let mut account = Account {
            version: -1,
            ..Account::default()
        };
        for event in events {
            match event.type_name {
                "AccountOpened" => {
                    let opened = AccountOpened::deserialize(&event.data)?;
                    account.account_number = opened.account_number;
                    account.holder_name = opened.holder_name;
                    account.balance = opened.opening_deposit;
                    account.status = "ACTIVE".to_owned();
                }
                "DepositMade" => account.balance += DepositMade::deserialize(&event.data)?.amount,
                _ => return Err(RuleBroken("unknown event type").into()),
            }
            account.version += 1;
        }
        Ok(account)
    }
}

impl Ledger for Baseline {
    const NAME: &'static str = "baseline";

    async fn open(&mut self, i: usize) -> Result<String, BenchError> {
        let opening = opening_deposit(i);
        if opening < Money::ZERO {
            return Err(RuleBroken("opening deposit must not be negative").into());
        }
        let id = uuid::Uuid::now_v7().to_string();
        let time = Utc::now();
        let event = AccountOpened {
            account_id: id.clone(),
            account_number: account_number(i),
            holder_name: holder_name(i),
            opening_deposit: opening,
        };
        let data = encode(&event)?;
        self.streams
            .entry(id.clone())
            .or_default()
            .push(StoredEvent {
                type_name: "AccountOpened",
                version: 0,
                time,
                data,
            });
        self.summaries.insert(
            id.clone(),
            Summary {
                account_id: id.clone(),
                account_number: event.account_number.clone(),
                holder_name: event.holder_name.clone(),
                balance: opening,
                transaction_count: 1,
                last_transaction_at: Some(time),
            },
        );
        self.accounts.insert(
            id.clone(),
            Account {
                account_number: event.account_number,
                holder_name: event.holder_name,
                balance: opening,
                status: "ACTIVE".to_owned(),
                version: 0,
            },
        );
        Ok(id)
    }

    async fn deposit(&mut self, id: &str, amount: Money) -> Result<(), BenchError> {
        if amount <= Money::ZERO {
            return Err(RuleBroken("deposit amount must be positive").into());
        }
        let account = self
            .accounts
            .get_mut(id)
            .ok_or(RuleBroken("no such account"))?;
        let balance = account.balance + amount;
        if balance < Money::ZERO {
            return Err(RuleBroken("balance cannot be negative").into());
        }
        let time = Utc::now();
        let event = DepositMade {
            account_id: id.to_owned(),
            amount,
            reference: None,
        };
        let data = encode(&event)?;
        account.balance = balance;
        account.version += 1;
        let version = account.version;
        self.streams
            .get_mut(id)
            .ok_or(RuleBroken("no such stream"))?
            .push(StoredEvent {
                type_name: "DepositMade",
                version,
                time,
                data,
            });
        let summary = self.summaries.get_mut(id).ok_or(RuleBroken("no summary"))?;
        summary.balance += amount;
        summary.transaction_count += 1;
        summary.last_transaction_at = Some(time);
        if amount >= LARGE_TRANSACTION {
            self.alerts += 1;
        }
        Ok(())
    }

    async fn summary_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        let summary = self
            .summaries
            .get(id)
            .cloned()
            .ok_or(RuleBroken("no summary"))?;
        Ok(summary.balance)
    }

    async fn load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        let account = self
            .accounts
            .get(id)
            .cloned()
            .ok_or(RuleBroken("no such account"))?;
        Ok(account.balance)
    }

    async fn cold_load_balance(&mut self, id: &str) -> Result<Money, BenchError> {
        let events = self.streams.get(id).ok_or(RuleBroken("no such stream"))?;
        Ok(Self::replay(events)?.balance)
    }
}
