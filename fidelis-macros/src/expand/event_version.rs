//! `#[event_version(of = E, version = N [, next = T])]`: an old version of an event's schema,
//! read from stored rows and upcast to `E` through the user's `From` impls; never raised.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, ItemStruct, Type};

use crate::ast;
use crate::attr::{self, Kind, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::{self, fields, registration};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[event_version]";

const SPECS: &[Spec] = &[
    Spec {
        name: OF,
        kind: Kind::Type,
        example: "of = DepositMade",
    },
    Spec {
        name: VERSION,
        kind: Kind::Int,
        example: "version = 1",
    },
    Spec {
        name: NEXT,
        kind: Kind::Type,
        example: "next = DepositMadeV2",
    },
    attr::CRATE_SPEC,
];

/// Expands `#[event_version]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let item = match syn::parse2::<ItemStruct>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            cx.error(
                proc_macro2::Span::call_site(),
                "`#[event_version]` goes on a struct with named fields: the old shape of an event",
            );
            return fallback::item(input, cx);
        }
    };
    let concrete = check::no_generics(&cx, ATTR, &item.ident.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement { mut item, fields } = ast::parse_struct(&cx, ATTR, item);
    if !args.mentioned(OF) {
        cx.error(
            proc_macro2::Span::call_site(),
            "`#[event_version]` needs the event it is an old version of: `#[event_version(of = DepositMade, version = 1)]`",
        );
    }
    let version = match args.int(VERSION) {
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(version) if version >= 1 => Some(quote!(#version)),
            _ => {
                cx.error(
                    lit.span(),
                    "`version` is a schema version: a whole number from 1, lower than the event's own",
                );
                None
            }
        },
        None => {
            if !args.mentioned(VERSION) {
                cx.error(
                    proc_macro2::Span::call_site(),
                    "`#[event_version]` needs the version it declares: `#[event_version(of = DepositMade, version = 1)]`",
                );
            }
            None
        }
    };
    let (Some(of), Some(version), true, true) = (args.ty(OF).cloned(), version, concrete, named)
    else {
        return fallback::item(item, cx);
    };
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let name = item.ident.clone();
    let self_ty: Type = syn::parse_quote!(#name);
    let ty = quote!(#name);

    check::allow_non_finite(&cx, &fields);
    fields::add_serde_defaults(&mut item, &fields, &krate);
    let traits = expand::element_traits(
        &mut item,
        &fields,
        &krate,
        &["Clone", "Debug", "PartialEq", "Serialize", "Deserialize"],
    );
    let defaults = fields::default_fns(&fields);
    let asserts = fields::asserts(&p, &fields, false);
    let element = registration::element(
        &p,
        &self_ty,
        &name,
        "EventVersion",
        quote!(registrar.event_version::<Self>();),
    );
    let submit = registration::submit(&p, &self_ty);
    // At the user's `of = E` / `next = T`, so "`E` is not an event" and "`T` cannot be made
    // from the old version" point there.
    let of_assoc = quote_spanned!(of.span()=> type Of = #of;);
    let next_assoc = match args.ty(NEXT) {
        Some(next) => quote_spanned!(next.span()=> type Next = #next;),
        None => quote_spanned!(of.span()=> type Next = #of;),
    };

    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults
        }
        #element
        #[automatically_derived]
        impl #p::EventVersion for #ty {
            #of_assoc
            #next_assoc
            const VERSION: ::core::primitive::u32 = #version;
        }
        #[automatically_derived]
        impl #p::Happened for #ty {
            type Current = <Self as #p::EventVersion>::Of;
            fn happened(self) -> #p::Happening<Self::Current> {
                #p::Happening::old::<Self>(self)
            }
        }
        #asserts
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}
