//! `#[command_handler(part_of = A)]` on an impl block with `#[handle(C)]` methods.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{ItemImpl, ReturnType, Type};

use crate::ast::{self, ImplElement, Method};
use crate::attr::{self, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::{self, registration};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[command_handler]";

const SPECS: &[Spec] = &[attr::PART_OF_SPEC, attr::CRATE_SPEC];

/// Expands `#[command_handler]`.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let item = match parse_impl_item(&cx, ATTR, input, "`impl AccountCommandHandler { … }`") {
        Ok(item) => item,
        Err(tokens) => return fallback::item(tokens, cx),
    };
    let concrete = check::no_generics(&cx, ATTR, &expand::self_name(&item), &item.generics);
    let element = ast::parse_impl(
        &cx,
        ATTR,
        item,
        &[HANDLE],
        "a command handler's methods take `#[handle(Command)]`",
    );
    let part_of = args.ty(PART_OF).cloned();
    if !args.mentioned(PART_OF) {
        cx.error(
            proc_macro2::Span::call_site(),
            "`#[command_handler]` needs the aggregate whose commands it handles: `#[command_handler(part_of = Account)]`",
        );
    }
    let (Some(part_of), Some(name), true, None) = (
        part_of,
        element.name.clone(),
        concrete,
        element.item.trait_.as_ref(),
    ) else {
        return fallback::item(element.item, cx);
    };
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let ImplElement { item, methods, .. } = element;
    let ty = &item.self_ty;

    // A handler whose methods all go without `self` is called on its type: it needs no
    // instance, so no `Default`.
    let stateless = methods.iter().all(|method| !check::takes_self(method));
    let handler_ty = if stateless {
        quote!(#p::Stateless<#ty>)
    } else {
        quote!(#ty)
    };
    let mut routes = Vec::new();
    let mut impls = Vec::new();
    let mut handled = check::HandledOnce::default();
    for method in &methods {
        let Some(command) = message_type(
            &cx,
            method,
            "#[handle]",
            "the command type: `#[handle(OpenAccount)]`",
        ) else {
            check::command_handle(&cx, method);
            continue;
        };
        if !check::command_handle(&cx, method) || !handled.first(&cx, method, &command) {
            continue;
        }
        let ident = &method.sig.ident;
        let method_name = ident.unraw().to_string();
        let cfgs = &method.cfgs;
        let output = match &method.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => quote!(#ty),
        };
        let call = if check::takes_self(method) {
            quote!(handler.#ident(command, ctx))
        } else {
            quote!(<#ty>::#ident(command, ctx))
        };
        let handler_param = if stateless {
            quote!(_)
        } else {
            quote!(handler)
        };
        let call = if method.sig.asyncness.is_some() {
            quote!(#call.await)
        } else {
            call
        };
        routes.push(quote! {
            #(#cfgs)*
            routes.push(#p::CommandRoute::of::<#command>(#method_name));
        });
        let checked_ty = expand::respan(quote!(#ty), command.span());
        let check = quote_spanned! {command.span()=>
            const _: () = <#checked_ty as #p::HandlesCommandsOf<<#command as #p::Command>::Aggregate>>::ASSERT;
        };
        let items = quote! {
            type Handler = #handler_ty;
            type Output = <#output as #p::HandlerReturn>::Output;
            fn dispatch<'a>(
                #handler_param: &'a #handler_ty,
                command: Self,
                ctx: &'a mut #p::Context,
            ) -> #p::BoxFuture<'a, #p::Result<Self::Output>> {
                ::std::boxed::Box::pin(async move { #p::HandlerReturn::into_result(#call) })
            }
        };
        let handled = expand::handled_impl(&p, cfgs, &command, &quote!(#output), items);
        impls.push(quote! {
            #handled
            #(#cfgs)*
            #check
        });
    }

    let register = if stateless {
        quote!(registrar.command_handler::<#p::Stateless<Self>>(::core::option::Option::Some(#p::Stateless::new), routes);)
    } else {
        quote!(registrar.command_handler::<Self>((&#p::DefaultProbe::<Self>::new()).factory(), routes);)
    };
    let element = registration::element(
        &p,
        ty,
        &name,
        "CommandHandler",
        quote! {
            #[allow(unused_imports)]
            use #p::{FactoryFallback as _, FactoryViaDefault as _};
            #[allow(unused_mut)]
            let mut routes = ::std::vec::Vec::new();
            #(#routes)*
            #register
        },
    );
    let submit = registration::submit(&p, ty);
    let handles = quote_spanned!(part_of.span()=> impl #p::HandlesCommandsOf<#part_of> for #ty {});
    let generated = expand::wrap(quote! {
        #element
        #[automatically_derived]
        #handles
        #(#impls)*
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// Parses the input of an impl-element macro; anything else is reported.
pub fn parse_impl_item(
    cx: &Ctxt,
    attr: &str,
    input: TokenStream,
    example: &str,
) -> Result<ItemImpl, TokenStream> {
    match syn::parse2::<ItemImpl>(input.clone()) {
        Ok(item) => Ok(item),
        Err(_) => {
            let span = match syn::parse2::<syn::Item>(input.clone()) {
                Ok(syn::Item::Struct(item)) => item.ident.span(),
                Ok(syn::Item::Enum(item)) => item.ident.span(),
                Ok(syn::Item::Fn(item)) => item.sig.ident.span(),
                _ => proc_macro2::Span::call_site(),
            };
            cx.error(
                span,
                format!("`{attr}` goes on the handler type's impl block: {example}"),
            );
            Err(input)
        }
    }
}

/// The type in `#[handle(Type)]` / `#[on(Type)]`.
pub fn message_type(cx: &Ctxt, method: &Method, attr: &str, needs: &str) -> Option<Type> {
    match method.attr.parse_args::<Type>() {
        Ok(ty) => Some(ty),
        Err(_) => {
            cx.error_spanned_by(&method.attr, format!("`{attr}` needs {needs}"));
            None
        }
    }
}
