//! The transfer form of an account's page and `POST /api/transfers`, on memory, SQLite and
//! PostgreSQL: a completed transfer moves both balances and the page says so, a transfer
//! without funds fails with the reason and moves nothing, an invalid form shows every
//! failing field and records nothing; in asynchronous processing the transfer is pending
//! until the engine runs the `FundsTransfer` process manager.

use super::*;

on_every_database!(
    a_completed_transfer_moves_both_balances_and_the_page_shows_it,
    a_transfer_without_funds_fails_and_moves_nothing,
    an_invalid_transfer_shows_every_failing_field_and_records_nothing,
    the_transfer_api_initiates_and_reads_transfers,
);

on_every_database!(
    processing: fidelis_core::Processing::Async;
    a_transfer_is_pending_until_the_engine_moves_the_money,
);

mod checks {
    use super::*;
    use support::{Ledger, Reply};

    /// The error message shown at input `transfer-<field>`, or a panic naming the field.
    fn error_at<'a>(reply: &'a Reply, field: &str) -> &'a str {
        let marker = format!("<p class=\"error\" id=\"transfer-{field}-error\">");
        let at = reply
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no error at transfer-{field}: {}", reply.body));
        reply.body[at + marker.len()..]
            .split("</p>")
            .next()
            .expect("the message")
    }

    /// The events of an account's stream, by short name.
    async fn history(ledger: &Ledger, id: &Identifier) -> Vec<String> {
        ledger
            .get(&format!("/api/accounts/{id}/events"))
            .await
            .json()["events"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|event| event["event"].as_str().expect("a name").to_owned())
            .collect()
    }

    async fn balance(ledger: &Ledger, id: &Identifier) -> String {
        ledger.get(&format!("/api/accounts/{id}")).await.json()["balance"]
            .as_str()
            .expect("a balance")
            .to_owned()
    }

    pub async fn a_completed_transfer_moves_both_balances_and_the_page_shows_it(ledger: &Ledger) {
        let alice = ledger
            .open("ACC-001", "Alice", Decimal::new(100_000, 2))
            .await;
        let bob = ledger.open("ACC-002", "Bob", Decimal::ZERO).await;
        let page = format!("/accounts/{alice}");
        let form = ledger.get(&page).await.body;
        assert!(
            form.contains(&format!("action=\"{page}/transfer\""))
                && form.contains("id=\"transfer-target\"")
                && form.contains("id=\"transfer-amount\""),
            "{form}"
        );

        // The target by its account number.
        let sent = ledger
            .post_form(
                &format!("{page}/transfer"),
                &[("target", " ACC-002 "), ("amount", "200.00")],
            )
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        let location = sent.location.expect("a redirect");
        let transfer = location
            .strip_prefix(&format!("{page}?transfer="))
            .unwrap_or_else(|| panic!("not the account's page with the transfer: {location}"))
            .to_owned();

        let shown = ledger.get(&location).await;
        assert_eq!(shown.status, StatusCode::OK);
        let body = &shown.body;
        assert!(body.contains("data-status=\"completed\""), "{body}");
        assert!(body.contains("Transfer of $200.00 to"), "{body}");
        assert!(
            body.contains(&format!("href=\"/accounts/{bob}\">ACC-002</a>")),
            "{body}"
        );
        assert!(body.contains("$800.00"), "{body}");
        // The movement, with the transfer as its reference.
        assert!(
            body.contains("WithdrawalMade") && body.contains(&transfer),
            "{body}"
        );
        // Without the query, or with another account's page, no outcome is shown.
        assert!(
            !ledger
                .get(&page)
                .await
                .body
                .contains("id=\"transfer-outcome\"")
        );

        let received = ledger
            .get(&format!("/accounts/{bob}?transfer={transfer}"))
            .await
            .body;
        assert!(received.contains("$200.00"), "{received}");
        assert!(
            received.contains("data-status=\"completed\"")
                && received.contains("Transfer of $200.00 from"),
            "{received}"
        );
        assert_eq!(
            history(ledger, &bob).await,
            ["AccountOpened", "DepositMade"]
        );

        // The target by its id.
        let by_id = ledger
            .post_form(
                &format!("{page}/transfer"),
                &[("target", bob.as_str()), ("amount", "0.50")],
            )
            .await;
        assert_eq!(by_id.status, StatusCode::SEE_OTHER, "{}", by_id.body);
        assert_eq!(balance(ledger, &alice).await, "799.50");
        assert_eq!(balance(ledger, &bob).await, "200.50");

        let api = ledger.get(&format!("/api/transfers/{transfer}")).await;
        assert_eq!(api.status, StatusCode::OK, "{}", api.body);
        let api = api.json();
        assert_eq!(api["status"], "completed");
        assert_eq!(api["source"], alice.as_str());
        assert_eq!(api["target_number"], "ACC-002");
        assert_eq!(api["amount"], "200.00");
        assert!(api["reason"].is_null());
    }

    pub async fn a_transfer_without_funds_fails_and_moves_nothing(ledger: &Ledger) {
        let alice = ledger.open("ACC-001", "Alice", Decimal::TEN).await;
        let bob = ledger.open("ACC-002", "Bob", Decimal::ZERO).await;
        let page = format!("/accounts/{alice}");

        let sent = ledger
            .post_form(
                &format!("{page}/transfer"),
                &[("target", "ACC-002"), ("amount", "50")],
            )
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        let shown = ledger.get(&sent.location.expect("a redirect")).await.body;
        assert!(shown.contains("data-status=\"failed\""), "{shown}");
        assert!(
            shown.contains("failed, the balances are as before"),
            "{shown}"
        );
        assert!(shown.contains("Insufficient funds"), "{shown}");
        assert!(shown.contains("$10.00"), "{shown}");

        // Nothing moved on either account: only the transfer's own events were recorded.
        assert_eq!(history(ledger, &alice).await, ["AccountOpened"]);
        assert_eq!(history(ledger, &bob).await, ["AccountOpened"]);
        assert_eq!(balance(ledger, &alice).await, "10");
        assert_eq!(balance(ledger, &bob).await, "0");

        let api = ledger
            .post_json(
                "/api/transfers",
                &format!(r#"{{"source": "{alice}", "target": "ACC-002", "amount": 10.01}}"#),
            )
            .await;
        assert_eq!(api.status, StatusCode::CREATED, "{}", api.body);
        let api = api.json();
        assert_eq!(api["status"], "failed");
        assert!(
            api["reason"]
                .as_str()
                .expect("a reason")
                .contains("Insufficient funds"),
            "{api}"
        );
        assert_eq!(history(ledger, &alice).await, ["AccountOpened"]);
        assert_eq!(balance(ledger, &bob).await, "0");
    }

    pub async fn an_invalid_transfer_shows_every_failing_field_and_records_nothing(
        ledger: &Ledger,
    ) {
        let alice = ledger.open("ACC-001", "Alice", Decimal::TEN).await;
        let closed = ledger.open("ACC-009", "Gone", Decimal::ZERO).await;
        ledger
            .domain
            .process(fidelis_example::commands::CloseAccount {
                account_id: closed.clone(),
                reason: None,
            })
            .await
            .expect("closes");
        let twins = [
            ledger.open("ACC-777", "Twin", Decimal::ZERO).await,
            ledger.open("ACC-777", "Twin", Decimal::ZERO).await,
        ];
        let page = format!("/accounts/{alice}");
        let events = ledger.event_count().await;

        for (target, amount, target_error, amount_error) in [
            (
                "ACC-404",
                "ten",
                "there is no account with the number or id `ACC-404`",
                "must be an amount such as 12.50",
            ),
            ("", "1.234", "is required", "decimal places"),
            (
                alice.as_str(),
                "-1",
                "Cannot transfer to the source account",
                "Transfer amount must be positive",
            ),
            (
                "ACC-009",
                "",
                "account ACC-009 is closed: it takes no transfers",
                "is required",
            ),
            (
                "ACC-777",
                "1",
                "2 accounts have the number `ACC-777`: give the account's id instead",
                "",
            ),
        ] {
            let refused = ledger
                .post_form(
                    &format!("{page}/transfer"),
                    &[("target", target), ("amount", amount)],
                )
                .await;
            assert_eq!(
                refused.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{target} {amount}: {}",
                refused.body
            );
            assert!(
                error_at(&refused, "target").contains(target_error),
                "{target}: {}",
                error_at(&refused, "target")
            );
            if amount_error.is_empty() {
                assert!(
                    !refused.body.contains("id=\"transfer-amount-error\""),
                    "{}",
                    refused.body
                );
            } else {
                assert!(
                    error_at(&refused, "amount").contains(amount_error),
                    "{amount}: {}",
                    error_at(&refused, "amount")
                );
            }
            // What was typed is kept; the page shows the unchanged balance.
            assert!(
                refused.body.contains(&format!("value=\"{amount}\"")),
                "{}",
                refused.body
            );
            assert!(refused.body.contains("$10.00"), "{}", refused.body);
            assert_eq!(ledger.event_count().await, events, "{target} {amount}");
        }
        // Either twin by its id is fine.
        let to_twin = ledger
            .post_form(
                &format!("{page}/transfer"),
                &[("target", twins[1].as_str()), ("amount", "1")],
            )
            .await;
        assert_eq!(to_twin.status, StatusCode::SEE_OTHER, "{}", to_twin.body);
        let events = ledger.event_count().await;

        // From an unknown account: 404; from a closed one: 409 (as the other forms).
        let unknown = ledger
            .post_form(
                "/accounts/nobody/transfer",
                &[("target", "ACC-001"), ("amount", "1")],
            )
            .await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
        let from_closed = ledger
            .post_form(
                &format!("/accounts/{closed}/transfer"),
                &[("target", "ACC-001"), ("amount", "1")],
            )
            .await;
        assert_eq!(
            from_closed.status,
            StatusCode::CONFLICT,
            "{}",
            from_closed.body
        );
        assert!(
            from_closed.body.contains("is closed"),
            "{}",
            from_closed.body
        );

        // The API: every failing field, by the body's names.
        let refused = ledger.post_json("/api/transfers", "{}").await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        let errors = refused.json();
        assert_eq!(errors["fields"]["source"][0], "is required", "{errors}");
        assert_eq!(errors["fields"]["target"][0], "is required", "{errors}");
        assert_eq!(errors["fields"]["amount"][0], "is required", "{errors}");
        let refused = ledger
            .post_json(
                "/api/transfers",
                r#"{"source": "ACC-001", "target": "ACC-001", "amount": 0}"#,
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        let errors = refused.json();
        assert_eq!(
            errors["fields"]["target"][0],
            "Cannot transfer to the source account"
        );
        assert_eq!(
            errors["fields"]["amount"][0],
            "Transfer amount must be positive"
        );
        let refused = ledger
            .post_json(
                "/api/transfers",
                r#"{"source": "nobody", "target": "ACC-009", "amount": "1"}"#,
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            refused.body
        );
        let errors = refused.json();
        assert!(
            errors["fields"]["source"][0]
                .as_str()
                .expect("a message")
                .contains("no account"),
            "{errors}"
        );
        assert!(
            errors["fields"]["target"][0]
                .as_str()
                .expect("a message")
                .contains("is closed"),
            "{errors}"
        );
        assert_eq!(ledger.event_count().await, events);
        assert_eq!(balance(ledger, &alice).await, "9");
    }

    pub async fn the_transfer_api_initiates_and_reads_transfers(ledger: &Ledger) {
        let alice = ledger.open("ACC-001", "Alice", Decimal::TEN).await;
        let bob = ledger.open("ACC-002", "Bob", Decimal::ZERO).await;
        let sent = ledger
            .post_json(
                "/api/transfers",
                r#"{"source": "ACC-001", "target": "ACC-002", "amount": "2.50"}"#,
            )
            .await;
        assert_eq!(sent.status, StatusCode::CREATED, "{}", sent.body);
        assert!(sent.content_type.starts_with("application/json"));
        let sent = sent.json();
        assert_eq!(sent["status"], "completed", "{sent}");
        assert_eq!(sent["source"], alice.as_str());
        assert_eq!(sent["source_number"], "ACC-001");
        assert_eq!(sent["target"], bob.as_str());
        assert_eq!(sent["amount"], "2.50");
        let id = sent["id"].as_str().expect("an id");
        let read = ledger.get(&format!("/api/transfers/{id}")).await;
        assert_eq!(read.status, StatusCode::OK);
        assert_eq!(read.json(), sent);
        assert_eq!(balance(ledger, &alice).await, "7.50");
        assert_eq!(balance(ledger, &bob).await, "2.50");

        let missing = ledger.get("/api/transfers/nothing").await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert!(
            missing.json()["error"]
                .as_str()
                .expect("a message")
                .contains("nothing")
        );
    }

    pub async fn a_transfer_is_pending_until_the_engine_moves_the_money(ledger: &Ledger) {
        let alice = ledger.open("ACC-001", "Alice", Decimal::TEN).await;
        let bob = ledger.open("ACC-002", "Bob", Decimal::ZERO).await;
        // By id: the account numbers are not projected until the engine runs.
        let sent = ledger
            .post_form(
                &format!("/accounts/{alice}/transfer"),
                &[("target", bob.as_str()), ("amount", "4")],
            )
            .await;
        assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.body);
        let location = sent.location.expect("a redirect");
        let pending = ledger.get(&location).await.body;
        assert!(pending.contains("data-status=\"pending\""), "{pending}");
        assert!(pending.contains("reload to follow it"), "{pending}");
        assert_eq!(balance(ledger, &alice).await, "10");

        ledger
            .domain
            .engine()
            .run_until_idle()
            .await
            .expect("the engine runs");
        let done = ledger.get(&location).await.body;
        assert!(done.contains("data-status=\"completed\""), "{done}");
        assert_eq!(balance(ledger, &alice).await, "6");
        assert_eq!(balance(ledger, &bob).await, "4");
    }
}
