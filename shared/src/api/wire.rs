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

/// Deserialises a JSON body into a wire type, as a 400 naming the field on any mismatch.
pub fn parse<T: DeserializeOwned>(body: Value) -> AppResult<T> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        // The path names an unknown field already, never a missing one.
        let field = match named_field(&message) {
            Some(name) if path == "." => name.to_string(),
            Some(name) if path != name && !path.ends_with(&format!(".{name}")) => format!("{path}.{name}"),
            _ => path,
        };
        AppError::BodyField { field, message }
    })
}

/// The field serde names in "unknown field `x`" and "missing field `x`".
fn named_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `").or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next()
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

/// An intake's answer (payments, refunds): 201 when it executed, 202 when it is held for a
/// human; marked when replayed under an idempotency key.
pub fn intake_reply<T: Serialize>(held: bool, body: &T, replayed: bool) -> Response {
    let status = if held { StatusCode::ACCEPTED } else { StatusCode::CREATED };
    replayable(status, body, replayed)
}

/// A whole list in the paging envelope (lists that are bounded and never paged).
pub fn whole_list<T: Serialize>(data: Vec<T>) -> Json<Value> {
    Json(json!({"data": data, "hasMore": false, "nextCursor": null}))
}

pub fn deleted(id: impl Serialize) -> Json<Value> {
    Json(json!({"id": id, "deleted": true}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        limit: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Option<Inner>,
    }

    fn field_of(body: Value) -> String {
        match parse::<Outer>(body) {
            Err(AppError::BodyField { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn a_body_that_does_not_fit_names_the_field() {
        use serde_json::json;
        assert_eq!(field_of(json!({"name": "a", "team": 1})), "team");
        assert_eq!(field_of(json!({})), "name");
        assert_eq!(field_of(json!({"name": 5})), "name");
        assert_eq!(field_of(json!({"name": "a", "inner": {"limit": "x"}})), "inner.limit");
        assert_eq!(field_of(json!({"name": "a", "inner": {"limit": 1, "extra": true}})), "inner.extra");
        assert_eq!(field_of(json!({"name": "a", "inner": {}})), "inner.limit");
    }
}
