//! The JSON API: the same reads and forms as the pages.
//!
//! Errors are `{"error": "…"}`; a refused command adds `"fields": {"amount": ["…"]}` (by the
//! form's field names) and, for errors about no field of the form, `"form": ["…"]`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fidelis_core::Identifier;
use serde_json::json;

use super::AppState;
use super::forms::{After, CommandForm, Input};
use super::read;
use super::rejection::Rejection;

/// `GET /api/accounts`: every account of the dashboard.
pub(crate) async fn accounts(State(state): State<AppState>) -> Response {
    match read::accounts(&state.domain).await {
        Ok(accounts) => Json(json!({ "accounts": accounts })).into_response(),
        Err(error) => failure(Rejection::of(error)),
    }
}

/// `GET /api/accounts/{id}`: one account.
pub(crate) async fn account(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match read::account(&state.domain, &id).await {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => failure(Rejection::no_account(&id)),
        Err(error) => failure(Rejection::of(error)),
    }
}

/// `GET /api/accounts/{id}/events`: its history, oldest first.
pub(crate) async fn events(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match read::history(&state.domain, &id).await {
        Ok(Some(events)) => Json(json!({ "events": events })).into_response(),
        Ok(None) => failure(Rejection::no_account(&id)),
        Err(error) => failure(Rejection::of(error)),
    }
}

/// `GET /api/transfers/{id}`: a transfer and where it stands.
pub(crate) async fn transfer(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    match read::transfer(&state.domain, &id).await {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => failure(Rejection {
            status: StatusCode::NOT_FOUND,
            message: format!("Transfer `{id}` not found"),
            errors: Default::default(),
        }),
        Err(error) => failure(Rejection::of(error)),
    }
}

/// `POST` of form `F`'s fields as a JSON object: 201 with the account opened or the
/// transfer initiated (where it stands), or 200 with the account after the movement; 422
/// with the errors by field, and nothing changed.
pub(crate) async fn submit<F: CommandForm>(
    State(state): State<AppState>,
    path: RawPathParams,
    body: Bytes,
) -> Response {
    let account = path
        .iter()
        .find(|(name, _)| *name == "id")
        .map(|(_, id)| Identifier::new(id));
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": format!("the body is not JSON: {error}") })),
            )
                .into_response();
        }
    };
    let mut input = match Input::from_json(value) {
        Ok(input) => input,
        Err(errors) => return failure(Rejection::unreadable::<F>(errors)),
    };
    if let Err(error) = F::resolve(&state.domain, account.as_ref(), &mut input).await {
        return failure(Rejection::of_command::<F>(error));
    }
    let command = match F::command(account.clone(), &input) {
        Ok(command) => command,
        Err(errors) => return failure(Rejection::unreadable::<F>(errors)),
    };
    match state.domain.process(command).await {
        Ok(output) => {
            let status = if F::CREATES {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            match F::after(account, output) {
                After::Account(None) => StatusCode::NO_CONTENT.into_response(),
                After::Account(Some(id)) => match read::account(&state.domain, id.as_str()).await {
                    Ok(Some(view)) => (status, Json(view)).into_response(),
                    Ok(None) => (status, Json(json!({ "id": id.as_str() }))).into_response(),
                    Err(error) => failure(Rejection::of(error)),
                },
                After::Transfer { transfer, .. } => {
                    match read::transfer(&state.domain, transfer.as_str()).await {
                        Ok(Some(view)) => (status, Json(view)).into_response(),
                        // Not readable yet (a store that lags): its id at least.
                        Ok(None) => {
                            (status, Json(json!({ "id": transfer.as_str() }))).into_response()
                        }
                        Err(error) => failure(Rejection::of(error)),
                    }
                }
            }
        }
        Err(error) => failure(Rejection::of_command::<F>(error)),
    }
}

fn failure(rejection: Rejection) -> Response {
    let mut body = json!({ "error": rejection.message });
    if rejection.status == StatusCode::UNPROCESSABLE_ENTITY {
        body["fields"] = json!(rejection.errors.fields);
        if !rejection.errors.form.is_empty() {
            body["form"] = json!(rejection.errors.form);
        }
    }
    (rejection.status, Json(body)).into_response()
}
