//! Process options, the command log and enrichers, on every adapter: every processed
//! command is logged with its events in their transaction (a rolled-back one leaves no
//! entry, `record_commands(false)` none at all); correlation id, priority and extensions
//! pass from a command to its events, to the command an event handler issues and to its
//! events (DESIGN §8.11: an enricher's extension reaches the next command's events); command
//! and event enrichers apply in order, a call's own extensions winning.

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use fidelis_core::{DomainBuilder, Extensions, Processing, RecordedEvent};
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

async fn open_with(domain: &Domain, options: ProcessOptions) -> Identifier {
    domain
        .process_with(
            OpenLedger {
                holder: "Ada".into(),
                tags: json!([]),
            },
            options,
        )
        .await
        .expect("the ledger opens")
}

async fn events_of(domain: &Domain, ledger: &Identifier) -> Vec<RecordedEvent> {
    let stream = domain.event_store().stream_of::<Ledger>(ledger).unwrap();
    domain.event_store().read_stream(&stream).await.unwrap()
}

fn extensions(value: serde_json::Value) -> Extensions {
    match value {
        serde_json::Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

async fn each_processed_command_is_logged_with_its_events(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        let domain = backend.build(builder(processing)).await;
        let options = ProcessOptions::new()
            .correlation_id(format!("req-{processing:?}"))
            .priority(Priority::Bulk)
            .extension("tenant", "acme");
        let ledger = open_with(&domain, options).await;
        let opened = &events_of(&domain, &ledger).await[0];
        let command_id = opened.metadata.causation_id.clone().expect("its command");
        let entry = domain
            .event_store()
            .command(&command_id)
            .await
            .unwrap()
            .expect("the command is logged");
        assert_eq!(entry.domain, "ledgers");
        assert_eq!(entry.type_name, "Ledgers.OpenLedger");
        assert_eq!(entry.data, json!({"holder": "Ada", "tags": []}));
        assert_eq!(entry.correlation_id, format!("req-{processing:?}"));
        assert_eq!(entry.causation_id, None);
        assert_eq!(entry.priority, "bulk");
        assert_eq!(entry.extensions, json!({"tenant": "acme"}));
        assert_eq!(entry.events, vec![opened.metadata.id.to_string()]);
        assert!(entry.received_at <= entry.processed_at);
        assert_eq!(
            opened.metadata.correlation_id.as_str(),
            format!("req-{processing:?}")
        );
    }
}

async fn priority_correlation_and_extensions_travel_to_handler_issued_commands(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        // An enricher's extension, as in DESIGN §8.11: it must reach the next command's events.
        let domain = backend
            .build(builder(processing).enrich_commands(|_| extensions(json!({"origin": "api"}))))
            .await;
        let ledger = open_with(&domain, ProcessOptions::new()).await;
        let options = ProcessOptions::new()
            .correlation_id(format!("req-7-{processing:?}"))
            .priority(Priority::Bulk)
            .extension("tenant", "acme");
        domain
            .process_with(
                Credit {
                    ledger_id: ledger.clone(),
                    amount: 7,
                },
                options,
            )
            .await
            .unwrap();
        domain.settle().await.unwrap();
        let events = events_of(&domain, &ledger).await;
        let [_, credited, debited] = &events[..] else {
            panic!("opened, credited, debited: {events:?}")
        };
        assert_eq!(debited.metadata.type_name, "Ledgers.Debited.v1");
        for event in [credited, debited] {
            assert_eq!(
                event.metadata.correlation_id.as_str(),
                format!("req-7-{processing:?}")
            );
            assert_eq!(event.metadata.priority, Priority::Bulk, "{processing:?}");
            assert_eq!(
                serde_json::Value::Object(event.metadata.extensions.clone()),
                json!({"origin": "api", "tenant": "acme"}),
                "{processing:?}"
            );
        }
        // The log holds the causal chain: credit → its event → the debit → its event.
        let logged = domain
            .event_store()
            .commands(&Identifier::new(format!("req-7-{processing:?}")))
            .await
            .unwrap();
        let [credit, debit] = &logged[..] else {
            panic!("two commands: {logged:?}")
        };
        assert_eq!(credit.type_name, "Ledgers.Credit");
        assert_eq!(credit.events, vec![credited.metadata.id.to_string()]);
        assert_eq!(debit.type_name, "Ledgers.Debit");
        assert_eq!(
            debit.causation_id.as_deref(),
            Some(credited.metadata.id.as_str())
        );
        assert_eq!(debit.priority, "bulk");
        assert_eq!(debit.extensions, json!({"origin": "api", "tenant": "acme"}));
        assert_eq!(debit.events, vec![debited.metadata.id.to_string()]);
        assert_eq!(
            debited
                .metadata
                .causation_id
                .as_ref()
                .map(Identifier::as_str),
            Some(debit.id.as_str())
        );
    }
}

async fn a_rolled_back_command_leaves_no_log_entry(backend: &Backend) {
    let domain = backend.build(builder(Processing::Sync)).await;
    let ledger = open_with(&domain, ProcessOptions::new()).await;
    // The invariant refuses a negative balance: the unit of work rolls back.
    let error = domain
        .process_with(
            Debit {
                ledger_id: ledger.clone(),
                amount: 5,
            },
            ProcessOptions::new().correlation_id("req-overdraft"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invariant { .. }), "{error}");
    // Refused by the handler before anything was written.
    domain
        .process_with(
            Debit {
                ledger_id: ledger.clone(),
                amount: -5,
            },
            ProcessOptions::new().correlation_id("req-overdraft"),
        )
        .await
        .unwrap_err();
    let logged = domain
        .event_store()
        .commands(&Identifier::new("req-overdraft"))
        .await
        .unwrap();
    assert!(logged.is_empty(), "{logged:?}");
    assert_eq!(events_of(&domain, &ledger).await.len(), 1);
}

async fn record_commands_false_logs_nothing(backend: &Backend) {
    let domain = backend
        .build(builder(Processing::Sync).record_commands(false))
        .await;
    assert!(!domain.records_commands());
    let ledger = open_with(&domain, ProcessOptions::new().correlation_id("req-quiet")).await;
    assert_eq!(events_of(&domain, &ledger).await.len(), 1);
    let logged = domain
        .event_store()
        .commands(&Identifier::new("req-quiet"))
        .await
        .unwrap();
    assert!(logged.is_empty(), "{logged:?}");
}

async fn enrichers_apply_in_order_and_a_calls_own_extensions_win(backend: &Backend) {
    let domain = backend
        .build(
            builder(Processing::Sync)
                .enrich_commands(|_| extensions(json!({"a": "command 1", "b": "command 1"})))
                .enrich_commands(|command| {
                    extensions(json!({"b": "command 2", "command": command.type_name}))
                })
                .enrich_events(|event| {
                    extensions(json!({"b": "event", "event": event.type_name, "c": "event"}))
                }),
        )
        .await;
    let ledger = open_with(&domain, ProcessOptions::new().extension("c", "own")).await;
    let opened = &events_of(&domain, &ledger).await[0];
    assert_eq!(
        serde_json::Value::Object(opened.metadata.extensions.clone()),
        json!({
            "a": "command 1",
            "b": "command 2",           // the later command enricher; the command's win over events'
            "c": "own",                 // the call's own win over every enricher
            "command": "Ledgers.OpenLedger",
            "event": "Ledgers.LedgerOpened.v1",
        })
    );
    let command_id = opened.metadata.causation_id.clone().unwrap();
    let entry = domain
        .event_store()
        .command(&command_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entry.extensions,
        json!({"a": "command 1", "b": "command 2", "c": "own", "command": "Ledgers.OpenLedger"})
    );
}

on_every_adapter!(
    each_processed_command_is_logged_with_its_events,
    priority_correlation_and_extensions_travel_to_handler_issued_commands,
    a_rolled_back_command_leaves_no_log_entry,
    record_commands_false_logs_nothing,
    enrichers_apply_in_order_and_a_calls_own_extensions_win,
);

/// Events stored before priority and extensions existed read back with the defaults.
#[test]
fn metadata_of_before_decodes_with_defaults() {
    let old = json!({
        "id": "e-1",
        "type_name": "Ledgers.Credited.v1",
        "stream": "ledgers::ledger-1",
        "version": 0,
        "global_position": 1,
        "commit": 1,
        "time": "2026-01-01T00:00:00Z",
        "correlation_id": "c-1",
        "causation_id": null,
    });
    let metadata: EventMetadata = serde_json::from_value(old).unwrap();
    assert_eq!(metadata.priority, Priority::Normal);
    assert!(metadata.extensions.is_empty());
}
