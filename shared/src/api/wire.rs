//! What every resource's wire types share: typed body parsing, idempotency keys, field checks,
//! and the response shapes (status codes are picked here and in the resource modules only).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::WalletId;
use crate::domain::input::{self, InputError};
use crate::domain::score::Score;
use crate::error::{AppError, AppResult};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Deserialises a JSON body into a wire type, as a 400 on any mismatch.
pub fn parse<T: DeserializeOwned>(body: Value) -> AppResult<T> {
    serde_json::from_value(body).map_err(|e| AppError::MalformedBody(e.to_string()))
}

/// Keeps an explicit `null` as `Some(Value::Null)` so a PATCH can tell "clear" from "absent".
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The idempotency key from the body (`idempotencyKey`) or the `Idempotency-Key` header, with
/// the request's fingerprint: a hash of the body without the key, so equal requests match
/// whatever their key order (serde_json maps are sorted).
pub fn idempotency(body_key: Option<&str>, headers: &HeaderMap, body: &Value) -> AppResult<Option<IdempotencyKey>> {
    let header = headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| v.to_str().map_err(|_| AppError::MalformedBody("Idempotency-Key must be visible ASCII".into())))
        .transpose()?;
    let Some(key) = body_key.or(header) else {
        return Ok(None);
    };
    let mut request = body.clone();
    if let Some(map) = request.as_object_mut() {
        map.remove("idempotencyKey");
    }
    let fingerprint = hex::encode(Sha256::digest(request.to_string().as_bytes()));
    Ok(Some(IdempotencyKey::new(key, fingerprint)?))
}

pub fn wallet_field(field: &'static str, id: &str) -> Result<WalletId, InputError> {
    WalletId::parse(id).ok_or_else(|| {
        InputError::invalid(field, format!("{:?} is not a wallet id", id.chars().take(64).collect::<String>()))
    })
}

pub fn optional_name(field: &'static str, value: Option<&str>) -> Result<Option<String>, InputError> {
    value.map(|v| input::name(field, v)).transpose()
}

pub fn optional_text(field: &'static str, value: Option<&str>, max_chars: usize) -> Result<Option<String>, InputError> {
    value.map(|v| input::bounded_text(field, v, max_chars)).transpose()
}

/// A risk score: a JSON number from 0 to 100 (`null` is no score).
pub fn risk_score(field: &'static str, value: Option<&Value>) -> Result<Option<Score>, InputError> {
    score(field, value, Decimal::ONE_HUNDRED, "must be a number from 0 to 100")
}

/// A confidence score: a JSON number from 0 to 1 (`null` is no score).
pub fn confidence_score(field: &'static str, value: Option<&Value>) -> Result<Option<Score>, InputError> {
    score(field, value, Decimal::ONE, "must be a number from 0 to 1")
}

fn score(field: &'static str, value: Option<&Value>, max: Decimal, message: &str) -> Result<Option<Score>, InputError> {
    value
        .filter(|v| !v.is_null())
        .map(|v| Score::from_json(v, Decimal::ZERO, max).ok_or_else(|| InputError::invalid(field, message)))
        .transpose()
}

/// A JSON response with `status`.
pub fn respond<T: Serialize>(status: StatusCode, body: &T) -> Response {
    (status, Json(body)).into_response()
}

/// A response that may replay an earlier one with the same idempotency key.
pub fn replayable<T: Serialize>(status: StatusCode, body: &T, replayed: bool) -> Response {
    let mut response = respond(status, body);
    if replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// A whole list in the paging envelope (lists that are bounded and never paged).
pub fn whole_list<T: Serialize>(data: Vec<T>) -> Json<Value> {
    Json(json!({"data": data, "hasMore": false, "nextCursor": null}))
}

pub fn deleted(id: impl Serialize) -> Json<Value> {
    Json(json!({"id": id, "deleted": true}))
}
