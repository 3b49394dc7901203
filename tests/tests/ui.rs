//! The compile-fail suite: every mistake of DESIGN §4 and of the macros' front end, one per
//! file under `tests/ui/<macro>/<mistake>.rs`, with its reviewed `.stderr`.
//!
//! Compiler messages change between releases, so the suite runs only on the pinned
//! toolchain (1.95); on another it is skipped with a message saying so.

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = std::process::Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .unwrap_or_default();
    if !version.starts_with("rustc 1.95.") {
        eprintln!(
            "ui suite skipped: its .stderr files are reviewed against rustc 1.95.x, and `{rustc} --version` says {:?}",
            version.trim()
        );
        return;
    }
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/**/*.rs");
}
