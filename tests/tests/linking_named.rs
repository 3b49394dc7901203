//! The fix for the linking caveat: `use domain_crate as _;` links the crate, and its
//! elements are discovered (compare `linking_unnamed.rs`).

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;
use second_context as _;

#[tokio::test]
async fn naming_the_crate_links_its_elements() {
    let domain = Domain::builder("loans")
        .discover_crate("second_context")
        .build()
        .await
        .unwrap();
    let names: Vec<_> = domain
        .registry()
        .aggregates()
        .iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["Loan"]);
    let commands: Vec<_> = domain
        .registry()
        .commands()
        .iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(commands, ["GrantLoan"]);
}
