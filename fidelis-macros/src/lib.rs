//! The procedural macros of Fidelis. Use them through `fidelis_core` (its `prelude`
//! re-exports them); the generated code names `::fidelis_core::__private` (or the path
//! given with `crate = …`).
//!
//! Each macro's reference (arguments, `#[field]` options, what it generates, an example) is
//! in `docs/<macro>.md`, shown on the macro's page. The examples are compiled and run as
//! doctests of `fidelis-core`, where the macros can be used (`cfg(doctest)` leaves them out
//! of this crate's doctests).
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

#[cfg_attr(not(doctest), doc = include_str!("../docs/aggregate.md"))]
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::aggregate::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/event.md"))]
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::event::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/event_version.md"))]
#[proc_macro_attribute]
pub fn event_version(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::event_version::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/command.md"))]
#[proc_macro_attribute]
pub fn command(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::command::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/command_handler.md"))]
#[proc_macro_attribute]
pub fn command_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::handler::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/event_handler.md"))]
#[proc_macro_attribute]
pub fn event_handler(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::listener::event_handler(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/entity.md"))]
#[proc_macro_attribute]
pub fn entity(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::entity::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/process_manager.md"))]
#[proc_macro_attribute]
pub fn process_manager(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::process_manager::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/subscriber.md"))]
#[proc_macro_attribute]
pub fn subscriber(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::subscriber::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/projection.md"))]
#[proc_macro_attribute]
pub fn projection(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::projection::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/projector.md"))]
#[proc_macro_attribute]
pub fn projector(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::listener::projector(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/value_object.md"))]
#[proc_macro_attribute]
pub fn value_object(args: TokenStream, input: TokenStream) -> TokenStream {
    expand::value_object::expand(args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/apply.md"))]
#[proc_macro_attribute]
pub fn apply(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::APPLY, args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/invariant.md"))]
#[proc_macro_attribute]
pub fn invariant(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::INVARIANT, args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/handle.md"))]
#[proc_macro_attribute]
pub fn handle(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::HANDLE, args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/on.md"))]
#[proc_macro_attribute]
pub fn on(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::ON, args.into(), input.into()).into()
}

#[cfg_attr(not(doctest), doc = include_str!("../docs/field.md"))]
#[proc_macro_attribute]
pub fn field(args: TokenStream, input: TokenStream) -> TokenStream {
    misplaced::expand(misplaced::FIELD, args.into(), input.into()).into()
}
