//! The dashboard's live feed: `GET /live`, server-sent events that carry the dashboard's
//! table whenever the accounts change, so browsers show it without a reload.
//!
//! One task per server polls while someone is watching, and cheaply: each tick reads the
//! store's head and the engine's checkpoints (a commit moves the first; in asynchronous
//! processing the projector moves the second when it updated the rows), and reads the
//! projection only when they moved. Commits of other processes are seen the same way.

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use fidelis_core::store::system::{self, Checkpoint};
use fidelis_core::{Cursor, Domain, Result};
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::watch;

use super::AppState;
use super::read::{self, AccountRow};
use super::views;

/// What a browser receives: the table's rows, as HTML, and their count in words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Update {
    /// "3 accounts".
    pub(crate) count: String,
    /// The `<tr>` elements of the table's body.
    pub(crate) rows: String,
}

impl Update {
    fn of(accounts: &[AccountRow]) -> Self {
        Self {
            count: views::count(accounts.len()),
            rows: views::account_rows(accounts).into_string(),
        }
    }

    fn event(&self) -> Event {
        Event::default()
            .event("accounts")
            .json_data(self)
            .unwrap_or_else(|_| Event::default().event("accounts").data("{}"))
    }
}

/// The feed one server shares between its watchers.
pub(crate) struct LiveDashboard {
    updates: watch::Sender<Arc<Update>>,
    closing: watch::Sender<bool>,
}

impl LiveDashboard {
    /// The feed of `domain`, and its polling task (which ends once the feed is dropped).
    pub(crate) fn start(domain: Domain, every: Duration) -> Arc<Self> {
        let live = Arc::new(Self {
            updates: watch::Sender::new(Arc::default()),
            closing: watch::Sender::new(false),
        });
        tokio::spawn(poll(Arc::downgrade(&live), domain, every));
        live
    }

    /// Ends every feed: the server is shutting down.
    pub(crate) fn close(&self) {
        tracing::debug!("closing the live feeds");
        self.closing.send_replace(true);
    }
}

/// What has to move for the accounts to have changed.
#[derive(Debug, PartialEq, Eq)]
struct Fingerprint {
    head: Cursor,
    checkpoints: Vec<(String, i64, i64)>,
}

async fn fingerprint(domain: &Domain) -> Result<Fingerprint> {
    let storage = domain.storage_unchecked().as_ref();
    let head = storage.head().await?;
    let mut checkpoints: Vec<_> = system::query::<Checkpoint>(storage, &Default::default())
        .await?
        .into_iter()
        .map(|checkpoint| (checkpoint.id, checkpoint.commit, checkpoint.position))
        .collect();
    checkpoints.sort();
    Ok(Fingerprint { head, checkpoints })
}

async fn poll(live: Weak<LiveDashboard>, domain: Domain, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen: Option<Fingerprint> = None;
    let mut failing = false;
    loop {
        ticks.tick().await;
        let Some(live) = live.upgrade() else { return };
        if *live.closing.borrow() {
            return;
        }
        if live.updates.receiver_count() == 0 {
            // Nobody is watching: read nothing. A new watcher gets the table when it connects.
            seen = None;
            continue;
        }
        let outcome = async {
            let now = fingerprint(&domain).await?;
            if seen.as_ref() != Some(&now) {
                let update = Update::of(&read::accounts(&domain).await?);
                live.updates.send_if_modified(|current| {
                    let changed = **current != update;
                    if changed {
                        *current = Arc::new(update);
                    }
                    changed
                });
                seen = Some(now);
            }
            Ok::<_, fidelis_core::Error>(())
        }
        .await;
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the dashboard's live feed reads the ledger again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "the dashboard's live feed cannot read the ledger; retrying");
            }
            Err(_) => {}
        }
    }
}

/// `GET /live`: the table now, then again whenever it changes, until the client goes away
/// or the server shuts down.
pub(crate) async fn events(State(state): State<AppState>) -> Response {
    // Subscribe before reading, so a change published in between is sent after this one.
    let mut updates = state.live.updates.subscribe();
    updates.borrow_and_update();
    let first = match read::accounts(&state.domain).await {
        Ok(accounts) => Update::of(&accounts),
        Err(error) => {
            tracing::error!(%error, "the dashboard's live feed cannot read the accounts");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger cannot be read\n",
            )
                .into_response();
        }
    };
    let mut closing = state.live.closing.subscribe();
    let opening = first.event();
    // Only what differs from the last update sent: the poller's first look after this
    // browser connected is usually the table it already has.
    let changes = futures::stream::unfold((updates, first), |(mut updates, mut sent)| async move {
        loop {
            updates.changed().await.ok()?;
            let update = Arc::clone(&updates.borrow_and_update());
            if *update != sent {
                sent = Update::clone(&update);
                return Some((update.event(), (updates, sent)));
            }
        }
    });
    let stream = futures::stream::once(async move { opening })
        .chain(changes)
        .map(Ok::<_, Infallible>)
        .take_until(async move {
            let _ = closing.wait_for(|closing| *closing).await;
        });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
