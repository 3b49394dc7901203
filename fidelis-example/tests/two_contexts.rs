//! Two bounded contexts in separate processes, talking through a real broker (Redis Streams,
//! NATS JetStream): the ledger (`fidelis-example`) commits its walkthrough with the broker
//! configured, so its opened accounts and deposits go to the outbox; the ledger's engine, a
//! process of its own, relays them; the rewards context's engine process (`fidelis-rewards`,
//! its own database) consumes `fidelis.account` and credits each deposit's points exactly
//! once.

#![cfg(feature = "brokers")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A binary of this package, with the broker and a database of the test's own.
fn command(binary: &str, database: &Path, broker: &str) -> Command {
    let mut command = Command::new(binary);
    command
        .arg("--database")
        .arg(format!("sqlite://{}", database.display()))
        .env("FIDELIS_BROKER_URL", broker)
        .env_remove("FIDELIS_DATABASE_URL")
        .env_remove("FIDELIS_PROCESSING")
        .env("RUST_LOG", "warn");
    command
}

/// Runs a command that must succeed; its `--json` document.
fn json(mut command: Command, args: &[&str]) -> Value {
    let output = command
        .args(args)
        .arg("--json")
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{args:?}: {:?}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// An engine process, stopped (SIGKILL is enough: the test reads the databases afterwards only
/// through new processes) when dropped.
struct Engine(Child);

impl Engine {
    fn start(mut command: Command) -> Self {
        let child = command
            .arg("engine")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the engine starts");
        Engine(child)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The points each account should have earned: one per whole 10 of each of its deposits (an
/// opening deposit is part of `AccountOpened`, which earns nothing), keyed by deposit event id.
fn expected_points(deposits: &Value) -> BTreeMap<String, (String, i64)> {
    deposits
        .as_array()
        .expect("a list of events")
        .iter()
        .map(|event| {
            let amount: f64 = event["data"]["amount"]
                .as_str()
                .expect("an amount as text")
                .parse()
                .expect("a number");
            let account = event["data"]["account_id"].as_str().expect("an account");
            (
                event["id"].as_str().expect("an id").to_owned(),
                (account.to_owned(), (amount / 10.0).floor() as i64),
            )
        })
        .collect()
}

/// The points credited, keyed by the deposit event id they were credited for.
fn credited_points(earned: &Value) -> Vec<(String, (String, i64))> {
    earned
        .as_array()
        .expect("a list of events")
        .iter()
        .filter(|event| event["type_name"] == "Rewards.PointsEarned.v1")
        .map(|event| {
            let data = &event["data"];
            (
                data["deposit_id"]
                    .as_str()
                    .expect("a deposit id")
                    .to_owned(),
                (
                    data["member_id"].as_str().expect("a member").to_owned(),
                    data["points"].as_i64().expect("points"),
                ),
            )
        })
        .collect()
}

fn two_contexts_talk_through(broker: &str) {
    let dir = std::env::temp_dir().join(format!(
        "fidelis-two-contexts-{}",
        fidelis_core::Identifier::generate()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let bank: PathBuf = dir.join("bank.db");
    let rewards: PathBuf = dir.join("rewards.db");
    let ledger_bin = env!("CARGO_BIN_EXE_fidelis-example");
    let rewards_bin = env!("CARGO_BIN_EXE_fidelis-rewards");

    // The rewards context listens before the ledger publishes anything, and the ledger's
    // engine runs beside its walkthrough.
    let _rewards_engine = Engine::start(command(rewards_bin, &rewards, broker));
    let _ledger_engine = Engine::start(command(ledger_bin, &bank, broker));
    let started = Instant::now();
    // The walkthrough in asynchronous processing with the engine elsewhere: it commits (its
    // published events go to the outbox with them) and waits for the ledger's engine process,
    // which updates the dashboard and relays the outbox to the broker.
    let output = command(ledger_bin, &bank, broker)
        .args(["--processing", "async", "--engine", "external"])
        .output()
        .expect("the walkthrough runs");
    assert!(
        output.status.success(),
        "walkthrough: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let deposits = json(
        command(ledger_bin, &bank, broker),
        &["events", "search", "--type", "DepositMade"],
    );
    let expected = expected_points(&deposits);
    assert!(!expected.is_empty(), "the walkthrough deposits");

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let earned = json(
            command(rewards_bin, &rewards, broker),
            &["events", "read", "Member"],
        );
        let credited: Vec<_> = credited_points(&earned)
            .into_iter()
            .filter(|(deposit, _)| expected.contains_key(deposit))
            .collect();
        if credited.len() >= expected.len() {
            // Exactly once: one credit per deposit, with its points, to its account.
            let once: BTreeMap<_, _> = credited.iter().cloned().collect();
            assert_eq!(
                once.len(),
                credited.len(),
                "a deposit credited twice: {earned:#}"
            );
            assert_eq!(once, expected);
            eprintln!(
                "{broker}: {} deposits credited once each, {:?} after the engines started",
                once.len(),
                started.elapsed()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 90 s, {} of {} deposits credited",
            credited.len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg_attr(
    not(fidelis_redis),
    ignore = "set FIDELIS_TEST_REDIS_URL to run the Redis broker tests"
)]
#[test]
fn two_contexts_talk_through_redis_streams() {
    two_contexts_talk_through(
        &std::env::var("FIDELIS_TEST_REDIS_URL").unwrap_or_else(|_| {
            option_env!("FIDELIS_TEST_REDIS_URL")
                .unwrap_or_default()
                .to_owned()
        }),
    );
}

#[cfg_attr(
    not(fidelis_nats),
    ignore = "set FIDELIS_TEST_NATS_URL to run the NATS broker tests"
)]
#[test]
fn two_contexts_talk_through_nats_jetstream() {
    two_contexts_talk_through(&std::env::var("FIDELIS_TEST_NATS_URL").unwrap_or_else(|_| {
        option_env!("FIDELIS_TEST_NATS_URL")
            .unwrap_or_default()
            .to_owned()
    }));
}
