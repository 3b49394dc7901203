//! Placeholder entry points, replaced by the real front end.
use proc_macro::TokenStream;
macro_rules! passthrough { ($($name:ident),*) => {$(
    #[proc_macro_attribute]
    #[allow(missing_docs)]
    pub fn $name(_args: TokenStream, input: TokenStream) -> TokenStream { input }
)*}; }
passthrough!(aggregate, command, command_handler, event, event_handler, projection, projector, value_object);
