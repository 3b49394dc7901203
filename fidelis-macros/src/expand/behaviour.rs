//! `#[aggregate]` on an impl block: `#[apply]` methods become `Apply<E>` impls and
//! `#[invariant(pre|post)]` methods the aggregate's invariant table.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::{Ident, ItemImpl};

use crate::ast::{self, Method};
use crate::attr::{self};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::{self, aggregate::SPECS};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[aggregate]";

/// Expands the impl block of an aggregate.
pub fn expand(cx: Ctxt, args: TokenStream, item: ItemImpl) -> TokenStream {
    let args = attr::parse(&cx, ATTR, SPECS, args);
    if let Some(key) = args.key(EVENT_SOURCED) {
        cx.error(key.span(), "`event_sourced` goes on the aggregate's struct (`#[aggregate(event_sourced)] struct …`), not on its impl block");
    }
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let concrete = check::no_generics(&cx, ATTR, &expand::self_name(&item), &item.generics);
    let element = ast::parse_impl(
        &cx,
        ATTR,
        item,
        &[APPLY, INVARIANT],
        "an aggregate's impl block takes `#[apply]` and `#[invariant(pre)]` / `#[invariant(post)]` methods",
    );
    if !concrete || element.item.trait_.is_some() || element.name.is_none() {
        return fallback::item(element.item, cx);
    }
    let ty = &element.item.self_ty;

    let mut applies = Vec::new();
    let mut invariants = Vec::new();
    for method in &element.methods {
        let ident = &method.sig.ident;
        let cfgs = &method.cfgs;
        if method.helper == APPLY {
            match check::apply(&cx, method) {
                (Some(event), true) => applies.push(quote! {
                    #(#cfgs)*
                    #[automatically_derived]
                    impl #p::Apply<#event> for #ty {
                        fn apply(&mut self, event: &#event) {
                            <#ty>::#ident(self, event)
                        }
                    }
                }),
                // Fail soft: the signature is reported; an impl that does nothing keeps the
                // event's "no `#[apply]` for it" error from piling on.
                (Some(event), false) => applies.push(quote! {
                    #(#cfgs)*
                    impl #p::Apply<#event> for #ty {
                        fn apply(&mut self, _: &#event) {}
                    }
                }),
                (None, _) => {}
            }
        } else if let (Some(stage), true) = (stage(&cx, method), check::invariant(&cx, method)) {
            let name = ident.unraw().to_string();
            invariants.push(quote! {
                #(#cfgs)*
                #p::Invariant { name: #name, stage: #p::InvariantStage::#stage, check: <#ty>::#ident }
            });
        }
    }
    // Only a block with invariants claims the table, so other `#[aggregate] impl` blocks
    // (say, one of `#[apply]` methods) can sit beside it.
    let table = (!invariants.is_empty()).then(|| {
        quote! {
            #[automatically_derived]
            impl #p::AggregateInvariants for #ty {
                const INVARIANTS: &'static [#p::Invariant<Self>] = &[#(#invariants),*];
            }
        }
    });
    let generated = expand::wrap(quote! {
        #(#applies)*
        #table
    });
    let item = &element.item;
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// `pre` or `post`, from `#[invariant(pre)]`.
fn stage(cx: &Ctxt, method: &Method) -> Option<Ident> {
    const HOW: &str =
        "write `#[invariant(pre)]` (checked before each change) or `#[invariant(post)]` (after)";
    let word = match method.attr.parse_args::<Ident>() {
        Ok(word) => word,
        Err(_) => {
            cx.error_spanned_by(&method.attr, format!("`#[invariant]` needs a stage: {HOW}"));
            return None;
        }
    };
    match word.to_string().as_str() {
        PRE => Some(Ident::new("Pre", word.span())),
        POST => Some(Ident::new("Post", word.span())),
        other => {
            let hint = [PRE, POST]
                .into_iter()
                .find(|stage| attr::edit_distance(other, stage) <= 2)
                .map(|stage| format!("; did you mean `{stage}`?"))
                .unwrap_or_else(|| format!("; {HOW}"));
            cx.error(
                word.span(),
                format!("unknown invariant stage `{other}`{hint}"),
            );
            None
        }
    }
}
