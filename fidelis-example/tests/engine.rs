//! The example in asynchronous processing with a separate engine process, on SQLite: the
//! walkthrough commits its commands, `fidelis-example engine` fills the dashboard, and Ctrl-C
//! stops the engine cleanly.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fidelis_core::Domain;
use fidelis_example::dashboard::AccountSummary;

/// Only detects a hang: every step takes well under a second on an idle machine.
const HANG: Duration = Duration::from_secs(120);

fn example(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_fidelis-example"))
        .args(args)
        .current_dir(dir)
        .env_remove("FIDELIS_DATABASE_URL")
        .env_remove("FIDELIS_PROCESSING")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the example binary starts")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fidelis-example-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The dashboard rows of the ledger, read through the library from the SQLite file.
async fn summaries(url: &str) -> Vec<AccountSummary> {
    let domain: Domain = fidelis_example::domain()
        .database(url)
        .build()
        .await
        .expect("the ledger opens");
    domain
        .repository::<AccountSummary>()
        .query()
        .all()
        .await
        .expect("the dashboard reads")
}

/// Waits for `child` to exit; kills it and fails after [`HANG`].
fn wait_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + HANG;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not exit within {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    stderr
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_process_fills_the_dashboard_of_an_async_walkthrough_and_stops_on_ctrl_c() {
    let dir = scratch_dir();
    let url = format!("sqlite://{}", dir.join("ledger.db").display());

    // The walkthrough commits, says so, then waits for an engine process.
    let mut walkthrough = example(
        &dir,
        &[
            "--database",
            &url,
            "--processing",
            "async",
            "--engine",
            "external",
            "--wait",
            "120",
        ],
    );
    let mut lines = BufReader::new(walkthrough.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a first line").expect("utf-8 output");
    assert!(first.starts_with("Commands committed"), "{first}");
    // Committed in async processing: no projector ran yet.
    assert!(summaries(&url).await.is_empty());

    let mut engine = example(
        &dir,
        &["--database", &url, "engine", "--progress-every", "1"],
    );
    let deadline = Instant::now() + HANG;
    let summary = loop {
        let rows = summaries(&url).await;
        // The walkthrough goes on to its transfers once this row has both events (so the row
        // may already show the first transfer's withdrawal when it is read).
        let first = rows.iter().filter(|row| row.account_number == "ACC-001");
        if let Some(row) = first.clone().find(|row| row.transaction_count >= 2) {
            assert_eq!(first.count(), 1);
            break row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the engine did not fill the dashboard within {HANG:?}: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(summary.account_number, "ACC-001");
    let after_transfer = fidelis_core::Decimal::from(1300);
    let expected = if summary.transaction_count == 2 {
        fidelis_core::Decimal::from(1500)
    } else {
        after_transfer
    };
    assert_eq!(summary.balance, expected, "{summary:?}");

    // The walkthrough saw the engine's rows and printed the chapter's dashboard.
    let status = wait_exit(&mut walkthrough, "the walkthrough");
    let rest: Vec<String> = lines.map(|line| line.expect("utf-8 output")).collect();
    assert!(
        status.success(),
        "{status:?}\n{rest:?}\n{}",
        stderr_of(&mut walkthrough)
    );
    assert!(
        rest.iter().any(|line| line == "Balance: $1500.00"),
        "{rest:?}"
    );
    assert_eq!(rest.last().map(String::as_str), Some("All checks passed!"));

    // Ctrl-C: the engine drains and exits 0.
    #[cfg(unix)]
    {
        let sent = Command::new("kill")
            .args(["-INT", &engine.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let status = wait_exit(&mut engine, "the engine");
        let stderr = stderr_of(&mut engine);
        assert!(status.success(), "{status:?}\n{stderr}");
        assert!(stderr.contains("draining in-flight work"), "{stderr}");
        assert!(stderr.contains("subscription progress"), "{stderr}");
    }
    #[cfg(not(unix))]
    {
        engine.kill().expect("the engine stops");
        wait_exit(&mut engine, "the engine");
    }
    let _ = std::fs::remove_dir_all(dir);
}
