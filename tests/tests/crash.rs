//! Crash test: writer processes (`src/bin/crash_writer.rs`) are killed with SIGKILL in the
//! middle of their commits, again and again, on SQLite and PostgreSQL. Afterwards no unit of
//! work is half-stored: every ledger's events fold to its aggregate and its projection row,
//! versions are gapless, and the database takes new commits.

#![allow(missing_docs)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fidelis_core::prelude::*;

mod support;
use support::Backend;
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

/// Kills per adapter; two writers run at once, so commits also race each other.
const KILLS: usize = 10;

async fn build(backend: &Backend) -> Domain {
    backend
        .build(Domain::builder("crash").discover_crate(module_path!()))
        .await
}

fn spawn_writer(url: &str, ids: &[Identifier]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(url)
        .args(ids.iter().map(Identifier::as_str))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the writer starts")
}

async fn kill_writers_mid_commit(backend: &Backend) {
    let domain = build(backend).await;
    let mut ids = Vec::new();
    for holder in ["one", "two", "three"] {
        let id = domain
            .process(OpenLedger {
                holder: holder.into(),
                tags: serde_json::json!({}),
            })
            .await
            .unwrap();
        ids.push(id);
    }
    let url = backend.url();
    let mut writers = [spawn_writer(&url, &ids), spawn_writer(&url, &ids)];
    for kill in 0..KILLS {
        // Long enough to be mid-stream of commits (past start-up), varied so the kill lands
        // at different points of a commit.
        tokio::time::sleep(Duration::from_millis(250 + 37 * kill as u64)).await;
        let victim = &mut writers[kill % 2];
        if let Some(status) = victim.try_wait().unwrap() {
            panic!("a writer died on its own before kill {kill}: {status}");
        }
        victim.kill().expect("SIGKILL the writer");
        victim.wait().unwrap();
        *victim = spawn_writer(&url, &ids);
    }
    for mut writer in writers {
        writer.kill().unwrap();
        writer.wait().unwrap();
    }

    // A fresh process reads what the killed ones left.
    let fresh = build(backend).await;
    let mut total_events = 0;
    for id in &ids {
        let stream = fresh.event_store().stream_of::<Ledger>(id).unwrap();
        let events = fresh.event_store().read_stream(&stream).await.unwrap();
        total_events += events.len();
        let mut balance = 0;
        for event in &events {
            let amount = event
                .data()
                .unwrap()
                .get("amount")
                .and_then(serde_json::Value::as_i64);
            if event.metadata.type_name.contains("Credited") {
                balance += amount.unwrap();
            } else if event.metadata.type_name.contains("Debited") {
                balance -= amount.unwrap();
            }
        }
        let versions: Vec<i64> = events.iter().map(|e| e.metadata.version).collect();
        assert_eq!(
            versions,
            (0..events.len() as i64).collect::<Vec<_>>(),
            "gapless"
        );
        let aggregate = fresh.repository::<Ledger>().get(id).await.unwrap();
        assert_eq!(
            aggregate.balance, balance,
            "the aggregate is the fold of its events"
        );
        let row = fresh.repository::<LedgerRow>().get(id).await.unwrap();
        assert_eq!(
            row.balance, balance,
            "the projection row is the fold of its events"
        );
    }
    eprintln!(
        "{}: {total_events} events survived {KILLS} kills",
        backend.url()
    );
    assert!(total_events > 3 * 10, "the writers committed between kills");
    fresh
        .process(Credit {
            ledger_id: ids[0].clone(),
            amount: 1,
        })
        .await
        .expect("the database takes commits after the crashes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let backend = Backend::sqlite().await.unwrap();
    kill_writers_mid_commit(&backend).await;
    backend.finish().await;
}

#[cfg_attr(
    not(fidelis_postgres),
    ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(backend) = Backend::postgres("crash::postgres").await else {
        return;
    };
    kill_writers_mid_commit(&backend).await;
    backend.finish().await;
}
