//! The linking caveat: a crate that nothing in the program names is not linked, so its
//! elements are not discovered. `second_context` is a dependency of this test crate, but
//! this file never names it (compare `linking_named.rs`).

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;

#[tokio::test]
async fn a_crate_nothing_names_is_not_discovered() {
    let domain = Domain::builder("loans")
        .discover_crate("second_context")
        .build()
        .await
        .unwrap();
    assert!(domain.registry().aggregates().is_empty());
    assert!(domain.registry().commands().is_empty());
}
