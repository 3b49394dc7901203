//! The procedural macros of Fidelis. Use them through `fidelis_core` (its `prelude`
//! re-exports them); the generated code names `::fidelis_core::__private` (or the path
//! given with `crate = …`).
//!
//! Each entry point is thin: parse the arguments and the item into a model (`ast`, `attr`),
//! check it (`check`), and generate code (`expand`) that cannot fail. Every mistake is
//! collected in a `ctxt::Ctxt` and reported at once; on mistakes that stop expansion the
//! item is re-emitted without helper attributes (`fallback`).

mod ast;
mod attr;
mod check;
mod ctxt;
mod expand;
mod fallback;
mod misplaced;
mod symbol;

use proc_macro::TokenStream;

/// An aggregate: `#[aggregate]` or `#[aggregate(event_sourced)]` on a struct with named
/// fields, and `#[aggregate]` on its impl block (`#[apply]`, `#[invariant]` and
/// `#[handle(C)]` / `#[handle(C, create)]` methods).
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::aggregate::expand(args.into(), input.into()).into()
}

/// An event: `#[event(part_of = Account)]` (optional `version = N`, `type_name = "…"`).
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::event::expand(args.into(), input.into()).into()
}

/// A command: `#[command(part_of = Account)]`.
#[proc_macro_attribute]
pub fn command(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::command::expand(args.into(), input.into()).into()
}

/// A command handler: `#[command_handler(part_of = Account)]` on an impl block whose
/// methods are marked `#[handle(Command)]`.
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::handler::expand(args.into(), input.into()).into()
}

/// An event handler: `#[event_handler(part_of = Account)]` or
/// `#[event_handler(aggregates = [A, B])]` on an impl block whose methods are marked
/// `#[handle(Event)]`.
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::listener::event_handler(args.into(), input.into()).into()
}

/// A projection: `#[projection]` on a struct with exactly one `#[field(identifier)]`.
#[proc_macro_attribute]
pub fn projection(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::projection::expand(args.into(), input.into()).into()
}

/// A projector: `#[projector(for = Projection, aggregates = [A, …])]` on an impl block
/// whose methods are marked `#[on(Event)]`.
#[proc_macro_attribute]
pub fn projector(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::listener::projector(args.into(), input.into()).into()
}

/// A value object: `#[value_object]` on a struct with named fields, or on an enum (a field
/// type whose values are its variants: text when every variant is a unit variant, JSON
/// otherwise).
#[proc_macro_attribute]
pub fn value_object(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::value_object::expand(args.into(), input.into()).into()
}

/// `#[apply]` marks an event-sourcing method of an `#[aggregate] impl` block; used anywhere
/// else it is an error.
#[proc_macro_attribute]
pub fn apply(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::APPLY, args.into(), input.into()).into()
}

/// `#[invariant(pre)]` / `#[invariant(post)]` marks an invariant of an `#[aggregate] impl`
/// block; used anywhere else it is an error.
#[proc_macro_attribute]
pub fn invariant(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::INVARIANT, args.into(), input.into()).into()
}

/// `#[handle(C)]` marks a method of an `#[aggregate]`, `#[command_handler]` or
/// `#[event_handler]` impl block; used anywhere else it is an error.
#[proc_macro_attribute]
pub fn handle(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::HANDLE, args.into(), input.into()).into()
}

/// `#[on(E)]` marks a method of a `#[projector]` impl block; used anywhere else it is an
/// error.
#[proc_macro_attribute]
pub fn on(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::ON, args.into(), input.into()).into()
}

/// `#[field(..)]` gives a field's options inside an element struct; used anywhere else it
/// is an error.
#[proc_macro_attribute]
pub fn field(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::FIELD, args.into(), input.into()).into()
}
