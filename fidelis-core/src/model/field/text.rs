//! The rules every text value obeys, whatever its options: no NUL characters (PostgreSQL
//! cannot store them, so memory and SQLite refuse them too, for one behaviour everywhere), and
//! "blank" that includes invisible characters.

use serde_json::Value;

/// The message for text holding a NUL character.
pub(crate) const NUL_MESSAGE: &str = "must not contain NUL characters";

/// Whether `text` shows nothing: empty, or only whitespace and characters that render as
/// nothing (zero-width spaces and joiners, the byte-order mark, soft hyphens, …), so that
/// `"\u{200B}"` does not pass `required`.
pub(crate) fn is_blank(text: &str) -> bool {
    // A visible ASCII first character, the usual case, decides it without decoding.
    if text.as_bytes().first().is_some_and(u8::is_ascii_graphic) {
        return false;
    }
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Unicode's `Default_Ignorable_Code_Point` property (DerivedCoreProperties.txt, Unicode 15):
/// characters that render as nothing unless a font explicitly supports them. Listed by hand
/// because the set is small and stable, and no crate in the tree exposes it.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Whether any string or key inside a JSON value holds a NUL character.
pub(crate) fn json_has_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || json_has_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_text_is_blank() {
        for blank in [
            "",
            " \t\n",
            "\u{200B}",
            "\u{FEFF}\u{200D}",
            "\u{00A0}\u{3000}",
            "\u{E0020}",
        ] {
            assert!(is_blank(blank), "{blank:?} shows nothing");
        }
        for visible in ["a", "\u{200B}a", "é", "\u{1F600}", "-"] {
            assert!(!is_blank(visible), "{visible:?} shows something");
        }
    }

    #[test]
    fn nul_is_found_anywhere_in_json() {
        assert!(json_has_nul(&serde_json::json!({"a": ["x", "y\u{0}"]})));
        assert!(json_has_nul(&serde_json::json!({"k\u{0}": 1})));
        assert!(!json_has_nul(
            &serde_json::json!({"a": ["x", 1, null, true]})
        ));
    }
}
