//! How a float field that says `#[field(allow_non_finite)]` is written: JSON has no NaN or
//! infinity (serde_json writes them as `null`, which then fails every later read), so a
//! non-finite value is written as the string Rust's `Display` gives it (`"NaN"`, `"inf"`,
//! `"-inf"`), and a finite one as a number, as usual. The macros put
//! `#[serde(with = "…::__private::non_finite")]` on such fields; the SQL adapters read and write
//! the same strings in float columns.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// The JSON form of a float: a number when finite, else its name.
#[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
pub(crate) fn to_json(value: f64) -> Value {
    match serde_json::Number::from_f64(value) {
        Some(number) => Value::Number(number),
        None => Value::String(value.to_string()),
    }
}

/// A non-finite float from its name (`NaN`, `inf`, `-inf`; also `infinity`, any case).
pub(crate) fn parse_name(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|value| !value.is_finite())
}

/// A float written as a number, or as the name of a non-finite value.
struct Float(f64);

impl Serialize for Float {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            serializer.serialize_f64(self.0)
        } else {
            serializer.collect_str(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FloatVisitor;
        impl Visitor<'_> for FloatVisitor {
            type Value = Float;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number, or \"NaN\", \"inf\" or \"-inf\"")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Float, E> {
                Ok(Float(value))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Float, E> {
                Ok(Float(value as f64))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Float, E> {
                Ok(Float(value as f64))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Float, E> {
                parse_name(text)
                    .map(Float)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_any(FloatVisitor)
    }
}

/// The field types `allow_non_finite` applies to.
pub trait NonFiniteFloat: Sized {
    /// Writes the value.
    fn serialize_float<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    /// Reads the value.
    fn deserialize_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

impl NonFiniteFloat for f64 {
    fn serialize_float<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Float(*self).serialize(serializer)
    }
    fn deserialize_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Float::deserialize(deserializer).map(|float| float.0)
    }
}

impl NonFiniteFloat for f32 {
    fn serialize_float<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Float(f64::from(*self)).serialize(serializer)
    }
    #[allow(clippy::cast_possible_truncation)]
    fn deserialize_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Float::deserialize(deserializer).map(|float| float.0 as f32)
    }
}

impl<T: NonFiniteFloat> NonFiniteFloat for Option<T> {
    fn serialize_float<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Inner<'a, T>(&'a T);
        impl<T: NonFiniteFloat> Serialize for Inner<'_, T> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.0.serialize_float(serializer)
            }
        }
        match self {
            Some(value) => serializer.serialize_some(&Inner(value)),
            None => serializer.serialize_none(),
        }
    }
    fn deserialize_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Inner<T>(T);
        impl<'de, T: NonFiniteFloat> Deserialize<'de> for Inner<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                T::deserialize_float(deserializer).map(Inner)
            }
        }
        Option::<Inner<T>>::deserialize(deserializer).map(|inner| inner.map(|inner| inner.0))
    }
}

/// `#[serde(with = "…")]`: writes the field.
pub fn serialize<T: NonFiniteFloat, S: Serializer>(
    value: &T,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.serialize_float(serializer)
}

/// `#[serde(with = "…")]`: reads the field.
pub fn deserialize<'de, T: NonFiniteFloat, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    T::deserialize_float(deserializer)
}

/// Reads the field from a JSON value (`from_json` of commands and events).
pub fn from_value<T: NonFiniteFloat>(value: Value) -> serde_json::Result<T> {
    T::deserialize_float(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.5, -0.0] {
            let json = serde_json::to_value(Float(value)).unwrap();
            let back: f64 = from_value(json).unwrap();
            assert_eq!(back.to_bits(), value.to_bits(), "{value}");
        }
        assert_eq!(to_json(f64::NEG_INFINITY), Value::String("-inf".into()));
        assert!(from_value::<f64>(Value::String("1.5".into())).is_err());
        assert_eq!(from_value::<Option<f64>>(Value::Null).unwrap(), None);
    }
}
