//! `#[subscriber(stream = "…")]` on an impl block with an `async fn handle(&self, message:
//! &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()>` method: a consumer of a
//! broker stream (an anti-corruption layer turning outside messages into commands).

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{ImplItem, ImplItemFn};

use crate::ast;
use crate::attr::{self, Kind, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::handler::parse_impl_item;
use crate::expand::{self, registration};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[subscriber]";

const SPECS: &[Spec] = &[
    Spec {
        name: STREAM,
        kind: Kind::Str,
        example: "stream = \"payflow.webhooks\"",
    },
    attr::CRATE_SPEC,
];

/// Expands `#[subscriber]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let stream = check::subscriber_stream(&cx, &args);
    let item = match parse_impl_item(
        &cx,
        ATTR,
        input,
        "`impl PaymentWebhooks { async fn handle(..) … }`",
    ) {
        Ok(item) => item,
        Err(tokens) => return fallback::item(tokens, cx),
    };
    let concrete = check::no_generics(&cx, ATTR, &expand::self_name(&item), &item.generics);
    let element = ast::parse_impl(
        &cx,
        ATTR,
        item,
        &[],
        "a subscriber has one method, `handle`, without a helper attribute",
    );
    let handle = element.item.items.iter().find_map(|item| match item {
        ImplItem::Fn(function) if function.sig.ident == HANDLE_METHOD => Some(function.clone()),
        _ => None,
    });
    let signature_ok = match &handle {
        Some(handle) => check::subscriber_handle(&cx, &handle.sig),
        None => {
            cx.error_spanned_by(
                &element.item.self_ty,
                "`#[subscriber]` needs a `handle` method: `async fn handle(&self, message: &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()>`",
            );
            false
        }
    };
    let (Some(stream), Some(name), Some(handle), true, None) = (
        stream,
        element.name.clone(),
        handle,
        concrete && signature_ok,
        element.item.trait_.as_ref(),
    ) else {
        return fallback::item(element.item, cx);
    };
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let item = element.item;
    let generated = generate(&p, &item.self_ty, &name, &stream, &handle);
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// The `Element` impl registering the subscriber with its thunk, and its submission.
fn generate(
    p: &TokenStream,
    ty: &syn::Type,
    name: &syn::Ident,
    stream: &str,
    handle: &ImplItemFn,
) -> TokenStream {
    let sig = &handle.sig;
    let stateless = matches!(sig.inputs.first(), None | Some(syn::FnArg::Typed(_)));
    let (this_ty, registered, this, factory) = if stateless {
        (
            quote!(#p::Stateless<#ty>),
            quote!(#p::Stateless<Self>),
            quote!(_),
            quote!(::core::option::Option::Some(#p::Stateless::new)),
        )
    } else {
        (
            quote!(#ty),
            quote!(Self),
            quote!(this),
            quote!((&#p::DefaultProbe::<Self>::new()).factory()),
        )
    };
    // Spanned at the user's `handle`, so a type error of the call points at it.
    let call = if stateless {
        quote_spanned!(sig.ident.span()=> <#ty>::handle(message, ctx))
    } else {
        quote_spanned!(sig.ident.span()=> this.handle(message, ctx))
    };
    let call = if sig.asyncness.is_some() {
        quote!(#call.await)
    } else {
        call
    };
    let element = registration::element(
        p,
        ty,
        name,
        "Subscriber",
        quote! {
            #[allow(unused_imports)]
            use #p::{FactoryFallback as _, FactoryViaDefault as _};
            fn __fidelis_handle<'a>(
                #this: &'a #this_ty,
                message: &'a #p::BrokerMessage,
                ctx: &'a mut #p::EventHandlerContext,
            ) -> #p::BoxFuture<'a, #p::Result<()>> {
                ::std::boxed::Box::pin(async move { #p::HandlerReturn::into_result(#call) })
            }
            registrar.subscriber::<#registered>(#factory, #stream, __fidelis_handle);
        },
    );
    let submit = registration::submit(p, ty);
    expand::wrap(quote! {
        #element
        #submit
    })
}
