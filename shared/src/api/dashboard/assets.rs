//! The dashboard's static files, compiled in. URLs carry a version (a hash of the files), so
//! browsers may cache them for good.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::page::secure_headers;

const CSS: &str = include_str!("static/app.css");
const JS: &str = include_str!("static/app.js");
const PASSKEYS_JS: &str = include_str!("static/passkeys.js");
const ICON: &str = include_str!("static/icon.svg");

/// A short hash of both files.
pub fn version() -> String {
    let digest = Sha256::digest(format!("{CSS}\n{JS}\n{PASSKEYS_JS}").as_bytes());
    hex::encode(&digest[..6])
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
        ],
        body,
    )
        .into_response();
    secure_headers(&mut response);
    response
}

pub async fn css() -> Response {
    file(CSS, "text/css; charset=utf-8")
}

pub async fn js() -> Response {
    file(JS, "text/javascript; charset=utf-8")
}

pub async fn passkeys_js() -> Response {
    file(PASSKEYS_JS, "text/javascript; charset=utf-8")
}

pub async fn icon() -> Response {
    file(ICON, "image/svg+xml")
}
