//! Broker throughput and latency: how fast the memory, Redis Streams and NATS JetStream
//! adapters accept messages (batches of 100, and one at a time), and how long a message takes
//! from `publish` returning to a consumer of a group receiving it, at a steady rate. Then the
//! outbox through each broker: the relay's throughput (workload (j) on an in-memory store,
//! relayed to the broker) and the latency from a command's commit to a consumer receiving its
//! event, with the engine running.
//!
//! ```sh
//! FIDELIS_BENCH_REDIS_URL=redis://127.0.0.1:6379 FIDELIS_BENCH_NATS_URL=nats://127.0.0.1:4222 \
//!   cargo run --release -p fidelis-bench --features brokers --example brokers [-- --quick]
//! ```
//!
//! A broker whose URL is unset is skipped, and says so. Every run publishes to streams of its
//! own (`bench.<uuid>`), and checks that every message arrived once, in order.

#![allow(clippy::print_stdout)] // printing the table is this benchmark's job

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fidelis_bench::relay::{self, RelaySizes};
use fidelis_core::broker::{self, Broker, BrokerMessage};

/// One event-sized payload (about 200 bytes of JSON, like a relayed `DepositMade`).
fn payload(n: usize) -> serde_json::Value {
    serde_json::json!({
        "account_id": format!("0193b0c2-7f4e-7c3a-9a51-{n:012}"),
        "amount": "125.50",
        "reference": format!("INV-{n}"),
        "channel": "branch",
        "made_at": "2026-12-07T20:00:00Z",
    })
}

fn stream() -> String {
    format!("bench.{}", uuid::Uuid::now_v7().simple())
}

/// Messages per second publishing `total` messages in batches of `batch`.
async fn throughput(broker: &dyn Broker, total: usize, batch: usize) -> Result<f64, String> {
    let stream = stream();
    let messages: Vec<_> = (0..total)
        .map(|n| BrokerMessage::json_message(format!("m{n}"), &stream, &payload(n)))
        .collect();
    let started = Instant::now();
    for chunk in messages.chunks(batch) {
        broker.publish(chunk).await.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    // Check that all arrived, once and in order, outside the timed part.
    let mut consumer = broker
        .consumer(&stream, "check")
        .await
        .map_err(|e| e.to_string())?;
    let mut next = 0;
    while next < total {
        let deliveries = consumer
            .receive(1_000, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string())?;
        if deliveries.is_empty() {
            return Err(format!("only {next} of {total} messages arrived"));
        }
        for delivery in deliveries {
            if delivery.message.id != format!("m{next}") {
                return Err(format!("expected m{next}, got {}", delivery.message.id));
            }
            consumer.ack(&delivery).await.map_err(|e| e.to_string())?;
            next += 1;
        }
    }
    Ok(total as f64 / elapsed.as_secs_f64())
}

/// p50 and p99 from calling `publish` to a consumer of a group receiving the message, one
/// message every `interval`, `total` messages.
async fn latency(
    broker: Arc<dyn Broker>,
    total: usize,
    interval: Duration,
) -> Result<(Duration, Duration), String> {
    let stream = stream();
    let mut consumer = broker
        .consumer(&stream, "latency")
        .await
        .map_err(|e| e.to_string())?;
    let receiver = tokio::spawn(async move {
        let mut received = HashMap::with_capacity(total);
        while received.len() < total {
            let deliveries = consumer
                .receive(100, Duration::from_secs(5))
                .await
                .map_err(|e| e.to_string())?;
            if deliveries.is_empty() {
                return Err(format!(
                    "only {} of {total} messages arrived",
                    received.len()
                ));
            }
            let now = Instant::now();
            for delivery in deliveries {
                received.insert(delivery.message.id.clone(), now);
                consumer.ack(&delivery).await.map_err(|e| e.to_string())?;
            }
        }
        Ok::<_, String>(received)
    });
    let mut sent = HashMap::with_capacity(total);
    let mut ticks = tokio::time::interval(interval);
    for n in 0..total {
        ticks.tick().await;
        let message = BrokerMessage::json_message(format!("m{n}"), &stream, &payload(n));
        sent.insert(format!("m{n}"), Instant::now());
        broker
            .publish(&[message])
            .await
            .map_err(|e| e.to_string())?;
    }
    let received = receiver.await.map_err(|e| e.to_string())??;
    let mut latencies: Vec<Duration> = sent
        .iter()
        .map(|(id, at)| received[id].saturating_duration_since(*at))
        .collect();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.50), at(0.99)))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let (total, single, samples) = if quick {
        (2_000, 200, 200)
    } else {
        (50_000, 5_000, 2_000)
    };
    let interval = Duration::from_millis(5); // 200 messages/s
    let sizes = if quick {
        RelaySizes::QUICK
    } else {
        RelaySizes::FULL
    };
    let mut targets = vec![("memory".to_owned(), "memory".to_owned())];
    for (name, variable) in [
        ("Redis Streams", "FIDELIS_BENCH_REDIS_URL"),
        ("NATS JetStream", "FIDELIS_BENCH_NATS_URL"),
    ] {
        match std::env::var(variable) {
            Ok(url) => targets.push((name.to_owned(), url)),
            Err(_) => eprintln!("{name}: skipped ({variable} is unset)"),
        }
    }
    println!(
        "| broker | publish, batches of 100 ({total} msgs), msgs/s | publish one at a time \
         ({single} msgs), msgs/s | publish → receive at 200/s ({samples} msgs), p50 | p99 |"
    );
    println!("|---|---:|---:|---:|---:|");
    let mut failed = false;
    for (name, url) in &targets {
        let broker = match broker::connect(url).await {
            Ok(broker) => broker,
            Err(error) => {
                eprintln!("{name}: {error}");
                failed = true;
                continue;
            }
        };
        let row = async {
            let batched = throughput(broker.as_ref(), total, 100).await?;
            let one = throughput(broker.as_ref(), single, 1).await?;
            let (p50, p99) = latency(broker.clone(), samples, interval).await?;
            Ok::<_, String>((batched, one, p50, p99))
        };
        match row.await {
            Ok((batched, one, p50, p99)) => println!(
                "| {name} | {batched:.0} | {one:.0} | {:.2} ms | {:.2} ms |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            ),
            Err(error) => {
                eprintln!("{name}: {error}");
                failed = true;
            }
        }
    }
    println!();
    println!(
        "| broker | relay, {} events (in-memory store), events/s | commit → consumer at 200/s \
         ({samples} commands), p50 | p99 |",
        sizes.events()
    );
    println!("|---|---:|---:|---:|");
    for (name, url) in &targets {
        let row = async {
            let broker = broker::connect(url).await.map_err(|e| e.to_string())?;
            let pass = relay::relay_through(broker.clone(), sizes)
                .await
                .map_err(|e| e.to_string())?;
            if !pass.mismatches.is_empty() {
                return Err(pass.mismatches.join("; "));
            }
            let (p50, p99) = relay::commit_to_consumer(broker, samples, interval)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((pass.rate(), p50, p99))
        };
        match row.await {
            Ok((rate, p50, p99)) => println!(
                "| {name} | {rate:.0} | {:.2} ms | {:.2} ms |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            ),
            Err(error) => {
                eprintln!("{name}: {error}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
