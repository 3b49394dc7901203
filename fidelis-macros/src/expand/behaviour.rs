//! `#[aggregate]` on an impl block: `#[apply]` methods become `Apply<E>` impls,
//! `#[invariant(pre|post)]` methods the aggregate's invariant table, and `#[handle(C)]` /
//! `#[handle(C, create)]` methods the handlers of the aggregate's own commands.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::ParseStream;
use syn::spanned::Spanned;
use syn::{Ident, ItemImpl, ReturnType, Token, Type};

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
    if let Some(key) = args.key(FACT_EVENTS) {
        cx.error(key.span(), "`fact_events` goes on the aggregate's struct (`#[aggregate(event_sourced, fact_events)] struct …`), not on its impl block");
    }
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let concrete = check::no_generics(&cx, ATTR, &expand::self_name(&item), &item.generics);
    let element = ast::parse_impl(
        &cx,
        ATTR,
        item,
        &[APPLY, INVARIANT, HANDLE],
        "an aggregate's impl block takes `#[apply]`, `#[invariant(pre)]` / `#[invariant(post)]` and `#[handle(Command)]` methods",
    );
    if !concrete || element.item.trait_.is_some() || element.name.is_none() {
        return fallback::item(element.item, cx);
    }
    let ty = &element.item.self_ty;

    let mut applies = Vec::new();
    let mut invariants = Vec::new();
    let mut routes = Vec::new();
    let mut handlers = Vec::new();
    let mut handled = check::HandledOnce::default();
    for method in &element.methods {
        let ident = &method.sig.ident;
        let cfgs = &method.cfgs;
        if method.helper == HANDLE {
            // An unreadable `#[handle(..)]` is reported alone: the signature it would be
            // checked against is unknown.
            let Some((command, create)) = handle_args(&cx, method) else {
                continue;
            };
            if check::aggregate_handle(&cx, method, create) && handled.first(&cx, method, &command)
            {
                let method_name = ident.unraw().to_string();
                routes.push(quote! {
                    #(#cfgs)*
                    routes.push(#p::CommandRoute::of::<#command>(#method_name));
                });
                handlers.push(handler(&p, ty, method, &command, create));
            }
        } else if method.helper == APPLY {
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
    // Likewise only a block with `#[handle]` methods claims the routes.
    let commands = (!routes.is_empty()).then(|| {
        quote! {
            #[automatically_derived]
            impl #p::AggregateCommands for #ty {
                fn command_routes() -> ::std::vec::Vec<#p::CommandRoute> {
                    #[allow(unused_mut)]
                    let mut routes = ::std::vec::Vec::new();
                    #(#routes)*
                    routes
                }
            }
        }
    });
    let generated = expand::wrap(quote! {
        #(#applies)*
        #table
        #commands
        #(#handlers)*
    });
    let item = &element.item;
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// `#[handle(C)]` or `#[handle(C, create)]`: the command type, and whether the method
/// makes a new aggregate.
fn handle_args(cx: &Ctxt, method: &Method) -> Option<(Type, bool)> {
    const HOW: &str = "`#[handle(MakeDeposit)]` on `fn …(&mut self, command: MakeDeposit) -> Result<T>`, or `#[handle(OpenAccount, create)]` on `fn …(command: OpenAccount) -> Result<Self>`";
    let parsed = method.attr.parse_args_with(|input: ParseStream<'_>| {
        let command: Type = input.parse()?;
        let option = if input.is_empty() {
            None
        } else {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                None
            } else {
                Some(input.parse::<Ident>()?)
            }
        };
        if !input.is_empty() {
            return Err(input.error("unexpected tokens"));
        }
        Ok((command, option))
    });
    let (command, option) = match parsed {
        Ok(parsed) => parsed,
        Err(_) => {
            cx.error_spanned_by(
                &method.attr,
                format!("`#[handle]` in an `#[aggregate] impl` needs the command type: {HOW}"),
            );
            return None;
        }
    };
    match option {
        None => Some((command, false)),
        Some(word) if word == CREATE => Some((command, true)),
        Some(word) => {
            let other = word.to_string();
            let hint = if attr::edit_distance(&other, CREATE) <= 2 {
                format!("did you mean `{CREATE}`?")
            } else {
                format!("the only option is `{CREATE}`, for a method that makes a new aggregate")
            };
            cx.error(
                word.span(),
                format!("unknown option `{other}` for `#[handle]`; {hint}"),
            );
            None
        }
    }
}

/// The `Handled` impl of one `#[handle]` method of the aggregate, and its checks.
fn handler(
    p: &TokenStream,
    ty: &Type,
    method: &Method,
    command: &Type,
    create: bool,
) -> TokenStream {
    let ident = &method.sig.ident;
    let method_name = ident.unraw().to_string();
    let cfgs = &method.cfgs;
    let await_ = method.sig.asyncness.map(|_| quote!(.await));
    // Errors about the command point at `C` in `#[handle(C)]`.
    let span = command.span();
    let (output, body) = if create {
        // `check::aggregate_handle` made sure there is a return type.
        let returned = match &method.sig.output {
            ReturnType::Type(_, returned) => returned.span(),
            ReturnType::Default => ident.span(),
        };
        let created = quote_spanned! {returned=>
            <_ as #p::Creates<#ty>>::into_created(<#ty>::#ident(command)#await_)
        };
        (
            quote!(#p::Identifier),
            quote! {
                let aggregate: #ty = #created?;
                #p::add_created::<#ty>(ctx, aggregate, #method_name).await
            },
        )
    } else {
        let returned = match &method.sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, returned) => quote!(#returned),
        };
        let target = quote_spanned! {span=>
            <#command as #p::CommandTarget>::target(&command)
        };
        let load = quote! {
            #p::load_target::<#ty>(ctx, ::core::clone::Clone::clone(#target)).await
        };
        (
            quote!(<#returned as #p::HandlerReturn>::Output),
            quote! {
                let mut aggregate: #ty = #load?;
                let output = #p::HandlerReturn::into_result(<#ty>::#ident(&mut aggregate, command)#await_)?;
                #p::save_handled::<#ty>(ctx, aggregate).await?;
                ::core::result::Result::Ok(output)
            },
        )
    };
    let own = expand::respan(quote!(#command), span);
    let aggregate = expand::respan(quote!(#ty), span);
    let check = quote_spanned! {span=>
        const _: () = <#own as #p::CommandOf<#aggregate>>::ASSERT;
    };
    let handled = expand::handled_impl(
        p,
        cfgs,
        command,
        &output,
        quote! {
            type Handler = #p::AggregateHandler<#ty>;
            type Output = #output;
            fn dispatch<'a>(
                _: &'a #p::AggregateHandler<#ty>,
                command: Self,
                ctx: &'a mut #p::Context,
            ) -> #p::BoxFuture<'a, #p::Result<Self::Output>> {
                ::std::boxed::Box::pin(async move { #body })
            }
        },
    );
    quote! {
        #handled
        #(#cfgs)*
        #check
    }
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
