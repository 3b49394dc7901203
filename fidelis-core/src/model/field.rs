//! Field definitions: the static description of every element's fields, from which
//! validation, storage schemas and documentation are derived.

mod enums;
mod text;

pub(crate) use text::is_blank;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use enums::unknown_variant;
#[doc(hidden)]
pub use enums::{check_variant_field, enum_query_value, variant_names};

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::error::ValidationError;
use crate::model::identifier::Identifier;

pub(crate) mod non_finite;

/// What kind of value a field holds, independent of the Rust type that spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// An [`Identifier`].
    Identifier,
    /// Text.
    String,
    /// A whole number (`i64`, `i32`, …).
    Integer,
    /// A floating-point number (`f64`, `f32`). Finite unless the field says
    /// `#[field(allow_non_finite)]`.
    Float,
    /// An exact decimal number (`rust_decimal::Decimal`, with the `decimal` feature): money.
    /// Stored as `NUMERIC` on PostgreSQL, as its exact text on SQLite, and as a JSON string.
    Decimal,
    /// `true` or `false`.
    Boolean,
    /// A point in time (`DateTime<Utc>`).
    DateTime,
    /// A calendar date (`NaiveDate`).
    Date,
    /// A list of values (`Vec<T>`).
    List,
    /// An embedded value object.
    Embedded,
    /// Free-form JSON (`serde_json::Value`).
    Dict,
    /// An enum whose variants are all unit variants (`#[value_object] enum Status { Open,
    /// Closed }`): stored as text, the variant's name as serde writes it, and checked against
    /// [`FieldDef::variants`] when a row is read.
    Enum,
    /// An enum with data in some variant (`#[value_object] enum Loan { OnShelf, OnLoan {
    /// member: Identifier } }`): stored as JSON in serde's representation, like an embedded
    /// value object.
    DataEnum,
}

impl FieldKind {
    /// Whether a projection may hold this kind (projections are flat tables).
    pub fn is_basic(self) -> bool {
        !matches!(self, FieldKind::Embedded | FieldKind::DataEnum)
    }
}

/// The static definition of one field: its name, kind and the options given in `#[field(..)]`.
#[derive(Clone, Copy, Debug)]
pub struct FieldDef {
    /// The field's name.
    pub name: &'static str,
    /// The field's kind.
    pub kind: FieldKind,
    /// The Rust type as written (for documentation and error messages).
    pub rust_type: &'static str,
    /// Whether a value must be present (non-`Option` fields); required text must not be blank.
    pub required: bool,
    /// Whether this field is the element's identity.
    pub identifier: bool,
    /// Whether values must be unique across rows (projections and state-stored aggregates).
    pub unique: bool,
    /// Whether the field has a `default = …`.
    pub has_default: bool,
    /// Maximum length (characters of text, items of a list).
    pub max_length: Option<usize>,
    /// Minimum length (characters of text, items of a list).
    pub min_length: Option<usize>,
    /// Smallest allowed number.
    pub min_value: Option<f64>,
    /// Largest allowed number.
    pub max_value: Option<f64>,
    /// `min_value` as written in the attribute (`"0.01"`): decimal fields compare with it
    /// exactly instead of through `f64`.
    pub min_value_literal: Option<&'static str>,
    /// `max_value` as written in the attribute, for exact decimal comparison.
    pub max_value_literal: Option<&'static str>,
    /// At most this many digits after the decimal point (decimal fields, trailing zeros not
    /// counted).
    pub decimal_places: Option<u32>,
    /// Whether NaN and ±infinity are accepted (float fields; they are refused otherwise).
    pub allow_non_finite: bool,
    /// The only allowed values, when not empty.
    pub choices: &'static [&'static str],
    /// The fields of an embedded value object.
    pub embedded: Option<fn() -> &'static [FieldDef]>,
    /// The names of a unit-only enum's variants, as serde writes them (fields of kind
    /// [`FieldKind::Enum`]).
    pub variants: Option<fn() -> &'static [&'static str]>,
}

impl FieldDef {
    /// A field with no options; generated code fills the options with struct update syntax.
    pub const fn new(name: &'static str, kind: FieldKind, rust_type: &'static str) -> Self {
        Self {
            name,
            kind,
            rust_type,
            required: true,
            identifier: false,
            unique: false,
            has_default: false,
            max_length: None,
            min_length: None,
            min_value: None,
            max_value: None,
            min_value_literal: None,
            max_value_literal: None,
            decimal_places: None,
            allow_non_finite: false,
            choices: &[],
            embedded: None,
            variants: None,
        }
    }
}

/// A Rust type that can be the type of a field. Implemented for the basic types, `Option`,
/// `Vec`, `serde_json::Value` and every `#[value_object]` struct or enum.
///
/// Your own enum becomes a field type with `#[value_object]`; any other type of yours can
/// implement this trait by hand, choosing the [`FieldKind`] its JSON form matches (a newtype
/// serialized as a string is [`FieldKind::String`]), and [`BasicField`] when a projection
/// may hold it:
///
/// ```
/// use fidelis_core::{BasicField, FieldDef, FieldKind, FieldType, ValidationError};
///
/// /// An ISBN, serialized as its text.
/// #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
/// #[serde(transparent)]
/// pub struct Isbn(String);
///
/// impl FieldType for Isbn {
///     const KIND: FieldKind = FieldKind::String;
///     fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
///         if self.0.chars().filter(char::is_ascii_digit).count() != 13 {
///             errors.add(def.name, "is not an ISBN-13");
///         }
///     }
/// }
/// impl BasicField for Isbn {}
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the type of a Fidelis field",
    label = "not a field type",
    note = "fields may be Identifier, String, integers, f64, Decimal, bool, DateTime<Utc>, NaiveDate, Option<T>, Vec<T>, serde_json::Value, a #[value_object] struct or enum, or a type that implements FieldType"
)]
pub trait FieldType:
    Clone + std::fmt::Debug + PartialEq + serde::Serialize + serde::de::DeserializeOwned
{
    /// The kind of value.
    const KIND: FieldKind;
    /// Whether a value may be absent (`Option`).
    const OPTIONAL: bool = false;
    /// The fields of an embedded value object.
    const EMBEDDED: Option<fn() -> &'static [FieldDef]> = None;
    /// The variant names of a unit-only enum ([`FieldKind::Enum`]).
    const VARIANTS: Option<fn() -> &'static [&'static str]> = None;
    /// For an `#[entity(part_of = A)]` (or a list or option of one): `A`'s name. The element
    /// macros check it at compile time, so an entity is a field of its own aggregate only.
    const ENTITY_OF: Option<&'static str> = None;

    /// Checks the value against the field's options, adding messages under `def.name`.
    fn check(&self, def: &FieldDef, errors: &mut ValidationError);

    // The generated code reaches every trait a field's type needs through these, named as
    // `<T as FieldType>::…` at the field's type: when `T` is not a field type, each use
    // reports the same error at the same place, and the compiler shows it once, instead of
    // one error of its own per derive (`Clone`, `Debug`, `Serialize`, `Deserialize`, …).

    /// `Clone::clone`, for generated code.
    #[doc(hidden)]
    fn __fidelis_clone(&self) -> Self {
        self.clone()
    }
    /// The value as `Debug`, for generated code.
    #[doc(hidden)]
    fn __fidelis_debug(&self) -> &dyn std::fmt::Debug {
        self
    }
    /// `PartialEq::eq`, for generated code.
    #[doc(hidden)]
    fn __fidelis_eq(&self, other: &Self) -> bool {
        self == other
    }
    /// `Serialize::serialize`, for generated `#[serde(serialize_with)]`.
    #[doc(hidden)]
    fn __fidelis_serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(self, serializer)
    }
    /// `Deserialize::deserialize`, for generated `#[serde(deserialize_with)]`.
    #[doc(hidden)]
    fn __fidelis_deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Self, D::Error> {
        <Self as serde::Deserialize>::deserialize(deserializer)
    }
    /// Decodes a JSON value, for generated `from_value`.
    #[doc(hidden)]
    fn __fidelis_from_value(value: serde_json::Value) -> serde_json::Result<Self> {
        serde_json::from_value(value)
    }
}

fn check_length(len: usize, def: &FieldDef, errors: &mut ValidationError) {
    if let Some(max) = def.max_length
        && len > max
    {
        errors.add(def.name, format!("is too long (max {max})"));
    }
    if let Some(min) = def.min_length
        && len < min
    {
        errors.add(def.name, format!("is too short (min {min})"));
    }
}

/// Floats: NaN and ±infinity are refused unless the field opts in (JSON cannot hold them, and
/// an arithmetic overflow in an `#[apply]` must not reach the store), then the bounds.
fn check_float(value: f64, def: &FieldDef, errors: &mut ValidationError) {
    if !value.is_finite() && !def.allow_non_finite {
        errors.add(
            def.name,
            format!(
                "must be a finite number, not {value} (add `#[field(allow_non_finite)]` to accept NaN and infinity)"
            ),
        );
        return;
    }
    check_number(value, def, errors);
}

fn check_number(value: f64, def: &FieldDef, errors: &mut ValidationError) {
    if value.is_nan() {
        return;
    }
    if let Some(min) = def.min_value
        && value < min
    {
        errors.add(def.name, format!("is too small (min {min})"));
    }
    if let Some(max) = def.max_value
        && value > max
    {
        errors.add(def.name, format!("is too large (max {max})"));
    }
}

fn check_text(value: &str, def: &FieldDef, errors: &mut ValidationError) {
    if value.contains('\0') {
        errors.add(def.name, text::NUL_MESSAGE);
        return;
    }
    if def.required && text::is_blank(value) {
        errors.add(def.name, "is required");
        return;
    }
    // Counting characters walks the string; the byte length bounds it from above, so most
    // values are decided without the walk.
    let needs_count = def.max_length.is_some_and(|max| value.len() > max)
        || def
            .min_length
            .is_some_and(|min| value.len() >= min && value.len() < min * 4);
    let length = if needs_count {
        value.chars().count()
    } else {
        value.len()
    };
    check_length(length, def, errors);
    if !def.choices.is_empty() && !def.choices.contains(&value) {
        errors.add(def.name, format!("must be one of {:?}", def.choices));
    }
}

impl FieldType for String {
    const KIND: FieldKind = FieldKind::String;
    fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
        check_text(self, def, errors);
    }
}

impl FieldType for Identifier {
    const KIND: FieldKind = FieldKind::Identifier;
    fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
        check_text(self.as_str(), def, errors);
    }
}

macro_rules! numeric_field {
    ($kind:ident, $check:ident: $($ty:ty),*) => {$(
        impl FieldType for $ty {
            const KIND: FieldKind = FieldKind::$kind;
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
                $check(*self as f64, def, errors);
            }
        }
    )*};
}
numeric_field!(Integer, check_number: i8, i16, i32, i64, u8, u16, u32, u64, usize, isize);
numeric_field!(Float, check_float: f32, f64);

/// The `Decimal` field kind (the `decimal` feature): exact bounds and decimal places.
#[cfg(feature = "decimal")]
mod decimal {
    use rust_decimal::Decimal;

    use super::{FieldDef, FieldKind, FieldType, check_number};
    use crate::model::error::ValidationError;

    /// A bound as written in the attribute, read exactly (`0.01`, `1e3`, `-5`).
    fn parse_literal(text: &str) -> Option<Decimal> {
        text.parse::<Decimal>()
            .ok()
            .or_else(|| Decimal::from_scientific(text).ok())
    }

    fn check_bound(
        value: Decimal,
        literal: Option<&str>,
        fallback: Option<f64>,
        too_small: bool,
        def: &FieldDef,
        errors: &mut ValidationError,
    ) {
        let Some(text) = literal else { return };
        let outside = match parse_literal(text) {
            Some(bound) if too_small => value < bound,
            Some(bound) => value > bound,
            // A bound beyond Decimal's range (±7.9e28) is beyond every value.
            None => {
                let bound = fallback.unwrap_or_default();
                if too_small { bound > 0.0 } else { bound < 0.0 }
            }
        };
        if outside {
            let (what, which) = if too_small {
                ("small", "min")
            } else {
                ("large", "max")
            };
            errors.add(def.name, format!("is too {what} ({which} {text})"));
        }
    }

    impl FieldType for Decimal {
        const KIND: FieldKind = FieldKind::Decimal;
        fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
            if def.min_value_literal.is_none() && def.max_value_literal.is_none() {
                // A hand-written `FieldDef` may give only the f64 bounds.
                use rust_decimal::prelude::ToPrimitive;
                if let Some(value) = self.to_f64() {
                    check_number(value, def, errors);
                }
            }
            check_bound(
                *self,
                def.min_value_literal,
                def.min_value,
                true,
                def,
                errors,
            );
            check_bound(
                *self,
                def.max_value_literal,
                def.max_value,
                false,
                def,
                errors,
            );
            if let Some(places) = def.decimal_places
                && self.normalize().scale() > places
            {
                errors.add(
                    def.name,
                    format!("has too many decimal places (max {places})"),
                );
            }
        }
    }

    impl super::NumericField for Decimal {}
    impl super::DecimalField for Decimal {}
    impl super::BasicField for Decimal {}
}

macro_rules! plain_field {
    ($($ty:ty => $kind:ident),*) => {$(
        impl FieldType for $ty {
            const KIND: FieldKind = FieldKind::$kind;
            fn check(&self, _def: &FieldDef, _errors: &mut ValidationError) {}
        }
    )*};
}
plain_field!(bool => Boolean, DateTime<Utc> => DateTime, NaiveDate => Date);

impl FieldType for serde_json::Value {
    const KIND: FieldKind = FieldKind::Dict;
    fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
        if text::json_has_nul(self) {
            errors.add(def.name, text::NUL_MESSAGE);
        }
    }
}

impl<T: FieldType> FieldType for Option<T> {
    const KIND: FieldKind = T::KIND;
    const OPTIONAL: bool = true;
    const EMBEDDED: Option<fn() -> &'static [FieldDef]> = T::EMBEDDED;
    const VARIANTS: Option<fn() -> &'static [&'static str]> = T::VARIANTS;
    const ENTITY_OF: Option<&'static str> = T::ENTITY_OF;
    fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
        // `def.required` is set on an `Option` only by an explicit `#[field(required)]`: then
        // `None` and blank text are refused, as the SQL adapters' `NOT NULL` column would
        // refuse them, so memory and the databases agree. Otherwise a present value is
        // checked with the field's other options, and blank text is allowed.
        match self {
            Some(value) => value.check(def, errors),
            None if def.required => errors.add(def.name, "is required"),
            None => {}
        }
    }
}

impl<T: FieldType> FieldType for Vec<T> {
    const KIND: FieldKind = FieldKind::List;
    const EMBEDDED: Option<fn() -> &'static [FieldDef]> = T::EMBEDDED;
    const ENTITY_OF: Option<&'static str> = T::ENTITY_OF;
    fn check(&self, def: &FieldDef, errors: &mut ValidationError) {
        check_length(self.len(), def, errors);
        // Items are checked without the list's length and value options, which are about
        // the list itself; embedded items report their own fields under `name.index`.
        for (index, item) in self.iter().enumerate() {
            let mut item_errors = ValidationError::new();
            let item_def = FieldDef {
                name: "",
                ..FieldDef::new("", T::KIND, def.rust_type)
            };
            item.check(&item_def, &mut item_errors);
            for (field, messages) in item_errors.messages() {
                let name = if field.is_empty() {
                    format!("{}.{index}", def.name)
                } else {
                    format!("{}.{index}.{field}", def.name)
                };
                for message in messages {
                    errors.add(name.clone(), message.clone());
                }
            }
        }
    }
}

/// Field types whose values have a length: the only ones that accept `max_length` and
/// `min_length`.
#[diagnostic::on_unimplemented(
    message = "`max_length` and `min_length` do not apply to a field of type `{Self}`",
    label = "this field has no length",
    note = "length options apply to String, Identifier and Vec<T> fields (or an Option of one)"
)]
pub trait LengthField {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}
impl LengthField for String {}
impl LengthField for Identifier {}
impl<T> LengthField for Vec<T> {}
impl<T: LengthField> LengthField for Option<T> {}

/// Field types that are numbers: the only ones that accept `min_value` and `max_value`.
#[diagnostic::on_unimplemented(
    message = "`min_value` and `max_value` do not apply to a field of type `{Self}`",
    label = "this field is not a number",
    note = "value bounds apply to integer, f64 and Decimal fields (or an Option of one)"
)]
pub trait NumericField {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}
macro_rules! numeric_marker { ($($ty:ty),*) => {$(impl NumericField for $ty {})*}; }
numeric_marker!(i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, f32, f64);
impl<T: NumericField> NumericField for Option<T> {}

/// Field types that are exact decimals: the only ones that accept `decimal_places`.
#[diagnostic::on_unimplemented(
    message = "`decimal_places` does not apply to a field of type `{Self}`",
    label = "this field is not a Decimal",
    note = "`decimal_places` applies to rust_decimal::Decimal fields (or Option<Decimal>), with fidelis-core's `decimal` feature"
)]
pub trait DecimalField {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}
impl<T: DecimalField> DecimalField for Option<T> {}

/// Field types that can be restricted to `choices = [..]`: text.
#[diagnostic::on_unimplemented(
    message = "`choices` does not apply to a field of type `{Self}`",
    label = "this field is not text",
    note = "`choices` applies to String fields (or Option<String>); for a fixed set of values, use a unit-only `#[value_object]` enum, whose variants are its only values"
)]
pub trait TextField {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}
impl TextField for String {}
impl<T: TextField> TextField for Option<T> {}

/// Field types that can be a projection's or aggregate's identifier.
#[diagnostic::on_unimplemented(
    message = "a field of type `{Self}` cannot be an identifier",
    label = "not an identifier type",
    note = "identifier fields must be Identifier, String or an integer"
)]
pub trait IdentityField {
    /// The value as the identity string used by storage.
    fn identity(&self) -> Identifier;
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}
impl IdentityField for Identifier {
    fn identity(&self) -> Identifier {
        self.clone()
    }
}
impl IdentityField for String {
    fn identity(&self) -> Identifier {
        Identifier::new(self.clone())
    }
}
macro_rules! int_identity { ($($ty:ty),*) => {$(
    impl IdentityField for $ty {
        fn identity(&self) -> Identifier { Identifier::new(self.to_string()) }
    }
)*}; }
int_identity!(i32, i64, u32, u64);

/// Field types a projection may hold: flat values a database column can store.
#[diagnostic::on_unimplemented(
    message = "projection fields must be basic types, and `{Self}` is not",
    label = "not a basic field type",
    note = "projections are flat tables: use Identifier, String, integers, f64, Decimal, bool, DateTime<Utc>, NaiveDate, a unit-only #[value_object] enum, Option<T> or Vec<T> of those, or serde_json::Value; an enum with data in its variants is not a column"
)]
pub trait BasicField {
    /// Names the trait in generated compile-time checks (`<T as Trait>::ASSERT`), which
    /// report a missing impl without pointing into Fidelis' internals.
    #[doc(hidden)]
    const ASSERT: () = ();
}
macro_rules! basic_marker { ($($ty:ty),*) => {$(impl BasicField for $ty {})*}; }
basic_marker!(
    Identifier,
    String,
    bool,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
    isize,
    f32,
    f64,
    DateTime<Utc>,
    NaiveDate,
    serde_json::Value
);
impl<T: BasicField> BasicField for Option<T> {}
impl<T: BasicField> BasicField for Vec<T> {}

/// Checks every field of a value against its definition and collects all failures.
pub(crate) fn check_field<T: FieldType>(value: &T, def: &FieldDef, errors: &mut ValidationError) {
    value.check(def, errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_errors(value: &str, def: FieldDef) -> Vec<String> {
        let mut errors = ValidationError::new();
        value.to_owned().check(&def, &mut errors);
        errors.messages_for("name").to_vec()
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        let def = FieldDef::new("name", FieldKind::String, "String");
        let max3 = FieldDef {
            max_length: Some(3),
            ..def
        };
        let min4 = FieldDef {
            min_length: Some(4),
            ..def
        };
        assert!(
            text_errors("ééé", max3).is_empty(),
            "3 characters in 6 bytes"
        );
        assert_eq!(text_errors("éééé", max3), ["is too long (max 3)"]);
        assert_eq!(text_errors("ééé", min4), ["is too short (min 4)"]);
        assert!(text_errors("éééé", min4).is_empty());
        assert_eq!(text_errors("abc", min4), ["is too short (min 4)"]);
        assert!(text_errors("abcdefghijklmnop", min4).is_empty());
    }
}
