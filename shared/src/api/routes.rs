//! Route handlers: extract, call the service, shape the response. No business rules here.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::extract::{Auth, Body, Ids, Params};
use super::AppState;
use crate::domain::approval::VoteDecision;
use crate::error::{AppError, AppResult};
use crate::service::{ApprovalFilter, AuditFilter, PageRequest, PaymentFilter, Reply};

const IDEMPOTENCY_HEADER: &str = "idempotency-key";

fn reply(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status.code()).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(reply.body)).into_response();
    if reply.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

fn ok<T: Serialize>(value: AppResult<T>) -> Result<Json<T>, AppError> {
    value.map(Json)
}

fn page_request(params: &Params) -> AppResult<PageRequest> {
    PageRequest::parse(params.get("limit"), params.get("cursor"))
}

fn idempotency_header(headers: &HeaderMap) -> AppResult<Option<&str>> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .map(|v| v.to_str().map_err(|_| AppError::MalformedBody("Idempotency-Key must be visible ASCII".into())))
        .transpose()
}

pub async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub async fn route_not_found() -> AppError {
    AppError::RouteNotFound
}

pub async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

pub async fn create_organization(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    s.create_organization(&c, &b).await.map(reply)
}

pub async fn create_api_key(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    s.create_api_key(&c, &b).await.map(reply)
}

pub async fn list_api_keys(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    ok(s.list_api_keys(&c, &page_request(&p)?).await)
}

pub async fn get_api_key(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.get_api_key(&c, ids.get("id")).await)
}

pub async fn update_api_key(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.update_api_key(&c, ids.get("id"), &b).await.map(reply)
}

pub async fn revoke_api_key(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    s.revoke_api_key(&c, ids.get("id")).await.map(reply)
}

pub async fn create_wallet(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    s.create_wallet(&c, &b).await.map(reply)
}

pub async fn list_wallets(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    ok(s.list_wallets(&c, &page_request(&p)?).await)
}

pub async fn get_wallet(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.get_wallet(&c, ids.get("id")).await)
}

pub async fn update_wallet(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.update_wallet(&c, ids.get("id"), &b).await.map(reply)
}

pub async fn wallet_balance(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.wallet_balance(&c, ids.get("id")).await)
}

pub async fn fund_wallet(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    headers: HeaderMap,
    Body(b): Body,
) -> AppResult<Response> {
    s.fund_wallet(&c, ids.get("id"), &b, idempotency_header(&headers)?).await.map(reply)
}

pub async fn list_transactions(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    p: Params,
) -> AppResult<impl IntoResponse> {
    ok(s.list_transactions(&c, ids.get("id"), &page_request(&p)?).await)
}

pub async fn create_policy(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.create_policy(&c, ids.get("id"), &b).await.map(reply)
}

pub async fn list_policies(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    let policies = s.list_policies(&c, ids.get("id")).await?;
    Ok(Json(serde_json::json!({"data": policies, "hasMore": false, "nextCursor": null})))
}

pub async fn get_policy(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.get_policy(&c, ids.get("id"), ids.get("pid")).await)
}

pub async fn update_policy(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.update_policy(&c, ids.get("id"), ids.get("pid"), &b).await.map(reply)
}

pub async fn delete_policy(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    s.delete_policy(&c, ids.get("id"), ids.get("pid")).await.map(reply)
}

pub async fn create_payment(
    State(s): State<AppState>,
    Auth(c): Auth,
    headers: HeaderMap,
    Body(b): Body,
) -> AppResult<Response> {
    s.create_payment(&c, &b, idempotency_header(&headers)?).await.map(reply)
}

pub async fn list_payments(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    let filter =
        PaymentFilter { wallet_id: p.get("walletId").map(Into::into), status: p.get("status").map(Into::into) };
    ok(s.list_payments(&c, &filter, &page_request(&p)?).await)
}

pub async fn get_payment(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.get_payment(&c, ids.get("id")).await)
}

pub async fn list_approvals(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    let filter =
        ApprovalFilter { wallet_id: p.get("walletId").map(Into::into), status: p.get("status").map(Into::into) };
    ok(s.list_approvals(&c, &filter, &page_request(&p)?).await)
}

pub async fn get_approval(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.get_approval(&c, ids.get("id")).await)
}

pub async fn approve(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.decide_approval(&c, ids.get("id"), VoteDecision::Approve, &b).await.map(reply)
}

pub async fn reject(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.decide_approval(&c, ids.get("id"), VoteDecision::Reject, &b).await.map(reply)
}

pub async fn list_audit_logs(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    let filter =
        AuditFilter { action: p.get("action").map(Into::into), resource_type: p.get("resourceType").map(Into::into) };
    ok(s.list_audit_logs(&c, &filter, &page_request(&p)?).await)
}

pub async fn create_webhook(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    s.create_webhook(&c, &b).await.map(reply)
}

pub async fn list_webhooks(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    let hooks = s.list_webhooks(&c).await?;
    Ok(Json(serde_json::json!({"data": hooks, "hasMore": false, "nextCursor": null})))
}

pub async fn get_webhook(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.get_webhook(&c, ids.get("id")).await)
}

pub async fn update_webhook(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    s.update_webhook(&c, ids.get("id"), &b).await.map(reply)
}

pub async fn delete_webhook(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    s.delete_webhook(&c, ids.get("id")).await.map(reply)
}

pub async fn test_webhook(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<impl IntoResponse> {
    ok(s.test_webhook(&c, ids.get("id")).await)
}

pub async fn list_deliveries(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    p: Params,
) -> AppResult<impl IntoResponse> {
    ok(s.list_deliveries(&c, ids.get("id"), &page_request(&p)?).await)
}

pub async fn list_dead_letters(State(s): State<AppState>, Auth(c): Auth, p: Params) -> AppResult<impl IntoResponse> {
    let offset = match p.get("offset") {
        None => 0,
        Some(o) => o.parse::<usize>().ok().filter(|o| *o <= 1000).ok_or_else(|| {
            AppError::from(crate::domain::input::InputError::invalid("offset", "must be a whole number from 0 to 1000"))
        })?,
    };
    ok(s.list_dead_letters(&c, &page_request(&p)?, offset).await)
}

pub async fn retry_dead_letter(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    s.retry_dead_letter(&c, ids.get("id")).await.map(reply)
}

pub async fn discard_dead_letter(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    s.discard_dead_letter(&c, ids.get("id")).await.map(reply)
}
