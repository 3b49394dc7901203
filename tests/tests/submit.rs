//! `domain.submit`, on every adapter and in both processing modes: a submitted command is
//! recorded and waits for the engine, which processes it once (and logs it); an idempotency
//! key makes a repeated submission (concurrent ones too) a duplicate of the first; the bulk
//! lane waits while normal commands are queued; a command that keeps failing is retried, then
//! dead-lettered with its real error (at once when retrying cannot help), and its letter
//! replays or purges it.

#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use fidelis_core::prelude::*;
use fidelis_core::{COMMANDS_SUBSCRIPTION, DomainBuilder, HandlerRetry, Processing, Submitted};
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

/// Fails its first `failures` attempts per ledger, then credits 1.
#[command(part_of = Ledger)]
pub struct Flaky {
    pub ledger_id: Identifier,
    pub failures: i64,
}

static ATTEMPTS: Mutex<Option<HashMap<Identifier, i64>>> = Mutex::new(None);

fn attempt(ledger: &Identifier) -> i64 {
    let mut attempts = ATTEMPTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = attempts
        .get_or_insert_with(HashMap::new)
        .entry(ledger.clone())
        .or_default();
    *count += 1;
    *count
}

#[derive(Default)]
pub struct FlakyHandler;

#[command_handler(part_of = Ledger)]
impl FlakyHandler {
    #[handle(Flaky)]
    async fn flaky(&self, command: Flaky, ctx: &mut Context) -> Result<()> {
        if attempt(&command.ledger_id) <= command.failures {
            return Err(Error::handler("FlakyHandler", "the bank's API timed out"));
        }
        let mut repo = ctx.repository::<Ledger>();
        let mut ledger = repo.get(&command.ledger_id).await?;
        ledger.raise(Credited {
            ledger_id: command.ledger_id,
            amount: 1,
        })?;
        repo.add(ledger).await
    }
}

/// On a credit of 1000 (the first bulk command's), submits a normal command: it must run
/// before the bulk commands still queued.
#[derive(Default)]
pub struct Interrupter;

#[event_handler(part_of = Ledger)]
impl Interrupter {
    #[handle(Credited)]
    async fn credited(&self, event: &Event<Credited>, ctx: &mut EventHandlerContext) -> Result<()> {
        if event.amount == 1000 {
            ctx.domain()
                .submit(Credit {
                    ledger_id: event.ledger_id.clone(),
                    amount: 5,
                })
                .await?;
        }
        Ok(())
    }
}

fn builder(processing: Processing) -> DomainBuilder {
    Domain::builder("ledgers")
        .discover_crate(module_path!())
        .processing(processing)
        .handler_retry(HandlerRetry::exponential(3, Duration::from_millis(1)))
}

async fn open(domain: &Domain) -> Identifier {
    domain
        .process(OpenLedger {
            holder: "Ada".into(),
            tags: json!([]),
        })
        .await
        .expect("the ledger opens")
}

async fn balance(domain: &Domain, ledger: &Identifier) -> i64 {
    domain
        .repository::<Ledger>()
        .get(ledger)
        .await
        .unwrap()
        .balance
}

/// The credited amounts of a ledger, in stream order.
async fn credits(domain: &Domain, ledger: &Identifier) -> Vec<(i64, Priority)> {
    let stream = domain.event_store().stream_of::<Ledger>(ledger).unwrap();
    domain
        .event_store()
        .read_stream(&stream)
        .await
        .unwrap()
        .into_iter()
        .filter(|event| event.metadata.type_name == "Ledgers.Credited.v1")
        .map(|event| {
            let amount = event.data().unwrap()["amount"].as_i64().unwrap();
            (amount, event.metadata.priority)
        })
        .collect()
}

async fn a_submitted_command_waits_for_the_engine_which_processes_it_once(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        let domain = backend.build(builder(processing)).await;
        let ledger = open(&domain).await;
        let submitted = domain
            .submit(Credit {
                ledger_id: ledger.clone(),
                amount: 10,
            })
            .await
            .unwrap();
        assert!(!submitted.duplicate);
        assert_eq!(balance(&domain, &ledger).await, 0, "not processed yet");
        let status = domain.engine().command_status().await.unwrap();
        assert_eq!((status.normal, status.bulk), (1, 0), "{processing:?}");

        domain.engine().run_until_idle().await.unwrap();
        assert_eq!(balance(&domain, &ledger).await, 10, "{processing:?}");
        domain.engine().run_until_idle().await.unwrap();
        assert_eq!(balance(&domain, &ledger).await, 10, "processed once");
        let status = domain.engine().command_status().await.unwrap();
        assert_eq!((status.normal, status.bulk, status.dead_letters), (0, 0, 0));

        // Logged under its id, with the event it recorded, which it caused.
        let entry = domain
            .event_store()
            .command(&submitted.command_id)
            .await
            .unwrap()
            .expect("the processed command is logged");
        assert_eq!(entry.type_name, "Ledgers.Credit");
        assert_eq!(entry.correlation_id, submitted.command_id.as_str());
        assert_eq!(entry.events.len(), 1);
        assert!(entry.received_at < entry.processed_at);
    }
}

async fn an_invalid_or_unknown_command_is_refused_at_submit(backend: &Backend) {
    let domain = backend
        .build(Domain::builder("strangers").without_discovery())
        .await;
    let error = domain
        .submit(Credit {
            ledger_id: Identifier::new("l-1"),
            amount: 1,
        })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is not registered"), "{error}");
    assert_eq!(
        domain.engine().command_status().await.unwrap().normal,
        0,
        "nothing queued"
    );
}

async fn a_repeated_idempotency_key_returns_the_first_command(backend: &Backend) {
    let domain = backend.build(builder(Processing::Sync)).await;
    let ledger = open(&domain).await;
    let credit = || Credit {
        ledger_id: ledger.clone(),
        amount: 10,
    };
    let options = ProcessOptions::new().idempotency_key("payment-1");
    let first = domain.submit_with(credit(), options.clone()).await.unwrap();
    let second = domain.submit_with(credit(), options.clone()).await.unwrap();
    assert_eq!(
        second,
        Submitted {
            command_id: first.command_id.clone(),
            duplicate: true
        }
    );
    domain.settle().await.unwrap();
    // Still a duplicate once processed: the key outlives the queue.
    let third = domain.submit_with(credit(), options).await.unwrap();
    assert_eq!(
        (third.command_id, third.duplicate),
        (first.command_id, true)
    );
    domain.settle().await.unwrap();
    assert_eq!(balance(&domain, &ledger).await, 10, "credited once");
    // Another key is another command; the same key in another domain is that domain's own.
    let other = domain
        .submit_with(credit(), ProcessOptions::new().idempotency_key("payment-2"))
        .await
        .unwrap();
    assert!(!other.duplicate);
    let neighbour = backend
        .build(Domain::builder("neighbours").discover_crate(module_path!()))
        .await;
    let theirs = neighbour
        .submit_with(
            Credit {
                ledger_id: ledger.clone(),
                amount: 1,
            },
            ProcessOptions::new().idempotency_key("payment-1"),
        )
        .await
        .unwrap();
    assert!(!theirs.duplicate);
}

async fn concurrent_submissions_with_one_key_queue_one_command(backend: &Backend) {
    let domain = backend.build(builder(Processing::Sync)).await;
    let ledger = open(&domain).await;
    // Several "processes" (domains on the same database) submit the same payment at once.
    let mut domains = Vec::new();
    for _ in 0..6 {
        domains.push(backend.build(builder(Processing::Sync)).await);
    }
    let tasks: Vec<_> = domains
        .into_iter()
        .map(|domain| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                domain
                    .submit_with(
                        Credit {
                            ledger_id: ledger,
                            amount: 10,
                        },
                        ProcessOptions::new().idempotency_key("payment-race"),
                    )
                    .await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap().expect("every submission answers"));
    }
    let firsts: Vec<_> = results.iter().filter(|s| !s.duplicate).collect();
    assert_eq!(firsts.len(), 1, "{results:?}");
    assert!(
        results.iter().all(|s| s.command_id == firsts[0].command_id),
        "{results:?}"
    );
    domain.settle().await.unwrap();
    assert_eq!(balance(&domain, &ledger).await, 10, "credited once");
}

async fn the_bulk_lane_waits_while_normal_commands_are_queued(backend: &Backend) {
    for processing in [Processing::Sync, Processing::Async] {
        let domain = backend.build(builder(processing)).await;
        let ledger = open(&domain).await;
        let bulk = ProcessOptions::new().priority(Priority::Bulk);
        for amount in [1000, 2000, 3000] {
            domain
                .submit_with(
                    Credit {
                        ledger_id: ledger.clone(),
                        amount,
                    },
                    bulk.clone(),
                )
                .await
                .unwrap();
        }
        for amount in [1, 2, 3] {
            domain
                .submit(Credit {
                    ledger_id: ledger.clone(),
                    amount,
                })
                .await
                .unwrap();
        }
        let status = domain.engine().command_status().await.unwrap();
        assert_eq!((status.normal, status.bulk), (3, 3));
        domain.settle().await.unwrap();
        domain.settle().await.unwrap();
        use Priority::{Bulk, Normal};
        // Normal first; the normal command submitted while the bulk lane ran (by the handler
        // of 1000's event: in async processing, once the engine delivers it) goes before the
        // bulk commands still waiting when it was queued.
        let expected = match processing {
            Processing::Sync => vec![
                (1, Normal),
                (2, Normal),
                (3, Normal),
                (1000, Bulk),
                (5, Normal), // submitted (normal lane) while 1000 was processed
                (2000, Bulk),
                (3000, Bulk),
            ],
            Processing::Async => vec![
                (1, Normal),
                (2, Normal),
                (3, Normal),
                (1000, Bulk),
                (2000, Bulk),
                (3000, Bulk),
                (5, Normal),
            ],
        };
        assert_eq!(credits(&domain, &ledger).await, expected, "{processing:?}");
    }
}

async fn failing_submitted_commands_are_retried_then_dead_lettered(backend: &Backend) {
    let domain = backend.build(builder(Processing::Sync)).await;
    let ledger = open(&domain).await;

    // Fails twice, then succeeds on the third (and last) attempt: no letter.
    domain
        .submit(Flaky {
            ledger_id: ledger.clone(),
            failures: 2,
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();
    assert_eq!(balance(&domain, &ledger).await, 1);
    assert!(
        domain
            .dead_letters()
            .list_of(COMMANDS_SUBSCRIPTION)
            .await
            .unwrap()
            .is_empty()
    );

    // A domain error (the invariant) is not worth retrying: dead-lettered at once.
    let overdraft = domain
        .submit(Debit {
            ledger_id: ledger.clone(),
            amount: 50,
        })
        .await
        .unwrap();
    // A validation error from the handler: dead-lettered at once too.
    let invalid = domain
        .submit(Debit {
            ledger_id: ledger.clone(),
            amount: -5,
        })
        .await
        .unwrap();
    // Transient failures, every attempt: dead-lettered after 3.
    let other = open(&domain).await;
    let flaky = domain
        .submit(Flaky {
            ledger_id: other.clone(),
            failures: 100,
        })
        .await
        .unwrap();
    domain.settle().await.unwrap();

    let letters = domain
        .dead_letters()
        .list_of(COMMANDS_SUBSCRIPTION)
        .await
        .unwrap();
    let by_command: HashMap<String, _> = letters
        .iter()
        .map(|letter| (letter.event_id.clone(), letter))
        .collect();
    assert_eq!(letters.len(), 3, "{letters:?}");
    let letter = by_command[overdraft.command_id.as_str()];
    assert_eq!(letter.attempts, 1);
    assert_eq!(letter.type_name, "Ledgers.Debit");
    assert!(
        letter.error.contains("insufficient funds"),
        "{}",
        letter.error
    );
    let letter = by_command[invalid.command_id.as_str()];
    assert_eq!(letter.attempts, 1);
    assert!(
        letter.error.contains("must be positive"),
        "{}",
        letter.error
    );
    let letter = by_command[flaky.command_id.as_str()];
    assert_eq!(letter.attempts, 3);
    assert!(letter.error.contains("timed out"), "{}", letter.error);
    assert!(letter.first_failed_at < letter.last_failed_at);
    let status = domain.engine().command_status().await.unwrap();
    assert_eq!((status.normal, status.dead_letters), (0, 3));
    // Listed with the domain's other dead letters, and not run again by the engine.
    assert_eq!(domain.dead_letters().list().await.unwrap().len(), 3);
    domain.settle().await.unwrap();
    assert_eq!(balance(&domain, &ledger).await, 1);

    // A replay that fails again keeps the letter, one attempt more.
    let overdraft_letter = format!("{COMMANDS_SUBSCRIPTION}/{}", overdraft.command_id);
    let error = domain
        .dead_letters()
        .replay(&overdraft_letter)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Invariant { .. }), "{error}");
    let letter = domain
        .dead_letters()
        .get(&overdraft_letter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(letter.attempts, 2);
    // Once the money is there, the replay processes it, and the letter goes.
    domain
        .process(Credit {
            ledger_id: ledger.clone(),
            amount: 100,
        })
        .await
        .unwrap();
    domain
        .dead_letters()
        .replay(&overdraft_letter)
        .await
        .unwrap();
    assert_eq!(balance(&domain, &ledger).await, 51);
    assert!(
        domain
            .event_store()
            .command(&overdraft.command_id)
            .await
            .unwrap()
            .is_some(),
        "the replayed command is logged"
    );
    // A purge drops the others without running them.
    assert_eq!(
        domain
            .dead_letters()
            .purge_all(COMMANDS_SUBSCRIPTION)
            .await
            .unwrap(),
        2
    );
    let status = domain.engine().command_status().await.unwrap();
    assert_eq!((status.normal, status.bulk, status.dead_letters), (0, 0, 0));
    domain.settle().await.unwrap();
    assert_eq!(balance(&domain, &ledger).await, 51);
    assert_eq!(balance(&domain, &other).await, 0);
}

on_every_adapter!(
    a_submitted_command_waits_for_the_engine_which_processes_it_once,
    an_invalid_or_unknown_command_is_refused_at_submit,
    a_repeated_idempotency_key_returns_the_first_command,
    concurrent_submissions_with_one_key_queue_one_command,
    the_bulk_lane_waits_while_normal_commands_are_queued,
    failing_submitted_commands_are_retried_then_dead_lettered,
);
