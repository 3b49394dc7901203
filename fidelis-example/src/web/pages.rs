//! The HTML pages and their forms' handlers.

use axum::Form;
use axum::extract::{Path, RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fidelis_core::Identifier;
use maud::Markup;

use super::AppState;
use super::forms::{CommandForm, Input};
use super::read;
use super::rejection::Rejection;
use super::views::{self, Refused};

/// `GET /`: the dashboard.
pub(crate) async fn dashboard(State(state): State<AppState>) -> Response {
    match read::accounts(&state.domain).await {
        Ok(accounts) => views::dashboard(&accounts, None).into_response(),
        Err(error) => error_page(Rejection::of(error)),
    }
}

/// `GET /accounts/{id}`: an account, its forms and its history.
pub(crate) async fn account(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    account_page(&state, &id, None, StatusCode::OK).await
}

/// `POST` of form `F`: processes its command, then shows the account (303, so a reload does
/// not submit it again); a refused command changes nothing and shows the form again with
/// the errors next to its fields.
pub(crate) async fn submit<F: CommandForm>(
    State(state): State<AppState>,
    path: RawPathParams,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let account = path
        .iter()
        .find(|(name, _)| *name == "id")
        .map(|(_, id)| Identifier::new(id));
    let input = Input::from_pairs(pairs);
    let rejection = match F::command(account.clone(), &input) {
        Err(errors) => Rejection::unreadable::<F>(errors),
        Ok(command) => match state.domain.process(command).await {
            Ok(output) => {
                return match F::account_after(account, output) {
                    Some(id) => Redirect::to(&format!("/accounts/{id}")).into_response(),
                    None => Redirect::to("/").into_response(),
                };
            }
            Err(error) => Rejection::of_command::<F>(error),
        },
    };
    let refused = Refused {
        form: F::ID,
        input,
        errors: rejection.errors,
    };
    match account {
        Some(id) => account_page(&state, id.as_str(), Some(&refused), rejection.status).await,
        None => match read::accounts(&state.domain).await {
            Ok(accounts) => (
                rejection.status,
                views::dashboard(&accounts, Some(&refused)),
            )
                .into_response(),
            Err(error) => error_page(Rejection::of(error)),
        },
    }
}

/// Any other path: 404.
pub(crate) async fn not_found() -> Response {
    error_page(Rejection {
        status: StatusCode::NOT_FOUND,
        message: "There is no such page.".to_owned(),
        errors: Default::default(),
    })
}

async fn account_page(
    state: &AppState,
    id: &str,
    refused: Option<&Refused>,
    status: StatusCode,
) -> Response {
    let page: Result<Option<Markup>, _> = async {
        let Some(view) = read::account(&state.domain, id).await? else {
            return Ok(None);
        };
        let history = read::history(&state.domain, id).await?.unwrap_or_default();
        Ok(Some(views::account(&view, &history, refused)))
    }
    .await;
    match page {
        Ok(Some(page)) => (status, page).into_response(),
        Ok(None) => error_page(Rejection::no_account(id)),
        Err(error) => error_page(Rejection::of(error)),
    }
}

fn error_page(rejection: Rejection) -> Response {
    (
        rejection.status,
        views::error(rejection.status.as_u16(), &rejection.message),
    )
        .into_response()
}
