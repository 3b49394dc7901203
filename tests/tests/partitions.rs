//! Partitions and leases: the one-engine rule of SQLite, and fencing of a stale owner.

use std::time::Duration;

use fidelis_core::Processing;
use fidelis_core::prelude::*;

mod support;
use support::Backend;

#[path = "support/meters.rs"]
mod meters;
use meters::OpenMeter;

async fn domain(url: &str) -> Domain {
    Domain::builder("meters")
        .discover_crate(module_path!())
        .database(url.to_owned())
        .processing(Processing::Async)
        .engine_lease(Duration::from_secs(5))
        .build()
        .await
        .expect("build")
}

/// A second engine on the same SQLite file fails, naming the file and the holder; once the
/// first stops cleanly (its leases released), the second runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_one_sqlite_file_is_refused_with_the_file_named() {
    let Some(backend) = Backend::sqlite().await else {
        return;
    };
    let url = backend.url();
    let first = domain(&url).await;
    let second = domain(&url).await;
    first.process(OpenMeter {}).await.expect("open");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let engine = first.engine();
    let running = tokio::spawn(async move {
        engine
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let error = second
        .engine()
        .run_until_idle()
        .await
        .expect_err("a second engine");
    let message = error.to_string();
    let file = url.trim_start_matches("sqlite://");
    assert!(message.contains("another engine runs on"), "{message}");
    assert!(message.contains(file), "{message} names {file}");
    assert!(message.contains(first.engine().owner()), "{message}");
    let _ = stop.send(());
    running
        .await
        .expect("the engine task")
        .expect("the first engine");
    second
        .engine()
        .run_until_idle()
        .await
        .expect("the first released its leases");
    backend.finish().await;
}
