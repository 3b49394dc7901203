//! `#[event(part_of = A)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::attr::{self, Kind, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::message::{self, Prepared};
use crate::expand::{self, fields, last_segment, registration};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[event]";

const SPECS: &[Spec] = &[
    attr::PART_OF_SPEC,
    Spec {
        name: VERSION,
        kind: Kind::Int,
        example: "version = 2",
    },
    Spec {
        name: TYPE_NAME,
        kind: Kind::Str,
        example: "type_name = \"Bank.Opened.v1\"",
    },
    Spec {
        name: PUBLISHED,
        kind: Kind::Flag,
        example: "published",
    },
    attr::CRATE_SPEC,
];

/// Expands `#[event]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let Prepared {
        mut item,
        fields,
        krate,
        part_of,
    } = match message::prepare(&cx, ATTR, &args, input, "an event") {
        Ok(prepared) => prepared,
        Err(item) => return fallback::item(item, cx),
    };
    let p = expand::private(&krate);
    let name = item.ident.clone();
    let self_ty: Type = syn::parse_quote!(#name);
    let ty = quote!(#name);

    let version = match args.int(VERSION) {
        Some(lit) => match lit.base10_parse::<u32>() {
            Ok(version) if version >= 1 => quote!(#version),
            _ => {
                cx.error(
                    lit.span(),
                    "`version` is a schema version: a whole number from 1",
                );
                quote!(1)
            }
        },
        None => quote!(1),
    };
    let type_name = match args.str(TYPE_NAME) {
        Some(lit) => quote!(::core::option::Option::Some(#lit)),
        None => quote!(::core::option::Option::None),
    };
    let published = args.key(PUBLISHED).is_some();
    // The aggregate id: `#[field(identifier)]`, `<aggregate>_id`, or `id`, of type Identifier.
    let aggregate_field = last_segment(&part_of).map(|a| format!("{}_id", snake_case(&a)));
    let identifier = check::at_most_one_identifier(&cx, &fields);
    let id_field = identifier
        .or_else(|| fields.iter().find(|f| Some(f.name()) == aggregate_field))
        .or_else(|| fields.iter().find(|f| f.name() == "id"))
        .filter(|f| last_segment(&f.ty).as_deref() == Some("Identifier"));
    let aggregate_id = match id_field {
        Some(field) => {
            let ident = &field.ident;
            quote!(::core::option::Option::Some(&self.#ident))
        }
        None => quote!(::core::option::Option::None),
    };

    check::allow_non_finite(&cx, &fields);
    fields::add_serde_defaults(&mut item, &fields, &krate);
    let traits = expand::element_traits(
        &mut item,
        &fields,
        &krate,
        &["Clone", "Debug", "PartialEq", "Serialize", "Deserialize"],
    );
    let element = registration::element(
        &p,
        &self_ty,
        &name,
        "Event",
        quote!(registrar.event::<Self>();),
    );
    let has_fields = fields::has_fields(&p, &ty, &fields);
    let asserts = fields::asserts(&p, &fields, false);
    let no_entities = fields::no_entities(&p, &fields);
    let defaults = fields::default_fns(&fields);
    let from_json = fields::from_json(&p, &fields);
    let submit = registration::submit(&p, &self_ty);
    // At the span of the user's `A`, so "has no `#[apply]` for this event" points there.
    let aggregate = quote_spanned!(part_of.span()=> type Aggregate = #part_of;);
    let apply =
        quote_spanned!(part_of.span()=> <#part_of as #p::Apply<Self>>::apply(aggregate, self));
    let belongs = quote_spanned!(part_of.span()=> impl #p::BelongsTo<#part_of> for #ty {});

    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults
            #from_json
        }
        #element
        #has_fields
        #[automatically_derived]
        #belongs
        #[automatically_derived]
        impl #p::DomainEvent for #ty {
            #aggregate
            const VERSION: ::core::primitive::u32 = #version;
            const TYPE_NAME: ::core::option::Option<&'static ::core::primitive::str> = #type_name;
            const PUBLISHED: ::core::primitive::bool = #published;
            fn aggregate_id(&self) -> ::core::option::Option<&#p::Identifier> {
                #aggregate_id
            }
            fn apply_to(&self, aggregate: &mut #part_of) {
                #apply
            }
        }
        #asserts
        #no_entities
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// `AccountHolder` → `account_holder`.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (index, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = index > 0
                && chars
                    .get(index - 1)
                    .is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            let next_lower = chars.get(index + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = index > 0 && chars.get(index - 1).is_some_and(|p| p.is_uppercase());
            if index > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}
