//! What makes decisions provable: the published signing keys (`/.well-known/countersign-keys`),
//! the audit log export with its signed checkpoints, and payment receipts.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use super::extract::{Auth, Ids};
use super::AppState;
use crate::domain::ids::PaymentId;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::proof::signing::Jwks;

/// `GET /.well-known/countersign-keys`: the signing key and the retired ones still published, as
/// a JWKS. Public: verifying needs no account.
pub async fn keys(State(s): State<AppState>) -> Response {
    let settings = s.settings();
    let mut keys: Vec<_> = settings.audit_signer.iter().map(|signer| signer.jwk()).collect();
    keys.extend(settings.retired_keys.iter().cloned());
    let mut response = Json(Jwks { keys }).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// `GET /v1/audit-logs/export`: JSON Lines, oldest first, sent as it is read.
pub async fn export(State(s): State<AppState>, Auth(c): Auth) -> AppResult<Response> {
    c.authorize(Permission::AuditRead)?;
    let lines = s.export_audit_log(&c)?;
    let body = Body::from_stream(lines.map(|line| line.map(axum::body::Bytes::from)));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson")),
            (header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"audit-log.jsonl\"")),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/payments/{id}/receipt`.
pub async fn receipt(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::PaymentsRead)?;
    let id = ids.parse("id", PaymentId::parse, "payment")?;
    Ok(Json(s.payment_receipt(&c, &id).await?))
}
