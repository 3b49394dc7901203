//! The engine crash test's domain (`tests/engine_crash.rs`, `src/bin/crash_engine.rs`):
//! meters that tick, a projection that counts each event it applies and checks per-stream
//! order, and an event handler that records its deliveries. Include it with
//! `#[path = "support/meters.rs"] mod meters;` and build with `.discover_crate(module_path!())`.

#![allow(dead_code)]

use fidelis_core::prelude::*;

#[event(part_of = Meter)]
pub struct MeterOpened {
    pub meter_id: Identifier,
}

#[event(part_of = Meter)]
pub struct Ticked {
    pub meter_id: Identifier,
    pub amount: i64,
}

#[aggregate(event_sourced)]
pub struct Meter {
    pub total: i64,
}

#[aggregate]
impl Meter {
    #[apply]
    fn opened(&mut self, _event: &MeterOpened) {}
    #[apply]
    fn ticked(&mut self, event: &Ticked) {
        self.total += event.amount;
    }
}

#[command(part_of = Meter)]
pub struct OpenMeter {}

/// Raises `ticks` events, of amounts `first`, `first + 1`, …
#[command(part_of = Meter)]
pub struct Tick {
    pub meter_id: Identifier,
    pub ticks: i64,
    pub first: i64,
}

#[derive(Default)]
pub struct MeterHandler;

#[command_handler(part_of = Meter)]
impl MeterHandler {
    #[handle(OpenMeter)]
    async fn open(&self, _command: OpenMeter, ctx: &mut Context) -> Result<Identifier> {
        let mut meter = Meter::create_new();
        let meter_id = meter.id.clone();
        meter.raise(MeterOpened {
            meter_id: meter_id.clone(),
        })?;
        ctx.repository::<Meter>().add(meter).await?;
        Ok(meter_id)
    }

    #[handle(Tick)]
    async fn tick(&self, command: Tick, ctx: &mut Context) -> Result<()> {
        let mut repo = ctx.repository::<Meter>();
        let mut meter = repo.get(&command.meter_id).await?;
        for offset in 0..command.ticks {
            meter.raise(Ticked {
                meter_id: command.meter_id.clone(),
                amount: command.first + offset,
            })?;
        }
        repo.add(meter).await
    }
}

/// What the projector made of a meter's stream: how many events it applied, their sum, the
/// last version, and how many arrived at or below the last version (applied twice or out
/// of order: must stay 0).
#[projection]
pub struct MeterRow {
    #[field(identifier)]
    pub meter_id: Identifier,
    pub applied: i64,
    pub sum: i64,
    pub last_version: i64,
    pub out_of_order: i64,
}

#[derive(Default)]
pub struct MeterRows;

#[projector(for = MeterRow, aggregates = [Meter])]
impl MeterRows {
    #[on(MeterOpened)]
    async fn opened(
        &self,
        event: &Event<MeterOpened>,
        ctx: &mut ProjectorContext<'_>,
    ) -> Result<()> {
        let mut repo = ctx.repository::<MeterRow>();
        let row = match repo.find(&event.meter_id).await? {
            // Opened twice: recorded, never hidden.
            Some(mut row) => {
                row.out_of_order += 1;
                row
            }
            None => MeterRow {
                meter_id: event.meter_id.clone(),
                applied: 1,
                sum: 0,
                last_version: event.metadata().version,
                out_of_order: 0,
            },
        };
        repo.add(row).await
    }

    #[on(Ticked)]
    async fn ticked(&self, event: &Event<Ticked>, ctx: &mut ProjectorContext<'_>) -> Result<()> {
        let mut repo = ctx.repository::<MeterRow>();
        let mut row = repo.get(&event.meter_id).await?;
        let version = event.metadata().version;
        if version <= row.last_version {
            row.out_of_order += 1;
        } else {
            row.last_version = version;
        }
        row.applied += 1;
        row.sum += event.amount;
        repo.add(row).await
    }
}

/// What the event handler made of a meter's milestones (ticks of an amount divisible by
/// [`MILESTONE`]; it writes nothing for the other ticks). Its writes commit with its
/// checkpoint, so each milestone counts once, in stream order: a version at or below one
/// already seen is a redelivery or a broken order.
#[projection]
pub struct WatchRow {
    #[field(identifier)]
    pub meter_id: Identifier,
    pub deliveries: i64,
    pub max_version: i64,
    pub regressions: i64,
}

/// The event handler writes for one tick in `MILESTONE` (one per [`Tick`] of as many ticks).
pub const MILESTONE: i64 = 5;

#[derive(Default)]
pub struct MeterWatcher;

#[event_handler(part_of = Meter)]
impl MeterWatcher {
    #[handle(Ticked)]
    async fn ticked(&self, event: &Event<Ticked>, ctx: &mut EventHandlerContext) -> Result<()> {
        if event.amount % MILESTONE != 0 {
            return Ok(());
        }
        let mut repo = ctx.repository::<WatchRow>();
        let version = event.metadata().version;
        let mut row = repo.find(&event.meter_id).await?.unwrap_or(WatchRow {
            meter_id: event.meter_id.clone(),
            deliveries: 0,
            max_version: -1,
            regressions: 0,
        });
        if version <= row.max_version {
            row.regressions += 1;
        }
        row.max_version = row.max_version.max(version);
        row.deliveries += 1;
        repo.add(row).await
    }
}
