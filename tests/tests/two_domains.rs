//! Two domains in one database: each domain's tables are named `<domain>_<element>`, so two
//! domains with a projection of the same name never see each other's rows (on every adapter:
//! one SQLite file, one PostgreSQL schema, one shared memory store). A table named the way
//! earlier versions did (without the prefix) stops the build with the statement that renames
//! it.

#![allow(missing_docs)]

use fidelis_core::prelude::*;

mod support;
use support::{Backend, on_every_adapter};

on_every_adapter!(same_named_projections_do_not_share_rows);

mod circulation {
    use fidelis_core::prelude::*;

    /// A projection named like the one of the other domain.
    #[projection]
    pub struct Summary {
        #[field(identifier)]
        pub id: Identifier,
        pub title: String,
    }
}

mod billing {
    use fidelis_core::prelude::*;

    #[projection]
    pub struct Summary {
        #[field(identifier)]
        pub id: Identifier,
        pub amount: i64,
    }
}

/// The domains on one database: the same URL, or one memory store shared by both.
async fn both(backend: &Backend) -> (Domain, Domain) {
    let circulation = backend
        .build(
            Domain::builder("circulation")
                .without_discovery()
                .register::<circulation::Summary>(),
        )
        .await;
    let billing = backend
        .build(
            Domain::builder("billing")
                .without_discovery()
                .register::<billing::Summary>(),
        )
        .await;
    (circulation, billing)
}

async fn same_named_projections_do_not_share_rows(backend: &Backend) {
    let (circulation, billing) = both(backend).await;
    let id = Identifier::generate();
    circulation
        .repository::<circulation::Summary>()
        .add(circulation::Summary {
            id: id.clone(),
            title: "Dune".into(),
        })
        .await
        .unwrap();
    billing
        .repository::<billing::Summary>()
        .add(billing::Summary {
            id: Identifier::generate(),
            amount: 5,
        })
        .await
        .unwrap();

    assert_eq!(
        circulation
            .repository::<circulation::Summary>()
            .query()
            .count()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        billing
            .repository::<billing::Summary>()
            .query()
            .count()
            .await
            .unwrap(),
        1
    );
    assert!(
        billing
            .repository::<billing::Summary>()
            .find(&id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        circulation.registry().projections()[0].table,
        "circulation_summary"
    );
    assert_eq!(billing.registry().projections()[0].table, "billing_summary");
}

/// A database written by an earlier version has `summary` (no domain prefix): the build
/// stops with the statement that renames it; after the rename the rows are there.
async fn unprefixed_table_is_a_migration_error(backend: &Backend) {
    backend
        .execute(
            "CREATE TABLE summary (id TEXT NOT NULL, title TEXT NOT NULL, _version BIGINT NOT NULL, PRIMARY KEY (id))",
        )
        .await;
    backend
        .execute("INSERT INTO summary (id, title, _version) VALUES ('old', 'Kept', 0)")
        .await;
    let builder = || {
        Domain::builder("circulation")
            .without_discovery()
            .register::<circulation::Summary>()
            .database(backend.url())
    };
    let error = builder().build().await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(r#"`ALTER TABLE "summary" RENAME TO "circulation_summary"`"#)
            && message.contains("holds the rows of `Summary`"),
        "{message}"
    );

    backend
        .execute(r#"ALTER TABLE "summary" RENAME TO "circulation_summary""#)
        .await;
    let domain = builder().build().await.unwrap();
    let kept = domain
        .repository::<circulation::Summary>()
        .get("old")
        .await
        .unwrap();
    assert_eq!(kept.title, "Kept");
}

mod unprefixed_table_is_a_migration_error {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let backend = Backend::sqlite().await.unwrap();
        // The file must exist before the test's own SQL opens it.
        drop(
            Domain::builder("empty")
                .without_discovery()
                .database(backend.url())
                .build()
                .await
                .unwrap(),
        );
        super::unprefixed_table_is_a_migration_error(&backend).await;
        backend.finish().await;
    }

    #[cfg_attr(
        not(fidelis_postgres),
        ignore = "set FIDELIS_TEST_POSTGRES_URL to run the PostgreSQL tests"
    )]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(backend) =
            Backend::postgres("unprefixed_table_is_a_migration_error::postgres").await
        else {
            return;
        };
        super::unprefixed_table_is_a_migration_error(&backend).await;
        backend.finish().await;
    }
}
