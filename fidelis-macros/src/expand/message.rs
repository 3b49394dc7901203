//! What events and commands share before their own impls: the struct, its fields, the
//! runtime crate and the aggregate they are `part_of`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{Fields, ItemStruct, Path, Type};

use crate::ast;
use crate::attr::Args;
use crate::check;
use crate::ctxt::Ctxt;
use crate::expand;

use crate::symbol::PART_OF;

/// A message struct ready to expand.
pub struct Prepared {
    /// The struct, without `#[field]` attributes.
    pub item: ItemStruct,
    /// Its fields.
    pub fields: Vec<ast::Field>,
    /// The runtime crate.
    pub krate: Path,
    /// The aggregate it is part of.
    pub part_of: Type,
}

/// Reads the struct; on a mistake that stops expansion, returns what to re-emit instead.
pub fn prepare(
    cx: &Ctxt,
    attr: &str,
    args: &Args,
    input: TokenStream,
    what: &str,
) -> Result<Prepared, TokenStream> {
    let item = match syn::parse2::<ItemStruct>(input.clone()) {
        Ok(item) => item,
        Err(_) => {
            cx.error_spanned_by(
                first_tokens(&input),
                format!("`{attr}` goes on a struct with named fields: {what} is a struct"),
            );
            return Err(input);
        }
    };
    let concrete = check::no_generics(cx, attr, &item.ident.to_string(), &item.generics);
    let named = matches!(item.fields, Fields::Named(_));
    let ast::StructElement { item, fields } = ast::parse_struct(cx, attr, item);
    let part_of = args.ty(PART_OF).cloned();
    if !args.mentioned(PART_OF) {
        cx.error(
            proc_macro2::Span::call_site(),
            format!(
                "`{attr}` needs the aggregate it belongs to: `{attr_open}(part_of = Account)]`",
                attr_open = attr.trim_end_matches(']')
            ),
        );
    }
    match part_of {
        Some(part_of) if concrete && named => Ok(Prepared {
            item,
            fields,
            krate: expand::krate(args),
            part_of,
        }),
        _ => Err(item.into_token_stream()),
    }
}

/// The first few tokens of an item (its keyword and name), for an error span.
fn first_tokens(input: &TokenStream) -> TokenStream {
    input
        .clone()
        .into_iter()
        .take_while(|tt| !matches!(tt, proc_macro2::TokenTree::Group(_)))
        .collect()
}
