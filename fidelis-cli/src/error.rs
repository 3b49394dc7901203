//! The errors of the command line and the exit code each gives.

use fidelis_core::Error;

/// The exit codes of the command line (see the crate docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command failed.
    Failure = 1,
    /// Bad arguments, or an unknown aggregate, projection, subscription or event type.
    Usage = 2,
    /// The database cannot be reached or set up.
    Database = 3,
    /// No record with the given id.
    NotFound = 4,
}

/// A command's failure: its message and exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliError {
    /// One line saying what failed.
    pub message: String,
    /// The exit code it gives.
    pub exit: Exit,
}

impl CliError {
    /// A failure with this exit code.
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit,
        }
    }

    /// An unknown name, with the names that exist.
    pub fn unknown(what: &str, name: &str, known: &[impl AsRef<str>]) -> Self {
        let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
        let known = if known.is_empty() {
            "none".to_owned()
        } else {
            known.join(", ")
        };
        Self::new(
            Exit::Usage,
            format!("unknown {what} `{name}`; known: {known}"),
        )
    }

    /// A domain that could not be built: the database unreachable or not set up (its
    /// message names the URL without its password), or a configuration error.
    pub fn building(error: Error) -> Self {
        let exit = match error {
            Error::Storage { .. } => Exit::Database,
            Error::Configuration { .. } => Exit::Usage,
            _ => Exit::Failure,
        };
        Self::new(exit, one_line(&error.to_string()))
    }
}

impl From<Error> for CliError {
    fn from(error: Error) -> Self {
        let exit = match error {
            Error::Usage { .. } => Exit::Usage,
            Error::NotFound { .. } => Exit::NotFound,
            _ => Exit::Failure,
        };
        Self::new(exit, one_line(&error.to_string()))
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// Multi-line messages (a configuration error lists its problems) on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
