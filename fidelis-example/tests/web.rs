//! The web dashboard over HTTP, through its router (no socket), on memory, SQLite and
//! PostgreSQL: every page and API route, the forms' errors at their fields with nothing
//! changed, and the live feed. `serve` itself is run as a process at the end.

#![cfg(feature = "web")]

#[path = "web/support.rs"]
mod support;

#[path = "web/transfers.rs"]
mod transfers;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use fidelis_core::prelude::*;
use fidelis_example::commands::MakeDeposit;
use futures::StreamExt;
use tower::ServiceExt;

on_every_database!(
    the_dashboard_lists_every_account_of_the_projection,
    opening_through_the_form_shows_the_new_account,
    a_refused_open_form_shows_every_error_at_its_field_and_changes_nothing,
    the_movement_forms_process_or_show_why_not,
    the_json_api_reads_and_commands,
    the_json_api_refuses_with_the_field_errors_and_changes_nothing,
    the_live_feed_sends_the_table_then_each_change,
);

on_every_database!(
    processing: fidelis_core::Processing::Async;
    the_live_feed_follows_the_engine_in_asynchronous_processing,
);

/// The id in `/accounts/<id>`.
fn id_of(location: &str) -> &str {
    location
        .strip_prefix("/accounts/")
        .unwrap_or_else(|| panic!("not an account page: {location}"))
}

mod checks {
    use super::*;
    use support::Ledger;

    pub async fn the_dashboard_lists_every_account_of_the_projection(ledger: &Ledger) {
        let empty = ledger.get("/").await;
        assert_eq!(empty.status, StatusCode::OK);
        assert!(empty.content_type.starts_with("text/html"), "{empty:?}");
        assert!(empty.body.contains("No accounts yet"), "{}", empty.body);

        let alice = ledger
            .open("ACC-002", "Alice Johnson", Decimal::new(100_000, 2))
            .await;
        ledger
            .domain
            .process(MakeDeposit {
                account_id: alice.clone(),
                amount: Decimal::new(50_000, 2),
                reference: None,
            })
            .await
            .expect("the deposit");
        ledger
            .open("ACC-001", "Bob <b>Smith</b>", Decimal::ZERO)
            .await;

        let page = ledger.get("/").await;
        assert_eq!(page.status, StatusCode::OK);
        let body = &page.body;
        assert!(body.contains("2 accounts"), "{body}");
        assert!(
            body.contains(&format!("href=\"/accounts/{alice}\"")),
            "{body}"
        );
        assert!(
            body.contains("Alice Johnson") && body.contains("$1500.00"),
            "{body}"
        );
        // Holder names are text, never markup.
        assert!(body.contains("Bob &lt;b&gt;Smith&lt;/b&gt;"), "{body}");
        // By account number.
        assert!(body.find("ACC-001") < body.find("ACC-002"), "{body}");
        assert!(body.contains("aria-live=\"polite\""), "{body}");
        assert!(body.contains("src=\"/static/live.js\""), "{body}");

        let api = ledger.get("/api/accounts").await.json();
        let accounts = api["accounts"].as_array().expect("a list");
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[1]["id"], alice.as_str());
        assert_eq!(accounts[1]["balance"], "1500.00");
        assert_eq!(accounts[1]["transaction_count"], 2);
        assert!(accounts[1]["last_activity"].is_string());
    }

    pub async fn opening_through_the_form_shows_the_new_account(ledger: &Ledger) {
        let opened = ledger
            .post_form(
                "/accounts",
                &[
                    ("account_number", "ACC-100"),
                    ("holder_name", "Grace Hopper"),
                    ("opening_deposit", "250.50"),
                ],
            )
            .await;
        assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.body);
        let location = opened.location.expect("a redirect");
        let id = id_of(&location);

        let page = ledger.get(&location).await;
        assert_eq!(page.status, StatusCode::OK);
        let body = &page.body;
        assert!(body.contains("Account ACC-100"), "{body}");
        assert!(
            body.contains("Grace Hopper") && body.contains("$250.50"),
            "{body}"
        );
        assert!(body.contains("id=\"history\""), "{body}");
        assert!(body.contains("AccountOpened"), "{body}");
        assert!(
            body.contains(&format!("action=\"/accounts/{id}/deposit\"")),
            "{body}"
        );

        let dashboard = ledger.get("/").await;
        assert!(
            dashboard.body.contains("Grace Hopper"),
            "{}",
            dashboard.body
        );

        let missing = ledger.get("/accounts/no-such-account").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(missing.body.contains("no-such-account"), "{}", missing.body);
        assert_eq!(
            ledger.get("/no/such/page").await.status,
            StatusCode::NOT_FOUND
        );
    }

    pub async fn a_refused_open_form_shows_every_error_at_its_field_and_changes_nothing(
        ledger: &Ledger,
    ) {
        let refused = ledger
            .post_form(
                "/accounts",
                &[
                    ("account_number", "ACC-0000000000000000000000"),
                    ("holder_name", "  "),
                    ("opening_deposit", "ten dollars"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let body = &refused.body;
        for (field, message) in [
            ("account_number", "max"),
            ("holder_name", "is required"),
            ("opening_deposit", "must be an amount such as 12.50"),
        ] {
            let error = format!("<p class=\"error\" id=\"open-account-{field}-error\">");
            let at = body
                .find(&error)
                .unwrap_or_else(|| panic!("no error at {field}: {body}"));
            assert!(
                body[at..]
                    .split("</p>")
                    .next()
                    .expect("the message")
                    .contains(message)
            );
            assert!(
                body.contains(&format!("aria-describedby=\"open-account-{field}-error\"")),
                "{body}"
            );
        }
        // What was typed is shown again.
        assert!(body.contains("value=\"ten dollars\""), "{body}");
        assert_eq!(ledger.event_count().await, 0);
        assert!(ledger.get("/").await.body.contains("No accounts yet"));

        // A negative opening deposit reaches the command's own check.
        let negative = ledger
            .post_form(
                "/accounts",
                &[
                    ("account_number", "ACC-1"),
                    ("holder_name", "Ada"),
                    ("opening_deposit", "-1"),
                ],
            )
            .await;
        assert_eq!(negative.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            negative
                .body
                .contains("<p class=\"error\" id=\"open-account-opening_deposit-error\">"),
            "{}",
            negative.body
        );
        assert_eq!(ledger.event_count().await, 0);
    }

    pub async fn the_movement_forms_process_or_show_why_not(ledger: &Ledger) {
        let id = ledger.open("ACC-7", "Ada", Decimal::new(10_000, 2)).await;
        let page = format!("/accounts/{id}");

        let deposited = ledger
            .post_form(
                &format!("{page}/deposit"),
                &[("amount", "20.00"), ("reference", "gift")],
            )
            .await;
        assert_eq!(
            deposited.status,
            StatusCode::SEE_OTHER,
            "{}",
            deposited.body
        );
        assert_eq!(deposited.location.as_deref(), Some(page.as_str()));
        let shown = ledger.get(&page).await.body;
        assert!(shown.contains("$120.00"), "{shown}");
        assert!(
            shown.contains("DepositMade") && shown.contains("gift"),
            "{shown}"
        );

        let events = ledger.event_count().await;
        for (form, amount, message) in [
            ("deposit", "-5", "Deposit amount must be positive"),
            ("deposit", "abc", "must be an amount such as 12.50"),
            ("deposit", "1.234", "decimal places"),
            ("withdraw", "500", "Insufficient funds"),
        ] {
            let refused = ledger
                .post_form(&format!("{page}/{form}"), &[("amount", amount)])
                .await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{form} {amount}"
            );
            let error = format!("<p class=\"error\" id=\"{form}-amount-error\">");
            let at = refused
                .body
                .find(&error)
                .unwrap_or_else(|| panic!("no error at {form}-amount: {}", refused.body));
            assert!(refused.body[at..].contains(message), "{}", refused.body);
            assert!(refused.body.contains(&format!("value=\"{amount}\"")));
            // The page shows the unchanged balance.
            assert!(refused.body.contains("$120.00"), "{}", refused.body);
        }
        assert_eq!(ledger.event_count().await, events);

        let not_empty = ledger.post_form(&format!("{page}/close"), &[]).await;
        assert_eq!(not_empty.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            not_empty.body.contains("role=\"alert\"")
                && not_empty
                    .body
                    .contains("Cannot close account with non-zero balance"),
            "{}",
            not_empty.body
        );
        assert_eq!(ledger.event_count().await, events);

        let withdrawn = ledger
            .post_form(&format!("{page}/withdraw"), &[("amount", "120")])
            .await;
        assert_eq!(
            withdrawn.status,
            StatusCode::SEE_OTHER,
            "{}",
            withdrawn.body
        );
        let closed = ledger
            .post_form(&format!("{page}/close"), &[("reason", "moving")])
            .await;
        assert_eq!(closed.status, StatusCode::SEE_OTHER, "{}", closed.body);
        let shown = ledger.get(&page).await.body;
        assert!(shown.contains("This account is closed"), "{shown}");
        assert!(!shown.contains("id=\"deposit\""), "{shown}");
        assert!(
            shown.contains("AccountClosed") && shown.contains("moving"),
            "{shown}"
        );

        // Posting to a closed account anyway: refused with the reason, nothing changed.
        let events = ledger.event_count().await;
        let refused = ledger
            .post_form(&format!("{page}/deposit"), &[("amount", "1")])
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT);
        assert!(refused.body.contains("is closed"), "{}", refused.body);
        assert_eq!(ledger.event_count().await, events);

        let unknown = ledger
            .post_form("/accounts/nobody/deposit", &[("amount", "1")])
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(ledger.event_count().await, events);
    }

    pub async fn the_json_api_reads_and_commands(ledger: &Ledger) {
        let opened = ledger
            .post_json(
                "/api/accounts",
                r#"{"account_number": "ACC-9", "holder_name": "Linus", "opening_deposit": 10}"#,
            )
            .await;
        assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
        assert!(opened.content_type.starts_with("application/json"));
        let account = opened.json();
        let id = account["id"].as_str().expect("an id").to_owned();
        assert_eq!(account["balance"], "10");
        assert_eq!(account["status"], "active");
        assert_eq!(account["version"], 0);

        let deposited = ledger
            .post_json(
                &format!("/api/accounts/{id}/deposits"),
                r#"{"amount": "2.50", "reference": "coffee refund"}"#,
            )
            .await;
        assert_eq!(deposited.status, StatusCode::OK, "{}", deposited.body);
        assert_eq!(deposited.json()["balance"], "12.50");
        let withdrawn = ledger
            .post_json(
                &format!("/api/accounts/{id}/withdrawals"),
                r#"{"amount": "12.50"}"#,
            )
            .await;
        assert_eq!(withdrawn.status, StatusCode::OK, "{}", withdrawn.body);

        let read = ledger.get(&format!("/api/accounts/{id}")).await;
        assert_eq!(read.status, StatusCode::OK);
        let read = read.json();
        assert_eq!(read["account_number"], "ACC-9");
        assert_eq!(read["holder_name"], "Linus");
        assert_eq!(read["balance"], "0.00");
        assert_eq!(read["transaction_count"], 3);
        assert_eq!(read["version"], 2);

        let closed = ledger
            .post_json(&format!("/api/accounts/{id}/close"), r#"{"reason": null}"#)
            .await;
        assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
        assert_eq!(closed.json()["status"], "closed");

        let history = ledger.get(&format!("/api/accounts/{id}/events")).await;
        assert_eq!(history.status, StatusCode::OK);
        let events = history.json()["events"].as_array().expect("a list").clone();
        let kinds: Vec<_> = events
            .iter()
            .map(|e| e["event"].as_str().expect("a name"))
            .collect();
        assert_eq!(
            kinds,
            [
                "AccountOpened",
                "DepositMade",
                "WithdrawalMade",
                "AccountClosed"
            ]
        );
        assert_eq!(events[0]["type_name"], "Fidelis.AccountOpened.v1");
        assert_eq!(events[1]["data"]["amount"], "2.50");
        assert_eq!(events[1]["data"]["reference"], "coffee refund");
        assert!(events[1]["data"].get("account_id").is_none());
        let versions: Vec<_> = events.iter().map(|e| e["version"].as_i64()).collect();
        assert_eq!(versions, [Some(0), Some(1), Some(2), Some(3)]);

        for path in ["/api/accounts/nobody", "/api/accounts/nobody/events"] {
            let missing = ledger.get(path).await;
            assert_eq!(missing.status, StatusCode::NOT_FOUND, "{path}");
            assert!(
                missing.json()["error"]
                    .as_str()
                    .expect("a message")
                    .contains("nobody")
            );
        }
    }

    pub async fn the_json_api_refuses_with_the_field_errors_and_changes_nothing(ledger: &Ledger) {
        let id = ledger.open("ACC-5", "Ada", Decimal::new(500, 2)).await;
        let events = ledger.event_count().await;

        let refused = ledger
            .post_json(
                "/api/accounts",
                r#"{"account_number": "", "holder_name": "Ada", "opening_deposit": "x"}"#,
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        let errors = refused.json();
        assert_eq!(errors["fields"]["account_number"][0], "is required");
        assert_eq!(
            errors["fields"]["opening_deposit"][0],
            "must be an amount such as 12.50"
        );
        assert!(errors["fields"].get("holder_name").is_none(), "{errors}");

        let too_much = ledger
            .post_json(
                &format!("/api/accounts/{id}/withdrawals"),
                r#"{"amount": 6}"#,
            )
            .await;
        assert_eq!(too_much.status, StatusCode::UNPROCESSABLE_ENTITY);
        let errors = too_much.json();
        assert_eq!(
            errors["fields"]["amount"][0],
            "Insufficient funds: balance cannot be negative"
        );
        assert!(
            errors["error"]
                .as_str()
                .expect("a message")
                .contains("Insufficient funds")
        );

        let not_empty = ledger
            .post_json(&format!("/api/accounts/{id}/close"), "{}")
            .await;
        assert_eq!(not_empty.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            not_empty.json()["form"][0],
            "Cannot close account with non-zero balance"
        );

        let not_an_object = ledger
            .post_json(&format!("/api/accounts/{id}/deposits"), "[1]")
            .await;
        assert_eq!(not_an_object.status, StatusCode::UNPROCESSABLE_ENTITY);
        let not_json = ledger
            .post_json(&format!("/api/accounts/{id}/deposits"), "amount=1")
            .await;
        assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
        assert!(
            not_json.json()["error"]
                .as_str()
                .expect("a message")
                .contains("not JSON")
        );
        let unknown = ledger
            .post_json("/api/accounts/nobody/deposits", r#"{"amount": 1}"#)
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        assert_eq!(ledger.event_count().await, events);
        let account = ledger.get(&format!("/api/accounts/{id}")).await.json();
        assert_eq!(account["balance"], "5.00");
        assert_eq!(account["version"], 0);
    }

    pub async fn the_live_feed_sends_the_table_then_each_change(ledger: &Ledger) {
        ledger.open("ACC-1", "First", Decimal::ONE).await;
        let response = ledger
            .router
            .clone()
            .oneshot(
                Request::get("/live")
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("the router answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().expect("ascii"),
            "text/event-stream"
        );
        let mut feed = Feed(response.into_body().into_data_stream(), String::new());
        let first = feed.next_update().await;
        assert_eq!(first["count"], "1 account");
        assert!(first["rows"].as_str().expect("rows").contains("First"));

        ledger.open("ACC-2", "Second", Decimal::TWO).await;
        let second = feed.next_update().await;
        assert_eq!(second["count"], "2 accounts", "{second}");
        let rows = second["rows"].as_str().expect("rows");
        assert!(rows.contains("First") && rows.contains("Second"), "{rows}");
        assert!(rows.starts_with("<tr data-account-id="), "{rows}");
    }

    pub async fn the_live_feed_follows_the_engine_in_asynchronous_processing(ledger: &Ledger) {
        let id = ledger.open("ACC-1", "Queued", Decimal::ONE).await;
        let mut feed = open_feed(ledger).await;
        // Committed, not projected yet: the table is empty, and the account page says so.
        assert_eq!(feed.next_update().await["count"], "0 accounts");
        let page = ledger.get(&format!("/accounts/{id}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("not projected yet"), "{}", page.body);

        // The engine projects it (its checkpoint moves, the head does not): the feed follows.
        ledger
            .domain
            .engine()
            .run_until_idle()
            .await
            .expect("the engine runs");
        let update = feed.next_update().await;
        assert_eq!(update["count"], "1 account", "{update}");
        assert!(update["rows"].as_str().expect("rows").contains("Queued"));
    }

    async fn open_feed(ledger: &Ledger) -> Feed {
        let response = ledger
            .router
            .clone()
            .oneshot(
                Request::get("/live")
                    .body(Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("the router answers");
        assert_eq!(response.status(), StatusCode::OK);
        Feed(response.into_body().into_data_stream(), String::new())
    }
}

/// The server-sent events of `/live`, read as they come.
struct Feed(axum::body::BodyDataStream, String);

impl Feed {
    /// The next `accounts` event's data (keep-alive comments skipped), within 10 s.
    async fn next_update(&mut self) -> serde_json::Value {
        loop {
            if let Some(end) = self.1.find("\n\n") {
                let event: String = self.1.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) {
                    assert!(event.starts_with("event: accounts\n"), "{event}");
                    return serde_json::from_str(data).expect("JSON data");
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(10), self.0.next())
                .await
                .expect("an update within 10 s")
                .expect("the feed goes on")
                .expect("a frame");
            self.1.push_str(std::str::from_utf8(&frame).expect("utf-8"));
        }
    }
}

#[tokio::test]
async fn the_assets_are_served_with_their_types() {
    let ledger = support::Ledger::memory(fidelis_core::Processing::Sync)
        .await
        .expect("memory");
    let css = ledger.get("/static/style.css").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(css.content_type.starts_with("text/css"));
    assert!(css.body.contains(".error"));
    let js = ledger.get("/static/live.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.content_type.starts_with("text/javascript"));
    assert!(js.body.contains("EventSource"));
    ledger.finish().await;
}

/// `fidelis-example serve` binds, answers, and on SIGINT stops, also while a browser watches
/// the live feed.
#[cfg(unix)]
#[tokio::test]
async fn serve_answers_then_stops_on_ctrl_c_while_a_feed_is_open() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_fidelis-example"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env_remove("FIDELIS_DATABASE_URL")
        .env_remove("FIDELIS_PROCESSING")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the example binary starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("serve says where it listens")
        .expect("stdout reads")
        .expect("a line");
    let address = line
        .strip_prefix("Account dashboard: http://")
        .and_then(|rest| rest.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();

    let mut page = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    page.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut answer = String::new();
    page.read_to_string(&mut answer).await.expect("reads");
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    assert!(answer.contains("Account dashboard"), "{answer}");

    let mut feed = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connects");
    feed.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    let mut opening = [0_u8; 64];
    let read = feed.read(&mut opening).await.expect("the feed answers");
    assert!(String::from_utf8_lossy(&opening[..read]).starts_with("HTTP/1.1 200"));

    let pid = child.id().expect("a pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("serve stops within 10 s of Ctrl-C with a feed open")
        .expect("an exit status");
    assert!(exit.success(), "{exit:?}");
}
