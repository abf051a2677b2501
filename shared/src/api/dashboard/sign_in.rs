//! Signing in with an API key, and out. The key travels once, in the sign-in form's body; the
//! browser then holds only a signed session id. Nothing here logs the key.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;

use super::auth::{Reviewer, Visitor};
use super::form::Form;
use super::page::{html, readable, see_other, DashError, Reply};
use super::tokens::{new_nonce, read_cookie, sign_in_ok, sign_in_token};
use super::views::{Chrome, SignInPage};
use crate::api::AppState;
use crate::error::AppError;

/// Where to go after signing in: a dashboard path of this site, else the queue.
fn next_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with("/dashboard") && !n.contains("//") && !n.contains('\\') && n.len() < 512 => {
            n.to_string()
        }
        _ => "/dashboard".into(),
    }
}

fn message(ended: Option<&str>) -> Option<String> {
    Some(
        match ended? {
            "revoked" => "Your API key was revoked, so you have been signed out.",
            "expired" => "Your session has ended. Sign in again.",
            "signed-out" => "You have signed out.",
            _ => return None,
        }
        .into(),
    )
}

/// The sign-in page, with a fresh nonce cookie for its CSRF token.
fn page(
    visitor: &Visitor,
    status: StatusCode,
    next: String,
    message: Option<String>,
    error: Option<String>,
) -> Response {
    let nonce = new_nonce();
    let page =
        SignInPage { chrome: Chrome::anonymous(), csrf: sign_in_token(&visitor.secret, &nonce), next, message, error };
    let mut response = html(status, &page);
    if let Ok(v) = HeaderValue::from_str(&visitor.transport.sign_in_nonce(&nonce)) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    response
}

pub async fn form(visitor: Visitor, RawQuery(query): RawQuery) -> Reply {
    let fields = Form::parse(query.unwrap_or_default().as_bytes())?;
    let next = next_path(fields.get("next"));
    if visitor.session.is_some() {
        return Ok(see_other(&next, vec![]));
    }
    let mut response = page(&visitor, StatusCode::OK, next, message(fields.get("ended")), None);
    if visitor.ended.is_some() {
        if let Ok(v) = HeaderValue::from_str(&visitor.transport.clear(visitor.transport.session_cookie())) {
            response.headers_mut().append(axum::http::header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

pub async fn submit(State(s): State<AppState>, visitor: Visitor, headers: axum::http::HeaderMap, form: Form) -> Reply {
    let nonce = read_cookie(&headers, visitor.transport.sign_in_cookie());
    if visitor.cross_site || !sign_in_ok(&visitor.secret, nonce.as_deref(), form.get("csrf")) {
        return Err(DashError::csrf());
    }
    let next = next_path(form.get("next"));
    let Some(secret) = form.get("api_key").map(str::trim) else {
        return Ok(page(&visitor, StatusCode::BAD_REQUEST, next, None, Some("Enter an API key.".into())));
    };
    match s.sign_in(secret).await {
        Ok(signed_in) => {
            let t = visitor.transport;
            let cookies = vec![t.session(&visitor.secret, &signed_in.session), t.clear(t.sign_in_cookie())];
            Ok(see_other(&next, cookies))
        }
        Err(e) => {
            let (status, text) = match &e {
                AppError::Unauthorized => (StatusCode::UNAUTHORIZED, "That API key was not recognised.".to_string()),
                AppError::ApiKeyRevoked => (StatusCode::UNAUTHORIZED, "That API key has been revoked.".to_string()),
                AppError::OperatorOnly => (
                    StatusCode::FORBIDDEN,
                    "The operator key only creates organisations: sign in with a key of your organisation.".to_string(),
                ),
                AppError::PermissionDenied(_) => (
                    StatusCode::FORBIDDEN,
                    "That key may not read approvals (it needs the approvals:read permission).".to_string(),
                ),
                other => {
                    let (status, message) = readable(other);
                    if status.is_server_error() {
                        return Err(e.into());
                    }
                    (status, message)
                }
            };
            Ok(page(&visitor, status, next, None, Some(text)))
        }
    }
}

pub async fn sign_out(State(s): State<AppState>, reviewer: Reviewer, form: Form) -> Reply {
    reviewer.check_form(&form)?;
    s.sign_out(&reviewer.session().id).await?;
    let t = reviewer.visitor.transport;
    Ok(see_other("/dashboard/sign-in?ended=signed-out", vec![t.clear(t.session_cookie())]))
}
