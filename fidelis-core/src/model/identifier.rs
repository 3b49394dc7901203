//! Identity of aggregates, projections and events.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The identity of an aggregate, a projection row or an event.
///
/// It wraps any string, so identifiers from other systems fit unchanged; new ones made by
/// [`Identifier::generate`] are UUID v7, so they sort by creation time. The string is shared,
/// so cloning an identifier (into metadata, keys, events) does not copy it.
///
/// ```
/// use fidelis_core::Identifier;
/// let id = Identifier::from("ACC-001");
/// assert_eq!(id.to_string(), "ACC-001");
/// assert_eq!(serde_json::to_string(&id).unwrap(), "\"ACC-001\"");
/// assert!(Identifier::generate() < Identifier::generate());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Identifier(Arc<str>);

impl Identifier {
    /// A new, unique identifier (UUID v7: time-ordered).
    pub fn generate() -> Self {
        let mut buffer = uuid::Uuid::encode_buffer();
        Self(Arc::from(
            &*uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer),
        ))
    }

    /// Wraps an existing string.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Arc::from(value.into()))
    }

    /// The identifier as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the inner string.
    pub fn into_string(self) -> String {
        self.0.to_string()
    }

    /// Whether the identifier shows nothing: empty, or only whitespace and invisible
    /// characters such as zero-width spaces (a required identifier must not be).
    pub fn is_blank(&self) -> bool {
        crate::model::field::is_blank(&self.0)
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Identifier {
    fn from(value: &str) -> Self {
        Self(Arc::from(value))
    }
}

impl From<String> for Identifier {
    fn from(value: String) -> Self {
        Self(Arc::from(value))
    }
}

impl From<&String> for Identifier {
    fn from(value: &String) -> Self {
        Self(Arc::from(value.as_str()))
    }
}

impl From<&Identifier> for Identifier {
    fn from(value: &Identifier) -> Self {
        value.clone()
    }
}

impl From<Identifier> for String {
    fn from(value: Identifier) -> Self {
        value.0.to_string()
    }
}

impl AsRef<str> for Identifier {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Identifier {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Identifier {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}
