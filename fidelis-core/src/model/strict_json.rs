//! Untrusted JSON text, parsed strictly: an object that names a key twice is refused instead
//! of silently keeping the last value (`{"amount": 1, "amount": 1000000}` must not pass review
//! as one thing and execute as another).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why untrusted JSON text was refused.
#[derive(Debug)]
pub(crate) enum StrictJsonError {
    /// Not JSON at all.
    Syntax(serde_json::Error),
    /// An object names a key twice; the path of the repeated key (`owner.name`).
    DuplicateKey(String),
}

/// Parses JSON text into a value, refusing duplicate keys at any depth.
pub(crate) fn parse(text: &str) -> Result<Value, StrictJsonError> {
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = StrictValue {
        path: String::new(),
        duplicate: &mut duplicate,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match (parsed, duplicate) {
        (_, Some(path)) => Err(StrictJsonError::DuplicateKey(path)),
        (Ok(value), None) => Ok(value),
        (Err(error), None) => Err(StrictJsonError::Syntax(error)),
    }
}

/// Builds a `Value` like serde_json's own visitor, recording the first repeated key (and
/// aborting the parse) in `duplicate`.
struct StrictValue<'a> {
    path: String,
    duplicate: &'a mut Option<String>,
}

impl StrictValue<'_> {
    fn child(&mut self, segment: &str) -> StrictValue<'_> {
        let path = if self.path.is_empty() {
            segment.to_owned()
        } else {
            format!("{}.{segment}", self.path)
        };
        StrictValue {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child(&items.len().to_string()))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let path = self.child(&key).path;
                *self.duplicate = Some(path.clone());
                return Err(de::Error::custom(format_args!("`{path}` is given twice")));
            }
            let value = map.next_value_seed(self.child(&key))?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_value_as_serde_json_without_duplicates() {
        let text = r#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text).unwrap(), expected);
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        let at = |text: &str| match parse(text) {
            Err(StrictJsonError::DuplicateKey(path)) => path,
            other => panic!("expected a duplicate key, got {other:?}"),
        };
        assert_eq!(at(r#"{"amount": 1, "amount": 2}"#), "amount");
        assert_eq!(at(r#"{"owner": {"name": "a", "name": "b"}}"#), "owner.name");
        assert_eq!(at(r#"{"list": [{}, {"k": 1, "k": 1}]}"#), "list.1.k");
    }

    #[test]
    fn syntax_errors_stay_syntax_errors() {
        assert!(matches!(parse("{"), Err(StrictJsonError::Syntax(_))));
        assert!(matches!(parse("{} x"), Err(StrictJsonError::Syntax(_))));
    }
}
