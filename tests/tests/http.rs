//! The engine's health and metrics listener (the `http` feature), on a memory domain in
//! asynchronous processing, through a plain HTTP/1.1 client over a TCP socket: `/metrics`
//! shows a pending event as a lag of 1, `/readyz` answers 503 with the reason while a
//! subscription is over its lag budget or has a dead letter and 200 once the engine caught
//! up, and a taken address is refused with the address in the error.

#![allow(missing_docs)]

use std::net::SocketAddr;

use fidelis_core::prelude::*;
use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{HandlerRetry, Processing, Readiness};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

/// Refuses credits of 13: the dead letter of the test.
#[projection]
pub struct Lucky {
    #[field(identifier)]
    pub ledger_id: Identifier,
    pub credits: i64,
}

#[derive(Default)]
pub struct Superstitious;

#[projector(for = Lucky, aggregates = [Ledger])]
impl Superstitious {
    #[on(Credited)]
    async fn credited(
        &self,
        event: &Event<Credited>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        if event.amount == 13 {
            return Err(Error::handler("Superstitious", "13 is unlucky"));
        }
        let mut rows = ctx.repository::<Lucky>();
        let mut row = rows.find(&event.ledger_id).await?.unwrap_or(Lucky {
            ledger_id: event.ledger_id.clone(),
            credits: 0,
        });
        row.credits += 1;
        rows.add(row).await
    }
}

/// GETs `path`; the status code and the body.
async fn get(address: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the listener accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("the response is read");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("a response with a head: {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head:?}"));
    (status, body.to_owned())
}

/// The value of a subscription's metric in a `/metrics` body.
fn metric(body: &str, name: &str, subscription: &str) -> String {
    let prefix = format!("{name}{{domain=\"http\",subscription=\"{subscription}\",");
    body.lines()
        .find(|line| line.starts_with(&prefix))
        .and_then(|line| line.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no {prefix} in {body}"))
        .to_owned()
}

#[tokio::test]
async fn the_listener_reports_lag_dead_letters_and_readiness() {
    let domain = Domain::builder("http")
        .discover_crate(module_path!())
        .processing(Processing::Async)
        .handler_retry(HandlerRetry::none())
        .storage(MemoryStorage::new())
        .build()
        .await
        .expect("the domain builds");
    let engine = domain.engine();
    let listener = engine
        .bind_http(
            "127.0.0.1:0".parse().expect("an address"),
            Readiness {
                max_lag: 0,
                ..Readiness::default()
            },
        )
        .await
        .expect("port 0 binds");
    let address = listener.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));

    let ledger: Identifier = domain
        .process(OpenLedger {
            holder: "Ada".into(),
            tags: json!({}),
        })
        .await
        .expect("the ledger opens");
    domain
        .process(Credit {
            ledger_id: ledger.clone(),
            amount: 5,
        })
        .await
        .expect("the credit commits");
    domain
        .engine()
        .run_until_idle()
        .await
        .expect("the engine runs");
    domain
        .process(Credit {
            ledger_id: ledger.clone(),
            amount: 7,
        })
        .await
        .expect("the credit commits");

    assert_eq!(get(address, "/healthz").await.0, 200);
    let (status, body) = get(address, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        metric(&body, "fidelis_subscription_lag_events", "Superstitious"),
        "1"
    );
    assert_eq!(
        metric(&body, "fidelis_subscription_dead_letters", "Superstitious"),
        "0"
    );
    assert_eq!(
        metric(&body, "fidelis_subscription_position", "Superstitious"),
        metric(&body, "fidelis_subscription_position", "LedgerRows"),
        "both handled the same events"
    );
    assert!(
        body.contains("fidelis_failed_event_handlers_total{domain=\"http\"} 0\n"),
        "{body}"
    );
    let (status, body) = get(address, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("lags 1 events (budget 0)"), "{body}");

    domain
        .engine()
        .run_until_idle()
        .await
        .expect("the engine runs");
    let (status, body) = get(address, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    let (_, body) = get(address, "/metrics").await;
    assert_eq!(
        metric(&body, "fidelis_subscription_lag_events", "Superstitious"),
        "0"
    );

    domain
        .process(Credit {
            ledger_id: ledger.clone(),
            amount: 13,
        })
        .await
        .expect("the credit commits");
    domain
        .engine()
        .run_until_idle()
        .await
        .expect("the engine runs");
    let (_, body) = get(address, "/metrics").await;
    assert_eq!(
        metric(&body, "fidelis_subscription_dead_letters", "Superstitious"),
        "1"
    );
    assert_eq!(
        metric(&body, "fidelis_subscription_dead_letters", "LedgerRows"),
        "0"
    );
    let (status, body) = get(address, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("subscription Superstitious has 1 dead letter(s)")
            && body.contains("13 is unlucky"),
        "{body}"
    );

    let purged = domain
        .dead_letters()
        .purge_all("Superstitious")
        .await
        .expect("the purge commits");
    assert_eq!(purged, 1);
    assert_eq!(get(address, "/readyz").await.0, 200);

    let _ = stop.send(());
    server
        .await
        .expect("the server task ends")
        .expect("the server stops cleanly");
}

#[tokio::test]
async fn a_taken_address_is_refused_with_the_address() {
    let domain = Domain::builder("http")
        .discover_crate(module_path!())
        .processing(Processing::Async)
        .storage(MemoryStorage::new())
        .build()
        .await
        .expect("the domain builds");
    let engine = domain.engine();
    let first = engine
        .bind_http(
            "127.0.0.1:0".parse().expect("an address"),
            Readiness::default(),
        )
        .await
        .expect("port 0 binds");
    let taken = first.local_addr();
    let error = engine
        .bind_http(taken, Readiness::default())
        .await
        .expect_err("the address is taken");
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "cannot bind the engine's HTTP listener to {taken}"
        )),
        "{message}"
    );
}
