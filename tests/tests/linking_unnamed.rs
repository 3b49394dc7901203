//! The linking caveat: a crate that nothing in the program names is not linked, so its
//! elements are not discovered. `second_context` is a dependency of this test crate, but
//! this file never names it (compare `linking_named.rs`). Naming it in `discover_crate` then
//! fails `build()` with the fix, instead of building an empty domain.

#![allow(missing_docs)] // test elements are public for the macros, not documented API

use fidelis_core::prelude::*;

#[tokio::test]
async fn a_crate_nothing_names_is_not_discovered() {
    let error = Domain::builder("loans")
        .discover_crate("second_context")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Configuration { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("`discover_crate(\"second_context\")` found no elements")
            && message.contains("`use second_context as _;`"),
        "{message}"
    );

    // Discovering every linked crate still finds nothing of it, without an error.
    let domain = Domain::builder("loans").build().await.unwrap();
    assert!(domain.registry().aggregates().is_empty());
    assert!(domain.registry().commands().is_empty());
}
