//! `#[projection]`: a flat read model with one identifier and typed field handles.

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
use crate::symbol::VERSION;

const ATTR: &str = "#[projection]";

const SPECS: &[Spec] = &[
    Spec {
        name: VERSION,
        kind: Kind::Int,
        example: "version = 2",
    },
    attr::CRATE_SPEC,
];

/// Expands `#[projection]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let item = match syn::parse2::<ItemStruct>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            cx.error(
                proc_macro2::Span::call_site(),
                "`#[projection]` goes on a struct with named fields",
            );
            return fallback::item(input, cx);
        }
    };
    let version = check::projection_version(&cx, args.int(VERSION));
    let concrete = check::no_generics(&cx, ATTR, &item.ident.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement { mut item, fields } = ast::parse_struct(&cx, ATTR, item);
    let identifier = check::at_most_one_identifier(&cx, &fields);
    // A projection is a table: exactly one field is its primary key.
    if identifier.is_none() && named {
        cx.error(
            item.ident.span(),
            format!(
                "`#[projection]` needs exactly one identifier field: mark the field that identifies a row of `{}` with `#[field(identifier)]`",
                item.ident
            ),
        );
    }
    let Some(identifier) = identifier.filter(|_| concrete && named) else {
        return fallback::item(item, cx);
    };
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let name = item.ident.clone();
    let vis = item.vis.clone();
    let self_ty: Type = syn::parse_quote!(#name);
    let ty = quote!(#name);
    let id_ident = &identifier.ident;
    let id_name = identifier.name();

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
        "Projection",
        quote!(registrar.projection::<Self>();),
    );
    let has_fields = fields::has_fields(&p, &ty, &fields);
    let asserts = fields::asserts(&p, &fields, true);
    let defaults = fields::default_fns(&fields);
    let submit = registration::submit(&p, &self_ty);
    let identity =
        quote_spanned!(identifier.ty.span()=> #p::IdentityField::identity(&self.#id_ident));

    let (handles, fields_fn) = fields::handles(&krate, &name, &vis, "projection", &fields);

    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults

            #fields_fn
        }
        #element
        #has_fields
        #[automatically_derived]
        impl #p::Persisted for #ty {
            const STORAGE: #p::StorageKind = #p::StorageKind::ProjectionRow;
            fn identity(&self) -> #p::Identifier {
                #identity
            }
            fn load<'a>(ctx: &'a #p::Context, id: #p::Identifier) -> #p::BoxFuture<'a, #p::Result<::core::option::Option<Self>>> {
                ::std::boxed::Box::pin(#p::load_projection::<Self>(ctx, id))
            }
            fn save<'a>(ctx: &'a mut #p::Context, value: Self) -> #p::BoxFuture<'a, #p::Result<()>> {
                ::std::boxed::Box::pin(#p::save_projection::<Self>(ctx, value))
            }
        }
        #[automatically_derived]
        impl #p::Projection for #ty {
            const IDENTIFIER: &'static ::core::primitive::str = #id_name;
            const VERSION: ::core::primitive::u32 = #version;
        }
        #[automatically_derived]
        impl #p::Queryable for #ty {}
        #asserts
        #submit
    });
    let errors = cx.into_tokens();
    quote! {
        #item

        #handles

        #generated
        #errors
    }
}
