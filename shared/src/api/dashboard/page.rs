//! Dashboard responses: every page with the same strict headers (CSP without inline script or
//! style, no framing, no referrer, no caching), redirects, and errors as readable HTML pages.

use askama::Template;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::domain::review_link::LinkError;
use crate::error::AppError;

/// Scripts and styles only from this origin's files; no inline code, plugins, frames or bases;
/// forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every dashboard response carries.
pub fn secure_headers(response: &mut Response) {
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Review-link tokens are in URLs: never leak them to another site.
        (header::REFERRER_POLICY, "no-referrer"),
        (HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

/// A rendered page with `status`.
pub fn html(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut response =
                (status, [(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))], body)
                    .into_response();
            secure_headers(&mut response);
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "dashboard template failed");
            let mut response = (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
            secure_headers(&mut response);
            response
        }
    }
}

/// `303 See Other` to `location` (a path of this dashboard), with cookies to set.
pub fn see_other(location: &str, cookies: Vec<String>) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location.to_string())]).into_response();
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    secure_headers(&mut response);
    response
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    chrome: super::views::Chrome,
    title: &'a str,
    message: &'a str,
}

/// A refusal or failure, shown as a page.
#[derive(Debug)]
pub struct DashError {
    pub status: StatusCode,
    pub title: String,
    pub message: String,
}

impl DashError {
    pub fn new(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        DashError { status, title: title.into(), message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        DashError::new(StatusCode::BAD_REQUEST, "That request could not be used", message)
    }

    pub fn csrf() -> Self {
        DashError::new(
            StatusCode::FORBIDDEN,
            "Form refused",
            "This form did not carry a valid security token (it may be from an older page or \
             another site). Go back, reload the page and try again.",
        )
    }

    pub fn not_found() -> Self {
        DashError::new(StatusCode::NOT_FOUND, "Not found", "There is no such page, approval or review here.")
    }

    pub fn unconfigured() -> Self {
        DashError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Dashboard not configured",
            "Set COUNTERSIGN_SESSION_SECRET (at least 32 characters) to enable the reviewer dashboard.",
        )
    }

    pub fn link(e: LinkError) -> Self {
        match e {
            LinkError::Invalid => DashError::new(
                StatusCode::NOT_FOUND,
                "Link not valid",
                "This review link is not one Countersign made, or it was cut short. Open the queue instead.",
            ),
            LinkError::Expired => DashError::new(
                StatusCode::GONE,
                "Link expired",
                "This review link has expired with its approval window.",
            ),
        }
    }
}

/// A core error as a reader sees it: its status, and its message with the API's error code.
pub fn readable(e: &AppError) -> (StatusCode, String) {
    let (status, code, message, _) = e.parts();
    let mut sentence = message;
    if let Some(first) = sentence.get(..1) {
        sentence = first.to_uppercase() + &sentence[1..];
    }
    (status, format!("{sentence} ({code})."))
}

impl From<AppError> for DashError {
    fn from(e: AppError) -> Self {
        let (status, message) = readable(&e);
        if status.is_server_error() {
            tracing::error!(error = %e, "dashboard request failed");
        }
        let title = match status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::CONFLICT => "Already decided",
            s if s.is_server_error() => "Temporarily unavailable",
            _ => "That request could not be used",
        };
        DashError::new(status, title, message)
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let page = ErrorPage { chrome: super::views::Chrome::anonymous(), title: &self.title, message: &self.message };
        html(self.status, &page)
    }
}

/// What dashboard handlers return.
pub type Reply = Result<Response, DashError>;
