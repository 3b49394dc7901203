//! The example's PostgreSQL tests run only when `FIDELIS_TEST_POSTGRES_URL` is set when the
//! tests are built, its broker tests only when `FIDELIS_TEST_REDIS_URL` or
//! `FIDELIS_TEST_NATS_URL` is, and its browser test only when chromedriver is on the `PATH` (or
//! `FIDELIS_BROWSER_TESTS=required`, which makes a missing one a failure); otherwise they are
//! compiled as `#[ignore]`d, so `cargo test` lists them as ignored with the reason instead of
//! passing without having run.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fidelis_browser)");
    println!("cargo::rerun-if-env-changed=FIDELIS_BROWSER_TESTS");
    println!("cargo::rerun-if-env-changed=PATH");
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
    let required = std::env::var("FIDELIS_BROWSER_TESTS").is_ok_and(|value| value == "required");
    let chromedriver = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("chromedriver").is_file())
    });
    if required || chromedriver {
        println!("cargo::rustc-cfg=fidelis_browser");
    }
}
