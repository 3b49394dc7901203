//! Parsing of macro arguments (`#[event(part_of = Account, version = 2)]`) and of
//! `#[field(..)]` options into [`Args`]: every unknown, duplicated or malformed argument is
//! recorded in the [`Ctxt`] and parsing goes on with the next one.

use proc_macro2::{Literal, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, Lit, LitInt, LitStr, Path, Token, Type};

use crate::ctxt::Ctxt;

/// What an argument accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bare word: `event_sourced`.
    Flag,
    /// `key = Type`.
    Type,
    /// `key = [TypeA, TypeB]`.
    TypeList,
    /// `key = 20` (a non-negative integer).
    Int,
    /// `key = "text"`.
    Str,
    /// `key = some::path`.
    Path,
    /// `key = -1.5` (any number, read as `f64` and kept as written).
    Number,
    /// `key = ["A", "B"]`.
    StrList,
    /// `key = any_expression`.
    Expr,
}

/// One accepted argument of a macro.
pub struct Spec {
    /// Its keyword (from `symbol.rs`).
    pub name: &'static str,
    /// What it accepts.
    pub kind: Kind,
    /// How it is written, for messages: `part_of = Account`.
    pub example: &'static str,
}

/// `crate = path`, accepted by every macro (the path of `fidelis_core`).
pub const CRATE_SPEC: Spec = Spec {
    name: crate::symbol::CRATE,
    kind: Kind::Path,
    example: "crate = fidelis_core",
};

/// `part_of = Aggregate`, of events, commands and handlers.
pub const PART_OF_SPEC: Spec = Spec {
    name: crate::symbol::PART_OF,
    kind: Kind::Type,
    example: "part_of = Account",
};

/// A parsed argument value.
pub enum Value {
    /// A bare word.
    Flag,
    /// A type.
    Type(Type),
    /// A list of types.
    TypeList(Vec<Type>),
    /// An integer.
    Int(LitInt),
    /// A string.
    Str(LitStr),
    /// A path.
    Path(Path),
    /// A number, as `f64` literal tokens and as written (`-0.01`).
    Number(TokenStream, String),
    /// A list of strings.
    StrList(Vec<LitStr>),
    /// An expression.
    Expr(Box<Expr>),
}

/// One parsed argument, with its keyword as written (for spans).
pub struct Arg {
    /// The keyword.
    pub key: Ident,
    /// The value.
    pub value: Value,
}

/// The parsed arguments of one attribute.
#[derive(Default)]
pub struct Args {
    items: Vec<Arg>,
    /// Keywords suggested for typos (`part_off` → `part_of`): not reported again as missing.
    suggested: Vec<&'static str>,
}

impl Args {
    /// The argument named `name`.
    pub fn get(&self, name: &str) -> Option<&Arg> {
        self.items.iter().find(|arg| arg.key.unraw() == name)
    }

    /// Whether `name` was given, or suggested for a typo (so "missing" is not reported too).
    pub fn mentioned(&self, name: &str) -> bool {
        self.get(name).is_some() || self.suggested.contains(&name)
    }

    /// The keyword of `name` when it is given (for flags and spans).
    pub fn key(&self, name: &str) -> Option<&Ident> {
        self.get(name).map(|arg| &arg.key)
    }

    /// A type argument.
    pub fn ty(&self, name: &str) -> Option<&Type> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Type(ty)) => Some(ty),
            _ => None,
        }
    }

    /// A type-list argument.
    pub fn types(&self, name: &str) -> Option<&[Type]> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::TypeList(types)) => Some(types),
            _ => None,
        }
    }

    /// An integer argument.
    pub fn int(&self, name: &str) -> Option<&LitInt> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Int(lit)) => Some(lit),
            _ => None,
        }
    }

    /// A string argument.
    pub fn str(&self, name: &str) -> Option<&LitStr> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Str(lit)) => Some(lit),
            _ => None,
        }
    }

    /// A path argument.
    pub fn path(&self, name: &str) -> Option<&Path> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Path(path)) => Some(path),
            _ => None,
        }
    }

    /// A number argument, as `f64` tokens.
    pub fn number(&self, name: &str) -> Option<&TokenStream> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Number(tokens, _)) => Some(tokens),
            _ => None,
        }
    }

    /// A number argument as written (sign and digits, no suffix): exact for decimals.
    pub fn number_text(&self, name: &str) -> Option<&str> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Number(_, text)) => Some(text),
            _ => None,
        }
    }

    /// A string-list argument.
    pub fn strs(&self, name: &str) -> Option<&[LitStr]> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::StrList(list)) => Some(list),
            _ => None,
        }
    }

    /// An expression argument.
    pub fn expr(&self, name: &str) -> Option<&Expr> {
        match self.get(name).map(|arg| &arg.value) {
            Some(Value::Expr(expr)) => Some(expr),
            _ => None,
        }
    }

    /// Adds the arguments of another attribute of the same kind (`#[field(a)] #[field(b)]`),
    /// reporting duplicates.
    pub fn extend(&mut self, cx: &Ctxt, attr: &str, other: Args) {
        for arg in other.items {
            if self.get(&arg.key.unraw().to_string()).is_some() {
                cx.error(arg.key.span(), duplicate(&arg.key, attr));
            } else {
                self.items.push(arg);
            }
        }
    }
}

fn duplicate(key: &Ident, attr: &str) -> String {
    format!(
        "duplicate argument `{}` for `{attr}`; give it once",
        key.unraw()
    )
}

/// Parses `tokens` (the inside of `#[attr(..)]`) against `specs`. Every mistake is recorded
/// in `cx`; what parsed is returned.
pub fn parse(cx: &Ctxt, attr: &str, specs: &[Spec], tokens: TokenStream) -> Args {
    let parser = |input: ParseStream<'_>| -> syn::Result<Args> {
        let mut args = Args::default();
        while !input.is_empty() {
            match input.call(Ident::parse_any) {
                Err(_) => {
                    cx.error(
                        input.span(),
                        format!("expected an argument of `{attr}`{}", expected(specs)),
                    );
                    skip_value(input)?;
                }
                Ok(key) => {
                    let name = key.unraw().to_string();
                    match specs.iter().find(|spec| spec.name == name) {
                        None => {
                            let suggestion = closest(&name, specs);
                            args.suggested.extend(suggestion);
                            cx.error(key.span(), unknown(&name, attr, specs, suggestion));
                            skip_value(input)?;
                        }
                        Some(spec) => match parse_value(input, &key, spec, attr) {
                            Ok(value) if args.get(&name).is_some() => {
                                let _ = value;
                                cx.error(key.span(), duplicate(&key, attr));
                            }
                            Ok(value) => args.items.push(Arg { key, value }),
                            Err(error) => {
                                cx.syn_error(error);
                                skip_value(input)?;
                            }
                        },
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            if input.parse::<Token![,]>().is_err() {
                cx.error(
                    input.span(),
                    format!("expected `,` between the arguments of `{attr}`"),
                );
                while !input.is_empty() {
                    input.parse::<TokenTree>()?;
                }
            }
        }
        Ok(args)
    };
    match parser.parse2(tokens) {
        Ok(args) => args,
        Err(error) => {
            cx.syn_error(error);
            Args::default()
        }
    }
}

fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<TokenTree>()?;
    }
    Ok(())
}

fn parse_value(input: ParseStream<'_>, key: &Ident, spec: &Spec, attr: &str) -> syn::Result<Value> {
    let name = spec.name;
    if spec.kind == Kind::Flag {
        if input.peek(Token![=]) {
            return Err(syn::Error::new(
                input.span(),
                format!(
                    "`{name}` takes no value in `{attr}`: write `{}`",
                    spec.example
                ),
            ));
        }
        return Ok(Value::Flag);
    }
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            key.span(),
            format!(
                "`{name}` needs a value in `{attr}`: write `{}`",
                spec.example
            ),
        ));
    }
    input.parse::<Token![=]>()?;
    let value_span = input.span();
    let invalid = |_: syn::Error| {
        syn::Error::new(
            value_span,
            format!(
                "invalid value for `{name}` in `{attr}`: write `{}`",
                spec.example
            ),
        )
    };
    let value = match spec.kind {
        Kind::Flag => Value::Flag,
        Kind::Type => Value::Type(input.parse().map_err(invalid)?),
        Kind::TypeList => {
            let list = (|| {
                let content;
                syn::bracketed!(content in input);
                Punctuated::<Type, Token![,]>::parse_terminated(&content)
            })()
            .map_err(invalid)?;
            Value::TypeList(list.into_iter().collect())
        }
        Kind::Int => Value::Int(input.parse().map_err(invalid)?),
        Kind::Str => Value::Str(input.parse().map_err(invalid)?),
        Kind::Path => Value::Path(input.call(Path::parse_mod_style).map_err(invalid)?),
        Kind::Number => {
            let (tokens, text) = parse_number(input).map_err(invalid)?;
            Value::Number(tokens, text)
        }
        Kind::StrList => {
            let list = (|| {
                let content;
                syn::bracketed!(content in input);
                Punctuated::<LitStr, Token![,]>::parse_terminated(&content)
            })()
            .map_err(invalid)?;
            Value::StrList(list.into_iter().collect())
        }
        Kind::Expr => Value::Expr(Box::new(input.parse().map_err(invalid)?)),
    };
    if !input.is_empty() && !input.peek(Token![,]) {
        return Err(syn::Error::new(
            input.span(),
            format!(
                "unexpected tokens after `{name}` in `{attr}`: write `{}`",
                spec.example
            ),
        ));
    }
    Ok(value)
}

/// A number literal, possibly negative, as an `f64` literal (so `min_value = 0` works on
/// float fields and `min_value = 0.5` on integer fields), and as written (so a decimal field
/// compares with `0.1` exactly, not with the nearest f64).
fn parse_number(input: ParseStream<'_>) -> syn::Result<(TokenStream, String)> {
    let negative = input.parse::<Option<Token![-]>>()?.is_some();
    let lit: Lit = input.parse()?;
    let (value, digits): (f64, &str) = match &lit {
        Lit::Int(int) => (int.base10_parse()?, int.base10_digits()),
        Lit::Float(float) => (float.base10_parse()?, float.base10_digits()),
        other => return Err(syn::Error::new(other.span(), "expected a number")),
    };
    let mut literal = Literal::f64_suffixed(value);
    literal.set_span(lit.span());
    Ok(if negative {
        (quote!(-#literal), format!("-{digits}"))
    } else {
        (literal.into_token_stream(), digits.to_owned())
    })
}

fn expected(specs: &[Spec]) -> String {
    if specs.is_empty() {
        return String::from(", which takes no arguments");
    }
    let names: Vec<String> = specs
        .iter()
        .map(|spec| format!("`{}`", spec.example))
        .collect();
    format!("; expected one of {}", names.join(", "))
}

/// The accepted keyword closest to a typo, if any is close.
fn closest(name: &str, specs: &[Spec]) -> Option<&'static str> {
    specs
        .iter()
        .map(|spec| (edit_distance(name, spec.name), spec.name))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn unknown(name: &str, attr: &str, specs: &[Spec], closest: Option<&str>) -> String {
    match closest {
        Some(candidate) => {
            format!("unknown argument `{name}` for `{attr}`; did you mean `{candidate}`?")
        }
        None if specs.is_empty() => format!("`{attr}` takes no arguments; remove `{name}`"),
        None => format!("unknown argument `{name}` for `{attr}`{}", expected(specs)),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}
