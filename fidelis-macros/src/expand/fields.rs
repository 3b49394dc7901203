//! What every struct element generates from its fields: `FieldDef`s, validation, the
//! type-level option checks, `default = …` functions and `from_json` / `from_value`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, Ident, ItemStruct, LitStr, parse_quote};

use crate::ast::Field;
use crate::expand::{respan, type_string};
use crate::symbol::*;

/// `<T as FieldType>` for a field of type `T`, every token at the field type's span. All the
/// generated code reaches the field's type through it (and serde through the same words), so
/// that a type that is not a field type gives one error, the same at every use, which the
/// compiler reports once, at the field's type.
pub fn field_type(p: &TokenStream, field: &Field) -> TokenStream {
    let ty = &field.ty;
    respan(quote!(<#ty as #p::FieldType>), type_span(ty))
}

/// One span for a type (a procedural macro cannot join the spans of several tokens on stable
/// Rust): the type's name, `HashMap` in `std::collections::HashMap<String, f64>`.
fn type_span(ty: &syn::Type) -> proc_macro2::Span {
    match ty {
        syn::Type::Path(path) => path
            .path
            .segments
            .last()
            .map_or_else(|| ty.span(), |last| last.ident.span()),
        other => other.span(),
    }
}

/// Whether the field's own `#[serde(..)]` attributes decide how it is written or read, so the
/// generated `serialize_with` / `deserialize_with` must stay away.
fn serde_decides(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .any(|a| {
            let syn::Meta::List(list) = &a.meta else {
                return false;
            };
            list.tokens.clone().into_iter().any(|token| {
                matches!(&token, proc_macro2::TokenTree::Ident(ident)
                    if ["with", "serialize_with", "deserialize_with", "flatten", "getter"]
                        .iter()
                        .any(|word| ident == word))
            })
        })
}

/// Whether the type is written `Option<…>` (a missing value is `None`).
fn is_option(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(path) if path.qself.is_none()
        && path.path.segments.last().is_some_and(|last| last.ident == "Option"))
}

/// The name of the hidden function that gives a field's `default = …`.
pub fn default_fn(field: &Field) -> Ident {
    format_ident!("__fidelis_default_{}", field.name())
}

/// `#[serde(default = "Type::__fidelis_default_x")]` on fields with a `default = …`,
/// `#[serde(with = "…::__private::non_finite")]` on `allow_non_finite` floats (JSON has no
/// NaN or infinity: they are written by name), and on every other field
/// `#[serde(serialize_with, deserialize_with)]` through its `FieldType` (see [`field_type`]),
/// with `#[serde(default)]` on an `Option` (which `deserialize_with` would make required).
pub fn add_serde_defaults(item: &mut ItemStruct, fields: &[Field], krate: &syn::Path) {
    let name = item.ident.clone();
    let Fields::Named(named) = &mut item.fields else {
        return;
    };
    for field in named.named.iter_mut() {
        let Some(model) = fields
            .iter()
            .find(|f| Some(&f.ident) == field.ident.as_ref())
        else {
            continue;
        };
        let has_default = model.args.expr(DEFAULT).is_some();
        if has_default {
            let path = format!("{name}::{}", default_fn(model));
            field.attrs.push(parse_quote!(#[serde(default = #path)]));
        }
        // `check::allow_non_finite` reports the option on anything else.
        if model.args.key(ALLOW_NON_FINITE).is_some() && model.is_float() {
            let path = format!(
                "{}::__private::non_finite",
                crate::expand::path_string(krate)
            );
            field.attrs.push(parse_quote!(#[serde(with = #path)]));
        } else if !serde_decides(&field.attrs) {
            let span = type_span(&model.ty);
            let ty = type_string(&model.ty);
            let trait_path = format!(
                "<{ty} as {}::__private::FieldType>",
                crate::expand::path_string(krate)
            );
            let ser = LitStr::new(&format!("{trait_path}::__fidelis_serialize"), span);
            let de = LitStr::new(&format!("{trait_path}::__fidelis_deserialize"), span);
            field
                .attrs
                .push(parse_quote!(#[serde(serialize_with = #ser, deserialize_with = #de)]));
            if is_option(&model.ty) && !has_default {
                field.attrs.push(parse_quote!(#[serde(default)]));
            }
        }
    }
}

/// The hidden inherent functions behind `default = …`.
pub fn default_fns(fields: &[Field]) -> TokenStream {
    let fns = fields.iter().filter_map(|field| {
        let expr = field.args.expr(DEFAULT)?;
        let ty = &field.ty;
        let name = default_fn(field);
        Some(quote_spanned! {expr.span()=>
            #[doc(hidden)]
            fn #name() -> #ty {
                ::core::convert::Into::<#ty>::into(#expr)
            }
        })
    });
    quote!(#(#fns)*)
}

/// The value a blank aggregate gets for a field. `Default` is asked for at the field's type,
/// so a type without one (an enum with data, say) is reported on the field that needs it.
pub fn blank_value(field: &Field) -> TokenStream {
    if field.args.expr(DEFAULT).is_some() {
        let name = default_fn(field);
        quote!(Self::#name())
    } else {
        let ty = &field.ty;
        quote_spanned!(type_span(ty)=> <#ty as ::core::default::Default>::default())
    }
}

fn some<T: quote::ToTokens>(value: Option<T>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

/// One `FieldDef` per field.
pub fn defs(p: &TokenStream, fields: &[Field]) -> TokenStream {
    let defs = fields.iter().map(|field| {
        let ty = &field.ty;
        let name = field.name();
        let rust_type = type_string(ty);
        let args = &field.args;
        let ft = field_type(p, field);
        let required = if args.key(REQUIRED).is_some() {
            quote!(true)
        } else {
            quote!(!#ft::OPTIONAL)
        };
        let identifier = args.key(IDENTIFIER).is_some();
        let unique = args.key(UNIQUE).is_some();
        let has_default = args.expr(DEFAULT).is_some();
        let max_length = some(
            args.int(MAX_LENGTH)
                .map(|lit| quote!(#lit as ::core::primitive::usize)),
        );
        let min_length = some(
            args.int(MIN_LENGTH)
                .map(|lit| quote!(#lit as ::core::primitive::usize)),
        );
        let min_value = some(args.number(MIN_VALUE));
        let max_value = some(args.number(MAX_VALUE));
        let min_value_literal = some(args.number_text(MIN_VALUE));
        let max_value_literal = some(args.number_text(MAX_VALUE));
        let decimal_places = some(
            args.int(DECIMAL_PLACES)
                .map(|lit| quote!(#lit as ::core::primitive::u32)),
        );
        let allow_non_finite = args.key(ALLOW_NON_FINITE).is_some();
        let choices: Vec<&LitStr> = args
            .strs(CHOICES)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        quote! {
            #p::FieldDef {
                required: #required,
                identifier: #identifier,
                unique: #unique,
                has_default: #has_default,
                max_length: #max_length,
                min_length: #min_length,
                min_value: #min_value,
                max_value: #max_value,
                min_value_literal: #min_value_literal,
                max_value_literal: #max_value_literal,
                decimal_places: #decimal_places,
                allow_non_finite: #allow_non_finite,
                choices: &[#(#choices),*],
                embedded: #ft::EMBEDDED,
                variants: #ft::VARIANTS,
                ..#p::FieldDef::new(#name, #ft::KIND, #rust_type)
            }
        }
    });
    quote!(#(#defs),*)
}

/// `impl HasFields`: the definitions and a `validate` that checks every field.
pub fn has_fields(p: &TokenStream, ty: &TokenStream, fields: &[Field]) -> TokenStream {
    let defs = defs(p, fields);
    let checks = fields.iter().enumerate().map(|(index, field)| {
        let ident = &field.ident;
        let ft = field_type(p, field);
        quote_spanned!(field.ty.span()=> #ft::check(&self.#ident, &<Self as #p::HasFields>::FIELDS[#index], &mut errors);)
    });
    quote! {
        #[automatically_derived]
        impl #p::HasFields for #ty {
            const FIELDS: &'static [#p::FieldDef] = &[#defs];
            fn validate(&self) -> ::core::result::Result<(), #p::ValidationError> {
                let mut errors = #p::ValidationError::new();
                #(#checks)*
                errors.into_result()
            }
        }
    }
}

/// The compile-time checks of field options (the field type itself is checked by the
/// `FieldDef`s and `validate`), each at the field type's span so
/// the error names the field: `max_length` on an `f64` is reported on `f64`.
pub fn asserts(p: &TokenStream, fields: &[Field], projection: bool) -> TokenStream {
    let mut out = TokenStream::new();
    for field in fields {
        let ty = &field.ty;
        let span = ty.span();
        let mut check = |name: &str| {
            let name = Ident::new(name, span);
            out.extend(quote_spanned! {span=> const _: () = <#ty as #p::#name>::ASSERT; });
        };
        if field.args.key(MAX_LENGTH).is_some() || field.args.key(MIN_LENGTH).is_some() {
            check("LengthField");
        }
        if field.args.key(MIN_VALUE).is_some() || field.args.key(MAX_VALUE).is_some() {
            check("NumericField");
        }
        if field.args.key(CHOICES).is_some() {
            check("TextField");
        }
        if field.args.key(DECIMAL_PLACES).is_some() {
            check("DecimalField");
        }
        // A projection's identity already requires `IdentityField` at this span.
        if field.is_identifier() && !projection {
            check("IdentityField");
        }
        if projection {
            check("BasicField");
        }
    }
    out
}

/// Commands, events, value objects, entities and process managers hold no entity: each field's
/// type is checked at compile time. The check is spanned at the field's type (the runtime path
/// too), so the error names the field; it reaches the type through `field_type`, so a type
/// that is not a field type is still reported once.
pub fn no_entities(p: &TokenStream, fields: &[Field]) -> TokenStream {
    let checks = fields.iter().map(|field| {
        let ft = field_type(p, field);
        respan(
            quote!(const _: () = #p::assert_no_entity(#ft::ENTITY_OF);),
            type_span(&field.ty),
        )
    });
    quote!(#(#checks)*)
}

/// An aggregate holds only its own entities: each field's type is checked at compile time,
/// at the field.
pub fn own_entities(p: &TokenStream, fields: &[Field], aggregate: &Ident) -> TokenStream {
    let name = aggregate.to_string();
    let checks = fields.iter().map(|field| {
        let ft = field_type(p, field);
        respan(
            quote!(const _: () = #p::assert_entity_of(#ft::ENTITY_OF, #name);),
            type_span(&field.ty),
        )
    });
    quote!(#(#checks)*)
}

/// `from_json` and `from_value`: decode untrusted input, reporting every missing,
/// mistyped and invalid field in one `ValidationError`.
pub fn from_json(p: &TokenStream, fields: &[Field]) -> TokenStream {
    let idents: Vec<&Ident> = fields.iter().map(|field| &field.ident).collect();
    let takes = fields.iter().map(|field| {
        let ident = &field.ident;
        let ty = &field.ty;
        let name = field.name();
        let default = if field.args.expr(DEFAULT).is_some() {
            let default = default_fn(field);
            quote!(::core::option::Option::Some(Self::#default as fn() -> #ty))
        } else {
            quote!(::core::option::Option::None)
        };
        if field.args.key(ALLOW_NON_FINITE).is_some() && field.is_float() {
            quote!(let #ident = fields.take_with::<#ty>(#name, #default, #p::non_finite::from_value);)
        } else {
            let ft = field_type(p, field);
            quote!(let #ident = fields.take_field::<#ty>(#name, #ft::OPTIONAL, #default, #ft::__fidelis_from_value);)
        }
    });
    quote! {
        /// Decodes JSON text, reporting every missing, mistyped and invalid field at once
        /// (and a key given twice, instead of keeping the last).
        pub fn from_json(json: &::core::primitive::str) -> #p::Result<Self> {
            Self::from_value(#p::parse_json_input(json, <Self as #p::Element>::NAME)?)
        }

        /// Decodes a JSON value, reporting every missing, mistyped and invalid field at once.
        pub fn from_value(value: #p::serde_json::Value) -> #p::Result<Self> {
            let mut fields = #p::JsonFields::new(<Self as #p::Element>::NAME, value)?;
            #(#takes)*
            match (#(#idents,)*) {
                (#(::core::option::Option::Some(#idents),)*) => {
                    fields.finish()?;
                    #p::validated(Self { #(#idents),* }, <Self as #p::Element>::NAME)
                }
                #[allow(unreachable_patterns)]
                _ => ::core::result::Result::Err(fields.fail()),
            }
        }
    }
}

/// The typed field handles of a queryable element (a projection or state-stored aggregate):
/// the `<Name>Fields` struct, with one `FieldHandle` per field, and the inherent `fields()`
/// that returns it. Returns (the struct, the `fields()` function).
pub fn handles(
    krate: &syn::Path,
    name: &Ident,
    vis: &syn::Visibility,
    what: &str,
    fields: &[Field],
) -> (TokenStream, TokenStream) {
    let handles_name = format_ident!("{}Fields", name);
    let example = fields.first().map_or_else(|| "id".to_owned(), Field::name);
    let handle_doc = format!(
        "Typed field handles of [`{name}`], for queries: `{name}::fields().{example}.eq(..)`."
    );
    let fn_doc = format!("Typed handles on this {what}'s fields, to build queries.");
    let handle_fields = fields.iter().map(|field| {
        let ident = &field.ident;
        let field_ty = &field.ty;
        let doc = format!("The `{}` field.", field.name());
        quote! {
            #[doc = #doc]
            pub #ident: #krate::query::FieldHandle<#name, #field_ty>
        }
    });
    let handle_values = fields.iter().map(|field| {
        let ident = &field.ident;
        let field_name = field.name();
        quote!(#ident: #krate::query::FieldHandle::new(#field_name))
    });
    let definition = quote! {
        #[doc = #handle_doc]
        #[derive(::core::clone::Clone, ::core::marker::Copy, ::core::fmt::Debug)]
        #vis struct #handles_name {
            #(#handle_fields,)*
        }
    };
    let function = quote! {
        #[doc = #fn_doc]
        pub fn fields() -> #handles_name {
            #handles_name { #(#handle_values),* }
        }
    };
    (definition, function)
}
