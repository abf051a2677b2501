//! Request extractors whose rejections use the error envelope.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::AppState;
use crate::error::{AppError, AppResult};
use crate::service::{Caller, PageRequest};

/// The authenticated caller (`Authorization: Bearer <key>`).
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        state.authenticate(bearer(parts)).await.map(Auth)
    }
}

/// The bearer token, not yet checked: for doors whose service reads the key together with
/// what the request reads first (`Countersign::create_payment_from`).
pub struct Bearer(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Bearer(bearer(parts).map(str::to_string)))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// A JSON object body; an empty body reads as `{}` (SDKs send bodiless POSTs).
pub struct Body(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::PayloadTooLarge
            } else {
                AppError::MalformedBody("could not read the request body".into())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body(serde_json::json!({})));
        }
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::MalformedBody(format!("body is not valid JSON: {e}")))?;
        if !value.is_object() {
            return Err(AppError::MalformedBody("body must be a JSON object".into()));
        }
        refuse_duplicate_keys(&bytes)?;
        Ok(Body(value))
    }
}

/// Refuses a JSON body that gives a key twice in one object, naming the key's path.
pub fn refuse_duplicate_keys(json: &[u8]) -> AppResult<()> {
    match super::strict_json::first_duplicate_key(json) {
        None => Ok(()),
        Some(path) => Err(AppError::BodyField {
            message: format!("duplicate key `{path}`: a key may appear only once in an object"),
            field: path,
        }),
    }
}

/// Query-string parameters.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map(|q| Params(q.0))
            .map_err(|_| AppError::MalformedBody("query string is malformed".into()))
    }
}

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Path parameters (`{id}`, `{pid}`); an undecodable path is an unknown route.
pub struct Ids(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Ids {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|p| Ids(p.0))
            .map_err(|_| AppError::RouteNotFound)
    }
}

impl Ids {
    /// The path parameter `name` as an id of one kind; anything else names nothing (404).
    pub fn parse<T>(&self, name: &str, parse: fn(&str) -> Option<T>, resource: &'static str) -> AppResult<T> {
        self.0.get(name).and_then(|text| parse(text)).ok_or(AppError::NotFound(resource))
    }
}

impl Params {
    /// `?limit=&cursor=`.
    pub fn page(&self) -> AppResult<PageRequest> {
        PageRequest::parse(self.get("limit"), self.get("cursor"))
    }
}
