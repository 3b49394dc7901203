//! `#[aggregate]` / `#[aggregate(event_sourced)]` on a struct.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Fields, Item, ItemStruct, Type, parse_quote};

use crate::ast::{self, FIELD_SPECS, Field};
use crate::attr::{self, Kind, Spec};
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand::{self, fields, registration};
use crate::fallback;
use crate::symbol::*;

const ATTR: &str = "#[aggregate]";

/// The arguments of `#[aggregate]`.
pub const SPECS: &[Spec] = &[
    Spec {
        name: EVENT_SOURCED,
        kind: Kind::Flag,
        example: "event_sourced",
    },
    Spec {
        name: SNAPSHOT_THRESHOLD,
        kind: Kind::Number,
        example: "snapshot_threshold = 500",
    },
    Spec {
        name: FACT_EVENTS,
        kind: Kind::Flag,
        example: "fact_events",
    },
    attr::CRATE_SPEC,
];

/// `#[aggregate]` on a struct or its impl block.
pub fn expand(args: TokenStream, input: TokenStream) -> TokenStream {
    let cx = Ctxt::new();
    let item = match syn::parse2::<Item>(input.clone()) {
        Ok(item) => item,
        Err(error) => return fallback::unparsed(input, error),
    };
    match item {
        Item::Struct(item) => expand_struct(cx, args, item),
        Item::Impl(item) => expand::behaviour::expand(cx, args, item),
        Item::Enum(item) => {
            cx.error(
                item.enum_token.span,
                "`#[aggregate]` cannot be used on an enum: an aggregate is a struct with named fields (`struct Account { … }`)",
            );
            fallback::item(item, cx)
        }
        Item::Union(item) => {
            cx.error(
                item.union_token.span,
                "`#[aggregate]` cannot be used on a union: an aggregate is a struct with named fields (`struct Account { … }`)",
            );
            fallback::item(item, cx)
        }
        other => {
            cx.error_spanned_by(
                &other,
                "`#[aggregate]` goes on a struct with named fields, or on that struct's `impl` block",
            );
            fallback::item(other, cx)
        }
    }
}

fn expand_struct(cx: Ctxt, args: TokenStream, item: ItemStruct) -> TokenStream {
    let args = attr::parse(&cx, ATTR, SPECS, args);
    let krate = expand::krate(&args);
    let p = expand::private(&krate);
    let event_sourced = args.key(EVENT_SOURCED).is_some();
    let snapshot_threshold =
        check::snapshot_threshold(&cx, &args, event_sourced).map(|threshold| {
            quote! {
                const SNAPSHOT_THRESHOLD: ::core::option::Option<::core::primitive::u64> =
                    ::core::option::Option::Some(#threshold);
            }
        });
    let fact_events = args.key(FACT_EVENTS).is_some();
    let name = item.ident.clone();
    let concrete = check::no_generics(&cx, ATTR, &name.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement {
        mut item,
        mut fields,
    } = ast::parse_struct(&cx, ATTR, item);
    if !concrete || !named {
        return fallback::item(item, cx);
    }
    let identifier = check::at_most_one_identifier(&cx, &fields).map(|f| f.ident.clone());

    // The identity: the `#[field(identifier)]` field, a field named `id`, or an added `id`.
    let id_ident = match identifier {
        Some(ident) => ident,
        None => match fields.iter().find(|f| f.ident == "id") {
            Some(field) => field.ident.clone(),
            None => {
                let id: syn::Field = parse_quote! {
                    /// The aggregate's identity.
                    pub id: #krate::Identifier
                };
                if let Fields::Named(named) = &mut item.fields {
                    named.named.insert(0, id);
                }
                let flag = attr::parse(&cx, "#[field]", FIELD_SPECS, quote!(identifier));
                fields.insert(
                    0,
                    Field {
                        ident: parse_quote!(id),
                        ty: parse_quote!(#krate::Identifier),
                        args: flag,
                    },
                );
                parse_quote!(id)
            }
        },
    };
    let id_field = fields.iter().find(|f| f.ident == id_ident);
    let id_ty: Type = id_field.map_or_else(|| parse_quote!(#krate::Identifier), |f| f.ty.clone());

    check::allow_non_finite(&cx, &fields);
    fields::add_serde_defaults(&mut item, &fields, &krate);
    if let Fields::Named(named) = &mut item.fields {
        named.named.push(parse_quote! {
            #[serde(skip)]
            #[doc(hidden)]
            __fidelis_meta: #p::AggregateMeta
        });
    }
    let traits = expand::element_traits(
        &mut item,
        &fields,
        &krate,
        &["Clone", "Debug", "Serialize", "Deserialize"],
    );

    let ty = quote!(#name);
    let self_ty: Type = parse_quote!(#name);
    let storage = if event_sourced {
        quote!(EventStream)
    } else {
        quote!(AggregateRow)
    };
    let blank = fields.iter().map(|field| {
        let ident = &field.ident;
        if *ident == id_ident {
            quote!(#ident: id)
        } else {
            let value = fields::blank_value(field);
            quote!(#ident: #value)
        }
    });
    let defaults = fields::default_fns(&fields);
    let has_fields = fields::has_fields(&p, &ty, &fields);
    let asserts = fields::asserts(&p, &fields, false);
    // `fact_events`: `Fact<Self>` is an event of this aggregate, recorded after each change.
    let (register_facts, facts_impl) = if fact_events {
        let fact_name = format!("{name}Fact");
        (
            quote!(registrar.fact_events::<Self>();),
            quote! {
                #[automatically_derived]
                impl #p::FactEvents for #ty {
                    const FACT_NAME: &'static ::core::primitive::str = #fact_name;
                }
            },
        )
    } else {
        (TokenStream::new(), TokenStream::new())
    };
    let own_entities = fields::own_entities(&p, &fields, &name);
    let element = registration::element(
        &p,
        &self_ty,
        &name,
        "Aggregate",
        quote! {
            registrar.aggregate::<Self>();
            #register_facts
            #[allow(unused_imports)]
            use #p::{CommandsFallback as _, CommandsViaImpl as _};
            if let ::core::option::Option::Some(routes) = (&#p::CommandsProbe::<Self>::new()).command_routes() {
                registrar.aggregate_commands::<Self>(routes);
            }
        },
    );
    let submit = registration::submit(&p, &self_ty);
    let id_ref = quote_spanned!(id_ty.span()=> &self.#id_ident);
    let apply_any = (!event_sourced).then(|| {
        quote! {
            // A state-stored aggregate accepts its events without a state change.
            #[automatically_derived]
            impl<__FidelisEvent: #p::BelongsTo<Self>> #p::Apply<__FidelisEvent> for #ty {
                fn apply(&mut self, _: &__FidelisEvent) {}
            }
        }
    });

    // A state-stored aggregate is a table like a projection: it gets field handles and can
    // be queried. An event-sourced one is a stream; it gets neither, so a query on it is a
    // compile error (`Queryable` is not implemented).
    let (handles, fields_fn, queryable) = if event_sourced {
        (None, None, None)
    } else {
        let (handles, fields_fn) = fields::handles(&krate, &name, &item.vis, "aggregate", &fields);
        let queryable = quote! {
            #[automatically_derived]
            impl #p::Queryable for #ty {
                fn loaded_row(&mut self, version: ::core::primitive::i64) {
                    #p::loaded_aggregate_row(self, version);
                }
            }
        };
        (Some(handles), Some(fields_fn), Some(queryable))
    };

    let generated = expand::wrap(quote! {
        #traits
        #[automatically_derived]
        impl #ty {
            #defaults
            #fields_fn

            /// A new aggregate with a fresh identifier, `default = …` values and
            /// `Default::default()` elsewhere.
            pub fn create_new() -> Self {
                #p::create_new::<Self>()
            }

            /// Raises an event of this aggregate: runs the pre-invariants, applies it,
            /// validates the fields and runs the post-invariants. On failure, the aggregate
            /// and its pending events are exactly as before.
            pub fn raise<__FidelisEvent>(&mut self, event: __FidelisEvent) -> #p::Result<()>
            where
                __FidelisEvent: #p::BelongsTo<Self>,
            {
                #p::raise(self, event)
            }

            /// The version of the aggregate's last event (`-1` when it has none).
            pub fn version(&self) -> ::core::primitive::i64 {
                self.__fidelis_meta.version()
            }
        }

        #element
        #has_fields

        #[automatically_derived]
        impl #p::Persisted for #ty {
            const STORAGE: #p::StorageKind = #p::StorageKind::#storage;
            fn identity(&self) -> #p::Identifier {
                ::core::clone::Clone::clone(#p::Aggregate::id(self))
            }
            fn load<'a>(ctx: &'a #p::Context, id: #p::Identifier) -> #p::BoxFuture<'a, #p::Result<::core::option::Option<Self>>> {
                ::std::boxed::Box::pin(#p::load_aggregate::<Self>(ctx, id))
            }
            fn save<'a>(ctx: &'a mut #p::Context, value: Self) -> #p::BoxFuture<'a, #p::Result<()>> {
                ::std::boxed::Box::pin(#p::save_aggregate::<Self>(ctx, value))
            }
        }

        #[automatically_derived]
        impl #p::Aggregate for #ty {
            const EVENT_SOURCED: ::core::primitive::bool = #event_sourced;
            #snapshot_threshold
            fn id(&self) -> &#p::Identifier {
                #id_ref
            }
            fn blank(id: #p::Identifier) -> Self {
                Self {
                    #(#blank,)*
                    __fidelis_meta: ::core::default::Default::default(),
                }
            }
            fn meta(&self) -> &#p::AggregateMeta {
                &self.__fidelis_meta
            }
            fn meta_mut(&mut self) -> &mut #p::AggregateMeta {
                &mut self.__fidelis_meta
            }
            fn invariants() -> &'static [#p::Invariant<Self>] {
                #[allow(unused_imports)]
                use #p::{InvariantsFallback as _, InvariantsViaImpl as _};
                (&#p::InvariantProbe::<Self>::new()).invariants()
            }
        }

        #apply_any
        #facts_impl
        #queryable
        #asserts
        #own_entities
        #submit
    });
    let errors = cx.into_tokens();
    quote!(#item #handles #generated #errors)
}
