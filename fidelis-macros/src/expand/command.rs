//! `#[command(part_of = A)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::attr::{self, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::event::snake_case;
use crate::expand::message::{self, Prepared};
use crate::expand::{self, fields, last_segment, registration};
use crate::fallback;

const ATTR: &str = "#[command]";

const SPECS: &[Spec] = &[attr::PART_OF_SPEC, attr::CRATE_SPEC];

/// Expands `#[command]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let Prepared {
        mut item,
        fields,
        krate,
        part_of,
    } = match message::prepare(&cx, ATTR, &args, input, "a command") {
        Ok(prepared) => prepared,
        Err(item) => return fallback::item(item, cx),
    };
    let p = expand::private(&krate);
    let name = item.ident.clone();
    let self_ty: Type = syn::parse_quote!(#name);
    let ty = quote!(#name);
    // The target an aggregate's own `#[handle(C)]` loads: the `#[field(identifier)]` field,
    // else `<aggregate>_id`; either only when written `Identifier`. No other fallback, so a
    // command whose marked field has another type does not silently aim at a second field.
    let identifier = check::at_most_one_identifier(&cx, &fields);
    let aggregate_field = last_segment(&part_of).map(|a| format!("{}_id", snake_case(&a)));
    let target = match identifier {
        Some(field) => Some(field),
        None => fields.iter().find(|f| Some(f.name()) == aggregate_field),
    }
    .filter(|f| last_segment(&f.ty).as_deref() == Some("Identifier"))
    .map(|field| {
        let ident = &field.ident;
        quote! {
            #[automatically_derived]
            impl #p::CommandTarget for #ty {
                fn target(&self) -> &#p::Identifier {
                    &self.#ident
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
    let element = registration::element(
        &p,
        &self_ty,
        &name,
        "Command",
        quote!(registrar.command::<Self>();),
    );
    let has_fields = fields::has_fields(&p, &ty, &fields);
    let asserts = fields::asserts(&p, &fields, false);
    let no_entities = fields::no_entities(&p, &fields);
    let defaults = fields::default_fns(&fields);
    let from_json = fields::from_json(&p, &fields);
    let submit = registration::submit(&p, &self_ty);
    let aggregate = quote_spanned!(part_of.span()=> type Aggregate = #part_of;);
    let command_of = quote_spanned!(part_of.span()=> impl #p::CommandOf<#part_of> for #ty {});

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
        impl #p::Command for #ty {
            #aggregate
        }
        #[automatically_derived]
        #command_of
        #target
        #asserts
        #no_entities
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}
