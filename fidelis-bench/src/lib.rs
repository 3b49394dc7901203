//! Benchmarks of Fidelis against a hand-written baseline and against cqrs-es.
//!
//! Every implementation runs the same seed-ledger work through the [`Ledger`] trait: open
//! accounts, deposit into them, read their summary row, load an account. In memory: Fidelis,
//! the baseline, cqrs-es (`MemStore` and a quiet copy of it); on databases: Fidelis on SQLite
//! and on PostgreSQL, and cqrs-es on postgres-es on the same PostgreSQL server. Workload (e),
//! [`concurrent`] deposits, drives several of them from many client tasks at once, beside a
//! raw sqlx baseline ([`raw`]) that only inserts the event rows. The comparison binary
//! (`cargo run --release -p fidelis-bench`) times them side by side in one process;
//! `BENCHMARKS.md` at the repository root holds the results and how they were obtained.

pub mod baseline;
pub mod concurrent;
pub mod cqrs;
pub mod db;
pub mod engine;
pub mod fidelis;
pub mod postgres_es;
pub mod raw;
pub mod relay;
pub mod transfers;
pub mod workload;

pub use workload::{BenchError, Ledger, Sizes};
