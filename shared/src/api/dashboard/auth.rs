//! Who is looking at the dashboard: the session behind the cookie, checked on every request
//! against the server-side session and the API key (a revoked key signs out at once).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::form::Form;
use super::page::{html, see_other, DashError};
use super::tokens::{csrf_ok, csrf_token, open_session, read_cookie, Transport};
use super::views::{Chrome, RefreshPage};
use crate::api::AppState;
use crate::domain::secret::ServerSecret;
use crate::error::AppError;
use crate::service::{Caller, SessionId};

/// Why a session that the browser still presented no longer works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Revoked,
    Expired,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Revoked => "revoked",
            Ended::Expired => "expired",
        }
    }
}

/// A signed-in session.
pub struct Session {
    pub id: SessionId,
    pub caller: Caller,
    pub csrf: String,
}

/// Anyone at the dashboard, signed in or not.
pub struct Visitor {
    pub transport: Transport,
    pub secret: Arc<ServerSecret>,
    pub session: Option<Session>,
    pub ended: Option<Ended>,
    /// The browser says the request came from another site (`Sec-Fetch-Site: cross-site`).
    pub cross_site: bool,
    had_cookie: bool,
    /// This request is the reload a cross-site navigation got already.
    hopped: bool,
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let secret = state.settings().session_secret.clone().ok_or_else(DashError::unconfigured)?;
        let transport = Transport::of(&parts.headers);
        let cookie = read_cookie(&parts.headers, transport.session_cookie()).filter(|c| !c.is_empty());
        let cross_site = parts.headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"cross-site");
        let hopped = read_cookie(&parts.headers, transport.hop_cookie()).is_some();
        let mut visitor =
            Visitor { transport, secret, session: None, ended: None, cross_site, had_cookie: false, hopped };
        let Some(cookie) = cookie else { return Ok(visitor) };
        visitor.had_cookie = true;
        let Some(id) = open_session(&visitor.secret, &cookie) else {
            visitor.ended = Some(Ended::Expired);
            return Ok(visitor);
        };
        match state.session_caller(&id).await {
            Ok(caller) => {
                let csrf = csrf_token(&visitor.secret, &id);
                visitor.session = Some(Session { id, caller, csrf });
            }
            Err(AppError::ApiKeyRevoked) => visitor.ended = Some(Ended::Revoked),
            Err(AppError::Unauthorized) => visitor.ended = Some(Ended::Expired),
            Err(other) => return Err(other.into()),
        }
        Ok(visitor)
    }
}

impl Visitor {
    /// Sends a visitor without a working session to sign in, and back to `uri` after.
    fn to_sign_in(&self, method: &Method, uri: &axum::http::Uri) -> Response {
        let back = uri.path_and_query().map_or("/dashboard", |p| p.as_str());
        // A link followed from mail or chat is a cross-site navigation: the browser withholds
        // the SameSite=Strict cookie. One reload from this site's own page sends it.
        if method == Method::GET && !self.had_cookie && self.cross_site && !self.hopped {
            let mut page = html(StatusCode::OK, &RefreshPage { chrome: Chrome::anonymous(), url: back.to_string() });
            if let Ok(v) = axum::http::HeaderValue::from_str(&self.transport.hop()) {
                page.headers_mut().append(axum::http::header::SET_COOKIE, v);
            }
            return page;
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query.append_pair("next", back);
        if let Some(ended) = self.ended {
            query.append_pair("ended", ended.as_str());
        }
        let location = format!("/dashboard/sign-in?{}", query.finish());
        let clear = if self.had_cookie { vec![self.transport.clear(self.transport.session_cookie())] } else { vec![] };
        see_other(&location, clear)
    }
}

/// A signed-in reviewer; anyone else is sent to sign in.
pub struct Reviewer {
    pub visitor: Visitor,
    session: Session,
}

impl FromRequestParts<AppState> for Reviewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let mut visitor = Visitor::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
        match visitor.session.take() {
            Some(session) => Ok(Reviewer { visitor, session }),
            None => Err(visitor.to_sign_in(&parts.method, &parts.uri)),
        }
    }
}

impl Reviewer {
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn caller(&self) -> &Caller {
        &self.session().caller
    }

    pub fn chrome(&self) -> Chrome {
        Chrome::signed_in(&self.session.caller, &self.session.csrf)
    }

    pub fn secret(&self) -> &ServerSecret {
        &self.visitor.secret
    }

    /// A form post must come from this site's own page: its CSRF token, and not marked
    /// cross-site by the browser.
    pub fn check_form(&self, form: &Form) -> Result<(), DashError> {
        if self.visitor.cross_site || !csrf_ok(&self.visitor.secret, &self.session.id, form.get("csrf")) {
            return Err(DashError::csrf());
        }
        Ok(())
    }
}
