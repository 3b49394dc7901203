//! The binary prints the chapter's dashboard block, on the memory default and on SQLite.

use std::process::Command;

fn run(args: &[&str], dir: &std::path::Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fidelis-example"))
        .args(args)
        .current_dir(dir)
        .env_remove("FIDELIS_DATABASE_URL")
        .output()
        .expect("the example binary runs");
    let stdout = String::from_utf8(output.stdout).expect("utf-8 output");
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fidelis-example-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

#[test]
fn the_default_run_prints_the_dashboard() {
    let dir = scratch_dir("memory");
    let stdout = run(&[], &dir);
    let lines: Vec<&str> = stdout.lines().collect();
    let block = lines
        .iter()
        .position(|line| *line == "=== Account Dashboard ===")
        .expect("the dashboard block");
    assert_eq!(
        &lines[block..block + 5],
        [
            "=== Account Dashboard ===",
            "Account: ACC-001",
            "Holder: Alice Johnson",
            "Balance: $1500.00",
            "Transactions: 2",
        ]
    );
    assert!(lines[block + 5].starts_with("Last activity: "));
    assert!(stdout.contains("Accounts on record: 1"));
    let transfers = lines
        .iter()
        .position(|line| *line == "=== Transfers ===")
        .expect("the transfers block");
    assert_eq!(
        lines[transfers + 1],
        "$200.00 ACC-001 -> ACC-002: COMPLETED"
    );
    assert!(
        lines[transfers + 2].starts_with("$5000.00 ACC-002 -> ACC-001: FAILED (")
            && lines[transfers + 2].contains("Insufficient funds"),
        "{stdout}"
    );
    assert_eq!(lines[transfers + 3], "Balance of ACC-001: $1300.00");
    assert_eq!(lines[transfers + 4], "Balance of ACC-002: $200.00");
    assert_eq!(lines.last(), Some(&"All checks passed!"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_sqlite_ledger_persists_across_runs() {
    let dir = scratch_dir("sqlite");
    let first = run(&["--database", "sqlite://fidelis.db"], &dir);
    assert!(first.contains("Accounts on record: 1"), "{first}");
    let second = run(&["--database", "sqlite://fidelis.db"], &dir);
    // The first run's two accounts (its transfers open `ACC-002`), and this run's `ACC-001`,
    // counted before this run's transfers.
    assert!(second.contains("Accounts on record: 3"), "{second}");
    assert!(second.contains("Balance of ACC-001: $1300.00"), "{second}");
    assert!(second.contains("Balance: $1500.00"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_bad_database_url_is_a_clear_error() {
    let dir = scratch_dir("bad-url");
    let output = Command::new(env!("CARGO_BIN_EXE_fidelis-example"))
        .args(["--database", "mysql://root:hunter2@localhost/bank"])
        .current_dir(&dir)
        .output()
        .expect("the example binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mysql://root:***@localhost/bank"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_async_walkthrough_runs_the_engine_in_process_by_default() {
    let dir = scratch_dir("async");
    let stdout = run(
        &["--database", "sqlite://fidelis.db", "--processing", "async"],
        &dir,
    );
    assert!(stdout.contains("Balance: $1500.00"), "{stdout}");
    assert!(stdout.contains("Accounts on record: 1"), "{stdout}");
    let _ = std::fs::remove_dir_all(dir);
}
