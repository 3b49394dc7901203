//! Model-based property tests: random command sequences run on memory, SQLite and PostgreSQL
//! must give exactly what a trivial reference model (a balance per ledger) says: the same
//! accepted and refused commands, the same events in every stream, the same aggregates and
//! the same projection rows, so every adapter behaves the same.
//!
//! A second property runs random commands from concurrent writers, some cancelled at random
//! points (`tokio::time::timeout`), and checks what must hold whatever was cancelled: every
//! stream's events fold to its aggregate and to its projection row, versions are gapless,
//! and the domain keeps working.

#![allow(missing_docs)]

use std::future::Future;
use std::time::Duration;

use fidelis_core::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

mod support;
use support::Backend;
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

#[derive(Clone, Debug)]
enum Op {
    /// Open a ledger (an empty holder is refused: the field is required).
    Open(String),
    /// Credit the n-th opened ledger (an index past the opened ones names an unknown ledger).
    Credit(usize, i64),
    /// Debit the n-th opened ledger.
    Debit(usize, i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => "[A-Za-z]{0,4}".prop_map(Op::Open),
        3 => (0usize..4, -5i64..50).prop_map(|(ledger, amount)| Op::Credit(ledger, amount)),
        2 => (0usize..4, -5i64..60).prop_map(|(ledger, amount)| Op::Debit(ledger, amount)),
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Refused,
    NotFound,
}

fn outcome<T>(result: Result<T>) -> Outcome {
    match result {
        Ok(_) => Outcome::Accepted,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(error) if error.as_validation().is_some() => Outcome::Refused,
        Err(error) => panic!("an unexpected error: {error}"),
    }
}

/// The reference model: what each ledger holds, and the events it was given.
#[derive(Default)]
struct ModelLedger {
    holder: String,
    balance: i64,
    events: Vec<&'static str>,
}

fn model_step(model: &mut Vec<ModelLedger>, op: &Op) -> Outcome {
    match op {
        Op::Open(holder) if holder.is_empty() => Outcome::Refused,
        Op::Open(holder) => {
            model.push(ModelLedger {
                holder: holder.clone(),
                balance: 0,
                events: vec!["opened"],
            });
            Outcome::Accepted
        }
        Op::Credit(index, amount) => match model.get_mut(*index) {
            None => Outcome::NotFound,
            Some(ledger) if ledger.balance + amount < 0 => Outcome::Refused,
            Some(ledger) => {
                ledger.balance += amount;
                ledger.events.push("credited");
                Outcome::Accepted
            }
        },
        Op::Debit(_, amount) if *amount <= 0 => Outcome::Refused,
        Op::Debit(index, amount) => match model.get_mut(*index) {
            None => Outcome::NotFound,
            Some(ledger) if ledger.balance - amount < 0 => Outcome::Refused,
            Some(ledger) => {
                ledger.balance -= amount;
                ledger.events.push("debited");
                Outcome::Accepted
            }
        },
    }
}

async fn run_step(domain: &Domain, ids: &mut Vec<Identifier>, op: &Op) -> Outcome {
    let target = |index: usize| ids.get(index).cloned().unwrap_or_else(Identifier::generate);
    match op {
        Op::Open(holder) => {
            let result = domain
                .process(OpenLedger {
                    holder: holder.clone(),
                    tags: serde_json::json!({}),
                })
                .await;
            if let Ok(id) = &result {
                ids.push(id.clone());
            }
            outcome(result)
        }
        Op::Credit(index, amount) => {
            let ledger_id = target(*index);
            outcome(
                domain
                    .process(Credit {
                        ledger_id,
                        amount: *amount,
                    })
                    .await,
            )
        }
        Op::Debit(index, amount) => {
            let ledger_id = target(*index);
            outcome(
                domain
                    .process(Debit {
                        ledger_id,
                        amount: *amount,
                    })
                    .await,
            )
        }
    }
}

fn event_kind(type_name: &str) -> &'static str {
    ["opened", "credited", "debited"]
        .into_iter()
        .find(|kind| type_name.to_lowercase().contains(kind))
        .unwrap_or_else(|| panic!("an event of the ledger, got {type_name}"))
}

async fn sequence_matches_model(domain: &Domain, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Vec::new();
    let mut ids = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        let expected = model_step(&mut model, op);
        let actual = run_step(domain, &mut ids, op).await;
        prop_assert_eq!(actual, expected, "step {} ({:?})", step, op);
    }
    for (ledger, id) in model.iter().zip(&ids) {
        let aggregate = domain.repository::<Ledger>().get(id).await.unwrap();
        prop_assert_eq!(&aggregate.holder, &ledger.holder);
        prop_assert_eq!(aggregate.balance, ledger.balance);
        prop_assert_eq!(aggregate.version(), ledger.events.len() as i64 - 1);
        let row = domain.repository::<LedgerRow>().get(id).await.unwrap();
        prop_assert_eq!(row.balance, ledger.balance);
        prop_assert_eq!(&row.holder, &ledger.holder);
        let stream = domain.event_store().stream_of::<Ledger>(id).unwrap();
        let events = domain.event_store().read_stream(&stream).await.unwrap();
        let kinds: Vec<&str> = events
            .iter()
            .map(|event| event_kind(&event.metadata.type_name))
            .collect();
        prop_assert_eq!(&kinds, &ledger.events);
        let versions: Vec<i64> = events.iter().map(|event| event.metadata.version).collect();
        prop_assert_eq!(versions, (0..events.len() as i64).collect::<Vec<_>>());
    }
    Ok(())
}

// ---- concurrent writers and cancellation ---------------------------------------------------

/// Waits until the store stops changing: a command dropped after its `COMMIT` was sent is
/// finished by a task of its own (commit, cache, event handlers), which may still be running
/// when the writers return.
async fn settle(fresh: &Domain) {
    let mut seen = usize::MAX;
    for _ in 0..250 {
        let now = fresh
            .event_store()
            .read_all(fidelis_core::Cursor::START)
            .await
            .unwrap()
            .len();
        if now == seen {
            return;
        }
        seen = now;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the store kept changing for 5 s after the writers stopped");
}

/// Per ledger: the fold of its stored events equals its aggregate (as a fresh process loads
/// it and as this process does) and its projection row; versions are gapless.
async fn consistent(
    domain: &Domain,
    fresh: &Domain,
    ids: &[Identifier],
) -> Result<(), TestCaseError> {
    for id in ids {
        let stream = domain.event_store().stream_of::<Ledger>(id).unwrap();
        let events = fresh.event_store().read_stream(&stream).await.unwrap();
        if events.is_empty() {
            // An open cancelled before its commit left nothing at all.
            prop_assert!(
                fresh
                    .repository::<LedgerRow>()
                    .find(id)
                    .await
                    .unwrap()
                    .is_none()
            );
            continue;
        }
        let mut balance = 0;
        for event in &events {
            let amount = event
                .data()
                .unwrap()
                .get("amount")
                .and_then(serde_json::Value::as_i64);
            match event_kind(&event.metadata.type_name) {
                "credited" => balance += amount.unwrap_or_default(),
                "debited" => balance -= amount.unwrap_or_default(),
                _ => {}
            }
        }
        let versions: Vec<i64> = events.iter().map(|event| event.metadata.version).collect();
        prop_assert_eq!(versions, (0..events.len() as i64).collect::<Vec<_>>());
        for (who, domain) in [("this process", domain), ("a fresh process", fresh)] {
            let aggregate = domain.repository::<Ledger>().get(id).await.unwrap();
            prop_assert_eq!(aggregate.balance, balance, "aggregate seen by {}", who);
            prop_assert_eq!(aggregate.version(), events.len() as i64 - 1);
        }
        let row = fresh.repository::<LedgerRow>().get(id).await.unwrap();
        prop_assert_eq!(row.balance, balance, "projection row");
    }
    Ok(())
}

async fn concurrent_cancelled_writers(
    domain: &Domain,
    fresh: &Domain,
    writers: Vec<Vec<(Op, Option<u64>)>>,
) -> Result<(), TestCaseError> {
    // Two ledgers every writer shares, opened up front.
    let mut ids = Vec::new();
    for holder in ["hot", "cold"] {
        let id = domain
            .process(OpenLedger {
                holder: holder.into(),
                tags: serde_json::json!({}),
            })
            .await
            .unwrap();
        ids.push(id);
    }
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|ops| {
            let domain = domain.clone();
            let mut ids = ids.clone();
            tokio::spawn(async move {
                for (op, budget) in ops {
                    let step = run_step(&domain, &mut ids, &op);
                    match budget {
                        // A budget in microseconds: the command may be dropped at any await.
                        Some(micros) => {
                            let _ = tokio::time::timeout(Duration::from_micros(micros), step).await;
                        }
                        None => {
                            step.await;
                        }
                    }
                }
                ids
            })
        })
        .collect();
    let mut all = ids.clone();
    for task in tasks {
        for id in task.await.expect("a writer task ran") {
            if !all.contains(&id) {
                all.push(id);
            }
        }
    }
    settle(fresh).await;
    consistent(domain, fresh, &all).await?;
    // And the domain still works after whatever was cancelled.
    let after = domain
        .process(Credit {
            ledger_id: ids[0].clone(),
            amount: 1,
        })
        .await;
    prop_assert!(
        after.is_ok(),
        "a command after the cancellations: {:?}",
        after.err()
    );
    Ok(())
}

fn writer() -> impl Strategy<Value = Vec<(Op, Option<u64>)>> {
    let step = (
        prop_oneof![
            (0usize..2, 1i64..20).prop_map(|(ledger, amount)| Op::Credit(ledger, amount)),
            (0usize..2, 1i64..25).prop_map(|(ledger, amount)| Op::Debit(ledger, amount)),
            Just(Op::Open("new".into())),
        ],
        proptest::option::weighted(0.5, 0u64..3_000),
    );
    proptest::collection::vec(step, 1..12)
}

// ---- one test per adapter ----------------------------------------------------------------

async fn build(backend: &Backend) -> Domain {
    backend
        .build(
            Domain::builder("model")
                .discover_crate(module_path!())
                .retry(RetryPolicy::attempts(1_000)),
        )
        .await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Random sequences against the model, on one database (cases use fresh ledgers, so they
/// share it).
fn check_sequences(backend: impl Future<Output = Option<Backend>>, cases: u32) {
    let runtime = runtime();
    // The backend is made in the runtime that later drops it (a PostgreSQL pool belongs to
    // the runtime it was made in).
    let Some(backend) = runtime.block_on(backend) else {
        return;
    };
    let domain = runtime.block_on(build(&backend));
    runner(cases)
        .run(&proptest::collection::vec(op(), 1..40), |ops| {
            runtime.block_on(sequence_matches_model(&domain, ops))
        })
        .unwrap_or_else(|failure| panic!("{} differs from the model: {failure}", backend.url()));
    runtime.block_on(backend.finish());
}

/// Concurrent writers with random cancellations, then the consistency checks.
fn check_cancelled_writers(backend: impl Future<Output = Option<Backend>>, cases: u32) {
    let runtime = runtime();
    let Some(backend) = runtime.block_on(backend) else {
        return;
    };
    let (domain, fresh) =
        runtime.block_on(async { (build(&backend).await, build(&backend).await) });
    runner(cases)
        .run(&proptest::collection::vec(writer(), 2..5), |writers| {
            runtime.block_on(concurrent_cancelled_writers(&domain, &fresh, writers))
        })
        .unwrap_or_else(|failure| panic!("{} lost consistency: {failure}", backend.url()));
    runtime.block_on(backend.finish());
}

mod sequences {
    use super::*;

    #[test]
    fn memory() {
        check_sequences(Backend::memory(), 128);
    }

    #[test]
    fn sqlite() {
        check_sequences(Backend::sqlite(), 32);
    }

    #[cfg_attr(
        not(fidelis_postgres),
        ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
    )]
    #[test]
    fn postgres() {
        check_sequences(Backend::postgres("model_based::sequences::postgres"), 32);
    }
}

mod cancelled_writers {
    use super::*;

    #[test]
    fn memory() {
        check_cancelled_writers(Backend::memory(), 64);
    }

    #[test]
    fn sqlite() {
        check_cancelled_writers(Backend::sqlite(), 16);
    }

    #[cfg_attr(
        not(fidelis_postgres),
        ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
    )]
    #[test]
    fn postgres() {
        check_cancelled_writers(
            Backend::postgres("model_based::cancelled_writers::postgres"),
            16,
        );
    }
}
