//! Runtime support for `#[value_object]` enums: the variant names of unit-only enums, the
//! query value of a variant, and the checks of the fields inside a data-carrying variant.

use serde::Serialize;
use serde_json::Value;

use super::{FieldDef, FieldType};
use crate::model::error::ValidationError;
use crate::model::query::QueryValue;

/// The names of a unit-only enum's variants as serde writes them (`rename` and `rename_all`
/// applied), from one value of each. Called once per enum type (the generated code keeps the
/// result in a `static`), so the names are leaked once, like table names.
pub fn variant_names<T: Serialize>(variants: &[T]) -> &'static [&'static str] {
    let names: Vec<&'static str> = variants
        .iter()
        .filter_map(|variant| match serde_json::to_value(variant) {
            Ok(Value::String(name)) => Some(&*Box::leak(name.into_boxed_str())),
            // `#[serde(skip)]` variants cannot be written, so they are never stored.
            _ => None,
        })
        .collect();
    Box::leak(names.into_boxed_slice())
}

/// A unit-only enum's value in a filter: its name, as stored.
pub fn enum_query_value<T: Serialize>(value: &T) -> QueryValue {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => QueryValue::Text(name),
        // Not reachable for the enums the macro implements this for (unit variants, serde's
        // external representation); a value that cannot be written matches no row.
        Ok(other) => QueryValue::Text(other.to_string()),
        Err(error) => QueryValue::Text(format!("<unserializable: {error}>")),
    }
}

/// Checks one field of a data-carrying variant as a field of its own: required text must not
/// be blank, nested value objects are validated, and so on. Messages go under `name`
/// (the caller prefixes them with the enum field's name).
pub fn check_variant_field<T: FieldType>(
    value: &T,
    name: &'static str,
    rust_type: &'static str,
    errors: &mut ValidationError,
) {
    let def = FieldDef {
        required: !T::OPTIONAL,
        embedded: T::EMBEDDED,
        variants: T::VARIANTS,
        ..FieldDef::new(name, T::KIND, rust_type)
    };
    value.check(&def, errors);
}

/// The message for a stored enum value that names no variant.
#[cfg(any(feature = "sqlite", feature = "postgres", test))]
pub(crate) fn unknown_variant(text: &str, def: &FieldDef) -> Option<String> {
    let variants = def.variants?();
    (!variants.contains(&text)).then(|| {
        format!(
            "`{text}` is not a variant of `{}`; expected one of {variants:?}",
            def.rust_type
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Status {
        OnShelf,
        #[serde(rename = "lent")]
        OnLoan,
        #[serde(skip)]
        #[allow(dead_code)]
        Hidden,
    }

    #[test]
    fn variant_names_are_serde_names() {
        let names = variant_names(&[Status::OnShelf, Status::OnLoan, Status::Hidden]);
        assert_eq!(names, ["ON_SHELF", "lent"]);
        assert_eq!(
            enum_query_value(&Status::OnShelf),
            QueryValue::Text("ON_SHELF".to_owned())
        );
    }

    #[test]
    fn an_unknown_stored_name_is_reported() {
        fn names() -> &'static [&'static str] {
            &["OnShelf", "OnLoan"]
        }
        let def = FieldDef {
            variants: Some(names),
            ..FieldDef::new("status", crate::FieldKind::Enum, "Option<LoanStatus>")
        };
        assert_eq!(unknown_variant("OnLoan", &def), None);
        assert_eq!(
            unknown_variant("Lost", &def).as_deref(),
            Some(
                "`Lost` is not a variant of `Option<LoanStatus>`; expected one of [\"OnShelf\", \"OnLoan\"]"
            )
        );
    }
}
