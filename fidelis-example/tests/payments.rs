//! PayFlow's webhooks (`payments.rs`): the engine consumes `payflow.webhooks` from the
//! domain's broker and deposits each payment; a malformed message and a payment into an
//! unknown account are dead-lettered, and the payments after them still land.

use std::time::Duration;

use fidelis_core::broker::{Broker, BrokerMessage, MemoryBroker};
use fidelis_core::prelude::*;
use fidelis_core::{HandlerRetry, Processing};
use fidelis_example::commands::OpenAccount;
use fidelis_example::dashboard::AccountSummary;
use fidelis_example::payments::PAYFLOW_WEBHOOKS;
use serde_json::json;

async fn ledger(broker: &MemoryBroker, processing: Processing) -> (Domain, Identifier) {
    let domain = fidelis_example::domain()
        .database("memory")
        .processing(processing)
        .broker_adapter(broker.clone())
        .handler_retry(HandlerRetry::exponential(3, Duration::from_millis(1)))
        .build()
        .await
        .expect("the ledger builds");
    let id = domain
        .process(OpenAccount {
            account_number: "ACC-PAY".into(),
            holder_name: "Grace Hopper".into(),
            opening_deposit: Decimal::from(100),
        })
        .await
        .expect("the account opens");
    (domain, id)
}

fn notice(id: &str, account: &str, amount: &str) -> BrokerMessage {
    BrokerMessage::json_message(
        id,
        PAYFLOW_WEBHOOKS,
        &json!({ "account_id": account, "amount": amount, "reference": format!("PF-{id}") }),
    )
}

async fn balance(domain: &Domain, id: &Identifier) -> Decimal {
    domain.settle().await.expect("settles");
    domain
        .repository::<AccountSummary>()
        .get(id)
        .await
        .expect("the dashboard row")
        .balance
}

#[tokio::test]
async fn payflow_payments_are_deposited_and_bad_ones_dead_lettered() {
    for processing in [Processing::Sync, Processing::Async] {
        let broker = MemoryBroker::new();
        let (domain, id) = ledger(&broker, processing).await;
        let malformed = BrokerMessage {
            payload: b"{\"account_id\": \"ACC\", \"amount\": 12.5".to_vec(),
            ..notice("pf-bad", "", "0")
        };
        broker
            .publish(&[
                notice("pf-1", id.as_str(), "12.50"),
                malformed,
                notice("pf-nobody", "no-such-account", "5.00"),
                notice("pf-2", id.as_str(), "7.25"),
            ])
            .await
            .expect("published");
        domain.engine().run_until_idle().await.expect("runs");
        assert_eq!(balance(&domain, &id).await, "119.75".parse().unwrap());

        let letters = domain
            .dead_letters()
            .list_of("PaymentWebhooks")
            .await
            .expect("the letters");
        let mut summary: Vec<(String, i64)> = letters
            .iter()
            .map(|letter| (letter.event_id.clone(), letter.attempts))
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            [("pf-bad".to_owned(), 1), ("pf-nobody".to_owned(), 3)],
            "malformed at once, the unknown account after its retries"
        );
        let bad = letters.iter().find(|l| l.event_id == "pf-bad").unwrap();
        assert!(
            bad.error
                .contains("cannot decode message `pf-bad` on broker stream `payflow.webhooks`"),
            "{}",
            bad.error
        );
        let nobody = letters.iter().find(|l| l.event_id == "pf-nobody").unwrap();
        assert!(
            nobody.error.contains("`no-such-account` not found"),
            "{}",
            nobody.error
        );

        let status = domain
            .engine()
            .status()
            .await
            .expect("the status")
            .into_iter()
            .find(|status| status.name == "PaymentWebhooks")
            .expect("a row for the subscriber");
        assert_eq!((status.handled, status.dead_letters), (Some(2), 2));

        // The same payment delivered again (PayFlow retries its webhooks): deposited once.
        domain
            .deliver(PAYFLOW_WEBHOOKS, notice("pf-1", id.as_str(), "12.50"))
            .await
            .expect("a repeat is skipped");
        assert_eq!(balance(&domain, &id).await, "119.75".parse().unwrap());
    }
}
