//! The one error type of Fidelis, field validation errors, and the errors of your own domain.
//!
//! # Your own error types
//!
//! Aggregate methods and handlers return [`Result`], whose error is [`Error`]. A business rule
//! that is better told by a type of your own than by a field message (a loan that is already
//! repaid, a limit that is exceeded) can be returned as that type: implement the marker trait
//! [`DomainError`] for it (one line), and `?`, `.into()` and handlers returning
//! `Result<T, YourError>` turn it into [`Error::Domain`]. The caller of `domain.process(..)`
//! gets it back, with its type, through [`Error::domain`] (or [`Error::downcast_ref`]), and
//! `Display` shows its own message.
//!
//! ```
//! use fidelis_core::{DomainError, Error, Result};
//!
//! #[derive(Debug, thiserror::Error, PartialEq)]
//! pub enum LoanError {
//!     #[error("loan {0} is already repaid")]
//!     AlreadyRepaid(String),
//!     #[error("{requested} exceeds the limit of {limit}")]
//!     OverLimit { requested: u64, limit: u64 },
//! }
//!
//! impl DomainError for LoanError {}
//!
//! fn borrow(requested: u64) -> Result<u64> {
//!     if requested > 1_000 {
//!         return Err(LoanError::OverLimit { requested, limit: 1_000 }.into());
//!     }
//!     Ok(requested)
//! }
//!
//! fn repay(loan: &str) -> Result<()> {
//!     let outstanding: std::result::Result<(), LoanError> =
//!         Err(LoanError::AlreadyRepaid(loan.to_owned()));
//!     outstanding?; // `?` converts it
//!     Ok(())
//! }
//!
//! let error = borrow(5_000).unwrap_err();
//! assert_eq!(error.to_string(), "5000 exceeds the limit of 1000");
//! assert_eq!(
//!     error.domain::<LoanError>(),
//!     Some(&LoanError::OverLimit { requested: 5_000, limit: 1_000 })
//! );
//! assert!(matches!(repay("L-1").unwrap_err().domain(), Some(LoanError::AlreadyRepaid(_))));
//! ```
//!
//! Why a marker trait: `Error` is itself a `std::error::Error`, so a blanket
//! `impl<E: std::error::Error> From<E> for Error` would overlap with the standard
//! `impl From<T> for T` and is refused by the compiler. A trait of Fidelis' own has no such
//! overlap. A type that cannot implement it (one from another crate) is wrapped with
//! [`Error::from_domain`].

use std::collections::BTreeMap;
use std::error::Error as StdError;
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

/// The element name of a [`Error::Validation`] converted from a bare [`ValidationError`]
/// (`?` in an aggregate method), before `process` names the command it rejected.
pub(crate) const UNNAMED_ELEMENT: &str = "input";

/// Every failing field as `field: message` pairs, for `Error`'s `Display`:
/// `balance: Insufficient funds; amount: must be positive, must be whole`. Messages on the
/// whole value (field `_`) are shown without a field name.
struct Fields<'a>(&'a ValidationError);

impl fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(no message)");
        }
        for (i, (field, messages)) in self.0.messages.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            if field != "_" {
                write!(f, "{field}: ")?;
            }
            for (j, message) in messages.iter().enumerate() {
                if j > 0 {
                    f.write_str(", ")?;
                }
                f.write_str(message)?;
            }
        }
        Ok(())
    }
}

/// Marks an error type of your own domain as one that Fidelis carries in [`Error::Domain`],
/// so `?` and `.into()` convert it to [`Error`] (see the README, "Runtime in one page").
///
/// ```
/// #[derive(Debug, thiserror::Error)]
/// #[error("account {0} is frozen")]
/// pub struct Frozen(pub String);
///
/// impl fidelis_core::DomainError for Frozen {}
///
/// let error: fidelis_core::Error = Frozen("ACC-1".into()).into();
/// assert_eq!(error.to_string(), "account ACC-1 is frozen");
/// ```
pub trait DomainError: StdError + Send + Sync + 'static {}

impl<E: DomainError> From<E> for Error {
    fn from(error: E) -> Self {
        Error::Domain(Box::new(error))
    }
}

/// Everything that can go wrong in Fidelis. Messages say what was wrong and where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value (command, event, aggregate, projection) has invalid fields, or a method
    /// rejected its input with a [`ValidationError`]. Displayed as
    /// `invalid MakeDeposit: amount: Deposit amount must be positive`.
    #[error("invalid {element}: {}", Fields(errors))]
    Validation {
        /// The element's name (`MakeDeposit`, `Account`, …).
        element: String,
        /// Every failing field.
        errors: ValidationError,
    },

    /// A business rule of an aggregate was broken (an `#[invariant]`, or a field of the state
    /// an event would lead to). Displayed as
    /// `Account: balance: Insufficient funds: balance cannot be negative`.
    #[error("{aggregate}: {}", Fields(errors))]
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

    /// The API was called where it cannot work (a query or an aggregate load inside a
    /// projector, a stored aggregate's history in a test scenario): a mistake in the calling
    /// code, not in the domain's configuration, and never worth retrying.
    #[error("{message}")]
    Usage {
        /// What was called where, and what to do instead.
        message: String,
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

    /// A message broker refused or failed an operation (unreachable, a publish not
    /// acknowledged, a consumer group that cannot be created).
    #[error("broker error ({broker}): {message}")]
    Broker {
        /// The broker's kind and address, without a password (`redis://127.0.0.1:6379`).
        broker: String,
        /// What failed.
        message: String,
        /// The client's error, when there is one.
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
        /// The error the handler returned, when it is kept (see [`Error::handler_failed`]).
        #[source]
        source: Option<Box<Error>>,
    },

    /// An error of your own domain's type (see [`DomainError`]), shown with its own message.
    /// Get it back with [`Error::domain`] or [`Error::downcast_ref`].
    #[error(transparent)]
    Domain(Box<dyn StdError + Send + Sync>),
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
    ///
    /// A handler failure whose cause is a conflict counts too (a projector's row write that
    /// lost a race), so `process` retries it like any other conflict.
    pub fn is_version_conflict(&self) -> bool {
        match self {
            Error::VersionConflict { .. } => true,
            Error::Handler {
                source: Some(source),
                ..
            } => source.is_version_conflict(),
            _ => false,
        }
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

    /// A broker error with a message.
    pub fn broker(broker: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Broker {
            broker: broker.into(),
            message: message.into(),
            source: None,
        }
    }

    /// A broker error wrapping the client's error.
    pub fn broker_with(
        broker: impl Into<String>,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Broker {
            broker: broker.into(),
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// A handler error with a message (for failures of a user's handler or event handler).
    pub fn handler(handler: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Handler {
            handler: handler.into(),
            message: message.into(),
            source: None,
        }
    }

    /// A handler error that keeps the error the handler returned as its
    /// [`source`](std::error::Error::source), so [`Error::domain`] and
    /// [`Error::downcast_ref`] still find a domain error inside it. The message says where
    /// (`on Fidelis.DepositMade.v1`); the source's own message is appended to it.
    ///
    /// ```
    /// use fidelis_core::{DomainError, Error};
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("limit exceeded")]
    /// struct OverLimit;
    /// impl DomainError for OverLimit {}
    ///
    /// let error = Error::handler_failed("Ledger::on_deposit", "on Bank.DepositMade.v1", OverLimit.into());
    /// assert_eq!(error.to_string(), "handler Ledger::on_deposit failed: on Bank.DepositMade.v1: limit exceeded");
    /// assert!(error.domain::<OverLimit>().is_some());
    /// ```
    pub fn handler_failed(handler: impl Into<String>, context: &str, source: Error) -> Self {
        let message = if context.is_empty() {
            source.to_string()
        } else {
            format!("{context}: {source}")
        };
        Error::Handler {
            handler: handler.into(),
            message,
            source: Some(Box::new(source)),
        }
    }

    /// Wraps an error of your domain that does not implement [`DomainError`] (a type from
    /// another crate) as [`Error::Domain`]; types that do convert with `?` or `.into()`.
    ///
    /// ```
    /// let error = fidelis_core::Error::from_domain(std::fmt::Error);
    /// assert!(error.downcast_ref::<std::fmt::Error>().is_some());
    /// ```
    pub fn from_domain(error: impl StdError + Send + Sync + 'static) -> Self {
        Error::Domain(Box::new(error))
    }

    /// The domain error of type `T` this error carries: the error itself when it is an
    /// [`Error::Domain`] of that type, or one kept inside it (a handler's failure). `None`
    /// for other errors and other types.
    ///
    /// ```
    /// # use fidelis_core::{DomainError, Error};
    /// #[derive(Debug, thiserror::Error)]
    /// #[error("account is frozen")]
    /// struct Frozen;
    /// impl DomainError for Frozen {}
    ///
    /// let error: Error = Frozen.into();
    /// assert!(error.domain::<Frozen>().is_some());
    /// assert!(Error::storage("disk full").domain::<Frozen>().is_none());
    /// ```
    pub fn domain<T: DomainError>(&self) -> Option<&T> {
        self.downcast_ref::<T>()
    }

    /// The first error of type `T` in this error's chain: this error, the user's error of
    /// an [`Error::Domain`], then each [`source`](std::error::Error::source) in turn (so a
    /// storage error's `sqlx::Error` is found too).
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        let mut next: Option<&(dyn StdError + 'static)> = Some(self);
        while let Some(error) = next {
            if let Some(found) = error.downcast_ref::<T>() {
                return Some(found);
            }
            // `Domain` is displayed transparently, so its `source()` skips the user's error:
            // step into it explicitly (a handler's kept source is a `Box<Error>`).
            let fidelis = error
                .downcast_ref::<Error>()
                .or_else(|| error.downcast_ref::<Box<Error>>().map(|boxed| &**boxed));
            next = match fidelis {
                Some(Error::Domain(inner)) => Some(inner.as_ref()),
                _ => error.source(),
            };
        }
        None
    }

    /// Whether this is an [`Error::Domain`].
    pub fn is_domain(&self) -> bool {
        matches!(self, Error::Domain(_))
    }

    /// Names the element of a validation error converted from a bare [`ValidationError`]
    /// (whose element is not known where `?` converted it); other errors are unchanged.
    pub(crate) fn name_unnamed_element(self, element: &str) -> Self {
        match self {
            Error::Validation {
                element: unnamed,
                errors,
            } if unnamed == UNNAMED_ELEMENT => Error::Validation {
                element: element.to_owned(),
                errors,
            },
            other => other,
        }
    }

    /// A misuse of the API (see [`Error::Usage`]).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::Usage {
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
/// becomes [`Error::Validation`]. The element is not known where `?` converts it, so it
/// reads `input` until [`Domain::process`](crate::Domain::process) names the command whose
/// handler returned it.
impl From<ValidationError> for Error {
    fn from(errors: ValidationError) -> Self {
        Error::Validation {
            element: UNNAMED_ELEMENT.to_owned(),
            errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("over the limit")]
    struct OverLimit;
    impl DomainError for OverLimit {}

    #[test]
    fn display_names_each_field_and_message() {
        let mut errors = ValidationError::field("amount", "must be positive");
        errors.add("amount", "must be whole");
        errors.add("_", "expected a JSON object");
        errors.add("holder_name", "is required");
        let error = Error::Validation {
            element: "MakeDeposit".into(),
            errors: errors.clone(),
        };
        assert_eq!(
            error.to_string(),
            "invalid MakeDeposit: expected a JSON object; amount: must be positive, must be whole; holder_name: is required"
        );
        // `ValidationError` itself keeps its map-like form.
        assert_eq!(
            errors.to_string(),
            r#"{"_": ["expected a JSON object"], "amount": ["must be positive", "must be whole"], "holder_name": ["is required"]}"#
        );
    }

    #[test]
    fn an_unnamed_validation_error_is_named_once() {
        let error: Error = ValidationError::field("amount", "must be positive").into();
        assert_eq!(error.to_string(), "invalid input: amount: must be positive");
        let named = error.name_unnamed_element("MakeDeposit");
        assert_eq!(
            named.to_string(),
            "invalid MakeDeposit: amount: must be positive"
        );
        let kept = named.name_unnamed_element("Other");
        assert!(matches!(kept, Error::Validation { ref element, .. } if element == "MakeDeposit"));
    }

    #[test]
    fn a_domain_error_is_found_inside_a_handler_failure() {
        let error = Error::handler_failed("Ledger::on_deposit", "", OverLimit.into());
        assert_eq!(
            error.to_string(),
            "handler Ledger::on_deposit failed: over the limit"
        );
        assert_eq!(error.domain::<OverLimit>(), Some(&OverLimit));
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("over the limit"));
        assert!(Error::handler("h", "m").domain::<OverLimit>().is_none());
    }

    #[test]
    fn downcast_ref_walks_the_source_chain() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::storage_with("connecting", io);
        assert_eq!(
            error
                .downcast_ref::<std::io::Error>()
                .map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert!(
            error
                .downcast_ref::<Error>()
                .is_some_and(|e| !e.is_domain())
        );
        assert!(error.downcast_ref::<OverLimit>().is_none());
    }
}
