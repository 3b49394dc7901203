//! The HTML pages and their forms' handlers.

use axum::Form;
use axum::extract::{Path, Query, RawPathParams, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use fidelis_core::Identifier;
use maud::Markup;
use serde::Deserialize;

use super::AppState;
use super::forms::{After, CommandForm, Input};
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

/// The query of an account's page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AccountQuery {
    /// A transfer to show the outcome of (where the transfer form redirects to).
    transfer: Option<String>,
}

/// `GET /accounts/{id}`: an account, its forms and its history; with `?transfer=<id>`, where
/// that transfer of this account stands too.
pub(crate) async fn account(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<AccountQuery>,
) -> Response {
    account_page(&state, &id, None, StatusCode::OK, query.transfer.as_deref()).await
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
    let mut input = Input::from_pairs(pairs);
    let reading = match F::resolve(&state.domain, account.as_ref(), &mut input).await {
        Ok(()) => F::command(account.clone(), &input).map_err(Rejection::unreadable::<F>),
        Err(error) => Err(Rejection::of_command::<F>(error)),
    };
    let rejection = match reading {
        Err(rejection) => rejection,
        Ok(command) => match state.domain.process(command).await {
            Ok(output) => {
                let to = match F::after(account, output) {
                    After::Account(Some(id)) => format!("/accounts/{id}"),
                    After::Transfer {
                        account: Some(id),
                        transfer,
                    } => format!("/accounts/{id}?transfer={transfer}"),
                    After::Account(None) | After::Transfer { account: None, .. } => "/".to_owned(),
                };
                return Redirect::to(&to).into_response();
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
        Some(id) => account_page(&state, id.as_str(), Some(&refused), rejection.status, None).await,
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
    transfer: Option<&str>,
) -> Response {
    let page: Result<Option<Markup>, _> = async {
        let Some(view) = read::account(&state.domain, id).await? else {
            return Ok(None);
        };
        let history = read::history(&state.domain, id).await?.unwrap_or_default();
        let transfer = match transfer {
            // Only a transfer of this account is shown on its page.
            Some(transfer) => read::transfer(&state.domain, transfer)
                .await?
                .filter(|transfer| transfer.source == id || transfer.target == id),
            None => None,
        };
        Ok(Some(views::account(
            &view,
            &history,
            transfer.as_ref(),
            refused,
        )))
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
