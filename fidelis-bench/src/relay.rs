//! Workload (j): the outbox relay's throughput.
//!
//! A domain of the workload's own (meters: one event-sourced aggregate whose events are all
//! `#[event(published)]`), in synchronous processing with a [`MemoryBroker`]: commands commit
//! their events and outbox rows while no relay runs (seeding, not timed); then
//! `engine.run_until_idle()` relays the whole outbox to the broker, timed. Checked afterwards:
//! every event on the broker once, each stream in version order, the outbox empty.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fidelis_core::broker::{
    Broker, BrokerConsumer, BrokerMessage, MemoryBroker, STREAM_HEADER, VERSION_HEADER,
};
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
    let (seed, _) = seed(&domain, sizes).await?;
    let engine = domain.engine();
    let elapsed = timed_relay(&engine).await?;
    let messages = broker.messages(TOPIC);
    finish(&engine, &messages, sizes, seed, elapsed).await
}

/// How long one `run_until_idle` takes to empty the outbox.
async fn timed_relay(engine: &fidelis_core::Engine) -> Result<Duration, BenchError> {
    let started = Instant::now();
    engine.run_until_idle().await?;
    Ok(started.elapsed())
}

/// The pass of a run that relayed `messages`: what [`check`] finds, and any row left behind.
async fn finish(
    engine: &fidelis_core::Engine,
    messages: &[BrokerMessage],
    sizes: RelaySizes,
    seed: Duration,
    elapsed: Duration,
) -> Result<RelayPass, BenchError> {
    let mut mismatches = check(messages, sizes.events());
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

/// The broker stream the meters' events go to.
const TOPIC: &str = "meters.meter";

/// Commits `sizes` worth of events (and outbox rows); how long it took, and the meters'
/// event streams.
async fn seed(
    domain: &Domain,
    sizes: RelaySizes,
) -> Result<(Duration, std::collections::HashSet<String>), BenchError> {
    let seeding = Instant::now();
    let mut streams = std::collections::HashSet::new();
    for stream in 0..sizes.streams {
        let id: Identifier = domain
            .process(OpenMeter {
                site: format!("site {stream}"),
            })
            .await?;
        streams.insert(domain.event_store().stream_of::<Meter>(&id)?);
        for value in 1..sizes.events_per_stream {
            domain
                .process(ReadMeter {
                    meter_id: id.clone(),
                    value: value as i64,
                })
                .await?;
        }
    }
    Ok((seeding.elapsed(), streams))
}

/// What is wrong with `messages` (those of one run, in broker order): their number, and any
/// event out of its stream's version order.
fn check(messages: &[BrokerMessage], expected: usize) -> Vec<String> {
    let mut mismatches = Vec::new();
    if messages.len() != expected {
        mismatches.push(format!(
            "{} messages on the broker, {expected} expected",
            messages.len()
        ));
    }
    let mut next: HashMap<String, i64> = HashMap::new();
    for message in messages {
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
    mismatches
}

/// A consumer group of its own on the meters' stream, past every message already there
/// (earlier runs' on a shared server), so what it receives next is this run's.
async fn fresh_consumer(broker: &dyn Broker) -> Result<Box<dyn BrokerConsumer>, BenchError> {
    let group = format!("bench-{}", Identifier::generate());
    let mut consumer = broker.consumer(TOPIC, &group).await?;
    loop {
        let old = consumer.receive(1_000, Duration::from_millis(200)).await?;
        if old.is_empty() {
            return Ok(consumer);
        }
        for delivery in &old {
            consumer.ack(delivery).await?;
        }
    }
}

/// Receives the messages of `streams` until `expected` arrived (or 60 s passed), acknowledging
/// every delivery; calls `seen` with each of them as it arrives.
async fn receive_run(
    consumer: &mut dyn BrokerConsumer,
    streams: &std::collections::HashSet<String>,
    expected: usize,
    mut seen: impl FnMut(&BrokerMessage),
) -> Result<Vec<BrokerMessage>, BenchError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = Vec::with_capacity(expected);
    while received.len() < expected && Instant::now() < deadline {
        for delivery in consumer.receive(500, Duration::from_millis(500)).await? {
            let ours = delivery
                .message
                .header(STREAM_HEADER)
                .is_some_and(|stream| streams.contains(stream));
            if ours {
                seen(&delivery.message);
                received.push(delivery.message.clone());
            }
            consumer.ack(&delivery).await?;
        }
    }
    Ok(received)
}

/// Workload (j) through a real broker: the outbox of an in-memory store relayed to `broker`,
/// timed as [`relay`] is; checked through a consumer group of its own.
pub async fn relay_through(
    broker: Arc<dyn Broker>,
    sizes: RelaySizes,
) -> Result<RelayPass, BenchError> {
    let mut consumer = fresh_consumer(broker.as_ref()).await?;
    let domain = meters()
        .broker_shared(broker)
        .storage(MemoryStorage::new())
        .build()
        .await?;
    let (seed, streams) = seed(&domain, sizes).await?;
    let engine = domain.engine();
    let elapsed = timed_relay(&engine).await?;
    let messages = receive_run(consumer.as_mut(), &streams, sizes.events(), |_| {}).await?;
    finish(&engine, &messages, sizes, seed, elapsed).await
}

/// From a command's commit to a consumer of the broker receiving its event: `samples`
/// readings, one every `interval`, on an in-memory store in synchronous processing with the
/// engine (and so its relay) running. The p50 and p99 latencies.
pub async fn commit_to_consumer(
    broker: Arc<dyn Broker>,
    samples: usize,
    interval: Duration,
) -> Result<(Duration, Duration), BenchError> {
    let mut consumer = fresh_consumer(broker.as_ref()).await?;
    let domain = meters()
        .broker_shared(broker)
        .storage(MemoryStorage::new())
        .build()
        .await?;
    let meter: Identifier = domain
        .process(OpenMeter {
            site: "latency".into(),
        })
        .await?;
    let stream = domain.event_store().stream_of::<Meter>(&meter)?;
    let streams = std::collections::HashSet::from([stream]);
    let engine = domain.engine();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });

    // The consumer records when each reading arrives, keyed by its value.
    let receiver = tokio::spawn(async move {
        let mut arrived: HashMap<i64, Instant> = HashMap::with_capacity(samples);
        let received = receive_run(consumer.as_mut(), &streams, samples + 1, |message| {
            if let Ok(reading) = message.json::<serde_json::Value>()
                && let Some(value) = reading["value"].as_i64()
            {
                arrived.insert(value, Instant::now());
            }
        })
        .await;
        received.map(|_| arrived)
    });
    let mut committed: HashMap<i64, Instant> = HashMap::with_capacity(samples);
    let mut ticks = tokio::time::interval(interval);
    for value in 1..=samples as i64 {
        ticks.tick().await;
        domain
            .process(ReadMeter {
                meter_id: meter.clone(),
                value,
            })
            .await?;
        committed.insert(value, Instant::now());
    }
    let arrived = receiver
        .await
        .map_err(|error| format!("the consumer task failed: {error}"))??;
    let _ = stop.send(());
    running
        .await
        .map_err(|error| format!("the engine task failed: {error}"))??;
    let mut latencies: Vec<Duration> = Vec::with_capacity(samples);
    for (value, at) in &committed {
        let arrived_at = arrived
            .get(value)
            .ok_or_else(|| format!("reading {value} never arrived"))?;
        latencies.push(arrived_at.saturating_duration_since(*at));
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.50), at(0.99)))
}
