//! # The Fidelis banking ledger
//!
//! The seed chapter of the Protean banking tutorial ("The Account Dashboard"), ported to
//! Fidelis: an event-sourced [`Account`](account::Account) with its four commands and
//! events and two invariants, the [`AccountSummary`](dashboard::AccountSummary) projection
//! kept up to date by its projector, and a compliance event handler with a side effect.
//!
//! ```no_run
//! # async fn run() -> fidelis_core::Result<()> {
//! use fidelis_core::prelude::*;
//! use fidelis_example::{commands::OpenAccount, dashboard::AccountSummary};
//!
//! let domain = fidelis_example::domain().build().await?;
//! let id = domain
//!     .process(OpenAccount {
//!         account_number: "ACC-001".into(),
//!         holder_name: "Alice Johnson".into(),
//!         opening_deposit: Decimal::from(1000),
//!     })
//!     .await?;
//! let summary = domain.repository::<AccountSummary>().get(&id).await?;
//! assert_eq!(summary.balance, Decimal::from(1000));
//! # Ok(())
//! # }
//! ```

pub mod account;
pub mod activity;
pub mod alerts;
pub mod commands;
pub mod dashboard;
pub mod events;
pub mod funds_transfer;
pub mod payments;
pub mod scenario;
pub mod signatory;
pub mod transfer;
pub mod transfer_scenario;
#[cfg(feature = "web")]
pub mod web;

use fidelis_core::{Domain, DomainBuilder};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// The ledger's domain, `fidelis`: this crate's elements, with a [`ComplianceDesk`]
/// resource for the alerts. Add `.database(url)` before `.build()` to persist it.
///
/// [`ComplianceDesk`]: alerts::ComplianceDesk
pub fn domain() -> DomainBuilder {
    Domain::builder("fidelis")
        .discover_crate("fidelis_example")
        .resource(alerts::ComplianceDesk::default())
}
