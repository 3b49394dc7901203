//! `#[process_manager(aggregates = [..])]` on a struct (the state of one instance) and
//! `#[process_manager]` on its impl block, whose `#[handle(E, correlate = field, start, end)]`
//! methods are the steps.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Fields, Ident, Item, ItemImpl, ItemStruct, Token, Type, parse_quote};

use crate::ast::{self, ImplElement, Method};
use crate::attr::{self, Kind, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::handler::parse_impl_item;
use crate::expand::{self, fields, registration};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[process_manager]";

const STRUCT_SPECS: &[Spec] = &[
    Spec {
        name: AGGREGATES,
        kind: Kind::TypeList,
        example: "aggregates = [Transfer, Account]",
    },
    attr::CRATE_SPEC,
];

const IMPL_SPECS: &[Spec] = &[attr::CRATE_SPEC];

/// The options of a step's `#[handle(E, ..)]`, after the event type.
const STEP_SPECS: &[Spec] = &[
    Spec {
        name: START,
        kind: Kind::Flag,
        example: "start",
    },
    Spec {
        name: END,
        kind: Kind::Flag,
        example: "end",
    },
    Spec {
        name: CORRELATE,
        kind: Kind::Path,
        example: "correlate = transfer_id",
    },
];

/// Expands `#[process_manager]` on a struct or on its impl block.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    match syn::parse2::<Item>(input.clone()) {
        Ok(Item::Struct(item)) => expand_struct(cx, args, item),
        Ok(Item::Impl(item)) => expand_impl(cx, args, item),
        Ok(other) => {
            cx.error_spanned_by(
                &other,
                "`#[process_manager(aggregates = [..])]` goes on a struct with named fields (the state of an instance), and `#[process_manager]` on that struct's impl block",
            );
            fallback::item(other, cx)
        }
        Err(error) => fallback::unparsed(input, error),
    }
}

fn expand_struct(cx: Ctxt, args: TokenStream, item: ItemStruct) -> TokenStream {
    let args = attr::parse(&cx, ATTR, STRUCT_SPECS, args);
    let aggregates = args.types(AGGREGATES).map(<[Type]>::to_vec);
    match &aggregates {
        Some(list) if list.is_empty() => {
            if let Some(key) = args.key(AGGREGATES) {
                cx.error(
                    key.span(),
                    "`aggregates` of `#[process_manager]` lists at least one aggregate: `aggregates = [Transfer, Account]`",
                );
            }
        }
        Some(_) => {}
        None if args.mentioned(AGGREGATES) => {}
        None => cx.error(
            proc_macro2::Span::call_site(),
            "`#[process_manager]` on a struct needs the aggregates whose events it listens to: `#[process_manager(aggregates = [Transfer, Account])]`",
        ),
    }
    let name = item.ident.clone();
    let concrete = check::no_generics(&cx, ATTR, &name.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement { mut item, fields } = ast::parse_struct(&cx, ATTR, item);
    let Some(aggregates) = aggregates.filter(|list| !list.is_empty() && concrete && named) else {
        return fallback::item(item, cx);
    };
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let ty = quote!(#name);
    let self_ty: Type = parse_quote!(#name);

    check::allow_non_finite(&cx, &fields);
    fields::add_serde_defaults(&mut item, &fields, &krate);
    if let Fields::Named(named) = &mut item.fields {
        named.named.push(parse_quote! {
            #[serde(skip)]
            #[doc(hidden)]
            __fidelis_process: #p::ProcessMeta
        });
    }
    let traits = expand::element_traits(
        &mut item,
        &fields,
        &krate,
        &["Clone", "Debug", "Serialize", "Deserialize"],
    );
    let blank = fields.iter().map(|field| {
        let ident = &field.ident;
        let value = fields::blank_value(field);
        quote!(#ident: #value)
    });
    let defaults = fields::default_fns(&fields);
    let has_fields = fields::has_fields(&p, &ty, &fields);
    let asserts = fields::asserts(&p, &fields, false);
    let no_entities = fields::no_entities(&p, &fields);
    let element = registration::element(
        &p,
        &self_ty,
        &name,
        "ProcessManager",
        quote!(#p::register_process_manager::<Self>(registrar);),
    );
    let submit = registration::submit(&p, &self_ty);
    let aggregate_refs = aggregates
        .iter()
        .map(|a| quote_spanned!(a.span()=> #p::AggregateRef::of::<#a>()));
    let listens = aggregates.iter().map(|a| {
        quote_spanned! {a.span()=>
            #[automatically_derived]
            impl #p::ListensTo<#a> for #ty {}
        }
    });
    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults

            /// Marks this instance complete: it is stored so after this step, and later
            /// events for it are ignored.
            pub fn complete(&mut self) {
                self.__fidelis_process.complete();
            }

            /// Whether this instance is complete.
            pub fn is_complete(&self) -> ::core::primitive::bool {
                self.__fidelis_process.is_complete()
            }

            /// The correlation key of this instance (the value of the start event's
            /// `correlate` field); `None` on a state no start event made.
            pub fn process_key(&self) -> ::core::option::Option<&#p::Identifier> {
                self.__fidelis_process.key()
            }
        }
        #[automatically_derived]
        impl ::core::default::Default for #ty {
            fn default() -> Self {
                Self {
                    #(#blank,)*
                    __fidelis_process: ::core::default::Default::default(),
                }
            }
        }
        #element
        #has_fields
        #[automatically_derived]
        impl #p::ProcessManager for #ty {
            fn aggregates() -> ::std::vec::Vec<#p::AggregateRef> {
                ::std::vec![#(#aggregate_refs),*]
            }
            fn process_meta(&self) -> &#p::ProcessMeta {
                &self.__fidelis_process
            }
            fn process_meta_mut(&mut self) -> &mut #p::ProcessMeta {
                &mut self.__fidelis_process
            }
        }
        #(#listens)*
        #asserts
        #no_entities
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// A step's `#[handle(..)]`, read.
struct StepAttr {
    event: Type,
    start: bool,
    end: bool,
    correlate: Ident,
}

fn expand_impl(cx: Ctxt, args: TokenStream, item: ItemImpl) -> TokenStream {
    let args = attr::parse(&cx, ATTR, IMPL_SPECS, args);
    let item = match parse_impl_item(
        &cx,
        ATTR,
        quote!(#item),
        "`#[process_manager] impl FundsTransfer { … }`",
    ) {
        Ok(item) => item,
        Err(tokens) => return fallback::item(tokens, cx),
    };
    let concrete = check::no_generics(&cx, ATTR, &expand::self_name(&item), &item.generics);
    let element = ast::parse_impl(
        &cx,
        ATTR,
        item,
        &[HANDLE],
        "its steps take `#[handle(Event, correlate = field)]`",
    );
    let ready = concrete && element.name.is_some() && element.item.trait_.is_none();
    if !ready {
        return fallback::item(element.item, cx);
    }
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let ImplElement { item, methods, .. } = element;
    let ty = &item.self_ty;

    let mut routes = Vec::new();
    let mut checks = Vec::new();
    let mut any_start = false;
    for method in &methods {
        let step = step_attr(&cx, method);
        let ok = check::process_step(&cx, method);
        if step.as_ref().is_some_and(|s| s.start) {
            any_start = true;
        }
        let (Some(step), true) = (step, ok) else {
            continue;
        };
        routes.push(route(&p, ty, method, &step));
        let listener_ty = expand::respan(quote!(#ty), step.event.span());
        let event = &step.event;
        let cfgs = &method.cfgs;
        checks.push(quote_spanned! {event.span()=>
            #(#cfgs)*
            const _: () = <#listener_ty as #p::ListensTo<<#event as #p::DomainEvent>::Aggregate>>::ASSERT;
        });
    }
    // An instance is made only by a start event: without one, no step would ever run.
    if !any_start {
        cx.error_spanned_by(
            ty,
            format!(
                "process manager `{}` has no start step: mark the step that begins an instance `#[handle(Event, start, correlate = field)]`",
                expand::self_name(&item)
            ),
        );
    }
    let generated = expand::wrap(quote! {
        #[automatically_derived]
        impl #p::ProcessSteps for #ty {
            fn routes() -> ::std::vec::Vec<#p::ListenerRoute> {
                #[allow(unused_mut)]
                let mut routes = ::std::vec::Vec::new();
                #(#routes)*
                routes
            }
        }
        #(#checks)*
    });
    let errors = cx.into_tokens();
    quote!(#item #generated #errors)
}

/// Reads `#[handle(Event, start, end, correlate = field)]`.
fn step_attr(cx: &Ctxt, method: &Method) -> Option<StepAttr> {
    let parser = |input: syn::parse::ParseStream<'_>| -> syn::Result<(Type, TokenStream)> {
        let event: Type = input.parse()?;
        let rest = if input.is_empty() {
            TokenStream::new()
        } else {
            input.parse::<Token![,]>()?;
            input.parse::<TokenStream>()?
        };
        Ok((event, rest))
    };
    let tokens = match &method.attr.meta {
        syn::Meta::List(list) => list.tokens.clone(),
        _ => TokenStream::new(),
    };
    let Ok((event, rest)) = parser.parse2(tokens) else {
        cx.error_spanned_by(
            &method.attr,
            "a process manager step is `#[handle(Event, correlate = field)]`, with `start` on the step that begins an instance and `end` on the one that ends it",
        );
        return None;
    };
    let options = attr::parse(cx, "#[handle]", STEP_SPECS, rest);
    let correlate = match options.path(CORRELATE) {
        Some(path) => match path.get_ident() {
            Some(ident) => Some(ident.clone()),
            None => {
                cx.error_spanned_by(
                    path,
                    "`correlate` names a field of the event: `correlate = transfer_id`",
                );
                None
            }
        },
        None => {
            if !options.mentioned(CORRELATE) {
                cx.error_spanned_by(
                    &method.attr,
                    format!(
                        "a process manager step names the event field that holds the instance's key: `#[handle({}, correlate = field)]`",
                        expand::type_string(&event)
                    ),
                );
            }
            None
        }
    };
    Some(StepAttr {
        event,
        start: options.key(START).is_some(),
        end: options.key(END).is_some(),
        correlate: correlate?,
    })
}

/// The route of one step: a thunk the runner's `step` is called through.
fn route(p: &TokenStream, ty: &Type, method: &Method, step: &StepAttr) -> TokenStream {
    let ident = &method.sig.ident;
    let method_name = ident.unraw().to_string();
    let thunk = format_ident!("__fidelis_{}", ident.unraw());
    let cfgs = &method.cfgs;
    let event = &step.event;
    let start = step.start;
    let end = step.end;
    let field = &step.correlate;
    let call = if method.sig.asyncness.is_some() {
        quote!(this.#ident(event, ctx).await)
    } else {
        quote!(this.#ident(event, ctx))
    };
    // A struct pattern names the field at the user's span: a field the event lacks is
    // "struct `E` has no field named `x`" on `correlate = x`.
    let key = match event {
        Type::Path(path) if path.qself.is_none() => {
            let path = &path.path;
            quote_spanned! {field.span()=>
                let #path { #field: __fidelis_key, .. } = event;
                #p::CorrelationKey::correlation_key(__fidelis_key)
            }
        }
        _ => quote_spanned! {field.span()=>
            #p::CorrelationKey::correlation_key(&event.#field)
        },
    };
    quote! {
        #(#cfgs)*
        {
            fn #thunk<'a>(
                runner: &'a #p::ProcessRunner<#ty>,
                event: &'a #p::Event<#event>,
                ctx: &'a mut #p::EventHandlerContext,
            ) -> #p::BoxFuture<'a, #p::Result<()>> {
                fn key(event: &#event) -> ::core::option::Option<#p::Identifier> {
                    #key
                }
                fn call<'b>(
                    this: &'b mut #ty,
                    event: &'b #p::Event<#event>,
                    ctx: &'b mut #p::EventHandlerContext,
                ) -> #p::BoxFuture<'b, #p::Result<()>> {
                    ::std::boxed::Box::pin(async move { #p::HandlerReturn::into_result(#call) })
                }
                ::std::boxed::Box::pin(runner.step(event, ctx, #p::Step {
                    method: #method_name,
                    start: #start,
                    end: #end,
                    key,
                    call,
                }))
            }
            routes.push(#p::ListenerRoute::event_handler::<#p::ProcessRunner<Self>, #event>(#method_name, #thunk));
        }
    }
}
