//! The one error type of Fidelis, and field validation errors.

use std::collections::BTreeMap;
use std::fmt;

/// `Result` with Fidelis' [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failing field of a value, each with its messages, collected at once (Protean style).
///
/// Displayed as `{"amount": ["Deposit amount must be positive"], "holder_name": ["is too long (max 100)"]}`.
///
/// ```
/// use fidelis_core::ValidationError;
/// let mut error = ValidationError::field("amount", "Deposit amount must be positive");
/// error.add("holder_name", "is required");
/// assert_eq!(error.messages()["amount"], vec!["Deposit amount must be positive"]);
/// assert_eq!(error.len(), 2);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ValidationError {
    messages: BTreeMap<String, Vec<String>>,
}

impl ValidationError {
    /// An empty error, to collect messages into.
    pub fn new() -> Self {
        Self::default()
    }

    /// An error with one message for one field.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut error = Self::new();
        error.add(field, message);
        error
    }

    /// Adds a message for a field.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.messages
            .entry(field.into())
            .or_default()
            .push(message.into());
    }

    /// Adds every message of `other`, with each field name prefixed by `prefix.` when a
    /// prefix is given (for embedded values).
    pub fn merge(&mut self, other: ValidationError, prefix: Option<&str>) {
        for (field, messages) in other.messages {
            let field = match prefix {
                Some(prefix) => format!("{prefix}.{field}"),
                None => field,
            };
            self.messages.entry(field).or_default().extend(messages);
        }
    }

    /// Field name → its messages, ordered by field name.
    pub fn messages(&self) -> &BTreeMap<String, Vec<String>> {
        &self.messages
    }

    /// The messages of one field (empty when it has none).
    pub fn messages_for(&self, field: &str) -> &[String] {
        self.messages.get(field).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Whether no field has a message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// How many fields have messages.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// `Ok(())` when empty, the error otherwise.
    pub fn into_result(self) -> Result<(), ValidationError> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (field, messages)) in self.messages.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{field:?}: [")?;
            for (j, message) in messages.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{message:?}")?;
            }
            f.write_str("]")?;
        }
        f.write_str("}")
    }
}

impl std::error::Error for ValidationError {}

/// Everything that can go wrong in Fidelis. Messages say what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value (command, event, aggregate, projection) has invalid fields.
    #[error("invalid {element}: {errors}")]
    Validation {
        /// The element's name (`MakeDeposit`, `Account`, …).
        element: String,
        /// Every failing field.
        errors: ValidationError,
    },

    /// A business rule of an aggregate was broken (an `#[invariant]` or a check in a method).
    #[error("invariant of {aggregate} broken: {errors}")]
    Invariant {
        /// The aggregate's name.
        aggregate: String,
        /// The messages of the failing invariants.
        errors: ValidationError,
    },

    /// An aggregate or a projection row does not exist.
    #[error("{element} `{id}` not found")]
    NotFound {
        /// The element's name.
        element: String,
        /// The identifier that was looked up.
        id: String,
    },

    /// Another unit of work changed the stream (or row) since it was loaded.
    #[error("version conflict on `{stream}`: expected version {expected}, but it is at {actual}")]
    VersionConflict {
        /// The stream (or `table/id` for stored documents).
        stream: String,
        /// The version the unit of work loaded.
        expected: i64,
        /// The version found at commit.
        actual: i64,
    },

    /// The domain or its configuration is wrong; every problem is listed.
    #[error("domain configuration is invalid:\n  - {}", .problems.join("\n  - "))]
    Configuration {
        /// Each problem, as a sentence.
        problems: Vec<String>,
    },

    /// A storage adapter failed.
    #[error("storage error: {message}")]
    Storage {
        /// What failed, and where.
        message: String,
        /// The adapter's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// Stored or received data could not be decoded.
    #[error("cannot decode {what}: {message}")]
    Serialization {
        /// What was being decoded (`event Fidelis.DepositMade.v1 at fidelis::account-1 position 7`).
        what: String,
        /// The decoder's message.
        message: String,
    },

    /// A handler failed with an error of its own.
    #[error("handler {handler} failed: {message}")]
    Handler {
        /// The handler (`AccountSummaryProjector::on_deposit_made`).
        handler: String,
        /// Its message.
        message: String,
    },
}

impl Error {
    /// The field messages of a validation or invariant failure.
    pub fn as_validation(&self) -> Option<&ValidationError> {
        match self {
            Error::Validation { errors, .. } | Error::Invariant { errors, .. } => Some(errors),
            _ => None,
        }
    }

    /// Whether this is a [`Error::VersionConflict`] (worth retrying).
    pub fn is_version_conflict(&self) -> bool {
        matches!(self, Error::VersionConflict { .. })
    }

    /// Whether this is a [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// A storage error with a message.
    pub fn storage(message: impl Into<String>) -> Self {
        Error::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// A storage error wrapping the adapter's error.
    pub fn storage_with(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A handler error with a message (for failures of a user's handler or event handler).
    pub fn handler(handler: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Handler {
            handler: handler.into(),
            message: message.into(),
        }
    }

    /// A configuration error with one problem.
    pub fn configuration(problem: impl Into<String>) -> Self {
        Error::Configuration {
            problems: vec![problem.into()],
        }
    }
}

/// A `ValidationError` returned by a user's method (`deposit` rejecting a negative amount)
/// becomes [`Error::Validation`]; the element name is not known there, so it reads `input`.
impl From<ValidationError> for Error {
    fn from(errors: ValidationError) -> Self {
        Error::Validation {
            element: "input".to_owned(),
            errors,
        }
    }
}
