//! The rules that are not about one argument: method signatures, identifiers, generics.
//! Each records its mistakes in the [`Ctxt`] and says whether the item can be expanded.

use syn::{FnArg, Generics, ItemStruct, ReturnType, Signature, Type};

use crate::ast::{Field, Method};
use crate::ctxt::Ctxt;

/// Auto-registered elements must be concrete types:
///
/// ```text
/// #[event(part_of = Account)] struct Opened<T> { … }   // error
/// ```
pub fn no_generics(cx: &Ctxt, attr: &str, name: &str, generics: &Generics) -> bool {
    if generics.params.is_empty() && generics.where_clause.is_none() {
        return true;
    }
    cx.error_spanned_by(
        generics,
        format!(
            "generic elements are not auto-registered: remove the generic parameters of `{name}` to use `{attr}`, or implement the element traits by hand and register a concrete type with `Domain::builder(..).register::<T>()`"
        ),
    );
    false
}

/// No `#[serde(..)]` on an element or its fields: Fidelis stores, queries, validates and
/// decodes (`from_json`) a field under its Rust name, through its field definition, so an
/// attribute that changes how serde writes or reads the struct would make the stored row
/// disagree with the definition (`rename` compiled, then queries matched nothing and SQL
/// wrote NULL). Each is reported with what to do instead:
///
/// ```text
/// #[serde(rename = "mail")] email: String   // error: rename the field itself
/// ```
pub fn serde_attributes(cx: &Ctxt, attr: &str, item: &ItemStruct) {
    serde_on(cx, attr, &item.attrs, false);
    for field in &item.fields {
        serde_on(cx, attr, &field.attrs, true);
    }
}

fn serde_on(cx: &Ctxt, attr: &str, attrs: &[syn::Attribute], on_field: bool) {
    for attribute in attrs {
        if !attribute.path().is_ident(crate::symbol::SERDE) {
            continue;
        }
        let parsed = attribute.parse_nested_meta(|meta| {
            let key = meta
                .path
                .get_ident()
                .map_or_else(|| "..".to_owned(), ToString::to_string);
            cx.error_spanned_by(&meta.path, serde_message(attr, &key, on_field));
            // Skip the option's value: `= …` or `(…)`.
            if meta.input.peek(syn::Token![=]) {
                meta.value()?.parse::<syn::Expr>()?;
            } else if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                content.parse::<proc_macro2::TokenStream>()?;
            }
            Ok(())
        });
        if parsed.is_err() {
            cx.error_spanned_by(
                attribute,
                format!(
                    "`#[serde(..)]` cannot be used on `{attr}` structs or their fields: Fidelis stores, queries and decodes its fields by their Rust names and field definitions; remove the attribute"
                ),
            );
        }
    }
}

/// Why `#[serde(key)]` cannot be used, and what to write instead.
fn serde_message(attr: &str, key: &str, on_field: bool) -> String {
    let place = if on_field {
        format!("the fields of `{attr}` structs")
    } else {
        format!("`{attr}` structs")
    };
    let why = match (on_field, key) {
        (true, "rename") => {
            "Fidelis stores, queries and validates a field under its Rust name, so a renamed field would be written as NULL and match no query; rename the field itself (`r#type` for a keyword)"
        }
        (true, "alias") => {
            "Fidelis decodes a field by its Rust name only; rename the field itself, and convert old events with a new event version"
        }
        (true, "skip" | "skip_serializing" | "skip_deserializing" | "skip_serializing_if") => {
            "every field of an element is stored and validated, so a skipped field would be lost or stored as NULL; keep derived values out of the element (compute them in a method)"
        }
        (true, "flatten") => {
            "fields are stored one per column; to group fields, make them a `#[value_object]` and use it as the field's type"
        }
        (true, "default") => {
            "write the default as `#[field(default = …)]`, which storage, `create_new` and `from_json` all use"
        }
        (true, "with" | "serialize_with" | "deserialize_with" | "getter" | "borrow" | "bound") => {
            "a field is stored as its type's kind says, which a custom (de)serializer would bypass; use a field type Fidelis knows, or a `#[value_object]`"
        }
        (false, "rename_all" | "rename_all_fields") => {
            "Fidelis stores, queries and validates fields under their Rust names; name the fields as they should be stored"
        }
        (false, "deny_unknown_fields") => {
            "Fidelis decides which keys are accepted: `from_json` already reports every key that is not a field, and stored rows and events must stay readable after a field is removed"
        }
        (false, "rename") => {
            "an element's name comes from its type; rename the type (or give an event `#[event(type_name = \"…\")]`)"
        }
        (false, "default") => "write each field's default as `#[field(default = …)]`",
        (false, "crate") => {
            "the macro sets serde's crate path itself; when the runtime crate is renamed, give the macro its own `crate = path` argument"
        }
        (false, "tag" | "content" | "untagged") => {
            "it adds or removes keys that are not fields, so stored rows would not match the field definitions"
        }
        (
            false,
            "transparent" | "from" | "into" | "try_from" | "remote" | "bound" | "expecting",
        ) => {
            "an element is stored and decoded field by field, as its field definitions say; a different serialized shape would not match them"
        }
        _ => {
            "storage, queries and `from_json` follow the field definitions and names, which it would bypass; remove it"
        }
    };
    format!("`#[serde({key})]` cannot be used on {place}: {why}")
}

/// `snapshot_threshold` counts events, so it is a whole number from 1, and only an
/// event-sourced aggregate replays events (a state-stored one is loaded from its row):
///
/// ```text
/// #[aggregate(snapshot_threshold = 500)] struct Account { … }                // error: not event-sourced
/// #[aggregate(event_sourced, snapshot_threshold = 0)] struct Account { … }   // error: from 1
/// ```
///
/// Gives the threshold when it is given and valid.
pub fn snapshot_threshold(cx: &Ctxt, args: &crate::attr::Args, event_sourced: bool) -> Option<u64> {
    let key = args.key(crate::symbol::SNAPSHOT_THRESHOLD)?;
    if !event_sourced {
        cx.error(
            key.span(),
            "`snapshot_threshold` applies to event-sourced aggregates only: a state-stored aggregate is loaded from its row, with no events to replay; write `#[aggregate(event_sourced, snapshot_threshold = …)]` or remove it",
        );
        return None;
    }
    let tokens = args.number(crate::symbol::SNAPSHOT_THRESHOLD)?;
    let text = args.number_text(crate::symbol::SNAPSHOT_THRESHOLD)?;
    match text.parse::<u64>() {
        Ok(threshold) if threshold >= 1 => Some(threshold),
        _ => {
            // The literal's own span (a leading `-` has the attribute's).
            let span = tokens
                .clone()
                .into_iter()
                .last()
                .map_or_else(|| key.span(), |token| token.span());
            cx.error(
                span,
                format!(
                    "`snapshot_threshold = {text}`: the threshold is a number of events, a whole number from 1 (such as `snapshot_threshold = 500`)"
                ),
            );
            None
        }
    }
}

/// At most one field is `#[field(identifier)]`; the second is reported.
pub fn at_most_one_identifier<'a>(cx: &Ctxt, fields: &'a [Field]) -> Option<&'a Field> {
    let mut identifiers = fields.iter().filter(|field| field.is_identifier());
    let first = identifiers.next();
    for extra in identifiers {
        if let (Some(first), Some(key)) = (first, extra.args.key(crate::symbol::IDENTIFIER)) {
            cx.error(
                key.span(),
                format!(
                    "`{}` is already the identifier; an element has one `#[field(identifier)]`",
                    first.name()
                ),
            );
        }
    }
    first
}

/// `allow_non_finite` is written on a float, as `f64`, `f32` or an `Option` of one:
///
/// ```text
/// #[field(allow_non_finite)] count: i64   // error: integers are always finite
/// ```
pub fn allow_non_finite(cx: &Ctxt, fields: &[Field]) {
    for field in fields {
        if field.args.key(crate::symbol::ALLOW_NON_FINITE).is_some() && !field.is_float() {
            cx.error_spanned_by(
                &field.ty,
                "`allow_non_finite` applies to fields written `f64`, `f32`, `Option<f64>` or `Option<f32>`; other numbers are always finite (remove the option)",
            );
        }
    }
}

/// What a method's parameters must look like, for messages.
struct Shape<'a> {
    attr: &'a str,
    expected: &'a str,
}

impl Shape<'_> {
    fn error(&self, cx: &Ctxt, node: impl quote::ToTokens, what: &str) {
        cx.error_spanned_by(
            node,
            format!(
                "{what}: `{}` methods look like `{}`",
                self.attr, self.expected
            ),
        );
    }
}

fn receiver(sig: &Signature) -> Option<(bool, bool)> {
    match sig.inputs.first() {
        Some(FnArg::Receiver(receiver)) => {
            Some((receiver.reference.is_some(), receiver.mutability.is_some()))
        }
        _ => None,
    }
}

fn typed_params(sig: &Signature) -> Vec<&Type> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

fn no_method_generics(cx: &Ctxt, shape: &Shape<'_>, sig: &Signature) -> bool {
    if sig.generics.params.is_empty() {
        return true;
    }
    shape.error(cx, &sig.generics, "a generic method cannot be registered");
    false
}

/// `#[apply] fn on_x(&mut self, event: &E)`. Returns the event type `E` when one can be
/// read, and whether the signature is right.
pub fn apply(cx: &Ctxt, method: &Method) -> (Option<Type>, bool) {
    let shape = Shape {
        attr: "#[apply]",
        expected: "fn on_event(&mut self, event: &Event)",
    };
    let sig = &method.sig;
    let mut ok = no_method_generics(cx, &shape, sig);
    if let Some(asyncness) = &sig.asyncness {
        shape.error(cx, asyncness, "an `#[apply]` method cannot be `async`");
        ok = false;
    }
    if receiver(sig) != Some((true, true)) {
        shape.error(cx, &sig.inputs, "an `#[apply]` method takes `&mut self`");
        ok = false;
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && !is_unit(ty)
    {
        shape.error(cx, ty, "an `#[apply]` method returns nothing");
        ok = false;
    }
    if let Err(error) = method.attr.meta.require_path_only() {
        let _ = error;
        cx.error_spanned_by(
            &method.attr,
            "`#[apply]` takes no arguments; the event type comes from the parameter: `fn on_event(&mut self, event: &Event)`",
        );
        ok = false;
    }
    let params = typed_params(sig);
    let event = match params.as_slice() {
        [Type::Reference(reference)] if reference.mutability.is_none() => {
            Some((*reference.elem).clone())
        }
        [other] => {
            shape.error(
                cx,
                other,
                "an `#[apply]` method takes the event by shared reference",
            );
            ok = false;
            Some(match other {
                Type::Reference(reference) => (*reference.elem).clone(),
                other => (*other).clone(),
            })
        }
        _ => {
            shape.error(
                cx,
                &sig.inputs,
                "an `#[apply]` method takes exactly one event parameter",
            );
            ok = false;
            None
        }
    };
    (event, ok)
}

/// `#[invariant(pre)] fn x(&self) -> Result<(), ValidationError>`.
pub fn invariant(cx: &Ctxt, method: &Method) -> bool {
    let shape = Shape {
        attr: "#[invariant]",
        expected: "fn name(&self) -> Result<(), ValidationError>",
    };
    let sig = &method.sig;
    let mut ok = no_method_generics(cx, &shape, sig);
    if let Some(asyncness) = &sig.asyncness {
        shape.error(cx, asyncness, "an `#[invariant]` method cannot be `async`");
        ok = false;
    }
    if receiver(sig) != Some((true, false)) {
        shape.error(cx, &sig.inputs, "an `#[invariant]` method takes `&self`");
        ok = false;
    } else if let Some(extra) = sig.inputs.iter().nth(1) {
        shape.error(
            cx,
            extra,
            "an `#[invariant]` method takes no parameters besides `&self`",
        );
        ok = false;
    }
    if let ReturnType::Default = sig.output {
        shape.error(
            cx,
            &sig.ident,
            "an `#[invariant]` method returns `Result<(), ValidationError>`",
        );
        ok = false;
    }
    ok
}

/// `#[handle(C)] fn x(&self, command: C, ctx: &mut Context) -> R`.
pub fn command_handle(cx: &Ctxt, method: &Method) -> bool {
    let shape = Shape {
        attr: "#[handle]",
        expected: "async fn name(&self, command: Command, ctx: &mut Context) -> Result<T>",
    };
    handler_shape(cx, &shape, &method.sig, false, "Context")
}

/// An aggregate's own command handler. It changes the aggregate the command names:
///
/// ```text
/// #[handle(MakeDeposit)] fn deposit(&mut self, command: MakeDeposit) -> Result<()>
/// ```
///
/// or, with `create`, makes a new one (no `self`, and it returns the aggregate):
///
/// ```text
/// #[handle(OpenAccount, create)] fn open(command: OpenAccount) -> Result<Self>
/// ```
pub fn aggregate_handle(cx: &Ctxt, method: &Method, create: bool) -> bool {
    let shape = if create {
        Shape {
            attr: "#[handle(C, create)]",
            expected: "fn name(command: C) -> Result<Self>",
        }
    } else {
        Shape {
            attr: "#[handle(C)]",
            expected: "fn name(&mut self, command: C) -> Result<T>",
        }
    };
    let sig = &method.sig;
    let mut ok = no_method_generics(cx, &shape, sig);
    match (create, receiver(sig)) {
        (false, Some((true, true))) | (true, None) => {}
        (false, _) => {
            shape.error(
                cx,
                &sig.inputs,
                "an aggregate's `#[handle(C)]` method takes `&mut self`, the aggregate the command names (a method that makes a new one is `#[handle(C, create)]` and takes no `self`)",
            );
            ok = false;
        }
        (true, Some(_)) => {
            let node = sig.inputs.first();
            shape.error(
                cx,
                node,
                "a `create` handler makes a new aggregate, so it takes no `self`",
            );
            ok = false;
        }
    }
    let params = typed_params(sig);
    match params.as_slice() {
        [Type::Reference(reference)] => {
            shape.error(cx, reference, "the command is taken by value");
            ok = false;
        }
        [_] => {}
        _ => {
            shape.error(
                cx,
                &sig.inputs,
                "an aggregate's `#[handle]` method takes exactly one parameter, the command",
            );
            ok = false;
        }
    }
    if create && let ReturnType::Default = sig.output {
        shape.error(
            cx,
            &sig.ident,
            "a `create` handler returns the new aggregate, as `Result<Self>`",
        );
        ok = false;
    }
    ok
}

/// `#[on(E)]` / event-handler `#[handle(E)]`:
/// `fn x(&self, event: &Event<E>, ctx: &mut <context>) -> Result<()>`, where the context is
/// the role's: `ProjectorContext<'_>` or `EventHandlerContext`.
pub fn listener(cx: &Ctxt, attr: &str, method: &Method, context: &str) -> bool {
    let expected =
        format!("async fn name(&self, event: &Event<E>, ctx: &mut {context}) -> Result<()>");
    let shape = Shape {
        attr,
        expected: &expected,
    };
    let ok = handler_shape(cx, &shape, &method.sig, true, context);
    if let ReturnType::Type(_, ty) = &method.sig.output
        && !returns_result_unit_or_unit(ty)
    {
        shape.error(
            cx,
            ty,
            &format!("a `{attr}` method returns `Result<()>` (or nothing)"),
        );
        return false;
    }
    ok
}

/// A process manager's step: `#[handle(E, ..)]
/// async fn x(&mut self, event: &Event<E>, ctx: &mut EventHandlerContext) -> Result<()>`. It
/// takes `&mut self`, the state of the instance the event correlates with.
pub fn process_step(cx: &Ctxt, method: &Method) -> bool {
    let context = "EventHandlerContext";
    let shape = Shape {
        attr: "#[process_manager]",
        expected: "async fn name(&mut self, event: &Event<E>, ctx: &mut EventHandlerContext) -> Result<()>",
    };
    let sig = &method.sig;
    let mut ok = no_method_generics(cx, &shape, sig);
    if receiver(sig) != Some((true, true)) {
        shape.error(
            cx,
            &sig.inputs,
            "a process manager step takes `&mut self`, the state of the instance the event belongs to",
        );
        ok = false;
    }
    let params = typed_params(sig);
    let [event, ctx] = params.as_slice() else {
        shape.error(
            cx,
            &sig.inputs,
            "a process manager step takes two parameters besides `&mut self`: the event and the context",
        );
        return false;
    };
    if !matches!(event, Type::Reference(reference) if reference.mutability.is_none()) {
        shape.error(
            cx,
            event,
            "the event is taken by shared reference, as `&Event<E>`",
        );
        ok = false;
    }
    match ctx {
        Type::Reference(reference) if reference.mutability.is_some() => {
            ok &= context_of_role(cx, &shape, &reference.elem, context);
        }
        other => {
            shape.error(
                cx,
                other,
                &format!("the context is taken as `&mut {context}`"),
            );
            ok = false;
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && !returns_result_unit_or_unit(ty)
    {
        shape.error(
            cx,
            ty,
            "a process manager step returns `Result<()>` (or nothing)",
        );
        ok = false;
    }
    ok
}

/// A command has one handler, so one impl block handles it once. Each `#[handle(C)]` of a
/// block passes through [`HandledOnce::first`], which reports a second one for the
/// same `C` at its `C`, naming the method that handles it already. Handlers in different
/// blocks cannot see each other; rustc's "conflicting implementations of trait
/// `OneHandlerPerCommand`" (E0119) reports those, pointed at both `#[handle(C)]`s.
#[derive(Default)]
pub struct HandledOnce {
    /// The commands handled so far: the `#[cfg]`s and command as written, and the method.
    seen: Vec<(String, syn::Ident)>,
}

impl HandledOnce {
    /// Whether `method` is the first of its block to handle `command`. Methods under
    /// different `#[cfg]`s may handle the same command (only one of them is compiled).
    pub fn first(&mut self, cx: &Ctxt, method: &Method, command: &Type) -> bool {
        use quote::ToTokens;
        use syn::spanned::Spanned;
        let cfgs = &method.cfgs;
        let key = format!("{} {}", quote::quote!(#(#cfgs)*), command.to_token_stream());
        if let Some((_, first)) = self.seen.iter().find(|(seen, _)| *seen == key) {
            let written = crate::expand::type_string(command);
            cx.error(
                command.span(),
                format!(
                    "`{written}` is already handled by `{first}`{at} in this impl: a command has exactly one handler, so keep one of the two `#[handle({written})]` methods",
                    at = line_of(first.span())
                        .map(|line| format!(" (line {line})"))
                        .unwrap_or_default(),
                ),
            );
            return false;
        }
        self.seen.push((key, method.sig.ident.clone()));
        true
    }
}

/// The source line of a span, when the compiler says (inside a proc macro only).
fn line_of(span: proc_macro2::Span) -> Option<usize> {
    proc_macro::is_available().then(|| span.unwrap().line())
}

/// Whether a handler method takes `&self`; one without `self` is called on the type, so a
/// handler type whose methods all go without needs no instance.
pub fn takes_self(method: &Method) -> bool {
    receiver(&method.sig).is_some()
}

/// A handler method's parameters: `&self` or none, the message, then `ctx: &mut <context>`.
fn handler_shape(
    cx: &Ctxt,
    shape: &Shape<'_>,
    sig: &Signature,
    by_ref: bool,
    context: &str,
) -> bool {
    let mut ok = no_method_generics(cx, shape, sig);
    if !matches!(receiver(sig), None | Some((true, false))) {
        shape.error(
            cx,
            &sig.inputs,
            &format!(
                "a `{}` method takes `&self`, or no `self` at all (a handler without state)",
                shape.attr
            ),
        );
        ok = false;
    }
    let params = typed_params(sig);
    let [message, ctx] = params.as_slice() else {
        shape.error(
            cx,
            &sig.inputs,
            &format!(
                "a `{}` method takes two parameters (besides `&self`, if it has it)",
                shape.attr
            ),
        );
        return false;
    };
    match (by_ref, message) {
        (true, Type::Reference(reference)) if reference.mutability.is_none() => {}
        (true, other) => {
            shape.error(
                cx,
                other,
                "the event is taken by shared reference, as `&Event<E>`",
            );
            ok = false;
        }
        (false, Type::Reference(reference)) => {
            shape.error(cx, reference, "the command is taken by value");
            ok = false;
        }
        (false, _) => {}
    }
    match ctx {
        Type::Reference(reference) if reference.mutability.is_some() => {
            ok &= context_of_role(cx, shape, &reference.elem, context);
        }
        other => {
            shape.error(
                cx,
                other,
                &format!("the context is taken as `&mut {context}`"),
            );
            ok = false;
        }
    }
    ok
}

/// Each role has its own context type, so that what a role may not do does not compile. A
/// method written with another role's context (`ctx: &mut Context` in a projector) is
/// reported here, at the type, rather than as a type mismatch inside the generated code.
/// A name that is none of the three (an alias) is left to the compiler.
///
/// ```text
/// #[on(DepositMade)] async fn on_deposit(event: &Event<DepositMade>, ctx: &mut Context)
///                                                                         ^^^^^^^ `Context` is a command handler's context: take `&mut ProjectorContext<'_>`
/// ```
fn context_of_role(cx: &Ctxt, shape: &Shape<'_>, written: &Type, context: &str) -> bool {
    const ROLES: &[(&str, &str)] = &[
        ("Context", "a command handler's"),
        ("EventHandlerContext", "an event handler's"),
        ("ProjectorContext", "a projector's"),
    ];
    let Type::Path(path) = written else {
        return true;
    };
    let Some(last) = path.path.segments.last() else {
        return true;
    };
    let expected = context.split('<').next().unwrap_or(context);
    let name = last.ident.to_string();
    match ROLES.iter().find(|(role_context, _)| *role_context == name) {
        Some((_, role)) if name != expected => {
            shape.error(
                cx,
                written,
                &format!("`{name}` is {role} context: take `&mut {context}`"),
            );
            false
        }
        _ => true,
    }
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// `()`, `Result<()>` or `Result<(), E>` (any path ending in `Result`).
fn returns_result_unit_or_unit(ty: &Type) -> bool {
    if is_unit(ty) {
        return true;
    }
    let Type::Path(path) = ty else { return false };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident != "Result" {
        // A type alias: let the compiler judge it.
        return true;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) => match args.args.first() {
            Some(syn::GenericArgument::Type(first)) => is_unit(first),
            _ => false,
        },
        _ => true,
    }
}

/// `#[projection(version = N)]`: versions count from 1 (the table without a suffix); each
/// later version keeps its rows in `<table>_v<N>`.
///
/// ```text
/// #[projection(version = 0)]   // error: versions start at 1
/// ```
pub fn projection_version(cx: &Ctxt, lit: Option<&syn::LitInt>) -> u32 {
    let Some(lit) = lit else { return 1 };
    match lit.base10_parse::<u32>() {
        Ok(version) if version >= 1 => version,
        _ => {
            cx.error(
                lit.span(),
                "`version` of `#[projection]` is a whole number from 1: version 1 is the table without a suffix, `version = 2` keeps its rows in a table of its own (`<table>_v2`)",
            );
            1
        }
    }
}

/// `#[subscriber(stream = "…")]` names the broker stream it reads, so the name is not empty
/// (nor only spaces). Gives the stream when it is given and valid.
///
/// ```text
/// #[subscriber]                 // error: which stream?
/// #[subscriber(stream = "")]    // error: an empty name
/// ```
pub fn subscriber_stream(cx: &Ctxt, args: &crate::attr::Args) -> Option<String> {
    if !args.mentioned(crate::symbol::STREAM) {
        cx.error(
            proc_macro2::Span::call_site(),
            "`#[subscriber]` needs the broker stream it reads: `#[subscriber(stream = \"payflow.webhooks\")]`",
        );
        return None;
    }
    let lit = args.str(crate::symbol::STREAM)?;
    let stream = lit.value();
    if stream.trim().is_empty() {
        cx.error(
            lit.span(),
            "`stream` of `#[subscriber]` names a broker stream, and cannot be empty: `stream = \"payflow.webhooks\"`",
        );
        return None;
    }
    Some(stream)
}

/// A subscriber's `handle`: `async fn handle(&self, message: &BrokerMessage, ctx: &mut
/// EventHandlerContext) -> Result<()>` (or without `self`, or not `async`). The message is
/// borrowed: the engine keeps it to acknowledge or dead-letter it.
///
/// ```text
/// async fn handle(&self, message: BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()>
///                                 ^^^^^^^^^^^^^ taken as `&BrokerMessage`
/// ```
pub fn subscriber_handle(cx: &Ctxt, sig: &Signature) -> bool {
    let shape = Shape {
        attr: "#[subscriber]",
        expected: "async fn handle(&self, message: &BrokerMessage, ctx: &mut EventHandlerContext) -> Result<()>",
    };
    let mut ok = no_method_generics(cx, &shape, sig);
    if !matches!(receiver(sig), None | Some((true, false))) {
        shape.error(
            cx,
            &sig.inputs,
            "a subscriber's `handle` takes `&self`, or no `self` at all (a subscriber without state)",
        );
        ok = false;
    }
    let params = typed_params(sig);
    let [message, ctx] = params.as_slice() else {
        shape.error(
            cx,
            &sig.inputs,
            "a subscriber's `handle` takes two parameters (besides `&self`, if it has it): the message and the context",
        );
        return false;
    };
    let borrowed = match message {
        Type::Reference(reference) if reference.mutability.is_none() => match &*reference.elem {
            Type::Path(path) => path
                .path
                .segments
                .last()
                .is_some_and(|segment| segment.ident == "BrokerMessage"),
            _ => false,
        },
        _ => false,
    };
    if !borrowed {
        shape.error(cx, message, "the message is taken as `&BrokerMessage`");
        ok = false;
    }
    match ctx {
        Type::Reference(reference) if reference.mutability.is_some() => {
            ok &= context_of_role(cx, &shape, &reference.elem, "EventHandlerContext");
        }
        other => {
            shape.error(
                cx,
                other,
                "the context is taken as `&mut EventHandlerContext`",
            );
            ok = false;
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && !returns_result_unit_or_unit(ty)
    {
        shape.error(
            cx,
            ty,
            "a subscriber's `handle` returns `Result<()>` (or nothing)",
        );
        ok = false;
    }
    ok
}
