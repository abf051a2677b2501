//! The API description (OpenAPI 3.1, README "API description (OpenAPI)") at `GET /openapi.json`, built from the code:
//! one table of operations beside the router, request bodies from the wire types themselves
//! (`utoipa::ToSchema` on each `…Body`, so a field added to a body is in the document), the
//! error envelope from `ErrorBody`. A test compares the table with the router's routes, so a
//! route the document lacks fails the build's tests.

use axum::Json;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ComponentsBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::ToSchema;

mod examples;

use super::{
    approvals, backtest, bulk, comments, error, integrations, keys, payments, people, policies, policy_changes,
    refunds, reviews, settings, wallets, webhooks,
};
use crate::domain::allow_rule::AllowRule;
use crate::domain::approval::Approval;
use crate::domain::audit::AuditEntry;
use crate::domain::backtest::Backtest;
use crate::domain::budget::BudgetStanding;
use crate::domain::comment::Comment;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::ids::{DeliveryId, WebhookId};
use crate::domain::notification::Notification;
use crate::domain::org::{ApiKeyView, OrgSettings};
use crate::domain::payment::Payment;
use crate::domain::people::{Member, Team};
use crate::domain::policy::Policy;
use crate::domain::policy_version::PolicyVersion;
use crate::domain::refund::Refund;
use crate::domain::routing::RoutingRule;
use crate::domain::webhook::WebhookView;
use crate::service::{ApprovalStats, SlackIntegrationView};

/// A named schema: a wire type's name and its schema.
type NamedSchema = (String, RefOr<Schema>);

/// One operation of the API.
pub(crate) struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    tag: &'static str,
    summary: &'static str,
    /// `None`: no key needed.
    permission: Option<&'static str>,
    body: Option<fn() -> NamedSchema>,
    /// Success statuses, what they carry, and the schema of that body.
    ok: Vec<(u16, &'static str, Out)>,
    /// Query parameters: (name, description).
    query: &'static [(&'static str, &'static str)],
}

fn body<T: ToSchema>() -> NamedSchema {
    (T::name().into_owned(), T::schema())
}

/// A success body's schema: adds the components it needs to the list, returns the schema (a
/// reference to a component, or inline).
type Out = fn(&mut Vec<NamedSchema>) -> RefOr<Schema>;

/// `T` and every component it refers to.
fn register<T: ToSchema>(schemas: &mut Vec<NamedSchema>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

/// One `T`.
fn one<T: ToSchema>(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    register::<T>(schemas);
    Ref::from_schema_name(T::name()).into()
}

/// A page of `T`s (`{data, hasMore, nextCursor}`, `service::Page`), as the component `TPage`.
fn page<T: ToSchema>(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    register::<T>(schemas);
    let item = T::name();
    let name = format!("{item}Page");
    let page = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!("A page of {item}s, newest first where the list has an order")))
        .property("data", ArrayBuilder::new().items(Ref::from_schema_name(item.clone())))
        .required("data")
        .property("hasMore", ObjectBuilder::new().schema_type(Type::Boolean))
        .required("hasMore")
        .property(
            "nextCursor",
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .description(Some("Pass as `cursor` for the next page; `null` on the last")),
        )
        .required("nextCursor")
        .build();
    schemas.push((name.clone(), page.into()));
    Ref::from_schema_name(name).into()
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `GET /health`: `{"status": "ok"}`, and `"store": "ok"` with `?deep=1`.
fn health(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("status", string().enum_values(Some(["ok"])))
        .required("status")
        .property("store", string().enum_values(Some(["ok"])).description(Some("With `?deep=1`")))
        .build();
    schemas.push(("Health".into(), schema.into()));
    Ref::from_schema_name("Health").into()
}

/// `GET /openapi.json`: this document.
fn document_schema(_: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::Object).description(Some("An OpenAPI 3.1 document")).build().into()
}

/// `{"id", "deleted": true}` (`wire::deleted`).
fn deleted(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", string())
        .required("id")
        .property("deleted", ObjectBuilder::new().schema_type(Type::Boolean).enum_values(Some([true])))
        .required("deleted")
        .build();
    schemas.push(("Deleted".into(), schema.into()));
    Ref::from_schema_name("Deleted").into()
}

/// A dead letter after retry or discard: `{id, webhookId, status}`.
fn dead_letter_state(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    register::<DeliveryStatus>(schemas);
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", Ref::from_schema_name(DeliveryId::name()))
        .required("id")
        .property("webhookId", Ref::from_schema_name(WebhookId::name()))
        .required("webhookId")
        .property("status", Ref::from_schema_name(DeliveryStatus::name()))
        .required("status")
        .build();
    register::<DeliveryId>(schemas);
    register::<WebhookId>(schemas);
    schemas.push(("DeadLetterState".into(), schema.into()));
    Ref::from_schema_name("DeadLetterState").into()
}

/// Paths whose request body is a form (Slack posts `payload=<JSON>`), not JSON.
const FORM_BODIES: &[&str] = &["/integrations/slack/interactions"];
/// Paths whose success answers carry no body.
const NO_BODY: &[&str] = &["/integrations/slack/interactions"];

/// Slack's interaction form: `payload`, the block_actions JSON, signed with the app's secret.
fn slack_form() -> NamedSchema {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("payload", string().description(Some("Slack's `block_actions` payload, as JSON")))
        .required("payload")
        .build();
    ("SlackInteractionForm".into(), schema.into())
}

/// A success with no body (its schema is never shown).
fn no_body(_: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    ObjectBuilder::new().build().into()
}

/// Paths whose success body is JSON Lines, not one JSON document.
const JSON_LINES: &[&str] = &["/v1/audit-logs/export"];

/// `GET /v1/audit-logs/export`: text, one JSON object per line.
fn json_lines(_: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("JSON Lines: audit entries and checkpoints, oldest first"))
        .build()
        .into()
}

/// `GET /.well-known/countersign-keys`.
fn jwks(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    let key = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("kid", string())
        .required("kid")
        .property("kty", string().enum_values(Some(["OKP"])))
        .required("kty")
        .property("crv", string().enum_values(Some(["Ed25519"])))
        .required("crv")
        .property("x", string().description(Some("The public key, base64url")))
        .required("x")
        .build();
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("keys", ArrayBuilder::new().items(key))
        .required("keys")
        .build();
    schemas.push(("Jwks".into(), schema.into()));
    Ref::from_schema_name("Jwks").into()
}

/// `GET /v1/payments/{id}/receipt` (docs/api.md, "Receipts"): its parts are the API's own objects.
fn receipt(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    let payment = one::<Payment>(schemas);
    let object = || ObjectBuilder::new().schema_type(Type::Object).build();
    let list = || ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)).build();
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("type", string().enum_values(Some(["countersign.receipt"])))
        .required("type")
        .property("version", ObjectBuilder::new().schema_type(Type::Integer))
        .property("orgId", string())
        .property("issuedAt", string())
        .property("payment", payment)
        .required("payment")
        .property("request", object())
        .property("payloadHash", string())
        .property("policyDecision", object())
        .property("approval", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Object, Type::Null])))
        .property("relyingParty", ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Object, Type::Null])))
        .property("ledger", list())
        .property("auditEntries", list())
        .property("checkpoints", list())
        .property("keyId", string())
        .property("hash", string())
        .property("signature", string())
        .required("signature")
        .build();
    schemas.push(("Receipt".into(), schema.into()));
    Ref::from_schema_name("Receipt").into()
}

/// `GET /reviews/{id}/decision`: the decision, or `null` while there is none.
fn decision_or_null(schemas: &mut Vec<NamedSchema>) -> RefOr<Schema> {
    let decision = one::<reviews::DecisionView>(schemas);
    RefOr::T(Schema::OneOf(
        OneOfBuilder::new().item(ObjectBuilder::new().schema_type(Type::Null)).item(decision).build(),
    ))
}

const PAGE: &[(&str, &str)] = &[("limit", "1-100, default 20"), ("cursor", "`nextCursor` of the previous page")];

macro_rules! op {
    ($method:literal $path:literal, $tag:literal, $summary:literal, $perm:expr, $body:expr,
     [$(($status:literal, $what:literal, $out:expr)),+], $query:expr) => {
        Operation {
            method: $method,
            path: $path,
            tag: $tag,
            summary: $summary,
            permission: $perm,
            body: $body,
            ok: vec![$(($status, $what, $out as Out)),+],
            query: $query,
        }
    };
}

/// Every JSON operation the router serves (the dashboard's HTML pages and `/mcp` are described
/// in the README, not here).
pub(crate) fn operations() -> Vec<Operation> {
    use std::option::Option::None as N;
    let json = |s: &'static str| Some(s);
    vec![
        op!("get" "/health", "health", "Liveness; `?deep=1` also reads the store", N, N, [(200, "`{\"status\": \"ok\"}`", health)], &[("deep", "1 to read the store once")]),
        op!("get" "/openapi.json", "health", "This document", N, N, [(200, "OpenAPI 3.1", document_schema)], &[]),
        op!("post" "/v1/organizations", "keys", "Create an organisation and its first admin key (operator key)", json("operator"), Some(body::<keys::OrganizationBody>), [(201, "The organisation and its admin key (secret shown once)", one::<keys::OrganizationCreated<'static>>)], &[]),
        op!("post" "/v1/api-keys", "keys", "Mint an API key (`memberId`: admin, or the caller's own member)", json("api_keys:write"), Some(body::<keys::ApiKeyBody>), [(201, "The key with its secret, shown once", one::<ApiKeyView>)], &[]),
        op!("get" "/v1/api-keys", "keys", "List API keys", json("api_keys:write"), N, [(200, "A page of keys (no secrets)", page::<ApiKeyView>)], PAGE),
        op!("get" "/v1/api-keys/{id}", "keys", "Read an API key", json("api_keys:write"), N, [(200, "The key (no secret)", one::<ApiKeyView>)], &[]),
        op!("patch" "/v1/api-keys/{id}", "keys", "Change a key's name, permissions or wallets", json("api_keys:write"), Some(body::<keys::ApiKeyPatchBody>), [(200, "The key", one::<ApiKeyView>)], &[]),
        op!("delete" "/v1/api-keys/{id}", "keys", "Revoke a key, at once", json("api_keys:write"), N, [(200, "The key, revoked (`revokedAt` set)", one::<ApiKeyView>)], &[]),
        op!("post" "/v1/api-keys/{id}/freeze", "keys", "Freeze a key: every later request with it is 403 KEY_FROZEN (the kill switch)", json("admin"), N, [(200, "The key, `frozenAt` set", one::<ApiKeyView>)], &[]),
        op!("post" "/v1/api-keys/{id}/unfreeze", "keys", "Unfreeze a key", json("admin"), N, [(200, "The key, `frozenAt` null", one::<ApiKeyView>)], &[]),
        op!("get" "/v1/api-keys/{id}/budgets", "keys", "A key's budgets as they stand: spent, reserved, remaining, resetsAt", json("the key itself, or api_keys:write"), N, [(200, "`{data: [budget]}`", page::<BudgetStanding>)], &[]),
        op!("post" "/v1/wallets", "wallets", "Create a wallet", json("wallets:write"), Some(body::<wallets::WalletBody>), [(201, "The wallet", one::<wallets::WalletSchema>)], &[]),
        op!("get" "/v1/wallets", "wallets", "List wallets", json("wallets:read"), N, [(200, "A page of wallets", page::<wallets::WalletSchema>)], PAGE),
        op!("get" "/v1/wallets/{id}", "wallets", "Read a wallet", json("wallets:read"), N, [(200, "The wallet", one::<wallets::WalletSchema>)], &[]),
        op!("patch" "/v1/wallets/{id}", "wallets", "Rename a wallet or change its metadata", json("wallets:write"), Some(body::<wallets::WalletPatchBody>), [(200, "The wallet", one::<wallets::WalletSchema>)], &[]),
        op!("get" "/v1/wallets/{id}/balance", "wallets", "A wallet's balance", json("wallets:read"), N, [(200, "`{walletId, balance, currency}`", one::<wallets::BalanceView>)], &[]),
        op!("post" "/v1/wallets/{id}/fund", "wallets", "Bring money in from the funding account", json("wallets:fund"), Some(body::<wallets::FundBody>), [(201, "`{transactionId, walletId, amount, newBalance, currency}`", one::<wallets::FundedView>)], &[]),
        op!("get" "/v1/wallets/{id}/transactions", "wallets", "A wallet's ledger lines", json("wallets:read"), N, [(200, "A page of ledger lines", page::<wallets::LedgerEntrySchema>)], PAGE),
        op!("post" "/v1/wallets/{id}/freeze", "wallets", "Freeze a wallet: no payment or refund from or to it, none of its held approvals executes", json("wallets:write"), N, [(200, "The wallet, `frozenAt` set", one::<wallets::WalletSchema>)], &[]),
        op!("post" "/v1/wallets/{id}/unfreeze", "wallets", "Unfreeze a wallet", json("wallets:write"), N, [(200, "The wallet, `frozenAt` null", one::<wallets::WalletSchema>)], &[]),
        op!("get" "/v1/wallets/{id}/allow-rules", "wallets", "The wallet's \"always allow\" rules with their hits", json("wallets:read"), N, [(200, "`{data: [allowRule]}`", page::<AllowRule>)], &[]),
        op!("delete" "/v1/wallets/{id}/allow-rules/{rid}", "wallets", "Delete an \"always allow\" rule: payments to that payee are reviewed again", json("policies:write"), N, [(200, "`{\"id\", \"deleted\": true}`", deleted)], &[]),
        op!("post" "/v1/wallets/{id}/policies", "policies", "Attach a policy", json("policies:write"), Some(body::<policies::PolicyBody>), [(201, "The policy", one::<Policy>), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("get" "/v1/wallets/{id}/policies", "policies", "A wallet's policies", json("wallets:read"), N, [(200, "`{data: [policy]}`", page::<Policy>)], &[]),
        op!("post" "/v1/wallets/{id}/policies/evaluate", "policies", "What the policies would decide now, written nowhere", json("wallets:read"), Some(body::<policies::EvaluateBody>), [(200, "`{status: approved|requires_review|denied, outcome, rule, reason, policyId}`", one::<policies::Evaluation<'static>>)], &[]),
        op!("post" "/v1/wallets/{id}/policies/backtest", "policies", "A draft policy replayed over the wallet's past payments (at most 10,000, a window of at most 93 days), beside the current policies; written nowhere", json("wallets:read"), Some(body::<backtest::BacktestBody>), [(200, "`{payments, before: {executed, held, denied}, after, changed: [{paymentId, before, after, rule}] (first 100), changedTotal}`", one::<Backtest>)], &[]),
        op!("get" "/v1/wallets/{id}/policies/{pid}", "policies", "Read a policy", json("wallets:read"), N, [(200, "The policy", one::<Policy>)], &[]),
        op!("patch" "/v1/wallets/{id}/policies/{pid}", "policies", "Change a policy", json("policies:write"), Some(body::<policies::PolicyBody>), [(200, "The policy", one::<Policy>), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("delete" "/v1/wallets/{id}/policies/{pid}", "policies", "Delete a policy", json("policies:write"), N, [(200, "`{\"id\", \"deleted\": true}`", deleted), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("get" "/v1/wallets/{id}/policies/{pid}/shadow-stats", "policies", "A shadow policy's would-have counts: evaluated, wouldHave {executed, held, denied}, differed (an enforcing policy answers what it counted while in shadow)", json("wallets:read"), N, [(200, "`{policyId, mode, evaluated, wouldHave, differed, since}`", one::<policies::ShadowStatsView>)], &[]),
        op!("get" "/v1/wallets/{id}/policies/{pid}/versions", "policies", "A policy's versions, oldest first (kept after it is deleted)", json("wallets:read"), N, [(200, "A page of versions, oldest first", page::<PolicyVersion>)], PAGE),
        op!("get" "/v1/wallets/{id}/policies/{pid}/versions/{n}", "policies", "One version of a policy", json("wallets:read"), N, [(200, "The version", one::<PolicyVersion>)], &[]),
        op!("post" "/v1/payments", "payments", "Submit a payment: executed, held for approval, or denied", json("payments:write"), Some(body::<payments::PaymentBody>), [(201, "Executed: the payment, COMPLETED", one::<Payment>), (202, "Held: the payment, PENDING_APPROVAL, with `approvalId`", one::<Payment>)], &[]),
        op!("get" "/v1/payments", "payments", "List payments", json("payments:read"), N, [(200, "A page of payments", page::<Payment>)], &[("walletId", "only this wallet's"), ("status", "COMPLETED, PENDING_APPROVAL, REJECTED, EXPIRED, FAILED"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/payments/{id}", "payments", "Read a payment", json("payments:read"), N, [(200, "The payment", one::<Payment>)], &[]),
        op!("get" "/v1/approvals", "approvals", "List approvals", json("approvals:read"), N, [(200, "A page of approvals", page::<Approval>)], &[("walletId", "payer wallet"), ("status", "PENDING, ESCALATED, APPROVED, REJECTED, EXPIRED"), ("team", "assigned team"), ("assignedToMe", "true: teams of the caller's person"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/approvals/{id}", "approvals", "Read an approval", json("approvals:read"), N, [(200, "The approval", one::<Approval>)], &[]),
        op!("post" "/v1/approvals/{id}/approve", "approvals", "Approve (executes the payment or refund once the quorum is met)", json("approvals:write"), Some(body::<approvals::DecideBody>), [(200, "The approval with the payment as it now stands (and the refund, for refunds)", one::<approvals::DecidedView<'static>>)], &[]),
        op!("post" "/v1/approvals/{id}/reject", "approvals", "Reject", json("approvals:write"), Some(body::<approvals::DecideBody>), [(200, "The approval with the payment", one::<approvals::DecidedView<'static>>)], &[]),
        op!("post" "/v1/approvals/{id}/modify", "approvals", "Approve a lower amount", json("approvals:write"), Some(body::<approvals::ModifyBody>), [(200, "The approval with the payment", one::<approvals::DecidedView<'static>>)], &[]),
        op!("post" "/v1/approvals/{id}/escalate", "approvals", "Hand forward: the chain's next tier, or (admin) a team it never had", json("approvals:write"), Some(body::<approvals::EscalateBody>), [(200, "The approval, ESCALATED", one::<Approval>)], &[]),
        op!("post" "/v1/approvals/bulk", "approvals", "Approve or reject up to 100 approvals, each decided on its own with every rule", json("approvals:write"), Some(body::<bulk::BulkDecideBody>), [(200, "`{results: [{id, ok, status?, error?: {code, message}}]}`, in the order given", one::<bulk::BulkResults>)], &[]),
        op!("post" "/v1/approvals/{id}/comments", "approvals", "Comment on an approval, pending or decided (reviewers, and the key that requested it)", json("approvals:write, or the requesting key"), Some(body::<comments::CommentBody>), [(201, "The comment", one::<Comment>)], &[]),
        op!("get" "/v1/approvals/{id}/comments", "approvals", "An approval's comments, oldest first", json("approvals:read, or the requesting key"), N, [(200, "A page of comments", page::<Comment>)], PAGE),
        op!("get" "/v1/settings", "people", "The organisation's settings: the default team, four-eyes on policy changes (keys bound to no wallet)", json("approvals:read"), N, [(200, "`{orgId, defaultTeam, policyChangesNeedApproval, updatedAt}`", one::<OrgSettings>)], &[]),
        op!("patch" "/v1/settings", "people", "Set or clear the default team; turn four-eyes on policy changes on (at once) or off (needs another person's approval)", json("admin"), Some(body::<settings::SettingsPatchBody>), [(200, "`{orgId, defaultTeam, policyChangesNeedApproval, updatedAt}`", one::<OrgSettings>), (202, "Turning four-eyes off: the pending change", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("get" "/v1/policy-changes", "policies", "Policy, routing-rule and settings changes waiting for (or decided by) another person", json("wallets:read"), N, [(200, "A page of policy changes", page::<policy_changes::PolicyChangeView>)], &[("status", "pending, applied or rejected"), ("limit", "1-100, default 20"), ("cursor", "`nextCursor` of the previous page")]),
        op!("get" "/v1/policy-changes/{id}", "policies", "Read a policy change", json("wallets:read"), N, [(200, "The change", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("post" "/v1/policy-changes/{id}/approve", "policies", "Approve and apply a pending change (another person than the requester)", json("policies:write"), Some(body::<policy_changes::ApproveBody>), [(200, "The change, applied (`result`: the policy's or rule's id)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("post" "/v1/policy-changes/{id}/reject", "policies", "Reject a pending change (the requester may withdraw their own)", json("policies:write"), Some(body::<policy_changes::RejectBody>), [(200, "The change, rejected", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("post" "/v1/refunds", "refunds", "Refund a completed payment: executed, held, or denied", json("refunds:write"), Some(body::<refunds::RefundBody>), [(201, "Executed: the refund, approved", one::<Refund>), (202, "Held: the refund, pending, with `approvalId`", one::<Refund>)], &[]),
        op!("get" "/v1/refunds", "refunds", "List refunds", json("payments:read"), N, [(200, "A page of refunds", page::<Refund>)], &[("walletId", "payee wallet"), ("status", "pending, approved, rejected, escalated, expired, failed"), ("paymentId", "refunds of this payment"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/refunds/{id}", "refunds", "Read a refund", json("payments:read"), N, [(200, "The refund", one::<Refund>)], &[]),
        op!("get" "/v1/stats/approvals", "approvals", "Review statistics: decisions per team, reviewer or agent with median and p90 seconds to decision and the rubber-stamp flag", json("approvals:read"), N, [(200, "`{since, until, groupBy, groups: [{key, name?, decided, approved, rejected, modified, expired, escalated, medianSeconds, p90Seconds, rubberStamp}]}`", one::<ApprovalStats>)], &[("since", "a date (2026-12-07, midnight UTC) or RFC 3339 time, included; default: 30 days before until"), ("until", "a date or RFC 3339 time, excluded; default: now; at most 93 days after since"), ("groupBy", "team (default), reviewer or agent")]),
        op!("get" "/v1/audit-logs", "audit", "The audit log", json("audit:read"), N, [(200, "A page of audit entries", page::<AuditEntry>)], &[("action", "e.g. approval.approved"), ("resourceType", "e.g. payment"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/audit-logs/export", "audit", "The whole audit log with its signed checkpoints, JSON Lines, oldest first (verify with `countersign audit verify`)", json("audit:read"), N, [(200, "One JSON object per line: audit entries (with `hash`) and checkpoints (`\"type\": \"checkpoint\"`)", json_lines)], &[]),
        op!("get" "/.well-known/countersign-keys", "audit", "The public keys that sign checkpoints and receipts (JWKS)", N, N, [(200, "`{keys: [{kid, kty: OKP, crv: Ed25519, x}]}`", jwks)], &[]),
        op!("get" "/v1/payments/{id}/receipt", "payments", "A signed evidence pack for the payment (verify with `countersign receipt verify`)", json("payments:read"), N, [(200, "The receipt", receipt)], &[]),
        op!("post" "/v1/members", "people", "Add a person (keys bound to no wallet)", json("members:write"), Some(body::<people::MemberBody>), [(201, "The member", one::<Member>)], &[]),
        op!("get" "/v1/members", "people", "List people", json("members:write"), N, [(200, "`{data: [member]}`", page::<Member>)], &[]),
        op!("patch" "/v1/members/{id}", "people", "Link (or unlink, null) the member's Slack user: their clicks become their votes", json("admin"), Some(body::<people::MemberPatchBody>), [(200, "The member", one::<Member>)], &[]),
        op!("put" "/v1/integrations/slack", "notifications", "Connect the organisation's Slack app (secrets encrypted, never returned)", json("admin"), Some(body::<integrations::SlackIntegrationBody>), [(200, "`{provider, configured, defaultChannel, interactionsUrl, updatedAt}`", one::<SlackIntegrationView>)], &[]),
        op!("get" "/v1/integrations/slack", "notifications", "Whether Slack is connected, and the URL to give Slack for clicks", json("admin"), N, [(200, "`{provider, configured, defaultChannel, interactionsUrl, updatedAt}`", one::<SlackIntegrationView>)], &[]),
        op!("delete" "/v1/integrations/slack", "notifications", "Disconnect Slack: nothing more is posted, clicks are refused", json("admin"), N, [(200, "`{provider: slack, configured: false}`", one::<SlackIntegrationView>)], &[]),
        op!("post" "/integrations/slack/interactions", "notifications", "Slack's Interactivity Request URL: a button click, signed by Slack (`X-Slack-Signature`, `X-Slack-Request-Timestamp`), for the organisation in `org`; no API key", N, Some(slack_form), [(200, "Handled (the clicker hears back in Slack)", no_body)], &[("org", "the organisation's id (the interactionsUrl names it)")]),
        op!("get" "/v1/notifications/deliveries", "notifications", "Slack and email notifications, newest first, with attempts and errors", json("admin"), N, [(200, "A page of notifications", page::<Notification>)], &[("channel", "slack or email"), ("kind", "request, reminder or outcome"), ("status", "PENDING, DELIVERED, FAILED or DISCARDED"), ("approvalId", "about this approval"), ("reviewId", "about this review"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("post" "/v1/teams", "people", "Create a team (with members: admin)", json("members:write"), Some(body::<people::TeamBody>), [(201, "The team", one::<Team>)], &[]),
        op!("get" "/v1/teams", "people", "List teams", json("members:write"), N, [(200, "`{data: [team]}`", page::<Team>)], &[]),
        op!("patch" "/v1/teams/{id}", "people", "Rename a team or set its members (members: admin)", json("members:write"), Some(body::<people::TeamPatchBody>), [(200, "The team", one::<Team>)], &[]),
        op!("post" "/v1/routing-rules", "people", "Add a routing rule", json("policies:write"), Some(body::<people::RuleBody>), [(201, "The rule", one::<RoutingRule>), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("get" "/v1/routing-rules", "people", "List routing rules", json("policies:write"), N, [(200, "`{data: [rule]}`", page::<RoutingRule>)], &[]),
        op!("patch" "/v1/routing-rules/{id}", "people", "Change a routing rule", json("policies:write"), Some(body::<people::RuleBody>), [(200, "The rule", one::<RoutingRule>), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("delete" "/v1/routing-rules/{id}", "people", "Delete a routing rule", json("policies:write"), N, [(200, "`{\"id\", \"deleted\": true}`", deleted), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("post" "/routing-rules", "people", "Add a routing rule (Humancheck spelling)", json("policies:write"), Some(body::<people::RuleBody>), [(201, "The rule", one::<RoutingRule>), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("get" "/routing-rules", "people", "List routing rules (Humancheck spelling)", json("policies:write"), N, [(200, "`{data: [rule]}`", page::<RoutingRule>)], &[]),
        op!("patch" "/routing-rules/{id}", "people", "Change a routing rule (Humancheck spelling)", json("policies:write"), Some(body::<people::RuleBody>), [(200, "The rule", one::<RoutingRule>), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("delete" "/routing-rules/{id}", "people", "Delete a routing rule (Humancheck spelling)", json("policies:write"), N, [(200, "`{\"id\", \"deleted\": true}`", deleted), (202, "Four-eyes on: the pending change (`changeId`, `status: pending`, `diff`)", one::<policy_changes::PolicyChangeView>)], &[]),
        op!("post" "/reviews", "reviews", "Ask a person to review an action (Humancheck)", json("reviews:write"), Some(body::<reviews::ReviewBody>), [(201, "The review", one::<reviews::ReviewView<'static>>), (200, "blocking: decided meanwhile", one::<reviews::ReviewView<'static>>), (202, "blocking: still pending, `decision: null`", one::<reviews::ReviewView<'static>>)], &[]),
        op!("get" "/reviews", "reviews", "List reviews and held payments", json("approvals:read"), N, [(200, "`{reviews, total, total_is_capped, page, page_size}`", one::<reviews::ListView<'static>>)], &[("status", "pending, approved, rejected, modified, escalated, expired"), ("task_type", "e.g. payment, refund"), ("page", "from 1; page × page_size ≤ 1000"), ("page_size", "1-100, default 20")]),
        op!("get" "/reviews/{id}", "reviews", "Read a review (`rev_…`) or a held payment (`apr_…`)", json("approvals:read, or reviews:write for its own person's reviews"), N, [(200, "The review", one::<reviews::ReviewView<'static>>)], &[]),
        op!("post" "/reviews/{id}/decide", "reviews", "Decide a review (on a held payment: vote on its approval)", json("approvals:write"), Some(body::<reviews::DecideBody>), [(200, "The decision", one::<reviews::DecisionView>)], &[]),
        op!("post" "/reviews/{id}/escalate", "reviews", "Hand a review to a team it never had (admin; a held payment: its chain's next tier)", json("approvals:write"), Some(body::<reviews::EscalateBody>), [(200, "The review, escalated", one::<reviews::ReviewView<'static>>)], &[]),
        op!("get" "/reviews/{id}/decision", "reviews", "The decision, or null while pending", json("approvals:read, or reviews:write for its own person's reviews"), N, [(200, "The decision or `null`", decision_or_null)], &[("wait", "long-poll up to N seconds (0-28); at most 16 waits per key at once, more → 429")]),
        op!("post" "/v1/webhooks", "webhooks", "Subscribe a URL to events", json("webhooks:write"), Some(body::<webhooks::WebhookBody>), [(201, "The webhook with its signing secret, shown once", one::<WebhookView>)], &[]),
        op!("get" "/v1/webhooks", "webhooks", "List webhooks", json("webhooks:write"), N, [(200, "A page of webhooks", page::<WebhookView>)], PAGE),
        op!("get" "/v1/webhooks/dlq", "webhooks", "Dead-lettered deliveries", json("webhooks:write"), N, [(200, "A page of dead letters", page::<Delivery>)], &[("limit", "1-100"), ("cursor", "next page"), ("offset", "the SDK's paging")]),
        op!("post" "/v1/webhooks/dlq/{id}/retry", "webhooks", "Retry a dead letter (same webhook-id)", json("webhooks:write"), N, [(200, "The delivery, pending again", dead_letter_state)], &[]),
        op!("post" "/v1/webhooks/dlq/{id}/discard", "webhooks", "Discard a dead letter", json("webhooks:write"), N, [(200, "The delivery, discarded", dead_letter_state)], &[]),
        op!("get" "/v1/webhooks/{id}", "webhooks", "Read a webhook", json("webhooks:write"), N, [(200, "The webhook", one::<WebhookView>)], &[]),
        op!("patch" "/v1/webhooks/{id}", "webhooks", "Change a webhook", json("webhooks:write"), Some(body::<webhooks::WebhookPatchBody>), [(200, "The webhook", one::<WebhookView>)], &[]),
        op!("delete" "/v1/webhooks/{id}", "webhooks", "Delete a webhook", json("webhooks:write"), N, [(200, "`{\"id\", \"deleted\": true}`", deleted)], &[]),
        op!("post" "/v1/webhooks/{id}/test", "webhooks", "Send one signed test event now", json("webhooks:write"), N, [(200, "`{id, delivered, statusCode, durationMs}`", one::<webhooks::TestView>)], &[]),
        op!("get" "/v1/webhooks/{id}/deliveries", "webhooks", "A webhook's delivery log", json("webhooks:write"), N, [(200, "A page of deliveries", page::<Delivery>)], PAGE),
    ]
}

fn method(name: &str) -> HttpMethod {
    match name {
        "post" => HttpMethod::Post,
        "put" => HttpMethod::Put,
        "patch" => HttpMethod::Patch,
        "delete" => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    ResponseBuilder::new().description(description).content("application/json", content).build()
}

/// The document.
pub fn document() -> OpenApi {
    build().0
}

/// The document, and every named schema that went into its components (a name given twice must
/// be one schema: a test checks).
fn build() -> (OpenApi, Vec<NamedSchema>) {
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new()
        .schema_from::<error::ErrorBody>()
        .schema_from::<error::ErrorDetail>()
        .security_scheme("apiKey", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    let mut schemas: Vec<NamedSchema> = Vec::new();
    for op in operations() {
        let mut builder = OperationBuilder::new().tag(op.tag).summary(Some(op.summary)).operation_id(Some(format!(
            "{}_{}",
            op.method,
            op.path.trim_matches('/').replace(['/', '{', '}', '-', '.'], "_")
        )));
        for segment in op.path.split('/').filter(|s| s.starts_with('{')) {
            let name = segment.trim_matches(|c| c == '{' || c == '}');
            let string = ObjectBuilder::new().schema_type(Type::String).build();
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(string)),
            );
        }
        for (name, description) in op.query {
            let string = ObjectBuilder::new().schema_type(Type::String).build();
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(string)),
            );
        }
        if let Some(schema_of) = op.body {
            let (name, schema) = schema_of();
            schemas.push((name.clone(), schema));
            let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name(name)));
            if let Some(example) = examples::request(op.method, op.path) {
                content = content.example(Some(example));
            }
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .content(
                        if FORM_BODIES.contains(&op.path) {
                            "application/x-www-form-urlencoded"
                        } else {
                            "application/json"
                        },
                        content.build(),
                    )
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        for (status, description, schema_of) in &op.ok {
            if NO_BODY.contains(&op.path) {
                builder =
                    builder.response(status.to_string(), ResponseBuilder::new().description(*description).build());
                continue;
            }
            let mut content = ContentBuilder::new().schema(Some(schema_of(&mut schemas)));
            if let Some(example) = examples::response(op.method, op.path, *status) {
                content = content.example(Some(example));
            }
            let media = if JSON_LINES.contains(&op.path) { "application/x-ndjson" } else { "application/json" };
            let response = ResponseBuilder::new().description(*description).content(media, content.build()).build();
            builder = builder.response(status.to_string(), response);
        }
        builder = builder
            .response("4XX", error_response("Refused: the error envelope (`details.field` names a bad field)"))
            .response("503", error_response("Temporarily unavailable; retry (Retry-After: 1)"));
        if let Some(permission) = op.permission {
            builder = builder
                .description(Some(format!("Permission: `{permission}`.")))
                .security(SecurityRequirement::new("apiKey", Vec::<String>::new()));
        }
        paths = paths.path(op.path, PathItem::new(method(op.method), builder.build()));
    }
    components = components.schemas_from_iter(schemas.clone());
    let info = InfoBuilder::new()
        .title("Countersign")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Human approval for payments made by AI agents. Amounts are decimal strings in the currency's minor units.",
        ))
        .build();
    let document = OpenApiBuilder::new().info(info).paths(paths.build()).components(Some(components.build())).build();
    (document, schemas)
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<OpenApi> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(method, path)` the router declares, read from `api/mod.rs` itself.
    fn routed() -> Vec<(String, String)> {
        let source = include_str!("mod.rs");
        let mut out = Vec::new();
        for line in source.lines().map(str::trim).filter(|l| l.starts_with(".route(\"")) {
            let path = line.trim_start_matches(".route(\"").split('"').next().unwrap_or_default().to_string();
            let handlers = &line[line.find(',').unwrap_or(0)..];
            for method in ["get", "post", "put", "patch", "delete"] {
                if handlers.contains(&format!("{method}(")) {
                    out.push((method.to_string(), path.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_in_the_document_and_nothing_else() {
        let described: Vec<(String, String)> =
            operations().iter().map(|o| (o.method.to_string(), o.path.to_string())).collect();
        let routed = routed();
        assert!(routed.len() > 50, "{routed:?}");
        let missing: Vec<_> = routed.iter().filter(|r| !described.contains(r)).collect();
        assert!(missing.is_empty(), "routes the OpenAPI document lacks: {missing:?}");
        let extra: Vec<_> = described.iter().filter(|d| !routed.contains(d)).collect();
        assert!(extra.is_empty(), "described but not routed: {extra:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_bodies_and_the_error_envelope() {
        let doc = serde_json::to_value(document()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
        let payment = &doc["components"]["schemas"]["PaymentBody"];
        assert_eq!(payment["properties"]["amount"]["type"], "string", "{payment}");
        assert_eq!(payment["additionalProperties"], false, "unknown fields are refused: {payment}");
        let create = &doc["paths"]["/v1/payments"]["post"];
        assert!(create["responses"]["202"].is_object() && create["responses"]["4XX"].is_object(), "{create}");
        assert!(doc["paths"]["/reviews/{id}/decide"]["post"]["requestBody"].is_object());
        assert!(doc["paths"]["/v1/refunds"]["post"]["requestBody"].is_object());
        assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    }

    /// Every `$ref` in `value`.
    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_success_body_has_a_schema_and_every_reference_resolves() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, response) in op["responses"].as_object().unwrap() {
                    if !status.starts_with('2') || path == "/openapi.json" || NO_BODY.contains(&path.as_str()) {
                        continue;
                    }
                    if JSON_LINES.contains(&path.as_str()) {
                        let lines = &response["content"]["application/x-ndjson"]["schema"];
                        assert_eq!(lines["type"], "string", "{method} {path}: JSON Lines are text");
                        continue;
                    }
                    let schema = &response["content"]["application/json"]["schema"];
                    let named = schema["$ref"].is_string() || schema["oneOf"].is_array();
                    assert!(named, "{method} {path} {status}: the body is not a described schema: {schema}");
                }
            }
        }
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 100, "{}", all.len());
        for r in all {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("{r}"));
            assert!(schemas.contains_key(name), "dangling reference {r}");
        }
        // Pages, string amounts, string enums, nullable and optional fields, as sent.
        let page = &schemas["PaymentPage"];
        assert_eq!(page["required"], serde_json::json!(["data", "hasMore", "nextCursor"]), "{page}");
        assert_eq!(page["properties"]["data"]["items"]["$ref"], "#/components/schemas/Payment");
        assert_eq!(schemas["Money"]["properties"]["amount"]["type"], "string");
        assert_eq!(
            schemas["PaymentStatus"]["enum"],
            serde_json::json!(["COMPLETED", "PENDING_APPROVAL", "REJECTED", "EXPIRED", "FAILED"])
        );
        let payment = schemas["Payment"]["allOf"][1].clone();
        let required = payment["required"].as_array().unwrap();
        assert!(required.contains(&"status".into()) && !required.contains(&"submittedBy".into()), "{payment}");
        assert_eq!(payment["properties"]["refundedAmount"]["type"], serde_json::json!(["string", "null"]));
        assert_eq!(payment["properties"]["createdAt"]["format"], "date-time");
        assert_eq!(schemas["Permission"]["enum"][0], "wallets:read");
        assert_eq!(schemas["Review"]["properties"]["task_type"]["type"], "string", "reviews are snake_case");
    }

    #[test]
    fn no_two_schemas_share_a_name() {
        let (_, schemas) = build();
        let mut seen: std::collections::HashMap<String, serde_json::Value> = std::collections::HashMap::new();
        for (name, schema) in schemas {
            let schema = serde_json::to_value(schema).unwrap();
            if let Some(before) = seen.insert(name.clone(), schema.clone()) {
                assert_eq!(before, schema, "two schemas named {name}");
            }
        }
        assert!(seen.contains_key("ApprovalDecideBody") && seen.contains_key("ReviewDecideBody"));
    }

    #[test]
    fn the_main_operations_carry_examples() {
        let doc = serde_json::to_value(document()).unwrap();
        for (method, path, status) in [
            ("post", "/v1/organizations", "201"),
            ("post", "/v1/api-keys", "201"),
            ("post", "/v1/wallets", "201"),
            ("post", "/v1/wallets/{id}/fund", "201"),
            ("post", "/v1/wallets/{id}/policies", "201"),
            ("post", "/v1/payments", "201"),
            ("post", "/v1/payments", "202"),
            ("post", "/v1/approvals/{id}/approve", "200"),
        ] {
            let op = &doc["paths"][path][method];
            assert!(op["requestBody"]["content"]["application/json"]["example"].is_object(), "{method} {path}");
            let example = &op["responses"][status]["content"]["application/json"]["example"];
            assert!(example.is_object(), "{method} {path} {status}");
        }
        let held = &doc["paths"]["/v1/payments"]["post"]["responses"]["202"]["content"]["application/json"]["example"];
        assert_eq!(held["status"], "PENDING_APPROVAL");
        assert!(held["approvalId"].as_str().unwrap().starts_with("apr_"));
    }

    /// The keys of a schema's properties (through `allOf`).
    fn properties(schemas: &serde_json::Value, name: &str) -> Vec<String> {
        let schema = &schemas[name];
        let mut keys: Vec<String> =
            schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        for part in schema["allOf"].as_array().into_iter().flatten() {
            match part["$ref"].as_str() {
                Some(r) => keys.extend(properties(schemas, r.trim_start_matches("#/components/schemas/"))),
                None => keys.extend(part["properties"].as_object().unwrap().keys().cloned()),
            }
        }
        keys.sort();
        keys
    }

    /// `Wallet` and `LedgerEntry` are written out in the api layer (the domain types serialise
    /// through private shapes): a real one, serialised, has exactly the described fields.
    #[test]
    fn the_written_out_schemas_match_what_the_domain_types_serialise() {
        use crate::domain::ledger::LedgerEntry;
        use crate::domain::wallet::Wallet;
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let wallet: Wallet = serde_json::from_value(serde_json::json!({
            "id": "wal_01JEA54N6AVHB24CP7DGZ4B1H6", "orgId": "org_01JEA58F1WB7P5EH3MBV31GKTC", "name": "w",
            "agentName": null, "currency": "USD", "balance": "1.00", "metadata": {}, "spendDay": "2026-12-06",
            "spentOnDay": "0.00", "createdAt": "2026-12-06T09:00:00Z", "updatedAt": "2026-12-06T09:00:00Z",
        }))
        .unwrap();
        let sent = serde_json::to_value(&wallet).unwrap();
        let mut keys: Vec<String> = sent.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, properties(schemas, "Wallet"));
        let entry: LedgerEntry = serde_json::from_value(serde_json::json!({
            "id": "ent_01JEA54N6AVHB24CP7DGZ4B1H6", "transactionId": "txn_01JEA57H4ABM31ZAH2Z1H0DWEW",
            "walletId": "wal_01JEA54N6AVHB24CP7DGZ4B1H6", "kind": "DEBIT", "amount": "1.00", "currency": "USD",
            "counterparty": "wal_01JEA5YDSP7B2FR2DDZR3TXGFE",
            "paymentId": "pay_01JEA5CZSN4RCA53RNF39CQ0M1", "refundId": "rfd_01JEA5CZSN4RCA53RNF39CQ0M1",
            "createdAt": "2026-12-06T09:00:00Z",
        }))
        .unwrap();
        let sent = serde_json::to_value(&entry).unwrap();
        let mut keys: Vec<String> = sent.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, properties(schemas, "LedgerEntry"));
        let required = schemas["LedgerEntry"]["required"].as_array().unwrap();
        assert!(!required.contains(&"refundId".into()), "absent on a payment's lines");
    }
}
