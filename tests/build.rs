//! PostgreSQL tests run only when `FIDELIS_TEST_POSTGRES_URL` is set when the tests are
//! built; otherwise they are compiled as `#[ignore]`d, so `cargo test` lists them as
//! ignored with the reason instead of passing silently. The Redis and NATS broker tests
//! follow the same rule with `FIDELIS_TEST_REDIS_URL` and `FIDELIS_TEST_NATS_URL`. The ui suite is ignored the same way
//! off the pinned compiler (its `.stderr` files are reviewed against rustc 1.95).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fidelis_pinned_rustc)");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .unwrap_or_default();
    if version.starts_with("rustc 1.95.") {
        println!("cargo::rustc-cfg=fidelis_pinned_rustc");
    }
    for (variable, cfg) in [
        ("FIDELIS_TEST_POSTGRES_URL", "fidelis_postgres"),
        ("FIDELIS_TEST_REDIS_URL", "fidelis_redis"),
        ("FIDELIS_TEST_NATS_URL", "fidelis_nats"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        println!("cargo::rerun-if-env-changed={variable}");
        if std::env::var_os(variable).is_some_and(|url| !url.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
