//! `#[entity(part_of = A)]` on a struct: an object with identity that lives inside aggregate
//! `A` (as a `Vec<E>` or `Option<E>` field), validated with it on every change; and
//! `#[entity]` on its impl block, for its `#[invariant]`s.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Fields, Item, ItemImpl, ItemStruct, parse_quote};

use crate::ast::{self, FIELD_SPECS, Field};
use crate::attr::{self, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::{self, fields};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[entity]";

const STRUCT_SPECS: &[Spec] = &[attr::PART_OF_SPEC, attr::CRATE_SPEC];
const IMPL_SPECS: &[Spec] = &[attr::CRATE_SPEC];

/// Expands `#[entity]` on a struct or on its impl block.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Struct(item)) => expand_struct(cx, args, item),
        Ok(Item::Impl(item)) => expand_impl(cx, args, item),
        Ok(other) => {
            cx.error_spanned_by(
                &other,
                "`#[entity(part_of = Aggregate)]` goes on a struct with named fields, and `#[entity]` on that struct's impl block (for its `#[invariant]`s)",
            );
            fallback::item(other, cx)
        }
        Err(error) => fallback::unparsed(input, error),
    }
}

fn expand_struct(cx: Ctxt, args: TokenStream, item: ItemStruct) -> TokenStream {
    let args = attr::parse(&cx, ATTR, STRUCT_SPECS, args);
    if !args.mentioned(PART_OF) {
        cx.error(
            proc_macro2::Span::call_site(),
            "`#[entity]` needs the aggregate it lives in: `#[entity(part_of = Account)]`",
        );
    }
    let part_of = args.ty(PART_OF).cloned();
    let name = item.ident.clone();
    let concrete = check::no_generics(&cx, ATTR, &name.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement {
        mut item,
        mut fields,
    } = ast::parse_struct(&cx, ATTR, item);
    let Some(part_of) = part_of.filter(|_| concrete && named) else {
        return fallback::item(item, cx);
    };
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let ty = quote!(#name);

    // The identity: a field named `id` of the user's, or an added `id: Identifier`. The event
    // that creates the entity carries it, so replays give the same id.
    if !fields.iter().any(|f| f.ident == "id") {
        let id: syn::Field = parse_quote! {
            /// The entity's identity, carried by the event that creates it.
            pub id: #krate::Identifier
        };
        if let Fields::Named(named) = &mut item.fields {
            named.named.insert(0, id);
        }
        let flag = attr::parse(&cx, "#[field]", FIELD_SPECS, quote!(identifier));
        fields.insert(
            0,
            Field {
                ident: parse_quote!(id),
                ty: parse_quote!(#krate::Identifier),
                args: flag,
            },
        );
    }
    check::allow_non_finite(&cx, &fields);
    fields::add_serde_defaults(&mut item, &fields, &krate);
    let traits = expand::element_traits(
        &mut item,
        &fields,
        &krate,
        &["Clone", "Debug", "PartialEq", "Serialize", "Deserialize"],
    );
    let has_fields = fields::has_fields(&p, &ty, &fields);
    let asserts = fields::asserts(&p, &fields, false);
    let no_entities = fields::no_entities(&p, &fields);
    let defaults = fields::default_fns(&fields);
    let label = name.to_string();
    let default_impl = (!expand::derived(&item.attrs).iter().any(|d| d == "Default")).then(|| {
        let values = fields.iter().map(|field| {
            let ident = &field.ident;
            let value = fields::blank_value(field);
            quote!(#ident: #value)
        });
        quote! {
            #[automatically_derived]
            impl ::core::default::Default for #ty {
                fn default() -> Self {
                    Self { #(#values,)* }
                }
            }
        }
    });
    let owner = quote_spanned!(part_of.span()=> <#part_of as #p::Aggregate>::EVENT_SOURCED);
    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults
        }
        #has_fields
        #default_impl
        #[automatically_derived]
        impl #p::Element for #ty {
            const NAME: &'static ::core::primitive::str = #label;
            const KIND: #p::ElementKind = #p::ElementKind::Entity;
            // Loaded and saved only through its aggregate: nothing of its own to register.
            fn register(_: &mut #p::Registrar) {}
        }

        fn __fidelis_embedded_fields() -> &'static [#p::FieldDef] {
            <#ty as #p::HasFields>::FIELDS
        }

        #[automatically_derived]
        impl #p::FieldType for #ty {
            const KIND: #p::FieldKind = #p::FieldKind::Embedded;
            const EMBEDDED: ::core::option::Option<fn() -> &'static [#p::FieldDef]> =
                ::core::option::Option::Some(__fidelis_embedded_fields);
            const ENTITY_OF: ::core::option::Option<&'static ::core::primitive::str> =
                ::core::option::Option::Some(<#part_of as #p::Element>::NAME);
            fn check(&self, def: &#p::FieldDef, errors: &mut #p::ValidationError) {
                #[allow(unused_imports)]
                use #p::{InvariantsFallback as _, InvariantsViaImpl as _};
                let invariants = (&#p::InvariantProbe::<#ty>::new()).invariants();
                #p::check_entity(self, invariants, def, errors);
            }
        }
        // `part_of` names an aggregate.
        const _: ::core::primitive::bool = #owner;
        #asserts
        #no_entities
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

fn expand_impl(cx: Ctxt, args: TokenStream, item: ItemImpl) -> TokenStream {
    let args = attr::parse(&cx, ATTR, IMPL_SPECS, args);
    let concrete = check::no_generics(&cx, ATTR, &expand::self_name(&item), &item.generics);
    let element = ast::parse_impl(
        &cx,
        ATTR,
        item,
        &[INVARIANT],
        "an entity's impl block takes `#[invariant]` methods",
    );
    if !concrete || element.item.trait_.is_some() || element.name.is_none() {
        return fallback::item(element.item, cx);
    }
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let ty = &element.item.self_ty;
    let mut invariants = Vec::new();
    for method in &element.methods {
        // `pre` and `post` mean nothing for an entity (it is checked with its aggregate after
        // every change), so `#[invariant]` is written bare; both are accepted.
        if let Err(error) = method.attr.meta.require_path_only() {
            let stage_ok = method
                .attr
                .parse_args::<syn::Ident>()
                .is_ok_and(|word| word == PRE || word == POST);
            if !stage_ok {
                let _ = error;
                cx.error_spanned_by(
                    &method.attr,
                    "an entity's `#[invariant]` takes no arguments: it is checked with its aggregate after every change",
                );
                continue;
            }
        }
        if check::invariant(&cx, method) {
            let ident = &method.sig.ident;
            let name = ident.unraw().to_string();
            let cfgs = &method.cfgs;
            invariants.push(quote! {
                #(#cfgs)*
                #p::Invariant { name: #name, stage: #p::InvariantStage::Post, check: <#ty>::#ident }
            });
        }
    }
    let item = &element.item;
    let generated = expand::wrap(quote! {
        #[automatically_derived]
        impl #p::AggregateInvariants for #ty {
            const INVARIANTS: &'static [#p::Invariant<Self>] = &[#(#invariants),*];
        }
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}
