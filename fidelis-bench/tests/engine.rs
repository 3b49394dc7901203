//! Workloads (f) and (g) at the smoke sizes, in memory and on SQLite: the engine catches up
//! with every summary row right, and every deposit becomes visible.

use fidelis_bench::engine::{self, EngineSizes};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

#[test]
fn the_catch_up_applies_every_event_once() {
    let runtime = runtime();
    // `run_until_idle`, then one engine running until no partition lags (`--engines 1`).
    for (backend, engines) in [
        ("memory", None),
        ("sqlite", None),
        ("memory", Some(1)),
        ("sqlite", Some(1)),
    ] {
        let pass = runtime
            .block_on(engine::catchup(backend, EngineSizes::QUICK, None, engines))
            .expect("the catch-up runs");
        assert_eq!(pass.events, EngineSizes::QUICK.events());
        assert!(
            pass.mismatches.is_empty(),
            "{backend}: {:?}",
            pass.mismatches
        );
        assert!(pass.rate() > 0.0);
    }
}

#[test]
fn every_deposit_under_load_becomes_visible() {
    let runtime = runtime();
    let sizes = EngineSizes {
        duration: std::time::Duration::from_millis(300),
        ..EngineSizes::QUICK
    };
    for backend in ["memory", "sqlite"] {
        let pass = runtime
            .block_on(engine::latency(backend, sizes, None))
            .expect("the load runs");
        assert!(
            pass.mismatches.is_empty(),
            "{backend}: {:?}",
            pass.mismatches
        );
        assert!(!pass.latencies.is_empty());
        assert!(pass.latencies.windows(2).all(|w| w[0] <= w[1]));
        assert!(pass.quantile(0.5) <= pass.quantile(0.99));
    }
}
