//! Benchmarks of Fidelis against a hand-written baseline and against cqrs-es.
//!
//! Every implementation runs the same seed-ledger work through the [`Ledger`] trait: open
//! accounts, deposit into them, read their summary row, load an account. The comparison
//! binary (`cargo run --release -p fidelis-bench`) times them side by side in one process;
//! `BENCHMARKS.md` at the repository root holds the results and how they were obtained.

pub mod baseline;
pub mod cqrs;
pub mod fidelis;
pub mod workload;

pub use workload::{BenchError, Ledger, Sizes};
