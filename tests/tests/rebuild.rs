//! Projection rebuilds (`domain.rebuild_projection::<P>()`) and versions
//! (`#[projection(version = N)]`), on memory, SQLite and PostgreSQL: a rebuild gives exactly
//! the live rows, a failing projector leaves them untouched, the checkpoint moves with the
//! rows (an engine that was behind applies nothing twice), and a version keeps its own table
//! and checkpoint.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fidelis_core::prelude::*;
use fidelis_core::store::JsonRow;
use fidelis_core::store::system::{self, Checkpoint, DeadLetter};
use fidelis_core::{Cursor, HandlerRetry, Processing, query::QuerySpec};
use support::{Backend, on_every_adapter};

#[event(part_of = Till)]
pub struct TillOpened {
    pub till_id: Identifier,
}

#[event(part_of = Till)]
pub struct Rang {
    pub till_id: Identifier,
    pub amount: i64,
}

/// No projector handles it: a rebuild counts it as skipped.
#[event(part_of = Till)]
pub struct DrawerOpened {
    pub till_id: Identifier,
}

#[aggregate(event_sourced)]
pub struct Till {
    pub total: i64,
}

#[command(part_of = Till)]
pub struct OpenTill {}

#[command(part_of = Till)]
pub struct Ring {
    pub till_id: Identifier,
    pub amount: i64,
}

#[command(part_of = Till)]
pub struct OpenDrawer {
    pub till_id: Identifier,
}

#[aggregate]
impl Till {
    #[handle(OpenTill, create)]
    fn open(_command: OpenTill) -> Result<Self> {
        let mut till = Self::create_new();
        till.raise(TillOpened {
            till_id: till.id.clone(),
        })?;
        Ok(till)
    }

    #[handle(Ring)]
    fn ring(&mut self, command: Ring) -> Result<()> {
        self.raise(Rang {
            till_id: self.id.clone(),
            amount: command.amount,
        })
    }

    #[handle(OpenDrawer)]
    fn open_drawer(&mut self, _command: OpenDrawer) -> Result<()> {
        self.raise(DrawerOpened {
            till_id: self.id.clone(),
        })
    }

    #[apply]
    fn opened(&mut self, _event: &TillOpened) {}
    #[apply]
    fn rang(&mut self, event: &Rang) {
        self.total += event.amount;
    }
    #[apply]
    fn drawer_opened(&mut self, _event: &DrawerOpened) {}
}

#[projection]
pub struct Takings {
    #[field(identifier)]
    pub till_id: Identifier,
    pub total: i64,
    pub sales: i64,
}

/// Keeps [`Takings`]; fails every event while `fail` is set (to fail a rebuild).
#[derive(Default)]
pub struct TakingsProjector {
    fail: Arc<AtomicBool>,
}

#[projector(for = Takings, aggregates = [Till])]
impl TakingsProjector {
    #[on(TillOpened)]
    async fn opened(
        &self,
        event: &Event<TillOpened>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        self.check()?;
        ctx.repository::<Takings>()
            .add(Takings {
                till_id: event.till_id.clone(),
                total: 0,
                sales: 0,
            })
            .await
    }

    #[on(Rang)]
    async fn rang(&self, event: &Event<Rang>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        self.check()?;
        let mut rows = ctx.repository::<Takings>();
        let mut row = rows.get(&event.till_id).await?;
        row.total += event.amount;
        row.sales += 1;
        rows.add(row).await
    }
}

impl TakingsProjector {
    fn check(&self) -> Result<()> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(Error::usage("the till's printer is jammed"));
        }
        Ok(())
    }
}

/// A projection at its second version: its rows live in `<domain>_sales_count_v2`.
#[projection(version = 2)]
pub struct SalesCount {
    #[field(identifier)]
    pub till_id: Identifier,
    pub sales: i64,
}

#[derive(Default)]
pub struct SalesCountProjector;

#[projector(for = SalesCount, aggregates = [Till])]
impl SalesCountProjector {
    #[on(Rang)]
    async fn rang(&self, event: &Event<Rang>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let mut rows = ctx.repository::<SalesCount>();
        let mut row = rows.find(&event.till_id).await?.unwrap_or(SalesCount {
            till_id: event.till_id.clone(),
            sales: 0,
        });
        row.sales += 1;
        rows.add(row).await
    }
}

async fn domain(backend: &Backend, processing: Processing, fail: &Arc<AtomicBool>) -> Domain {
    backend.build(builder(processing, fail)).await
}

fn builder(processing: Processing, fail: &Arc<AtomicBool>) -> fidelis_core::DomainBuilder {
    Domain::builder("shop")
        .discover_crate(module_path!())
        .instance(TakingsProjector { fail: fail.clone() })
        .handler_retry(HandlerRetry::none())
        .processing(processing)
}

/// Three tills: 3 openings, 6 sales, 2 drawer openings (11 events).
async fn trade(domain: &Domain) -> Vec<Identifier> {
    let mut tills = Vec::new();
    for amounts in [[5, 7], [11, 13], [17, 19]] {
        let till: Identifier = domain.process(OpenTill {}).await.unwrap();
        for amount in amounts {
            domain
                .process(Ring {
                    till_id: till.clone(),
                    amount,
                })
                .await
                .unwrap();
        }
        tills.push(till);
    }
    for till in &tills[..2] {
        domain
            .process(OpenDrawer {
                till_id: till.clone(),
            })
            .await
            .unwrap();
    }
    tills
}

async fn rows(domain: &Domain, table: &str) -> Vec<(String, serde_json::Value)> {
    let mut rows: Vec<_> = domain
        .storage_unchecked()
        .query(table, &QuerySpec::default())
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.id, serde_json::Value::Object(row.data)))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Writes a wrong row and a stray one behind the projectors' back.
async fn vandalise(domain: &Domain, till: &Identifier) {
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    for (id, total) in [(till.to_string(), 1_000_000), ("stray".to_owned(), 1)] {
        let data = serde_json::json!({ "till_id": id, "total": total, "sales": 0 });
        let serde_json::Value::Object(data) = data else {
            unreachable!()
        };
        transaction
            .put_json_row(
                "shop_takings",
                JsonRow {
                    id,
                    version: 0,
                    data,
                },
                None,
            )
            .await
            .unwrap();
    }
    transaction.commit().await.unwrap();
}

async fn checkpoint(domain: &Domain, key: &str) -> Option<Cursor> {
    system::get::<Checkpoint>(domain.storage_unchecked().as_ref(), key)
        .await
        .unwrap()
        .map(|c| Cursor {
            commit: c.commit,
            position: c.position,
        })
}

async fn a_rebuild_gives_exactly_the_live_rows(backend: &Backend) {
    let fail = Arc::new(AtomicBool::new(false));
    let domain = domain(backend, Processing::Sync, &fail).await;
    let tills = trade(&domain).await;
    let live = rows(&domain, "shop_takings").await;
    assert_eq!(live.len(), 3);

    vandalise(&domain, &tills[0]).await;
    assert_ne!(rows(&domain, "shop_takings").await, live);
    let mut seen = Vec::new();
    let report = domain
        .rebuild_projection_with::<Takings>(|progress| seen.push(*progress))
        .await
        .unwrap();
    assert_eq!(rows(&domain, "shop_takings").await, live);
    assert_eq!(report.projection, "Takings");
    assert_eq!(report.table, "shop_takings");
    assert_eq!(
        (
            report.events_read,
            report.events_applied,
            report.skipped,
            report.rows
        ),
        (11, 9, 2, 3)
    );
    let last = seen.last().expect("progress was reported");
    assert_eq!((last.events_read, last.events_applied), (11, 9));
    assert_eq!(
        report.position,
        domain.storage_unchecked().head().await.unwrap()
    );
    // The checkpoint moved with the rows.
    assert_eq!(
        checkpoint(&domain, "TakingsProjector/0").await,
        Some(report.position)
    );

    // By name, as the command line calls it; an unknown name lists the known ones.
    let again = domain.rebuild_projection_named("Takings").await.unwrap();
    assert_eq!((again.events_read, again.rows), (11, 3));
    assert_eq!(rows(&domain, "shop_takings").await, live);
    let error = domain.rebuild_projection_named("Takngs").await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "domain `shop` has no projection `Takngs`; its projections: SalesCount, Takings",
        "{error:?}"
    );
}

async fn a_failing_projector_fails_the_rebuild_and_leaves_the_live_rows(backend: &Backend) {
    let fail = Arc::new(AtomicBool::new(false));
    let domain = domain(backend, Processing::Sync, &fail).await;
    let tills = trade(&domain).await;
    vandalise(&domain, &tills[1]).await;
    let before = rows(&domain, "shop_takings").await;

    fail.store(true, Ordering::SeqCst);
    let error = domain.rebuild_projection::<Takings>().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("TakingsProjector::opened failed: on Shop.TillOpened.v1"),
        "{error}"
    );
    assert!(
        error.to_string().contains("the till's printer is jammed"),
        "{error}"
    );
    assert_eq!(rows(&domain, "shop_takings").await, before);
    assert_eq!(checkpoint(&domain, "TakingsProjector/0").await, None);
}

/// The tutorial's chapter 20 bug: a rebuild that leaves the checkpoint behind makes the
/// engine apply the events again. Here the engine is behind when the rebuild runs; after
/// it, the engine has nothing left to apply.
async fn the_checkpoint_moves_with_the_rows(backend: &Backend) {
    let fail = Arc::new(AtomicBool::new(false));
    let domain = domain(backend, Processing::Async, &fail).await;
    let tills = trade(&domain).await;
    assert!(rows(&domain, "shop_takings").await.is_empty());

    let report = domain.rebuild_projection::<Takings>().await.unwrap();
    assert_eq!(report.rows, 3);
    let rebuilt = rows(&domain, "shop_takings").await;
    domain.engine().run_until_idle().await.unwrap();
    assert_eq!(rows(&domain, "shop_takings").await, rebuilt);
    let first = domain.repository::<Takings>().get(&tills[0]).await.unwrap();
    assert_eq!((first.total, first.sales), (12, 2));
    let status = domain.engine().status().await.unwrap();
    let takings = status
        .iter()
        .find(|s| s.name == "TakingsProjector")
        .unwrap();
    assert_eq!((takings.position, takings.lag), (report.position, 0));

    // Later events flow on from the rebuilt rows.
    domain
        .process(Ring {
            till_id: tills[0].clone(),
            amount: 100,
        })
        .await
        .unwrap();
    domain.engine().run_until_idle().await.unwrap();
    let first = domain.repository::<Takings>().get(&tills[0]).await.unwrap();
    assert_eq!((first.total, first.sales), (112, 3));
}

/// A version keeps its rows in a table of its own, built from the first event by a
/// subscription of its own, and the status shows the previous version's checkpoint beside.
async fn a_version_has_its_own_table_and_checkpoint(backend: &Backend) {
    let fail = Arc::new(AtomicBool::new(false));
    // One partition: the test writes version 1's checkpoint by hand, as an unpartitioned
    // engine of the previous release left it.
    let domain = backend
        .build(builder(Processing::Async, &fail).engine_partitions(1))
        .await;
    let tills = trade(&domain).await;
    // Version 1, as a process running the previous release left it: 4 sales in.
    let mut transaction = domain.storage_unchecked().begin().await.unwrap();
    let fourth_sale = domain
        .event_store()
        .read_all(Cursor::START)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.metadata.type_name == "Shop.Rang.v1")
        .nth(3)
        .unwrap()
        .metadata
        .cursor();
    system::put(
        transaction.as_mut(),
        Checkpoint {
            id: Checkpoint::key("SalesCountProjector", 0),
            subscription: "SalesCountProjector".into(),
            partition: 0,
            commit: fourth_sale.commit,
            position: fourth_sale.position,
            updated_at: Utc::now(),
        },
    )
    .await
    .unwrap();
    // And a dead letter of version 1 on the third till's stream: it holds back that stream
    // for version 1's processes only.
    let stream = domain.event_store().stream_of::<Till>(&tills[2]).unwrap();
    system::put(
        transaction.as_mut(),
        DeadLetter {
            id: "SalesCountProjector/v1-letter".into(),
            subscription: "SalesCountProjector".into(),
            partition: 0,
            event_id: Identifier::generate().to_string(),
            stream,
            version: 0,
            type_name: "Shop.TillOpened.v1".into(),
            commit: 0,
            position: 0,
            error: "version 1 failed here".into(),
            attempts: 1,
            first_failed_at: Utc::now(),
            last_failed_at: Utc::now(),
        },
    )
    .await
    .unwrap();
    transaction.commit().await.unwrap();

    let before = domain.projection_status().await.unwrap();
    let sales = before.iter().find(|s| s.name == "SalesCount").unwrap();
    assert_eq!(
        (sales.version, sales.table.as_str(), sales.rows),
        (2, "shop_sales_count_v2", 0)
    );
    assert_eq!(sales.projectors.len(), 1);
    assert_eq!(
        (sales.projectors[0].version, sales.projectors[0].lag),
        (2, 11)
    );
    assert_eq!(sales.other_versions.len(), 1);
    let previous = &sales.other_versions[0];
    assert_eq!((previous.version, previous.position), (1, fourth_sale));
    assert_eq!(previous.lag, 5);

    domain.engine().run_until_idle().await.unwrap();
    let row = domain
        .repository::<SalesCount>()
        .get(&tills[2])
        .await
        .unwrap();
    assert_eq!(
        row.sales, 2,
        "version 1's dead letter does not hold version 2 back"
    );
    assert_eq!(rows(&domain, "shop_sales_count_v2").await.len(), 3);
    let status = domain.engine().status().await.unwrap();
    let v2 = status
        .iter()
        .find(|s| s.name == "SalesCountProjector")
        .unwrap();
    assert_eq!((v2.lag, v2.dead_letters), (0, 0));
    assert!(
        checkpoint(&domain, "SalesCountProjector@v2/0")
            .await
            .is_some()
    );
    // Version 1's checkpoint stays where its processes left it.
    assert_eq!(
        checkpoint(&domain, "SalesCountProjector/0").await,
        Some(fourth_sale)
    );
    let after = domain.projection_status().await.unwrap();
    let sales = after.iter().find(|s| s.name == "SalesCount").unwrap();
    assert!(sales.projectors[0].caught_up);
    assert_eq!(sales.rows, 3);
    assert!(!sales.other_versions[0].caught_up);
}

on_every_adapter!(
    a_rebuild_gives_exactly_the_live_rows,
    a_failing_projector_fails_the_rebuild_and_leaves_the_live_rows,
    the_checkpoint_moves_with_the_rows,
    a_version_has_its_own_table_and_checkpoint,
);
