//! The model the checks and the code generation work on: struct elements with their
//! fields and `#[field(..)]` options, and impl-block elements with their helper-annotated
//! methods. Parsing strips the helper attributes, so the item can be re-emitted as is.

use syn::ext::IdentExt;
use syn::{Attribute, Fields, Ident, ImplItem, ItemImpl, ItemStruct, Meta, Path, Signature, Type};

use crate::attr::{self, Args, Kind, Spec};
use crate::ctxt::Ctxt;
use crate::symbol::*;

/// The options of `#[field(..)]`.
pub const FIELD_SPECS: &[Spec] = &[
    Spec {
        name: IDENTIFIER,
        kind: Kind::Flag,
        example: "identifier",
    },
    Spec {
        name: MAX_LENGTH,
        kind: Kind::Int,
        example: "max_length = 20",
    },
    Spec {
        name: MIN_LENGTH,
        kind: Kind::Int,
        example: "min_length = 1",
    },
    Spec {
        name: MIN_VALUE,
        kind: Kind::Number,
        example: "min_value = 0",
    },
    Spec {
        name: MAX_VALUE,
        kind: Kind::Number,
        example: "max_value = 100",
    },
    Spec {
        name: DECIMAL_PLACES,
        kind: Kind::Int,
        example: "decimal_places = 2",
    },
    Spec {
        name: ALLOW_NON_FINITE,
        kind: Kind::Flag,
        example: "allow_non_finite",
    },
    Spec {
        name: CHOICES,
        kind: Kind::StrList,
        example: "choices = [\"A\", \"B\"]",
    },
    Spec {
        name: DEFAULT,
        kind: Kind::Expr,
        example: "default = <expression>",
    },
    Spec {
        name: REQUIRED,
        kind: Kind::Flag,
        example: "required",
    },
    Spec {
        name: UNIQUE,
        kind: Kind::Flag,
        example: "unique",
    },
];

/// One field of a struct element.
pub struct Field {
    /// Its name.
    pub ident: Ident,
    /// Its type as written.
    pub ty: Type,
    /// Its `#[field(..)]` options.
    pub args: Args,
}

impl Field {
    /// The name as stored and serialized (`r#type` is `type`).
    pub fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// Whether its type is written `f64`, `f32` or an `Option` of one: the fields that may say
    /// `allow_non_finite` (decided on the syntax, because the macro also changes how the field
    /// is serialized, and a type alias cannot be seen through).
    pub fn is_float(&self) -> bool {
        fn float(ty: &Type) -> bool {
            matches!(ty, Type::Path(path) if path.qself.is_none()
                && (path.path.is_ident("f64") || path.path.is_ident("f32")))
        }
        let Type::Path(path) = &self.ty else {
            return false;
        };
        let Some(last) = path.path.segments.last() else {
            return false;
        };
        if float(&self.ty) {
            return true;
        }
        match &last.arguments {
            syn::PathArguments::AngleBracketed(args) if last.ident == "Option" => {
                matches!(args.args.first(), Some(syn::GenericArgument::Type(inner)) if args.args.len() == 1 && float(inner))
            }
            _ => false,
        }
    }

    /// Whether it is `#[field(identifier)]`.
    pub fn is_identifier(&self) -> bool {
        self.args.key(IDENTIFIER).is_some()
    }
}

/// A struct a struct-element macro was put on.
pub struct StructElement {
    /// The struct, without `#[field]` attributes.
    pub item: ItemStruct,
    /// Its named fields (empty when the struct has none, or not named ones).
    pub fields: Vec<Field>,
}

/// Reads a struct element: its named fields and their options. A tuple or unit struct is
/// reported and yields no fields.
pub fn parse_struct(cx: &Ctxt, attr: &str, mut item: ItemStruct) -> StructElement {
    crate::check::serde_attributes(cx, attr, &item);
    let mut fields = Vec::new();
    match &mut item.fields {
        Fields::Named(named) => {
            for field in &mut named.named {
                let args = take_field_args(cx, &mut field.attrs);
                if let Some(ident) = &field.ident {
                    fields.push(Field {
                        ident: ident.clone(),
                        ty: field.ty.clone(),
                        args,
                    });
                }
            }
        }
        Fields::Unnamed(unnamed) => {
            cx.error_spanned_by(
                &*unnamed,
                format!(
                    "`{attr}` needs a struct with named fields, not a tuple struct: write `struct {} {{ name: Type, … }}`",
                    item.ident
                ),
            );
        }
        Fields::Unit => {
            cx.error(
                item.ident.span(),
                format!(
                    "`{attr}` needs a struct with named fields, not a unit struct: write `struct {} {{ name: Type, … }}`",
                    item.ident
                ),
            );
        }
    }
    StructElement { item, fields }
}

fn take_field_args(cx: &Ctxt, attrs: &mut Vec<Attribute>) -> Args {
    let mut args = Args::default();
    let mut kept = Vec::with_capacity(attrs.len());
    for attribute in attrs.drain(..) {
        if !attribute.path().is_ident(FIELD) {
            kept.push(attribute);
            continue;
        }
        match &attribute.meta {
            Meta::List(list) => {
                let parsed = attr::parse(cx, "#[field]", FIELD_SPECS, list.tokens.clone());
                args.extend(cx, "#[field]", parsed);
            }
            other => cx.error_spanned_by(
                other,
                "`#[field]` needs options: `#[field(max_length = 20)]`, `#[field(identifier)]`, …",
            ),
        }
    }
    *attrs = kept;
    args
}

/// One method of an impl element carrying a helper attribute.
pub struct Method {
    /// Which helper (`apply`, `handle`, …).
    pub helper: &'static str,
    /// The helper attribute as written.
    pub attr: Attribute,
    /// The method's signature.
    pub sig: Signature,
    /// The method's `#[cfg(..)]` attributes, repeated on what is generated for it.
    pub cfgs: Vec<Attribute>,
}

/// An impl block an impl-element macro was put on.
pub struct ImplElement {
    /// The block, without helper attributes.
    pub item: ItemImpl,
    /// The last segment of the self type (`AccountCommandHandler`), when it is a plain path.
    pub name: Option<Ident>,
    /// The helper-annotated methods, in order.
    pub methods: Vec<Method>,
}

/// Whether `path` names the helper `name` (`apply`, or `fidelis_core::apply`).
fn is_helper(path: &Path, name: &str) -> bool {
    path.segments
        .last()
        .is_some_and(|segment| segment.ident == name)
        && (path.segments.len() == 1
            || path
                .segments
                .iter()
                .any(|segment| segment.ident.to_string().contains("fidelis")))
}

/// Reads an impl element. `allowed` are the helpers this element takes (`hint` says which,
/// for the message when another one is used).
pub fn parse_impl(
    cx: &Ctxt,
    attr: &str,
    mut item: ItemImpl,
    allowed: &[&'static str],
    hint: &str,
) -> ImplElement {
    if let Some((_, trait_path, _)) = &item.trait_ {
        cx.error_spanned_by(
            trait_path,
            format!(
                "`{attr}` goes on an inherent impl block (`impl Type {{ … }}`), not on a trait impl"
            ),
        );
    }
    let mut methods = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let mut kept = Vec::with_capacity(function.attrs.len());
        let mut found: Option<&'static str> = None;
        for attribute in function.attrs.drain(..) {
            let Some(helper) = METHOD_HELPERS
                .iter()
                .copied()
                .find(|h| is_helper(attribute.path(), h))
            else {
                kept.push(attribute);
                continue;
            };
            if !allowed.contains(&helper) {
                cx.error_spanned_by(
                    &attribute,
                    format!("`#[{helper}]` cannot be used in a `{attr}` impl; {hint}"),
                );
            } else if let Some(first) = found {
                cx.error_spanned_by(
                    &attribute,
                    format!("this method already has `#[{first}]`; a method takes one of `{attr}`'s helper attributes"),
                );
            } else {
                found = Some(helper);
                methods.push(Method {
                    helper,
                    attr: attribute,
                    sig: function.sig.clone(),
                    cfgs: Vec::new(),
                });
            }
        }
        function.attrs = kept;
        if found.is_some()
            && let Some(method) = methods.last_mut()
        {
            method.cfgs = function
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("cfg"))
                .cloned()
                .collect();
        }
    }
    let name = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .map(|segment| segment.ident.clone()),
        other => {
            cx.error_spanned_by(
                other,
                format!("`{attr}` needs an impl block of a named type"),
            );
            None
        }
    };
    ImplElement {
        item,
        name,
        methods,
    }
}
