//! `#[value_object]`: a validated value compared by its fields, embeddable in other elements.
//! On an enum, see `value_enum`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Fields, Item};

use crate::ast;
use crate::attr::{self, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::{self, fields, value_enum};
use crate::fallback;

const ATTR: &str = "#[value_object]";

const SPECS: &[Spec] = &[attr::CRATE_SPEC];

/// Expands `#[value_object]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Struct(item)) => item,
        Ok(Item::Enum(item)) => return value_enum::expand(cx, &args, item),
        _ => {
            cx.error(
                proc_macro2::Span::call_site(),
                "`#[value_object]` goes on a struct with named fields or on an enum",
            );
            return fallback::item(input, cx);
        }
    };
    let concrete = check::no_generics(&cx, ATTR, &item.ident.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement { mut item, fields } = ast::parse_struct(&cx, ATTR, item);
    if !concrete || !named {
        return fallback::item(item, cx);
    }
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let name = item.ident.clone();
    let ty = quote!(#name);

    // Aggregates embedding the value start from `Default` (`create_new`): the value's own
    // `default = …` options apply, as they do to aggregates.
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

    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults
        }
        #has_fields
        #default_impl
        #[automatically_derived]
        impl #p::ValueObject for #ty {}

        fn __fidelis_embedded_fields() -> &'static [#p::FieldDef] {
            <#ty as #p::HasFields>::FIELDS
        }

        #[automatically_derived]
        impl #p::FieldType for #ty {
            const KIND: #p::FieldKind = #p::FieldKind::Embedded;
            const EMBEDDED: ::core::option::Option<fn() -> &'static [#p::FieldDef]> =
                ::core::option::Option::Some(__fidelis_embedded_fields);
            fn check(&self, def: &#p::FieldDef, errors: &mut #p::ValidationError) {
                if let ::core::result::Result::Err(nested) = #p::HasFields::validate(self) {
                    errors.merge(nested, ::core::option::Option::Some(def.name));
                }
            }
        }
        #asserts
        #no_entities
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}
