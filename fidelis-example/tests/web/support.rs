//! What the web tests share: a ledger on each database, and requests through its router.

#![allow(dead_code)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use fidelis_core::prelude::*;
use fidelis_core::{Cursor, Domain, Processing};
use fidelis_example::commands::OpenAccount;
use fidelis_example::web::WebApp;
use tower::ServiceExt;

/// The ledger's domain on one database, and its dashboard's router.
pub struct Ledger {
    pub domain: Domain,
    pub router: Router,
    cleanup: Cleanup,
}

enum Cleanup {
    None,
    File(std::path::PathBuf),
    Schema { admin: sqlx::PgPool, schema: String },
}

impl Ledger {
    /// On the in-memory store.
    pub async fn memory(processing: Processing) -> Option<Self> {
        Some(Self::on("memory".to_owned(), Cleanup::None, processing).await)
    }

    /// On a SQLite file of its own.
    pub async fn sqlite(test: &str, processing: Processing) -> Option<Self> {
        let path = std::env::temp_dir().join(format!(
            "fidelis-web-{test}-{}-{}.db",
            std::process::id(),
            Identifier::generate()
        ));
        let url = format!("sqlite://{}", path.display());
        Some(Self::on(url, Cleanup::File(path), processing).await)
    }

    /// On a PostgreSQL schema of its own; `None` (after saying so) when
    /// `FIDELIS_TEST_POSTGRES_URL` is unset. An unreachable server fails the test.
    pub async fn postgres(test: &str, processing: Processing) -> Option<Self> {
        let url = std::env::var("FIDELIS_TEST_POSTGRES_URL")
            .ok()
            .or_else(|| option_env!("FIDELIS_TEST_POSTGRES_URL").map(str::to_owned))
            .filter(|url| !url.is_empty());
        let Some(url) = url else {
            eprintln!(
                "SKIPPED: {test}: FIDELIS_TEST_POSTGRES_URL is unset, so this PostgreSQL test did not run"
            );
            return None;
        };
        let admin = sqlx::PgPool::connect(&url).await.unwrap_or_else(|error| {
            panic!("FIDELIS_TEST_POSTGRES_URL is set but the server is unreachable: {error}")
        });
        let schema = format!(
            "fidelis_web_{}",
            Identifier::generate().as_str().replace('-', "")
        );
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .expect("create the test schema");
        let separator = if url.contains('?') { '&' } else { '?' };
        let scoped = format!("{url}{separator}options[search_path]={schema}");
        Some(Self::on(scoped, Cleanup::Schema { admin, schema }, processing).await)
    }

    async fn on(url: String, cleanup: Cleanup, processing: Processing) -> Self {
        let domain = fidelis_example::domain()
            .database(url)
            .processing(processing)
            .pool_size(4)
            .build()
            .await
            .expect("the ledger builds");
        let router = WebApp::new(domain.clone())
            .poll_every(Duration::from_millis(20))
            .router();
        Self {
            domain,
            router,
            cleanup,
        }
    }

    /// Drops the database it made.
    pub async fn finish(self) {
        drop(self.router);
        drop(self.domain);
        match self.cleanup {
            Cleanup::None => {}
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Schema { admin, schema } => {
                sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                    .execute(&admin)
                    .await
                    .expect("drop the test schema");
            }
        }
    }

    /// Opens an account through the domain.
    pub async fn open(&self, number: &str, holder: &str, deposit: Decimal) -> Identifier {
        self.domain
            .process(OpenAccount {
                account_number: number.into(),
                holder_name: holder.into(),
                opening_deposit: deposit,
            })
            .await
            .expect("the account opens")
    }

    /// How many events the store holds.
    pub async fn event_count(&self) -> usize {
        self.domain
            .event_store()
            .read_all(Cursor::START)
            .await
            .expect("the events read")
            .len()
    }

    /// `GET path`: the status, the location header and the body.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).expect("a request"))
            .await
    }

    /// `POST path` of a form.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .expect("a request"),
        )
        .await
    }

    /// `POST path` of a JSON body.
    pub async fn post_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_owned()))
                .expect("a request"),
        )
        .await
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router answers");
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|value| value.to_str().expect("ascii").to_owned());
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().expect("ascii").to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("the body");
        Reply {
            status,
            location,
            content_type,
            body: String::from_utf8(bytes.to_vec()).expect("utf-8"),
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.body))
    }
}

/// Percent-encodes a form value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Generates `<check>::memory`, `::sqlite` and `::postgres` from an async
/// `checks::<check>(&Ledger)`, in synchronous processing unless the list starts with
/// `processing: Processing::Async;`.
#[macro_export]
macro_rules! on_every_database {
    ($($check:ident),* $(,)?) => {
        on_every_database!(processing: fidelis_core::Processing::Sync; $($check),*);
    };
    (processing: $processing:expr; $($check:ident),* $(,)?) => {$(
        mod $check {
            use super::*;
            #[tokio::test]
            async fn memory() {
                let ledger = support::Ledger::memory($processing).await.expect("memory");
                checks::$check(&ledger).await;
                ledger.finish().await;
            }
            #[tokio::test]
            async fn sqlite() {
                let ledger = support::Ledger::sqlite(stringify!($check), $processing)
                    .await
                    .expect("sqlite");
                checks::$check(&ledger).await;
                ledger.finish().await;
            }
            #[cfg_attr(not(fidelis_postgres), ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests")]
            #[tokio::test]
            async fn postgres() {
                let Some(ledger) =
                    support::Ledger::postgres(concat!(stringify!($check), "::postgres"), $processing).await
                else {
                    return;
                };
                checks::$check(&ledger).await;
                ledger.finish().await;
            }
        }
    )*};
}
