//! PostgreSQL tests run only when `FIDELIS_TEST_POSTGRES_URL` is set when the tests are
//! built; otherwise they are compiled as `#[ignore]`d, so `cargo test` lists them as
//! ignored with the reason instead of passing silently.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fidelis_postgres)");
    println!("cargo::rerun-if-env-changed=FIDELIS_TEST_POSTGRES_URL");
    if std::env::var_os("FIDELIS_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=fidelis_postgres");
    }
}
