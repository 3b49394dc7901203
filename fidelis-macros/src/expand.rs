//! Code generation. Every function here is handed a checked model and cannot fail; the
//! pieces shared by several elements live in the submodules named for them.

pub mod aggregate;
pub mod behaviour;
pub mod command;
pub mod entity;
pub mod event;
pub mod event_version;
pub mod fields;
pub mod handler;
pub mod listener;
pub mod message;
pub mod process_manager;
pub mod projection;
pub mod registration;
pub mod subscriber;
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

/// The traits an element struct needs: `Serialize` and `Deserialize` derived (minus those the
/// user derives), and `Clone`, `Debug` and `PartialEq` (those of `wanted` the user does not
/// derive) implemented here, each field reached through `<T as FieldType>` at its type (see
/// `fields::field_type`): a field whose type is not a field type then gives one error, ours,
/// instead of one per derive. Fields the macro added itself use the traits directly.
pub fn element_traits(
    item: &mut syn::ItemStruct,
    fields: &[crate::ast::Field],
    krate: &Path,
    wanted: &[&str],
) -> TokenStream {
    let serde: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|name| matches!(*name, "Serialize" | "Deserialize"))
        .collect();
    let present = derived(&item.attrs);
    add_derives(&mut item.attrs, krate, &serde);
    let p = private(krate);
    let name = &item.ident;
    let syn::Fields::Named(named) = &item.fields else {
        return TokenStream::new();
    };
    // (ident, `<T as FieldType>` or `None` for a field the macro added)
    let members: Vec<(&syn::Ident, Option<TokenStream>)> = named
        .named
        .iter()
        .filter_map(|field| {
            let ident = field.ident.as_ref()?;
            let model = fields.iter().find(|f| &f.ident == ident);
            Some((ident, model.map(|f| fields::field_type(&p, f))))
        })
        .collect();
    let missing = |trait_name: &str| {
        wanted.contains(&trait_name) && !present.iter().any(|have| have == trait_name)
    };
    let mut out = TokenStream::new();
    if missing("Clone") {
        let values = members.iter().map(|(ident, ft)| match ft {
            Some(ft) => quote!(#ident: #ft::__fidelis_clone(&self.#ident)),
            None => quote!(#ident: ::core::clone::Clone::clone(&self.#ident)),
        });
        out.extend(quote! {
            #[automatically_derived]
            impl ::core::clone::Clone for #name {
                fn clone(&self) -> Self {
                    Self { #(#values,)* }
                }
            }
        });
    }
    if missing("Debug") {
        let label = name.to_string();
        let entries = members.iter().map(|(ident, ft)| {
            let field_name = syn::ext::IdentExt::unraw(*ident).to_string();
            match ft {
                Some(ft) => quote!(.field(#field_name, #ft::__fidelis_debug(&self.#ident))),
                None => quote!(.field(#field_name, &self.#ident)),
            }
        });
        out.extend(quote! {
            #[automatically_derived]
            impl ::core::fmt::Debug for #name {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    f.debug_struct(#label) #(#entries)* .finish()
                }
            }
        });
    }
    if missing("PartialEq") {
        let comparisons = members.iter().map(|(ident, ft)| match ft {
            Some(ft) => quote!(#ft::__fidelis_eq(&self.#ident, &other.#ident)),
            None => quote!(::core::cmp::PartialEq::eq(&self.#ident, &other.#ident)),
        });
        out.extend(quote! {
            #[automatically_derived]
            impl ::core::cmp::PartialEq for #name {
                fn eq(&self, other: &Self) -> bool {
                    true #(&& #comparisons)*
                }
            }
        });
    }
    out
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

/// The `impl OneHandlerPerCommand for C` of one `#[handle(C)]` method, around `items`. Its
/// header carries the span of `C` as written, so rustc's error for a command handled twice
/// (E0119, "conflicting implementations of trait `OneHandlerPerCommand`") points at both
/// `#[handle(C)]`s rather than at the two macro attributes.
///
/// `output` is the handler's output type as written: its `output_codec` (how a process
/// manager's step records the output) is probed for serde encodings, except for a type that
/// borrows (`&'static str`), for which the probe would pick serde and then fail the borrow
/// check (`Deserialize` is not general enough), so such an output gets none.
pub fn handled_impl(
    p: &TokenStream,
    cfgs: &[Attribute],
    command: &Type,
    output: &TokenStream,
    items: TokenStream,
) -> TokenStream {
    let span = syn::spanned::Spanned::span(command);
    let handled = respan(quote!(#p::OneHandlerPerCommand), span);
    let codec = if borrows(output.clone()) {
        quote!(::core::option::Option::None)
    } else {
        quote! {
            #[allow(unused_imports)]
            use #p::{OutputViaSerde as _, OutputWithoutSerde as _};
            (&#p::OutputProbe::<Self::Output>::new()).output_codec()
        }
    };
    quote::quote_spanned! {span=>
        #(#cfgs)*
        #[automatically_derived]
        impl #handled for #command {
            #items
            fn output_codec() -> ::core::option::Option<#p::OutputCodec<Self::Output>> {
                #codec
            }
        }
    }
}

/// Whether a type as written borrows: has a `&` or a lifetime anywhere in it.
fn borrows(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tree| match tree {
        proc_macro2::TokenTree::Punct(punct) => matches!(punct.as_char(), '&' | '\''),
        proc_macro2::TokenTree::Group(group) => borrows(group.stream()),
        _ => false,
    })
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
