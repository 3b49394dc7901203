//! The helper attributes used outside their element: the element macros strip them, so
//! when one of these runs it was put where no element macro saw it.

use proc_macro2::TokenStream;
use quote::quote;

/// A helper attribute and where it belongs.
pub struct Helper {
    name: &'static str,
    belongs: &'static str,
}

/// `#[apply]`
pub const APPLY: Helper = Helper {
    name: "apply",
    belongs: "on a method of an `#[aggregate] impl` block",
};
/// `#[invariant]`
pub const INVARIANT: Helper = Helper {
    name: "invariant",
    belongs: "on a method of an `#[aggregate] impl` block",
};
/// `#[handle]`
pub const HANDLE: Helper = Helper {
    name: "handle",
    belongs: "on a method of an `#[aggregate]`, `#[command_handler(part_of = …)]` or `#[event_handler(…)]` impl block",
};
/// `#[on]`
pub const ON: Helper = Helper {
    name: "on",
    belongs: "on a method of a `#[projector(for = …, aggregates = […])]` impl block",
};
/// `#[field]`
pub const FIELD: Helper = Helper {
    name: "field",
    belongs: "on a field of an `#[aggregate]`, `#[event]`, `#[command]`, `#[projection]` or `#[value_object]` struct",
};

/// The item unchanged, plus the error at the attribute.
pub fn expand(helper: Helper, _args: TokenStream, input: TokenStream) -> TokenStream {
    let message = format!(
        "`#[{}]` can only be used {}; add the element macro to the enclosing item",
        helper.name, helper.belongs
    );
    let error = syn::Error::new(proc_macro2::Span::call_site(), message).to_compile_error();
    quote!(#error #input)
}
