//! The `Element` impl every registered element gets, and its `inventory` submission.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Ident, Type};

/// `impl Element for #ty { NAME, KIND, register }`.
pub fn element(
    p: &TokenStream,
    ty: &Type,
    name: &Ident,
    kind: &str,
    register: TokenStream,
) -> TokenStream {
    let kind = Ident::new(kind, proc_macro2::Span::call_site());
    let name = name.to_string();
    quote! {
        #[automatically_derived]
        impl #p::Element for #ty {
            const NAME: &'static ::core::primitive::str = #name;
            const KIND: #p::ElementKind = #p::ElementKind::#kind;
            fn register(registrar: &mut #p::Registrar) {
                #register
            }
        }
    }
}

/// Submits the element to `inventory`, so `Domain::builder(..)` discovers it.
pub fn submit(p: &TokenStream, ty: &Type) -> TokenStream {
    quote! {
        #p::inventory::submit! {
            #p::AutoRegistration {
                module_path: ::core::module_path!(),
                register: <#ty as #p::Element>::register,
            }
        }
    }
}
