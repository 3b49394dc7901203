//! `#[projector(for = P, aggregates = [..])]` with `#[on(E)]` methods, and
//! `#[event_handler(part_of = A)]` / `#[event_handler(aggregates = [..])]` with `#[handle(E)]`
//! methods: both listen to the events of some aggregates.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::Type;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use crate::ast::{self, ImplElement};
use crate::attr::{self, Kind, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::handler::{message_type, parse_impl_item};
use crate::expand::{self, registration};
use crate::fallback;
use crate::symbol::*;

const PROJECTOR: &str = "#[projector]";
const EVENT_HANDLER: &str = "#[event_handler]";

const PROJECTOR_SPECS: &[Spec] = &[
    Spec {
        name: FOR,
        kind: Kind::Type,
        example: "for = AccountSummary",
    },
    Spec {
        name: AGGREGATES,
        kind: Kind::TypeList,
        example: "aggregates = [Account]",
    },
    attr::CRATE_SPEC,
];

const EVENT_HANDLER_SPECS: &[Spec] = &[
    attr::PART_OF_SPEC,
    Spec {
        name: AGGREGATES,
        kind: Kind::TypeList,
        example: "aggregates = [Account]",
    },
    attr::CRATE_SPEC,
];

/// Expands `#[projector]`.
pub fn projector(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, PROJECTOR, PROJECTOR_SPECS, args);
    if !args.mentioned(FOR) {
        cx.error(
            proc_macro2::Span::call_site(),
            "`#[projector]` needs the projection it maintains: `#[projector(for = AccountSummary, aggregates = [Account])]`",
        );
    }
    let projection = args.ty(FOR).cloned();
    let aggregates = aggregates(&cx, PROJECTOR, &args, None);
    expand(
        cx,
        &args,
        input,
        Listener {
            attr: PROJECTOR,
            helper: ON,
            projection,
            aggregates,
        },
    )
}

/// Expands `#[event_handler]`.
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let args = attr::parse(&cx, EVENT_HANDLER, EVENT_HANDLER_SPECS, args);
    let part_of = args.ty(PART_OF).cloned();
    let aggregates = aggregates(&cx, EVENT_HANDLER, &args, part_of);
    expand(
        cx,
        &args,
        input,
        Listener {
            attr: EVENT_HANDLER,
            helper: HANDLE,
            projection: None,
            aggregates,
        },
    )
}

/// The listened aggregates: `aggregates = [..]` plus `part_of`; at least one.
fn aggregates(
    cx: &Ctxt,
    attr: &str,
    args: &attr::Args,
    part_of: Option<Type>,
) -> Option<Vec<Type>> {
    let mut list: Vec<Type> = part_of.into_iter().collect();
    list.extend(args.types(AGGREGATES).unwrap_or_default().iter().cloned());
    if list.is_empty() {
        if args.mentioned(AGGREGATES) || args.mentioned(PART_OF) {
            if let Some(key) = args
                .key(AGGREGATES)
                .filter(|_| args.types(AGGREGATES).is_some())
            {
                cx.error(key.span(), format!("`aggregates` of `{attr}` lists at least one aggregate: `aggregates = [Account]`"));
            }
        } else {
            let example = if attr == PROJECTOR {
                "`#[projector(for = AccountSummary, aggregates = [Account])]`"
            } else {
                "`#[event_handler(part_of = Account)]` or `#[event_handler(aggregates = [Account, Transfer])]`"
            };
            cx.error(
                proc_macro2::Span::call_site(),
                format!("`{attr}` needs the aggregates whose events it listens to: {example}"),
            );
        }
        return None;
    }
    Some(list)
}

struct Listener {
    attr: &'static str,
    helper: &'static str,
    projection: Option<Type>,
    aggregates: Option<Vec<Type>>,
}

impl Listener {
    /// The context type the role's methods take, as the user writes it.
    fn context(&self) -> &'static str {
        if self.attr == PROJECTOR {
            "ProjectorContext<'_>"
        } else {
            "EventHandlerContext"
        }
    }
}

fn expand(cx: Ctxt, args: &attr::Args, input: TokenStream, listener: Listener) -> TokenStream {
    let attr = listener.attr;
    let context = listener.context();
    let helper_attr = format!("#[{}]", listener.helper);
    let item = match parse_impl_item(&cx, attr, input, "`impl MyListener { … }`") {
        Ok(item) => item,
        Err(tokens) => return fallback::item(tokens, cx),
    };
    let concrete = check::no_generics(&cx, attr, &expand::self_name(&item), &item.generics);
    let hint = format!("its methods take `#[{}(Event)]`", listener.helper);
    let element = ast::parse_impl(&cx, attr, item, &[listener.helper], &hint);
    let projector = attr == PROJECTOR;
    let ready = concrete
        && element.name.is_some()
        && element.item.trait_.is_none()
        && listener.aggregates.is_some()
        && (!projector || listener.projection.is_some());
    let (Some(name), Some(aggregates), true) = (element.name.clone(), listener.aggregates, ready)
    else {
        return fallback::item(element.item, cx);
    };
    let krate = expand::krate(args);
    let p = expand::private(&krate);
    let ImplElement { item, methods, .. } = element;
    let ty = &item.self_ty;

    // A listener whose methods all go without `self` is called on its type: it needs no
    // instance, so no `Default`.
    let stateless = methods.iter().all(|method| !check::takes_self(method));
    let this_ty = if stateless {
        quote!(#p::Stateless<#ty>)
    } else {
        quote!(#ty)
    };
    let registered = if stateless {
        quote!(#p::Stateless<Self>)
    } else {
        quote!(Self)
    };
    let mut routes = Vec::new();
    let mut checks = Vec::new();
    for method in &methods {
        let event = message_type(
            &cx,
            method,
            &helper_attr,
            "the event type: `(AccountOpened)`",
        );
        let ok = check::listener(&cx, &helper_attr, method, context);
        let (Some(event), true) = (event, ok) else {
            continue;
        };
        let ident = &method.sig.ident;
        let method_name = ident.unraw().to_string();
        let thunk = format_ident!("__fidelis_{}", ident.unraw());
        let cfgs = &method.cfgs;
        let call = if check::takes_self(method) {
            quote!(this.#ident(event, ctx))
        } else {
            quote!(<#ty>::#ident(event, ctx))
        };
        let this = if stateless { quote!(_) } else { quote!(this) };
        let call = if method.sig.asyncness.is_some() {
            quote!(#call.await)
        } else {
            call
        };
        // Each role's thunk takes the role's context, so a method written for another role's
        // context is a type error at its `ctx` parameter.
        let (generics, ctx_ty, route) = if projector {
            (
                quote!(<'a, '__fidelis_c>),
                quote!(#p::ProjectorContext<'__fidelis_c>),
                quote!(projector),
            )
        } else {
            (
                quote!(<'a>),
                quote!(#p::EventHandlerContext),
                quote!(event_handler),
            )
        };
        routes.push(quote! {
            #(#cfgs)*
            {
                fn #thunk #generics(
                    #this: &'a #this_ty,
                    event: &'a #p::Event<#event>,
                    ctx: &'a mut #ctx_ty,
                ) -> #p::BoxFuture<'a, #p::Result<()>> {
                    ::std::boxed::Box::pin(async move { #p::HandlerReturn::into_result(#call) })
                }
                routes.push(#p::ListenerRoute::#route::<#registered, #event>(#method_name, #thunk));
            }
        });
        let listener_ty = expand::respan(quote!(#ty), event.span());
        // `Fact<A>` names its aggregate: checked without `Fact<A>: DomainEvent`, whose own
        // error (an `A` without `fact_events`) the route already reports.
        let aggregate = match fact_aggregate(&event) {
            Some(aggregate) => quote!(#aggregate),
            None => quote!(<#event as #p::DomainEvent>::Aggregate),
        };
        checks.push(quote_spanned! {event.span()=>
            #(#cfgs)*
            const _: () = <#listener_ty as #p::ListensTo<#aggregate>>::ASSERT;
        });
    }
    let aggregate_refs = aggregates
        .iter()
        .map(|a| quote!(#p::AggregateRef::of::<#a>()));
    let listens = aggregates.iter().map(|a| {
        quote_spanned! {a.span()=>
            #[automatically_derived]
            impl #p::ListensTo<#a> for #ty {}
        }
    });
    let (kind, register, projector_impl) = match &listener.projection {
        Some(projection) if projector => (
            "Projector",
            quote!(registrar.projector::<#registered, #projection>),
            quote_spanned! {projection.span()=>
                #[automatically_derived]
                impl #p::Projector for #ty {
                    type Projection = #projection;
                }
            },
        ),
        _ => (
            "EventHandler",
            quote!(registrar.event_handler::<#registered>),
            TokenStream::new(),
        ),
    };
    let factory = if stateless {
        quote!(::core::option::Option::Some(#p::Stateless::new))
    } else {
        quote!((&#p::DefaultProbe::<Self>::new()).factory())
    };
    let element = registration::element(
        &p,
        ty,
        &name,
        kind,
        quote! {
            #[allow(unused_imports)]
            use #p::{FactoryFallback as _, FactoryViaDefault as _};
            #[allow(unused_mut)]
            let mut routes = ::std::vec::Vec::new();
            #(#routes)*
            #register(
                #factory,
                ::std::vec![#(#aggregate_refs),*],
                routes,
            );
        },
    );
    let submit = registration::submit(&p, ty);
    let generated = expand::wrap(quote! {
        #element
        #projector_impl
        #(#listens)*
        #(#checks)*
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// `A` of an event type written `Fact<A>` (the fact events of aggregate `A`).
fn fact_aggregate(event: &Type) -> Option<&Type> {
    let Type::Path(path) = event else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Fact" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(aggregate)) if args.args.len() == 1 => Some(aggregate),
        _ => None,
    }
}
