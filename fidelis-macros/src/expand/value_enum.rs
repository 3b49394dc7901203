//! `#[value_object]` on an enum: a field type whose values are its variants.
//!
//! A unit-only enum (`enum Status { Open, Closed }`) is a `FieldKind::Enum`: a text column
//! holding the variant's name as serde writes it, allowed in projections and queryable by
//! variant. An enum with data in some variant is a `FieldKind::DataEnum`: JSON, like an
//! embedded value object, and the fields of the variant a value holds are checked like the
//! fields of an element (required text not blank, nested value objects valid, …).
//!

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::{Attribute, Fields, ItemEnum, Meta};

use crate::attr::Args;
use crate::ctxt::Ctxt;
use crate::expand::{self, type_string};
use crate::fallback;
use crate::symbol::FIELD;

const ATTR: &str = "#[value_object]";

/// Expands `#[value_object]` on an enum (`args` already parsed by the caller).
pub fn expand(cx: Ctxt, args: &Args, mut item: ItemEnum) -> TokenStream {
    // A field type is one concrete type (its variant names are computed once, in a static).
    let concrete = item.generics.params.is_empty() && item.generics.where_clause.is_none();
    if !concrete {
        cx.error_spanned_by(
            &item.generics,
            format!(
                "`{ATTR}` enums are concrete types: remove the generic parameters of `{}` (a field holds one type)",
                item.ident
            ),
        );
    }
    if item.variants.is_empty() {
        cx.error(
            item.ident.span(),
            format!(
                "`{ATTR}` needs an enum with at least one variant: a field of an enum without variants could hold no value (`enum {} {{ A, B }}`)",
                item.ident
            ),
        );
    }
    strip_field_options(&cx, &mut item);
    if !concrete || item.variants.is_empty() {
        return fallback::item(item, cx);
    }
    let krate = expand::krate(args);
    let p = expand::private(&krate);
    let name = item.ident.clone();

    // A unit-only enum in serde's default (external) representation is written as the
    // variant's name; `tag`, `content` or `untagged` write something else, kept as JSON.
    let unit_only = item
        .variants
        .iter()
        .all(|variant| matches!(variant.fields, Fields::Unit));
    let plain_representation = !item.attrs.iter().any(changes_representation);
    let text = unit_only && plain_representation;

    expand::add_derives(
        &mut item.attrs,
        &krate,
        &["Clone", "Debug", "PartialEq", "Serialize", "Deserialize"],
    );

    let field_type = if text {
        let units = item.variants.iter().map(|variant| {
            let ident = &variant.ident;
            quote!(#name::#ident)
        });
        quote! {
            fn __fidelis_variants() -> &'static [&'static ::core::primitive::str] {
                static NAMES: ::std::sync::OnceLock<&'static [&'static ::core::primitive::str]> =
                    ::std::sync::OnceLock::new();
                NAMES.get_or_init(|| #p::variant_names(&[#(#units),*]))
            }

            #[automatically_derived]
            impl #p::FieldType for #name {
                const KIND: #p::FieldKind = #p::FieldKind::Enum;
                const VARIANTS: ::core::option::Option<fn() -> &'static [&'static ::core::primitive::str]> =
                    ::core::option::Option::Some(__fidelis_variants);
                // Every value is one of the variants: nothing to check.
                fn check(&self, _def: &#p::FieldDef, _errors: &mut #p::ValidationError) {}
            }

            #[automatically_derived]
            impl #p::BasicField for #name {}

            #[automatically_derived]
            impl #p::IntoQueryValue for #name {
                fn into_query_value(self) -> #p::QueryValue {
                    #p::enum_query_value(&self)
                }
            }
        }
    } else {
        let arms = item.variants.iter().map(|variant| {
            let ident = &variant.ident;
            let (pattern, checks): (TokenStream, Vec<TokenStream>) = match &variant.fields {
                Fields::Unit => (quote!(Self::#ident), Vec::new()),
                Fields::Named(named) => {
                    let idents: Vec<_> = named.named.iter().filter_map(|f| f.ident.as_ref()).collect();
                    let checks = named
                        .named
                        .iter()
                        .filter_map(|field| {
                            let ident = field.ident.as_ref()?;
                            let name = syn::ext::IdentExt::unraw(ident).to_string();
                            let rust_type = type_string(&field.ty);
                            Some(quote!(#p::check_variant_field(#ident, #name, #rust_type, &mut nested);))
                        })
                        .collect();
                    (quote!(Self::#ident { #(#idents),* }), checks)
                }
                Fields::Unnamed(unnamed) => {
                    let bindings: Vec<_> = (0..unnamed.unnamed.len())
                        .map(|index| format_ident!("__fidelis_{}", index))
                        .collect();
                    let checks = unnamed
                        .unnamed
                        .iter()
                        .zip(&bindings)
                        .enumerate()
                        .map(|(index, (field, binding))| {
                            let name = index.to_string();
                            let rust_type = type_string(&field.ty);
                            quote!(#p::check_variant_field(#binding, #name, #rust_type, &mut nested);)
                        })
                        .collect();
                    (quote!(Self::#ident(#(#bindings),*)), checks)
                }
            };
            quote!(#pattern => { #(#checks)* })
        });
        quote! {
            #[automatically_derived]
            impl #p::FieldType for #name {
                const KIND: #p::FieldKind = #p::FieldKind::DataEnum;
                fn check(&self, def: &#p::FieldDef, errors: &mut #p::ValidationError) {
                    let mut nested = #p::ValidationError::new();
                    match self {
                        #(#arms)*
                    }
                    // Items of a list have no name of their own: the list adds `name.index`.
                    let prefix = if def.name.is_empty() {
                        ::core::option::Option::None
                    } else {
                        ::core::option::Option::Some(def.name)
                    };
                    errors.merge(nested, prefix);
                }
            }
        }
    };

    let generated = expand::wrap(field_type);
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// `#[serde(tag = "…")]`, `#[serde(untagged)]` or `#[serde(content = "…")]`: a unit variant
/// is then not written as its bare name.
fn changes_representation(attribute: &Attribute) -> bool {
    if !attribute.path().is_ident("serde") {
        return false;
    }
    let Meta::List(list) = &attribute.meta else {
        return false;
    };
    list.tokens.clone().into_iter().any(|token| {
        matches!(&token, proc_macro2::TokenTree::Ident(ident)
            if ident == "tag" || ident == "untagged" || ident == "content")
    })
}

/// `#[field(..)]` inside a variant: field options belong to element fields, and a variant's
/// fields are checked by their types alone.
///
/// ```text
/// #[value_object] enum Loan { OnLoan { #[field(max_length = 20)] member: String } }   // error
/// ```
fn strip_field_options(cx: &Ctxt, item: &mut ItemEnum) {
    for variant in &mut item.variants {
        for field in variant.fields.iter_mut() {
            field.attrs.retain(|attribute| {
                if attribute.path().is_ident(FIELD) {
                    cx.error_spanned_by(
                        attribute,
                        "`#[field(..)]` options do not apply inside an enum variant: a variant's fields are checked by their types; for options, make the variant hold a `#[value_object]` struct that declares them",
                    );
                    false
                } else {
                    true
                }
            });
        }
    }
}
