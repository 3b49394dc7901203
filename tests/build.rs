//! PostgreSQL tests run only when `FIDELIS_TEST_POSTGRES_URL` is set when the tests are
//! built; otherwise they are compiled as `#[ignore]`d, so `cargo test` lists them as
//! ignored with the reason instead of passing silently. The ui suite is ignored the same way
//! off the pinned compiler (its `.stderr` files are reviewed against rustc 1.95).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fidelis_postgres)");
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
    println!("cargo::rerun-if-env-changed=FIDELIS_TEST_POSTGRES_URL");
    if std::env::var_os("FIDELIS_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=fidelis_postgres");
    }
}
