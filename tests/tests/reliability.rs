//! Hostile input and a history changed behind the process's back, on every adapter: NUL
//! characters, invisible "blank" text, duplicate JSON keys, and a cached aggregate whose
//! stored stream was rewritten.

#![allow(missing_docs)]

use fidelis_core::prelude::*;
use serde_json::json;

mod support;
use support::{Backend, on_every_adapter};
#[path = "support/ledger.rs"]
mod ledger;
use ledger::*;

async fn ledger(backend: &Backend) -> Domain {
    backend
        .build(Domain::builder("reliability").discover_crate(module_path!()))
        .await
}

fn open(holder: &str) -> OpenLedger {
    OpenLedger {
        holder: holder.into(),
        tags: json!({}),
    }
}

fn messages(error: &Error, field: &str) -> Vec<String> {
    let validation = error
        .as_validation()
        .unwrap_or_else(|| panic!("a validation error, got {error}"));
    validation.messages_for(field).to_vec()
}

async fn stored_events(domain: &Domain) -> usize {
    domain
        .event_store()
        .read_all(fidelis_core::Cursor::START)
        .await
        .unwrap()
        .len()
}

// ---- NUL characters: one behaviour on every adapter ---------------------------------------

on_every_adapter!(
    nul_in_text_is_a_validation_error,
    nul_in_an_id_is_not_found,
    rewritten_history_is_noticed_by_a_cached_aggregate,
    an_undecodable_row_is_named,
    a_required_option_refuses_none,
);

async fn nul_in_text_is_a_validation_error(backend: &Backend) {
    let domain = ledger(backend).await;
    let error = domain.process(open("Ada\0Lovelace")).await.unwrap_err();
    assert_eq!(
        messages(&error, "holder"),
        ["must not contain NUL characters"]
    );
    let error = domain
        .process(OpenLedger {
            holder: "Ada".into(),
            tags: json!({"nested": ["ok", "bad\u{0}"]}),
        })
        .await
        .unwrap_err();
    assert_eq!(
        messages(&error, "tags"),
        ["must not contain NUL characters"]
    );
    assert_eq!(stored_events(&domain).await, 0, "nothing was stored");

    // The same rules hold for the rows a projector writes and for events raised directly.
    let id = domain.process(open("Ada")).await.unwrap();
    let error = domain
        .repository::<LedgerRow>()
        .add(LedgerRow {
            ledger_id: id.clone(),
            holder: "x\0".into(),
            balance: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(
        messages(&error, "holder"),
        ["must not contain NUL characters"]
    );
    let row = domain.repository::<LedgerRow>().get(&id).await.unwrap();
    assert_eq!(row.holder, "Ada", "the row is unchanged");
}

async fn nul_in_an_id_is_not_found(backend: &Backend) {
    let domain = ledger(backend).await;
    let id = domain.process(open("Ada")).await.unwrap();
    let with_nul = format!("{id}\0");

    let error = domain
        .repository::<Ledger>()
        .get(&with_nul)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    let error = domain
        .repository::<LedgerRow>()
        .get(&with_nul)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert!(
        domain
            .repository::<LedgerRow>()
            .find("\0")
            .await
            .unwrap()
            .is_none()
    );

    let stream = domain.event_store().stream_of::<Ledger>(&with_nul).unwrap();
    assert!(
        domain
            .event_store()
            .read_stream(&stream)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        domain.event_store().stream_version(&stream).await.unwrap(),
        -1
    );

    // A command naming such an id is refused before any handler runs.
    let error = domain
        .process(Credit {
            ledger_id: Identifier::new(with_nul),
            amount: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(
        messages(&error, "ledger_id"),
        ["must not contain NUL characters"]
    );
}

// ---- a cached aggregate and a history rewritten behind its back ---------------------------

async fn rewritten_history_is_noticed_by_a_cached_aggregate(backend: &Backend) {
    if backend.is_memory() {
        // Nothing outside the process can change an in-memory store.
        return;
    }
    let domain = ledger(backend).await;
    let id = domain.process(open("Ada")).await.unwrap();
    domain
        .process(Credit {
            ledger_id: id.clone(),
            amount: 5,
        })
        .await
        .unwrap();
    // The domain now caches the ledger at version 1. Another hand rewrites that event: a new
    // id and another amount at the same version.
    let stream = domain.event_store().stream_of::<Ledger>(&id).unwrap();
    backend
        .execute(&format!(
            "UPDATE fidelis_events SET id = 'rewritten-{id}', \
             data = '{{\"ledger_id\": \"{id}\", \"amount\": 7}}' \
             WHERE stream = '{stream}' AND version = 1"
        ))
        .await;

    domain
        .process(Credit {
            ledger_id: id.clone(),
            amount: 1,
        })
        .await
        .unwrap();
    let cached = domain.repository::<Ledger>().get(&id).await.unwrap();
    let fresh = ledger(backend).await;
    let replayed = fresh.repository::<Ledger>().get(&id).await.unwrap();
    assert_eq!(
        (cached.balance, cached.version()),
        (replayed.balance, replayed.version()),
        "the process's view is the stored history's, not its stale cache"
    );
    assert_eq!(replayed.balance, 8);

    // A history cut short behind the process's back: the next command replays what is left
    // instead of failing forever on a version the store no longer holds.
    backend
        .execute(&format!(
            "DELETE FROM fidelis_events WHERE stream = '{stream}' AND version = 2"
        ))
        .await;
    domain
        .process(Credit {
            ledger_id: id.clone(),
            amount: 100,
        })
        .await
        .expect("the command sees the stored history");
    let replayed = ledger(backend)
        .await
        .repository::<Ledger>()
        .get(&id)
        .await
        .unwrap();
    assert_eq!((replayed.balance, replayed.version()), (107, 2));
}

// ---- one bad row among many ---------------------------------------------------------------

async fn an_undecodable_row_is_named(backend: &Backend) {
    if backend.is_memory() {
        // Nothing outside the process can change an in-memory store.
        return;
    }
    let domain = ledger(backend).await;
    let good = domain.process(open("Good")).await.unwrap();
    let bad = domain.process(open("Bad")).await.unwrap();
    if matches!(backend, Backend::Sqlite(_)) {
        // SQLite columns take any value: text where a number belongs fails the column.
        backend
            .execute(&format!(
                "UPDATE reliability_ledger_row SET balance = 'lots' WHERE ledger_id = '{bad}'"
            ))
            .await;
    } else {
        // PostgreSQL columns are typed: a NULL where the row's type needs a value fails the
        // row's decoding.
        backend
            .execute("ALTER TABLE reliability_ledger_row ALTER COLUMN holder DROP NOT NULL")
            .await;
        backend
            .execute(&format!(
                "UPDATE reliability_ledger_row SET holder = NULL WHERE ledger_id = '{bad}'"
            ))
            .await;
    }

    let error = domain
        .repository::<LedgerRow>()
        .query()
        .all()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Serialization { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("row `{bad}`")) && message.contains("reliability_ledger_row"),
        "the error names the row and its table: {message}"
    );
    assert!(!message.contains(good.as_str()), "{message}");
    // The good row still reads on its own.
    assert_eq!(
        domain
            .repository::<LedgerRow>()
            .get(&good)
            .await
            .unwrap()
            .holder,
        "Good"
    );
}

// ---- `required` on an `Option`: one behaviour on every adapter -----------------------------

/// A row whose optional note is nevertheless `required` (a `NOT NULL` column on SQL).
#[projection]
pub struct Remark {
    #[field(identifier)]
    pub remark_id: Identifier,
    #[field(required)]
    pub note: Option<String>,
}

async fn a_required_option_refuses_none(backend: &Backend) {
    let domain = ledger(backend).await;
    let repo = domain.repository::<Remark>();
    let error = repo
        .add(Remark {
            remark_id: Identifier::new("r1"),
            note: None,
        })
        .await
        .unwrap_err();
    assert_eq!(messages(&error, "note"), ["is required"]);
    let error = repo
        .add(Remark {
            remark_id: Identifier::new("r1"),
            note: Some("\u{200B}".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(messages(&error, "note"), ["is required"]);
    repo.add(Remark {
        remark_id: Identifier::new("r1"),
        note: Some("kept".into()),
    })
    .await
    .unwrap();
    assert_eq!(repo.get("r1").await.unwrap().note.as_deref(), Some("kept"));
}

// ---- a conflict inside a projector is retried like any other -----------------------------

/// How often `Unlucky` has met a credit of 777 (it loses a race on the first one).
static UNLUCKY_TRIES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[projection]
pub struct LuckyCredit {
    #[field(identifier)]
    pub ledger_id: Identifier,
    pub amount: i64,
}

#[derive(Default)]
pub struct Unlucky;

#[projector(for = LuckyCredit, aggregates = [Ledger])]
impl Unlucky {
    #[on(Credited)]
    async fn credited(
        &self,
        event: &Event<Credited>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        if event.amount == 777
            && UNLUCKY_TRIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0
        {
            return Err(Error::VersionConflict {
                stream: "lucky_credit".into(),
                expected: 0,
                actual: 1,
            });
        }
        ctx.repository::<LuckyCredit>()
            .add(LuckyCredit {
                ledger_id: event.ledger_id.clone(),
                amount: event.amount,
            })
            .await
    }
}

#[tokio::test]
async fn a_conflict_in_a_projector_is_retried() {
    let backend = Backend::memory().await.unwrap();
    let domain = ledger(&backend).await;
    let id = domain.process(open("Ada")).await.unwrap();
    domain
        .process(Credit {
            ledger_id: id.clone(),
            amount: 777,
        })
        .await
        .expect("the conflict is retried, then the command commits");
    assert_eq!(UNLUCKY_TRIES.load(std::sync::atomic::Ordering::SeqCst), 2);
    let row = domain.repository::<LuckyCredit>().get(&id).await.unwrap();
    assert_eq!(row.amount, 777);
    let stream = domain.event_store().stream_of::<Ledger>(&id).unwrap();
    assert_eq!(
        domain
            .event_store()
            .read_stream(&stream)
            .await
            .unwrap()
            .len(),
        2
    );
}

// ---- input rules that do not depend on storage -------------------------------------------

#[test]
fn invisible_text_does_not_pass_required() {
    for blank in ["\u{200B}", " \u{FEFF} ", "\u{2060}\u{200D}"] {
        let error = OpenLedger::from_value(json!({"holder": blank, "tags": {}})).unwrap_err();
        assert_eq!(messages(&error, "holder"), ["is required"], "{blank:?}");
    }
    assert!(OpenLedger::from_value(json!({"holder": "\u{200B}A", "tags": {}})).is_ok());
}

#[test]
fn duplicate_json_keys_are_refused() {
    let error =
        Credit::from_json(r#"{"ledger_id": "a", "amount": 1, "amount": 1000000}"#).unwrap_err();
    assert_eq!(messages(&error, "amount"), ["is given twice"]);
    let error = OpenLedger::from_json(r#"{"holder": "a", "tags": {"k": 1, "k": 2}}"#).unwrap_err();
    assert_eq!(messages(&error, "tags.k"), ["is given twice"]);
    let credit = Credit::from_json(r#"{"ledger_id": "a", "amount": 1}"#).unwrap();
    assert_eq!(credit.amount, 1);
}
