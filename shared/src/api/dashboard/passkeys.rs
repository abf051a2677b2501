//! `/dashboard/passkeys`: a reviewer's passkeys (listed, added, removed), and the step-up
//! ceremony's first half on an approval (`/dashboard/approvals/{id}/step-up`: the nonce and
//! the challenge to sign). The JSON answers are for `static/passkeys.js`; errors use the API's
//! error envelope so the page can show their message.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::auth::Reviewer;
use super::form::{Form, PathParam};
use super::page::{html, readable, see_other, DashError, Reply};
use super::views::{when, Chrome};
use crate::api::AppState;
use crate::domain::ids::ApprovalId;
use crate::domain::input::InputError;
use crate::domain::money::Amount;
use crate::domain::step_up::PasskeyCredential;
use crate::error::AppError;
use crate::service::NewPasskey;

pub struct PasskeyRow {
    pub id: String,
    pub name: String,
    pub added: String,
}

#[derive(Template)]
#[template(path = "passkeys.html")]
pub struct PasskeysPage {
    pub chrome: Chrome,
    pub passkeys: Vec<PasskeyRow>,
    pub error: Option<String>,
}

fn rows(passkeys: Vec<PasskeyCredential>) -> Vec<PasskeyRow> {
    passkeys.into_iter().map(|p| PasskeyRow { id: p.credential_id, name: p.name, added: when(p.created_at) }).collect()
}

pub async fn list(State(s): State<AppState>, reviewer: Reviewer) -> Reply {
    let passkeys = s.list_passkeys(reviewer.caller()).await?;
    Ok(html(StatusCode::OK, &PasskeysPage { chrome: reviewer.chrome(), passkeys: rows(passkeys), error: None }))
}

/// A JSON answer, or the API's error envelope.
fn json<T: serde::Serialize>(outcome: Result<T, AppError>) -> Response {
    match outcome {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

fn field<'a>(form: &'a Form, name: &'static str) -> Result<&'a str, AppError> {
    form.get(name).ok_or_else(|| InputError::invalid(name, "is required").into())
}

pub async fn options(State(s): State<AppState>, reviewer: Reviewer, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    Ok(json(s.passkey_registration_options(reviewer.caller()).await))
}

pub async fn register(State(s): State<AppState>, reviewer: Reviewer, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    let new = || -> Result<NewPasskey, AppError> {
        Ok(NewPasskey {
            challenge: field(&form, "challenge")?.to_string(),
            client_data_json: field(&form, "clientDataJSON")?.to_string(),
            attestation_object: field(&form, "attestationObject")?.to_string(),
            name: field(&form, "name")?.to_string(),
        })
    };
    let outcome = match new() {
        Ok(new) => s.register_passkey(reviewer.caller(), new).await,
        Err(e) => Err(e),
    };
    Ok(json(outcome.map(|p| serde_json::json!({"credentialId": p.credential_id, "name": p.name}))))
}

pub async fn delete(State(s): State<AppState>, reviewer: Reviewer, PathParam(id): PathParam, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    match s.delete_passkey(reviewer.caller(), &id).await {
        Ok(()) => Ok(see_other("/dashboard/passkeys", vec![])),
        Err(e) => {
            let (status, message) = readable(&e);
            if status.is_server_error() {
                return Err(DashError::from(e));
            }
            let passkeys = s.list_passkeys(reviewer.caller()).await?;
            let page = PasskeysPage { chrome: reviewer.chrome(), passkeys: rows(passkeys), error: Some(message) };
            Ok(html(status, &page))
        }
    }
}

/// `POST /dashboard/approvals/{id}/step-up` (`action` approve|modify, `amount` for modify).
pub async fn step_up(State(s): State<AppState>, reviewer: Reviewer, PathParam(id): PathParam, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    let id = ApprovalId::parse(&id).ok_or_else(DashError::not_found)?;
    let modify_to = match form.get("action") {
        Some("approve") => Ok(None),
        Some("modify") => field(&form, "amount").and_then(|text| {
            Amount::parse(text.trim()).map(Some).map_err(|source| InputError::Amount { field: "amount", source }.into())
        }),
        _ => Err(InputError::invalid("action", "must be approve or modify").into()),
    };
    let outcome = match (modify_to, super::detail::allow_cap(&form)) {
        (Ok(modify_to), Ok(cap)) => s.start_step_up_allowing(reviewer.caller(), &id, modify_to, cap).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    Ok(json(outcome))
}
