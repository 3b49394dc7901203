//! `event_store().trace(correlation_id)` on every adapter, in both processing modes: the
//! causal forest of one request, from the command log and the events (DESIGN §8.7).

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use fidelis_core::{DomainBuilder, Processing, TraceKind};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;
#[path = "support/refunds.rs"]
mod refunds;

fn builder(processing: Processing) -> DomainBuilder {
    Domain::builder("ledgers")
        .discover_crate(module_path!())
        .processing(processing)
}

async fn open(domain: &Domain) -> Identifier {
    domain
        .process(OpenLedger {
            holder: "Ada".into(),
            tags: json!([]),
        })
        .await
        .expect("the ledger opens")
}

async fn credit(domain: &Domain, ledger: &Identifier, amount: i64, correlation: &str) {
    let options = ProcessOptions::new().correlation_id(correlation);
    domain
        .process_with(
            Credit {
                ledger_id: ledger.clone(),
                amount,
            },
            options,
        )
        .await
        .expect("the credit commits");
    domain.settle().await.expect("the handlers ran");
}

/// `type_name(children…)`, roots separated by spaces.
fn shape(nodes: &[fidelis_core::TraceNode]) -> String {
    nodes
        .iter()
        .map(|node| {
            if node.children.is_empty() {
                node.type_name.clone()
            } else {
                format!("{}({})", node.type_name, shape(&node.children))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn a_trace_follows_a_request_through_handlers(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        let domain = backend.build(builder(processing)).await;
        let ledger = open(&domain).await;
        let correlation = format!("refund-{processing:?}-{ledger}");
        credit(&domain, &ledger, 7, &correlation).await;
        // A second request sharing the correlation id is a second root.
        credit(&domain, &ledger, 2, &correlation).await;

        let trace = domain.event_store().trace(&correlation).await.unwrap();
        assert_eq!(
            shape(&trace.roots),
            "Ledgers.Credit(Ledgers.Credited.v1(Ledgers.Debit(Ledgers.Debited.v1))) \
             Ledgers.Credit(Ledgers.Credited.v1)",
            "{processing:?}"
        );
        assert_eq!(trace.len(), 6);
        let root = &trace.roots[0];
        assert_eq!(root.kind, TraceKind::Command);
        assert_eq!(
            root.data,
            json!({"ledger_id": ledger.to_string(), "amount": 7})
        );
        let credited = &root.children[0];
        assert_eq!(credited.kind, TraceKind::Event);
        let stream = domain.event_store().stream_of::<Ledger>(&ledger).unwrap();
        assert_eq!(credited.stream.as_deref(), Some(stream.as_str()));
        assert_eq!(credited.version, Some(1));
        let debited = &credited.children[0].children[0];
        assert_eq!(debited.version, Some(2));

        let shown = trace.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 6, "{shown}");
        assert!(lines[0].starts_with("command Ledgers.Credit "), "{shown}");
        assert!(
            lines[3].starts_with(&format!("      event Ledgers.Debited.v1 {stream}@2 ")),
            "{shown}"
        );
    }
}

async fn without_a_command_log_the_events_are_the_roots(backend: &Backend) {
    let domain = backend
        .build(builder(Processing::Sync).record_commands(false))
        .await;
    let ledger = open(&domain).await;
    let correlation = format!("unlogged-{ledger}");
    credit(&domain, &ledger, 7, &correlation).await;
    let trace = domain.event_store().trace(&correlation).await.unwrap();
    assert_eq!(
        shape(&trace.roots),
        "Ledgers.Credited.v1 Ledgers.Debited.v1"
    );
}

async fn an_unknown_correlation_id_has_an_empty_trace(backend: &Backend) {
    let domain = backend.build(builder(Processing::Sync)).await;
    open(&domain).await;
    let trace = domain.event_store().trace("no-such-request").await.unwrap();
    assert!(trace.is_empty());
    assert_eq!(trace.to_string(), "");
}

on_every_adapter!(
    a_trace_follows_a_request_through_handlers,
    without_a_command_log_the_events_are_the_roots,
    an_unknown_correlation_id_has_an_empty_trace,
);
