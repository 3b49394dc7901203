//! Workload (j): the outbox relay's throughput.
//!
//! A domain of the workload's own (meters: one event-sourced aggregate whose events are all
//! `#[event(published)]`), in synchronous processing with a [`MemoryBroker`]: commands commit
//! their events and outbox rows while no relay runs (seeding, not timed); then
//! `engine.run_until_idle()` relays the whole outbox to the broker, timed. Checked afterwards:
//! every event on the broker once, each stream in version order, the outbox empty.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fidelis_core::broker::{MemoryBroker, STREAM_HEADER, VERSION_HEADER};
use fidelis_core::prelude::*;
use fidelis_core::store::memory::MemoryStorage;
use fidelis_core::{DomainBuilder, Processing};

use crate::db::{PostgresScratch, SqliteScratch};
use crate::workload::BenchError;

/// The stores workload (j) runs on.
pub const BACKENDS: &[&str] = &["memory", "sqlite", "postgres"];

/// A meter: opened once, then read many times.
#[aggregate(event_sourced)]
pub struct Meter {
    /// The last reading.
    pub reading: i64,
}

/// A meter was installed.
#[event(part_of = Meter, published)]
pub struct MeterOpened {
    /// The meter.
    pub meter_id: Identifier,
    /// Where it is.
    pub site: String,
}

/// A meter was read.
#[event(part_of = Meter, published)]
pub struct MeterRead {
    /// The meter.
    pub meter_id: Identifier,
    /// What it showed.
    pub value: i64,
}

/// Installs a meter.
#[command(part_of = Meter)]
pub struct OpenMeter {
    /// Where it is.
    pub site: String,
}

/// Records a reading.
#[command(part_of = Meter)]
pub struct ReadMeter {
    /// The meter.
    pub meter_id: Identifier,
    /// What it showed.
    pub value: i64,
}

#[aggregate]
impl Meter {
    #[handle(OpenMeter, create)]
    fn open(command: OpenMeter) -> Result<Self> {
        let mut meter = Self::create_new();
        meter.raise(MeterOpened {
            meter_id: meter.id.clone(),
            site: command.site,
        })?;
        Ok(meter)
    }

    #[handle(ReadMeter)]
    fn read(&mut self, command: ReadMeter) -> Result<()> {
        self.raise(MeterRead {
            meter_id: self.id.clone(),
            value: command.value,
        })
    }

    #[apply]
    fn on_opened(&mut self, _event: &MeterOpened) {}

    #[apply]
    fn on_read(&mut self, event: &MeterRead) {
        self.reading = event.value;
    }
}

/// How much work (j) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelaySizes {
    /// Meters (event streams).
    pub streams: usize,
    /// Events per stream (its opening included).
    pub events_per_stream: usize,
}

impl RelaySizes {
    /// 100 streams × 50 events: 5,000 outbox rows.
    pub const FULL: Self = Self {
        streams: 100,
        events_per_stream: 50,
    };

    /// The smoke pass: 10 × 10.
    pub const QUICK: Self = Self {
        streams: 10,
        events_per_stream: 10,
    };

    /// Outbox rows in all.
    pub fn events(&self) -> usize {
        self.streams * self.events_per_stream
    }
}

/// What one relay run produced.
#[derive(Clone, Debug)]
pub struct RelayPass {
    /// Events relayed.
    pub events: usize,
    /// How long seeding took (not part of the measure).
    pub seed: Duration,
    /// How long the relay took to empty the outbox.
    pub elapsed: Duration,
    /// What the broker got wrong (missing, repeated or out-of-order events).
    pub mismatches: Vec<String>,
}

impl RelayPass {
    /// Events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn meters() -> DomainBuilder {
    Domain::builder("meters")
        .without_discovery()
        .register::<Meter>()
        .register::<MeterOpened>()
        .register::<MeterRead>()
        .register::<OpenMeter>()
        .register::<ReadMeter>()
        .processing(Processing::Sync)
        .record_commands(false)
}

/// Workload (j) on `backend`, on a fresh store dropped afterwards.
pub async fn relay(
    backend: &str,
    sizes: RelaySizes,
    postgres_url: Option<&str>,
) -> Result<RelayPass, BenchError> {
    let broker = MemoryBroker::new();
    let builder = meters().broker_adapter(broker.clone());
    match backend {
        "memory" => relay_on(builder.storage(MemoryStorage::new()), &broker, sizes).await,
        "sqlite" => {
            let scratch = SqliteScratch::new()?;
            relay_on(builder.database(scratch.url()), &broker, sizes).await
        }
        "postgres" => {
            let url =
                postgres_url.ok_or_else(|| format!("{} is unset", crate::db::POSTGRES_URL_VAR))?;
            let scratch = PostgresScratch::new(url).await?;
            let result = relay_on(builder.database(scratch.url()), &broker, sizes).await;
            scratch.drop_schema().await?;
            result
        }
        other => Err(format!("unknown relay backend `{other}`").into()),
    }
}

async fn relay_on(
    builder: DomainBuilder,
    broker: &MemoryBroker,
    sizes: RelaySizes,
) -> Result<RelayPass, BenchError> {
    let domain = builder.build().await?;
    let seeding = Instant::now();
    for stream in 0..sizes.streams {
        let id: Identifier = domain
            .process(OpenMeter {
                site: format!("site {stream}"),
            })
            .await?;
        for value in 1..sizes.events_per_stream {
            domain
                .process(ReadMeter {
                    meter_id: id.clone(),
                    value: value as i64,
                })
                .await?;
        }
    }
    let seed = seeding.elapsed();
    let engine = domain.engine();
    let started = Instant::now();
    engine.run_until_idle().await?;
    let elapsed = started.elapsed();

    let mut mismatches = Vec::new();
    let messages = broker.messages("meters.meter");
    if messages.len() != sizes.events() {
        mismatches.push(format!(
            "{} messages on the broker, {} expected",
            messages.len(),
            sizes.events()
        ));
    }
    let mut next: HashMap<String, i64> = HashMap::new();
    for message in &messages {
        let stream = message.header(STREAM_HEADER).unwrap_or_default().to_owned();
        let version: i64 = message
            .header(VERSION_HEADER)
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1);
        let expected = next.entry(stream.clone()).or_insert(0);
        if version != *expected {
            mismatches.push(format!("{stream}: version {version}, {expected} expected"));
        }
        *expected = version + 1;
    }
    let pending = engine
        .relay_status()
        .await?
        .map_or(0, |status| status.pending);
    if pending != 0 {
        mismatches.push(format!("{pending} rows left in the outbox"));
    }
    Ok(RelayPass {
        events: messages.len(),
        seed,
        elapsed,
        mismatches,
    })
}
