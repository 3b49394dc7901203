//! What is emitted when the input is wrong (after tokio-macros and thiserror): the user's
//! item, without the helper attributes, plus the errors, so one mistake does not cascade
//! into "cannot find type" errors elsewhere and IDEs keep working.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

use crate::ctxt::Ctxt;

/// The item as parsed (helper attributes already stripped) and every recorded error.
pub fn item(item: impl ToTokens, cx: Ctxt) -> TokenStream {
    let errors = cx.into_tokens();
    quote!(#item #errors)
}

/// Input syn could not parse: re-emitted unchanged, with the parse error.
pub fn unparsed(input: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#input #error)
}
