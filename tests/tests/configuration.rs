//! Configuration mistakes fail `build()` at once, with errors that say what is wrong and
//! never show a password: a crate name that discovers nothing, a SQLite URL without a path,
//! a PostgreSQL server that refuses connections, passwords with reserved characters.
//!
//! None of these needs a database: the PostgreSQL URLs point at 127.0.0.1:1, where nothing
//! listens.

#![allow(missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fidelis_core::Error;
use fidelis_core::config::redact;

/// Every reserved character of RFC 3986: gen-delims, then sub-delims.
const RESERVED: &[char] = &[
    ':', '/', '?', '#', '[', ']', '@', '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=',
];

/// Passwords with each reserved character in the middle, then with all of them: neither
/// `S3cr` nor `etPw` may ever be shown.
fn passwords() -> Vec<String> {
    let all: String = RESERVED.iter().collect();
    RESERVED
        .iter()
        .map(|c| format!("S3cr{c}etPw"))
        .chain([format!("S3cr{all}etPw")])
        .collect()
}

fn assert_hidden(text: &str, password: &str) {
    assert!(
        !text.contains("S3cr") && !text.contains("etPw"),
        "the password {password:?} leaks: {text}"
    );
}

// ---- redaction --------------------------------------------------------------------------

#[test]
fn redact_hides_passwords_with_every_reserved_character() {
    for password in passwords() {
        for url in [
            format!("postgres://bob:{password}@db.example:5432/ledger"),
            format!("postgresql://bob:{password}@db.example/ledger?sslmode=disable"),
            format!("postgres://bob@db.example/ledger?sslmode=disable&password={password}"),
            format!("postgres://bob@db.example/ledger?PASSWORD={password}&sslmode=disable"),
            format!("postgres://bob:{password}@db.example/ledger?password={password}"),
        ] {
            let shown = redact(&url);
            assert_hidden(&shown, &password);
            // An `@` in a password parameter makes the host ambiguous: then all is hidden.
            if !(password.contains('@') && url.to_lowercase().contains("password=")) {
                assert!(
                    shown.contains("db.example"),
                    "the host is shown: {url} -> {shown}"
                );
            }
        }
    }
}

#[test]
fn redact_keeps_what_is_not_secret() {
    assert_eq!(
        redact("postgres://bob:secret@db/x"),
        "postgres://bob:***@db/x"
    );
    assert_eq!(
        redact("postgres://bob@db:5432/x?sslmode=disable"),
        "postgres://bob@db:5432/x?sslmode=disable"
    );
    assert_eq!(redact("sqlite://fidelis.db"), "sqlite://fidelis.db");
    assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    assert_eq!(redact("memory"), "memory");
}

// ---- through the real error path ----------------------------------------------------------

/// A domain build against an unreachable server, with the password in every position: the
/// error (and its `Debug`) never contains it.
#[tokio::test]
async fn build_errors_never_show_the_password() {
    for password in passwords() {
        for url in [
            format!("postgres://bob:{password}@127.0.0.1:1/ledger"),
            format!("postgres://bob@127.0.0.1:1/ledger?password={password}"),
        ] {
            let error = fidelis_example::domain()
                .database(url.as_str())
                .connect_timeout(Duration::from_secs(5))
                .build()
                .await
                .expect_err("nothing listens on port 1");
            assert_hidden(&error.to_string(), &password);
            assert_hidden(&format!("{error:?}"), &password);
        }
    }
}

/// A raw `&` in a `password=` parameter splits the password into a parameter PostgreSQL does
/// not know, which the driver would log, key and value, in a warning: such a URL is refused
/// before the driver sees it.
#[tokio::test]
async fn a_password_split_by_ampersand_never_reaches_the_driver() {
    let error = fidelis_example::domain()
        .database("postgres://bob@127.0.0.1:1/ledger?password=S3cr&etPw")
        .build()
        .await
        .expect_err("the URL is refused");
    assert!(matches!(error, Error::Configuration { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("percent-encode"), "{message}");
    assert_hidden(&message, "S3cr&etPw");
    // A parameter PostgreSQL does not know, without a password before it, is the driver's
    // to report: it is no secret.
    let error = fidelis_example::domain()
        .database("postgres://bob@127.0.0.1:1/ledger?colour=blue")
        .build()
        .await
        .expect_err("nothing listens on port 1");
    assert!(error.to_string().contains("connection refused"), "{error}");
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_connecting_storage_log_line_never_shows_the_password() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // Global, not `set_default`: a thread-scoped subscriber can miss events of callsites
    // that other tests' threads register at the same time. The other tests of this file
    // then log into the buffer too, which only widens the check.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    for password in passwords() {
        let url = format!("postgres://bob:{password}@127.0.0.1:1/ledger");
        let _ = fidelis_example::domain()
            .database(url.as_str())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .await;
    }
    let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    assert!(
        log.matches("connecting storage").count() >= passwords().len(),
        "{log}"
    );
    assert_hidden(&log, "any");
}

// ---- PostgreSQL that refuses connections --------------------------------------------------

#[tokio::test]
async fn a_refused_connection_says_so_at_once() {
    let started = Instant::now();
    let error = fidelis_example::domain()
        .database("postgres://bob:secret@127.0.0.1:1/ledger")
        .build()
        .await
        .expect_err("nothing listens on port 1");
    // Measured for the record, not asserted: the default connect timeout is 10 s.
    eprintln!("refused after {:?}", started.elapsed());
    let message = error.to_string();
    assert!(matches!(error, Error::Storage { .. }), "{error:?}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(!message.contains("timed out"), "{message}");
    assert!(
        message.contains("postgres://bob:***@127.0.0.1:1/ledger"),
        "{message}"
    );
}

// ---- SQLite without a path ----------------------------------------------------------------

#[tokio::test]
async fn a_sqlite_url_without_a_path_is_a_configuration_error() {
    for url in [
        "sqlite://",
        "sqlite:",
        "sqlite://?cache=shared",
        " sqlite:// ",
    ] {
        let error = fidelis_example::domain()
            .database(url)
            .build()
            .await
            .expect_err("no database file is named");
        assert!(
            matches!(error, Error::Configuration { .. }),
            "{url}: {error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("names no database file") && message.contains("sqlite://fidelis.db"),
            "{url}: {message}"
        );
    }
    // In-memory SQLite needs no path.
    for url in ["sqlite::memory:", "sqlite://?mode=memory"] {
        fidelis_example::domain()
            .database(url)
            .build()
            .await
            .unwrap_or_else(|error| panic!("{url}: {error}"));
    }
}

// ---- discovery that finds nothing -----------------------------------------------------------

#[tokio::test]
async fn discovering_a_crate_without_elements_names_the_crates_that_have_some() {
    let error = fidelis_core::Domain::builder("fidelis")
        .discover_crate("fidelis_exmaple")
        .build()
        .await
        .expect_err("a typo discovers nothing");
    assert!(matches!(error, Error::Configuration { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("`fidelis_exmaple`") && message.contains("`fidelis_example`"),
        "{message}"
    );

    // Given with dashes or as a module path, the crate is found.
    for name in ["fidelis-example", "fidelis_example::account"] {
        fidelis_core::Domain::builder("fidelis")
            .discover_crate(name)
            .resource(fidelis_example::alerts::ComplianceDesk::default())
            .build()
            .await
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
}
