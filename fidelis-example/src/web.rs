//! The account dashboard on the web (the `web` feature, on by default):
//! `fidelis-example serve` serves it.
//!
//! - `GET /`: every account of the [`AccountSummary`](crate::dashboard::AccountSummary)
//!   projection, kept current without a reload by server-sent events (`GET /live`), and the
//!   form to open an account;
//! - `GET /accounts/{id}`: one account, its history from the event store, and the forms to
//!   deposit, withdraw, transfer and close; `?transfer={transfer}` shows where that transfer
//!   stands (the transfer form redirects there);
//! - `POST /accounts`, `POST /accounts/{id}/deposit`, `…/withdraw`, `…/transfer`,
//!   `…/close`: the forms. A refused command changes nothing and shows the page again (422)
//!   with each error next to its field;
//! - the JSON API beside them: `GET /api/accounts`, `GET /api/accounts/{id}`,
//!   `GET /api/accounts/{id}/events`, `POST /api/accounts`,
//!   `POST /api/accounts/{id}/deposits`, `…/withdrawals`, `…/close`, `POST /api/transfers`,
//!   `GET /api/transfers/{id}` (422 with the field errors as JSON).
//!
//! ```no_run
//! # async fn run() -> fidelis_core::Result<()> {
//! let domain = fidelis_example::domain().database("sqlite://fidelis.db").build().await?;
//! let listener = fidelis_example::web::WebApp::new(domain)
//!     .bind("127.0.0.1:3000".parse().expect("an address"))
//!     .await?;
//! listener.serve(async { /* a shutdown signal */ }).await?;
//! # Ok(())
//! # }
//! ```

mod api;
mod assets;
mod forms;
mod live;
mod pages;
mod read;
mod rejection;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use fidelis_core::{Domain, Error, Result};

use self::forms::{CloseForm, DepositForm, OpenAccountForm, TransferForm, WithdrawalForm};
use self::live::LiveDashboard;

/// What every request handler shares: the domain, and the dashboard's live feed.
#[derive(Clone)]
struct AppState {
    domain: Domain,
    live: Arc<LiveDashboard>,
}

/// The web dashboard of a ledger domain: build its [`Router`], or [`bind`](Self::bind) it
/// to an address.
#[derive(Clone)]
pub struct WebApp {
    domain: Domain,
    poll_every: Duration,
}

impl std::fmt::Debug for WebApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebApp")
            .field("domain", &self.domain.name())
            .field("poll_every", &self.poll_every)
            .finish()
    }
}

impl WebApp {
    /// The dashboard of `domain` (built with [`crate::domain`]), checking for changes every
    /// 250 ms while a browser is watching.
    pub fn new(domain: Domain) -> Self {
        Self {
            domain,
            poll_every: Duration::from_millis(250),
        }
    }

    /// How often the live feed looks for changes while someone is watching: one read of the
    /// store's head and of the engine's checkpoints, and the projection only when they moved.
    pub fn poll_every(mut self, every: Duration) -> Self {
        self.poll_every = every.max(Duration::from_millis(10));
        self
    }

    /// The routes, pages, API and static assets. Starts the live feed's task, so call it
    /// inside a tokio runtime; the task ends when the router (and every clone) is dropped.
    pub fn router(self) -> Router {
        self.build().0
    }

    fn build(self) -> (Router, Arc<LiveDashboard>) {
        let live = LiveDashboard::start(self.domain.clone(), self.poll_every);
        let state = AppState {
            live: live.clone(),
            domain: self.domain,
        };
        let router = Router::new()
            .route("/", get(pages::dashboard))
            .route("/live", get(live::events))
            .route("/accounts", post(pages::submit::<OpenAccountForm>))
            .route("/accounts/{id}", get(pages::account))
            .route("/accounts/{id}/deposit", post(pages::submit::<DepositForm>))
            .route(
                "/accounts/{id}/withdraw",
                post(pages::submit::<WithdrawalForm>),
            )
            .route("/accounts/{id}/close", post(pages::submit::<CloseForm>))
            .route(
                "/accounts/{id}/transfer",
                post(pages::submit::<TransferForm>),
            )
            .route(
                "/api/accounts",
                get(api::accounts).post(api::submit::<OpenAccountForm>),
            )
            .route("/api/accounts/{id}", get(api::account))
            .route("/api/accounts/{id}/events", get(api::events))
            .route(
                "/api/accounts/{id}/deposits",
                post(api::submit::<DepositForm>),
            )
            .route(
                "/api/accounts/{id}/withdrawals",
                post(api::submit::<WithdrawalForm>),
            )
            .route("/api/accounts/{id}/close", post(api::submit::<CloseForm>))
            .route("/api/transfers", post(api::submit::<TransferForm>))
            .route("/api/transfers/{id}", get(api::transfer))
            .route("/static/style.css", get(assets::style))
            .route("/static/live.js", get(assets::script))
            .fallback(pages::not_found)
            .with_state(state);
        (router, live)
    }

    /// Binds `address` (port 0: the system chooses); fails with the address in the message
    /// when it cannot. Serve it with [`WebListener::serve`].
    pub async fn bind(self, address: SocketAddr) -> Result<WebListener> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|error| Error::Configuration {
                problems: vec![format!(
                    "cannot bind the web dashboard to {address}: {error}"
                )],
            })?;
        let address = listener
            .local_addr()
            .map_err(|error| Error::Configuration {
                problems: vec![format!(
                    "the web dashboard bound to {address} has no local address: {error}"
                )],
            })?;
        let (router, live) = self.build();
        Ok(WebListener {
            listener,
            address,
            router,
            live,
        })
    }
}

/// A bound dashboard of [`WebApp::bind`]: knows its address before it serves.
pub struct WebListener {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    router: Router,
    live: Arc<LiveDashboard>,
}

impl std::fmt::Debug for WebListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebListener")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl WebListener {
    /// The address it listens on (the port the system chose, when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Answers requests until `shutdown` resolves, then lets the requests in flight finish
    /// (the live feeds end with the shutdown, so browsers watching do not hold it up).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        tracing::info!(address = %self.address, "web dashboard serving http://{}/", self.address);
        let live = self.live;
        // A live feed never ends by itself: end them all, or the graceful shutdown would
        // wait for every watching browser to go away.
        let shutdown = async move {
            shutdown.await;
            live.close();
        };
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|error| {
                Error::storage_with(
                    format!("the web dashboard on {} failed", self.address),
                    error,
                )
            })
    }
}
