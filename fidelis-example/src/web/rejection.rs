//! Why a request failed, as an HTTP status and messages, for the pages and the API alike.

use axum::http::StatusCode;
use fidelis_core::Error;

use super::forms::{CommandForm, FieldErrors};
use crate::account::AccountError;

/// A request that did not succeed: its status, a one-line message, and for a refused
/// command the errors by field.
#[derive(Debug)]
pub(crate) struct Rejection {
    /// 404, 409, 422 or 500.
    pub(crate) status: StatusCode,
    /// What went wrong, in one line.
    pub(crate) message: String,
    /// The refused command's errors, placed on its form (empty otherwise).
    pub(crate) errors: FieldErrors,
}

impl Rejection {
    /// A refusal of form `F`'s own reading (unreadable fields): 422.
    pub(crate) fn unreadable<F: CommandForm>(errors: FieldErrors) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("the {} form has errors", F::ID),
            errors,
        }
    }

    /// An error of the domain, for form `F`'s command: validation and invariants are 422
    /// with the messages on the form's fields, a closed account or a concurrent change 409,
    /// an unknown account 404; anything else is the server's fault (500, logged).
    pub(crate) fn of_command<F: CommandForm>(error: Error) -> Self {
        if let Some(errors) = error.as_validation() {
            return Self {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                message: error.to_string(),
                errors: FieldErrors::from_validation::<F>(errors),
            };
        }
        let rejection = Self::of(error);
        let errors = if rejection.status.is_server_error() {
            FieldErrors::form("The ledger could not process this; nothing was changed.")
        } else {
            FieldErrors::form(rejection.message.clone())
        };
        Self {
            errors,
            ..rejection
        }
    }

    /// An error of a read or a command, without a form.
    pub(crate) fn of(error: Error) -> Self {
        let status = if error.domain::<AccountError>().is_some() {
            StatusCode::CONFLICT
        } else {
            match &error {
                Error::NotFound { .. } => StatusCode::NOT_FOUND,
                Error::Validation { .. } | Error::Invariant { .. } => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                Error::VersionConflict { .. } => StatusCode::CONFLICT,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            }
        };
        let message = if status.is_server_error() {
            // The details (a database's message, say) go to the log, not to the client.
            tracing::error!(%error, "a web request failed");
            "internal error: the ledger could not answer (see the server's log)".to_owned()
        } else {
            error.to_string()
        };
        Self {
            status,
            message,
            errors: FieldErrors::default(),
        }
    }

    /// No such account: 404.
    pub(crate) fn no_account(id: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: format!("Account `{id}` not found"),
            errors: FieldErrors::default(),
        }
    }
}
