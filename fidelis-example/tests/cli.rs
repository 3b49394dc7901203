//! The command line (`fidelis-cli`) as `fidelis-example`'s subcommands, run as a process on
//! SQLite and PostgreSQL: each command's table and `--json` on a known store, a rebuild that
//! equals the live rows, a failing projector that fails the rebuild (exit 1) and leaves the
//! rows, dead letters listed, inspected, replayed and purged, an aggregate's history and
//! snapshots taken by name, and the exit codes of unknown names (2), missing dead letters
//! and aggregates (4) and an unreachable database (3).

use std::path::PathBuf;
use std::process::{Command, Output};

use fidelis_core::store::ExpectedVersion;
use fidelis_core::{
    Domain, EventMetadata, HandlerRetry, Identifier, Payload, Processing, RecordedEvent,
};
use fidelis_example::account::Account;
use fidelis_example::dashboard::AccountSummary;
use serde_json::Value;

/// A database of one test's own.
struct Store {
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(PathBuf),
    Postgres { admin: sqlx::PgPool, schema: String },
}

impl Store {
    fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("fidelis-cli-{}.db", Identifier::generate()));
        Self {
            url: format!("sqlite://{}", path.display()),
            cleanup: Cleanup::Sqlite(path),
        }
    }

    /// A schema of its own on `FIDELIS_TEST_POSTGRES_URL`, or `None` when it is unset.
    async fn postgres() -> Option<Self> {
        let Ok(url) = std::env::var("FIDELIS_TEST_POSTGRES_URL") else {
            eprintln!(
                "SKIPPED: FIDELIS_TEST_POSTGRES_URL is unset: the PostgreSQL run did not run"
            );
            return None;
        };
        let admin = sqlx::PgPool::connect(&url)
            .await
            .expect("FIDELIS_TEST_POSTGRES_URL is reachable");
        let schema = format!(
            "fidelis_cli_{}",
            Identifier::generate().as_str().replace('-', "")
        );
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create the test schema");
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{url}{separator}options[search_path]={schema}"),
            cleanup: Cleanup::Postgres { admin, schema },
        })
    }

    async fn finish(self) {
        match self.cleanup {
            Cleanup::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin, schema } => {
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&admin)
                    .await
                    .expect("drop the test schema");
            }
        }
    }

    /// Runs `fidelis-example --database <url> <args>`.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_broker(args, None)
    }

    /// Runs `fidelis-example --database <url> <args>` with `FIDELIS_BROKER_URL` set to
    /// `broker` (unset when `None`).
    fn run_with_broker(&self, args: &[&str], broker: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_fidelis-example"));
        command
            .arg("--database")
            .arg(&self.url)
            .args(args)
            .env_remove("FIDELIS_DATABASE_URL")
            .env_remove("FIDELIS_PROCESSING")
            .env_remove("FIDELIS_BROKER_URL");
        if let Some(broker) = broker {
            command.env("FIDELIS_BROKER_URL", broker);
        }
        command.output().expect("the example binary runs")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Runs a command with `--json` that must succeed; its document.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let stdout = self.ok(&args);
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    }

    /// Runs a command that must fail with `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}\nstdout:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        stderr
    }

    async fn domain(&self, processing: Processing) -> Domain {
        fidelis_example::domain()
            .database(self.url.clone())
            .processing(processing)
            .handler_retry(HandlerRetry::none())
            .build()
            .await
            .expect("the example's domain builds")
    }
}

async fn summaries(domain: &Domain) -> Vec<AccountSummary> {
    let mut rows = domain
        .repository::<AccountSummary>()
        .query()
        .all()
        .await
        .expect("the summaries");
    rows.sort_by(|a, b| a.account_id.as_str().cmp(b.account_id.as_str()));
    rows
}

/// A deposit into an account that was never opened, written behind the domain's back: the
/// `AccountSummary` projector fails on it (no row to add to).
async fn orphan_deposit(domain: &Domain) {
    let account = Identifier::generate();
    let stream = format!("fidelis::account-{account}");
    let event = RecordedEvent {
        metadata: EventMetadata {
            id: Identifier::generate(),
            type_name: "Fidelis.DepositMade.v1".into(),
            stream: stream.clone(),
            version: 0,
            global_position: 0,
            commit: 0,
            time: fidelis_core::chrono::Utc::now(),
            correlation_id: Identifier::generate(),
            causation_id: None,
            priority: Default::default(),
            extensions: Default::default(),
        },
        payload: Payload::json(&serde_json::json!({
            "account_id": account.as_str(),
            "amount": "10.00",
            "reference": null,
        })),
    };
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    transaction
        .append(&stream, ExpectedVersion::Exact(-1), vec![event])
        .await
        .unwrap();
    transaction.commit().await.unwrap();
}

async fn every_command_prints_a_table_and_json(store: &Store) {
    // The known store: the walkthrough's nine events: the holder's account opened and a
    // deposit, a second account opened, a transfer between them that completes (a
    // withdrawal and a deposit) and one that fails.
    store.ok(&[]);

    let setup = store.ok(&["setup-db"]);
    assert!(setup.contains("fidelis_account_summary"), "{setup}");
    let setup = store.json(&["setup-db"]);
    let tables: Vec<&str> = setup["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["table"].as_str().unwrap())
        .collect();
    assert!(tables.contains(&"fidelis_events"), "{setup}");
    assert!(tables.contains(&"fidelis_checkpoints"), "{setup}");

    let stats = store.ok(&["events", "stats"]);
    assert!(
        stats.starts_with("9 events; head at global position "),
        "{stats}"
    );
    assert!(stats.contains("fidelis::account"), "{stats}");
    assert!(stats.contains("Fidelis.DepositMade.v1"), "{stats}");
    let stats = store.json(&["events", "stats"]);
    assert_eq!(stats["events"], 9);
    assert_eq!(stats["categories"][0]["category"], "fidelis::account");
    assert_eq!(stats["categories"][0]["events"], 5);
    assert_eq!(stats["categories"][1]["category"], "fidelis::transfer");
    assert_eq!(stats["categories"][1]["events"], 4);
    assert_eq!(stats["types"].as_array().unwrap().len(), 6);

    let read = store.ok(&["events", "read", "Account"]);
    assert!(read.contains("Fidelis.AccountOpened.v1"), "{read}");
    let events = store.json(&["events", "read", "fidelis::account"]);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["type"], "Fidelis.AccountOpened.v1");
    assert_eq!(events[1]["data"]["amount"], "500");
    let stream = events[0]["stream"].as_str().unwrap();
    let second = events[1]["global_position"].as_i64().unwrap().to_string();
    let tail = store.json(&["events", "read", "Account", "--from", &second]);
    assert_eq!(tail.as_array().unwrap().len(), 4);
    assert_eq!(tail[0]["type"], "Fidelis.DepositMade.v1");
    let first = store.json(&["events", "read", stream, "--limit", "1"]);
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["version"], 0);
    let later = store.json(&["events", "read", stream, "--from", "1"]);
    assert_eq!(later[0]["version"], 1);

    let search = store.ok(&["events", "search", "--type", "DepositMade"]);
    assert!(search.contains("Fidelis.DepositMade.v1"), "{search}");
    let search = store.json(&["events", "search", "--type", "Fidelis.DepositMade.v1"]);
    assert_eq!(search.as_array().unwrap().len(), 2);

    let status = store.ok(&["projections", "status"]);
    assert!(status.contains("AccountSummary"), "{status}");
    let status = store.json(&["projections", "status"]);
    assert_eq!(status["projections"][0]["name"], "AccountSummary");
    assert_eq!(status["projections"][0]["version"], 1);
    assert_eq!(status["projections"][0]["rows"], 2);

    let subscriptions = store.ok(&["subscriptions", "status"]);
    assert!(
        subscriptions.contains("ComplianceAlerts"),
        "{subscriptions}"
    );
    let subscriptions = store.json(&["subscriptions", "status"]);
    let names: Vec<&str> = subscriptions["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // One row per partition (4 on PostgreSQL, 1 on SQLite) of each subscription.
    assert_eq!(
        names,
        [
            "AccountSummaryProjector",
            "ActivityFeedProjector",
            "ComplianceAlerts",
            "FundsTransfer"
        ]
    );

    assert_eq!(subscriptions["outbox"], Value::Null, "no broker, no relay");
    let output = store.run_with_broker(&["subscriptions", "status", "--json"], Some("memory"));
    assert!(output.status.success(), "{output:?}");
    let with_broker: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(with_broker["outbox"]["broker"], "memory", "{with_broker}");
    assert_eq!(with_broker["outbox"]["pending"], 0, "{with_broker}");
    let output = store.run_with_broker(&["subscriptions", "status"], Some("kafka://nowhere"));
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("scheme `kafka` is not supported"),
        "{stderr}"
    );

    assert_eq!(store.ok(&["dlq", "list"]).trim(), "No dead letters.");
    assert_eq!(store.json(&["dlq", "list"]), serde_json::json!([]));
}

async fn a_rebuild_equals_the_live_rows(store: &Store) {
    store.ok(&[]);
    store.ok(&[]);
    let domain = store.domain(Processing::Sync).await;
    let live = summaries(&domain).await;
    // Two walkthroughs: two accounts each.
    assert_eq!(live.len(), 4);
    let human = store.ok(&["projections", "rebuild", "AccountSummary"]);
    assert!(
        human.starts_with(
            "Rebuilt AccountSummary (fidelis_account_summary): 10 events read, 10 applied, 0 skipped, 4 rows"
        ),
        "{human}"
    );
    assert_eq!(summaries(&domain).await, live);
    let report = store.json(&["projections", "rebuild", "AccountSummary"]);
    assert_eq!(
        (&report["events_read"], &report["skipped"], &report["rows"]),
        (
            &serde_json::json!(10),
            &serde_json::json!(0),
            &serde_json::json!(4)
        )
    );
    assert_eq!(summaries(&domain).await, live);
}

async fn a_failing_projector_fails_the_rebuild_and_dead_letters_are_handled(store: &Store) {
    store.ok(&["--processing", "async"]);
    let domain = store.domain(Processing::Async).await;
    let live = summaries(&domain).await;
    orphan_deposit(&domain).await;

    let stderr = store.fails(&["projections", "rebuild", "AccountSummary"], 1);
    assert!(
        stderr.contains("AccountSummaryProjector::on_deposit_made failed"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(summaries(&domain).await, live);

    // The engine dead-letters the orphan.
    domain.engine().run_until_idle().await.unwrap();
    let letters = store.json(&["dlq", "list"]);
    let letters = letters.as_array().unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let id = letters[0]["id"].as_str().unwrap();
    assert_eq!(letters[0]["subscription"], "AccountSummaryProjector");
    let human = store.ok(&["dlq", "list"]);
    assert!(human.contains("AccountSummaryProjector"), "{human}");
    let inspected = store.json(&["dlq", "inspect", id]);
    assert_eq!(inspected["type_name"], "Fidelis.DepositMade.v1");
    assert!(
        inspected["error"]
            .as_str()
            .unwrap()
            .contains("on_deposit_made"),
        "{inspected}"
    );
    let human = store.ok(&["dlq", "inspect", id]);
    assert!(human.contains("Fidelis.DepositMade.v1"), "{human}");

    let again = store.fails(&["dlq", "replay", id], 1);
    assert!(again.contains("on_deposit_made"), "{again}");
    let attempts = store.json(&["dlq", "inspect", id])["attempts"].as_i64();
    assert_eq!(attempts, Some(2));
    store.fails(&["dlq", "replay-all", "AccountSummaryProjector"], 1);
    let purged = store.json(&["dlq", "purge", id]);
    assert_eq!(purged["outcome"], "purged");
    assert_eq!(store.json(&["dlq", "list"]), serde_json::json!([]));
    let purged_all = store.json(&["dlq", "purge-all", "AccountSummaryProjector"]);
    assert_eq!(purged_all["purged"], 0);
    store.fails(&["dlq", "inspect", id], 4);
    assert_eq!(summaries(&domain).await, live);
}

async fn history_and_snapshots_by_name(store: &Store) {
    // The known store: two walkthroughs, each two accounts (the holder's opened, a deposit
    // and a withdrawal for the transfer that completes) and two transfers.
    store.ok(&[]);
    store.ok(&[]);
    let events = store.json(&["events", "read", "Account"]);
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 10);
    let stream = events[0]["stream"].as_str().unwrap();
    let id = stream.strip_prefix("fidelis::account-").unwrap();
    let own: Vec<&Value> = events.iter().filter(|e| e["stream"] == stream).collect();
    assert_eq!(own.len(), 3);

    let history = store.json(&["events", "history", "Account", id]);
    let history = history.as_array().unwrap();
    assert_eq!(history.len(), 3, "{history:?}");
    for (entry, event) in history.iter().zip(&own) {
        assert_eq!(entry["version"], event["version"]);
        assert_eq!(entry["type_name"], event["type"]);
        assert_eq!(entry["event_id"], event["id"]);
        assert_eq!(entry["global_position"], event["global_position"]);
        assert_eq!(entry["time"], event["time"]);
    }
    assert_eq!(history[0]["type_name"], "Fidelis.AccountOpened.v1");
    assert_eq!(history[1]["data"]["amount"], "500");
    assert_eq!(history[2]["type_name"], "Fidelis.WithdrawalMade.v1");
    let human = store.ok(&["events", "history", "Account", id]);
    let lines: Vec<&str> = human.lines().collect();
    for header in ["version", "type", "time", "event id", "position"] {
        assert!(lines[1].contains(header), "{human}");
    }
    let opened = lines
        .iter()
        .find(|line| line.contains("Fidelis.AccountOpened.v1"))
        .unwrap_or_else(|| panic!("{human}"));
    assert!(opened.contains(own[0]["id"].as_str().unwrap()), "{human}");
    assert!(human.contains("Fidelis.WithdrawalMade.v1"), "{human}");

    let domain = store.domain(Processing::Sync).await;
    let latest = || async {
        domain
            .event_store()
            .latest_snapshot::<Account>(id)
            .await
            .unwrap()
            .map(|(version, _)| version)
    };
    assert_eq!(latest().await, None);
    let human = store.ok(&["snapshots", "create", "Account", id]);
    assert_eq!(
        human.trim(),
        format!("Snapshot of Account `{id}` taken at version 2")
    );
    assert_eq!(latest().await, Some(2));
    let one = store.json(&["snapshots", "create", "Account", id]);
    assert_eq!(
        one,
        serde_json::json!({ "aggregate": "Account", "id": id, "version": 2 })
    );
    let human = store.ok(&["snapshots", "create", "Account"]);
    assert_eq!(human.trim(), "4 snapshots of Account written");
    let all = store.json(&["snapshots", "create", "Account"]);
    assert_eq!(
        all,
        serde_json::json!({ "aggregate": "Account", "snapshots": 4 })
    );
    let transfers = store.json(&["snapshots", "create", "Transfer"]);
    assert_eq!(transfers["snapshots"], 4);

    // Names it does not know exit 2 and list the event-sourced aggregates; ids without
    // events exit 4.
    let stderr = store.fails(&["events", "history", "Acount", id], 2);
    assert_eq!(
        stderr.trim(),
        "error: unknown aggregate `Acount`; known: Account, Transfer"
    );
    let stderr = store.fails(&["snapshots", "create", "Acount", "--json"], 2);
    let error: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(
        error,
        serde_json::json!({
            "error": "unknown aggregate `Acount`; known: Account, Transfer",
            "exit_code": 2,
        })
    );
    store.fails(&["snapshots", "create", "Acount", id], 2);
    let stderr = store.fails(&["events", "history", "Account", "no-such-account"], 4);
    assert_eq!(
        stderr.trim(),
        "error: no events of Account `no-such-account`"
    );
    let stderr = store.fails(&["snapshots", "create", "Account", "no-such-account"], 4);
    assert!(stderr.contains("no-such-account"), "{stderr}");
    store.fails(&["events", "history", "Account"], 2);
}

async fn unknown_names_exit_2(store: &Store) {
    store.ok(&[]);
    let stderr = store.fails(&["projections", "rebuild", "AcountSummary"], 2);
    assert_eq!(
        stderr.trim(),
        "error: unknown projection `AcountSummary`; known: AccountSummary, ActivityFeed"
    );
    let stderr = store.fails(&["projections", "rebuild", "AcountSummary", "--json"], 2);
    let error: Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(error["exit_code"], 2);
    let stderr = store.fails(&["dlq", "replay-all", "Nobody"], 2);
    assert!(
        stderr.contains(
            "known: AccountSummaryProjector, ActivityFeedProjector, ComplianceAlerts, FundsTransfer"
        ),
        "{stderr}"
    );
    let stderr = store.fails(&["events", "read", "Acount"], 2);
    assert!(stderr.contains("Account (fidelis::account"), "{stderr}");
    let stderr = store.fails(&["events", "search", "--type", "Deposit"], 2);
    assert!(
        stderr.contains("DepositMade (Fidelis.DepositMade.v1)"),
        "{stderr}"
    );
    store.fails(&["events", "read"], 2);
    store.fails(&["projections", "frobnicate"], 2);
}

#[test]
fn an_unreachable_database_exits_3_naming_it_without_its_password() {
    let output = Command::new(env!("CARGO_BIN_EXE_fidelis-example"))
        .args([
            "--database",
            "postgres://bob:hunter2@127.0.0.1:1/ledger",
            "events",
            "stats",
        ])
        .output()
        .expect("the example binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("postgres://bob:***@127.0.0.1:1/ledger"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

macro_rules! on_sqlite_and_postgres {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let store = super::Store::sqlite();
                super::$check(&store).await;
                store.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(store) = super::Store::postgres().await else { return };
                super::$check(&store).await;
                store.finish().await;
            }
        }
    )*};
}

on_sqlite_and_postgres!(
    every_command_prints_a_table_and_json,
    a_rebuild_equals_the_live_rows,
    a_failing_projector_fails_the_rebuild_and_dead_letters_are_handled,
    unknown_names_exit_2,
    history_and_snapshots_by_name,
);
