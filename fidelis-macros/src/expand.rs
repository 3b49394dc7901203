//! Code generation. Every function here is handed a checked model and cannot fail; the
//! pieces shared by several elements live in the submodules named for them.

pub mod aggregate;
pub mod behaviour;
pub mod command;
pub mod event;
pub mod fields;
pub mod handler;
pub mod listener;
pub mod message;
pub mod projection;
pub mod registration;
pub mod value_enum;
pub mod value_object;

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{Attribute, Path, Token, Type, parse_quote};

use crate::attr::Args;
use crate::symbol::CRATE;

/// The runtime crate: `crate = path`, or `::fidelis_core`.
pub fn krate(args: &Args) -> Path {
    args.path(CRATE)
        .cloned()
        .unwrap_or_else(|| parse_quote!(::fidelis_core))
}

/// The macro-support module of the runtime crate.
pub fn private(krate: &Path) -> TokenStream {
    quote!(#krate::__private)
}

/// Wraps generated items so their helper names do not leak into the user's scope.
pub fn wrap(items: TokenStream) -> TokenStream {
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = { #items };
    }
}

/// The derives an element needs, minus those the user already wrote.
pub fn add_derives(attrs: &mut Vec<Attribute>, krate: &Path, wanted: &[&str]) {
    let present = derived(attrs);
    let p = private(krate);
    let derives: Vec<TokenStream> = wanted
        .iter()
        .filter(|name| !present.iter().any(|have| have == *name))
        .filter_map(|name| match *name {
            "Clone" => Some(quote!(::core::clone::Clone)),
            "Debug" => Some(quote!(::core::fmt::Debug)),
            "PartialEq" => Some(quote!(::core::cmp::PartialEq)),
            "Serialize" => Some(quote!(#p::serde::Serialize)),
            "Deserialize" => Some(quote!(#p::serde::Deserialize)),
            _ => None,
        })
        .collect();
    let serde_crate = format!("{}::__private::serde", path_string(krate));
    // The derive goes first, so the `#[serde]` helper attributes after it are in scope; the
    // `#[serde(crate)]` goes after every derive, the user's own `#[derive(Serialize)]` too.
    if !derives.is_empty() {
        attrs.insert(0, parse_quote!(#[derive(#(#derives),*)]));
    }
    let after_derives = attrs
        .iter()
        .rposition(|a| a.path().is_ident("derive"))
        .map_or(0, |last| last + 1);
    attrs.insert(after_derives, parse_quote!(#[serde(crate = #serde_crate)]));
}

/// `::fidelis_core` as a string, for `#[serde(crate = "…")]`.
/// The names of the traits the user's own `#[derive(..)]` attributes derive.
pub fn derived(attrs: &[Attribute]) -> Vec<String> {
    let mut present = Vec::new();
    for attribute in attrs.iter().filter(|a| a.path().is_ident("derive")) {
        if let Ok(paths) = attribute
            .parse_args_with(syn::punctuated::Punctuated::<Path, Token![,]>::parse_terminated)
        {
            present.extend(
                paths
                    .iter()
                    .filter_map(|p| p.segments.last())
                    .map(|s| s.ident.to_string()),
            );
        }
    }
    present
}

pub fn path_string(path: &Path) -> String {
    let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
    let joined = segments.join("::");
    if path.leading_colon.is_some() {
        format!("::{joined}")
    } else {
        joined
    }
}

/// A type as the user wrote it, tidied (`Option<DateTime<Utc>>`), for `FieldDef::rust_type`.
pub fn type_string(ty: &Type) -> String {
    let raw = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(raw.len());
    for word in raw.split_whitespace() {
        let glue = out.ends_with(['<', ':', '&', '(', '['])
            || word.starts_with(['<', '>', ':', ',', ')', ']']);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(word);
        if word == "," {
            out.push(' ');
        }
    }
    out.replace(", >", ">").replace("  ", " ")
}

/// `tokens` with every span set to `span`, so an error about them points at the user's
/// tokens (`#[handle(C)]`'s `C`) rather than at the macro attribute.
pub fn respan(tokens: TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = proc_macro2::TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

/// The name of an impl block's self type, for messages.
pub fn self_name(item: &syn::ItemImpl) -> String {
    last_segment(&item.self_ty).unwrap_or_else(|| String::from("this type"))
}

/// The last path segment of a type (`Identifier` for `fidelis_core::Identifier`).
pub fn last_segment(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(path) => path.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}
