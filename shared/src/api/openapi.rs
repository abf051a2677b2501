//! The API description (OpenAPI 3.1, DESIGN §2.4) at `GET /openapi.json`, built from the code:
//! one table of operations beside the router, request bodies from the wire types themselves
//! (`utoipa::ToSchema` on each `…Body`, so a field added to a body is in the document), the
//! error envelope from `ErrorBody`. A test compares the table with the router's routes, so a
//! route the document lacks fails the build's tests.

use axum::Json;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ComponentsBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required, ResponseBuilder, Schema,
};
use utoipa::ToSchema;

use super::{approvals, error, keys, payments, people, policies, refunds, reviews, settings, wallets, webhooks};

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
    /// Success statuses and what they carry.
    ok: &'static [(u16, &'static str)],
    /// Query parameters: (name, description).
    query: &'static [(&'static str, &'static str)],
}

fn body<T: ToSchema>() -> NamedSchema {
    (T::name().into_owned(), T::schema())
}

const PAGE: &[(&str, &str)] = &[("limit", "1-100, default 20"), ("cursor", "`nextCursor` of the previous page")];

macro_rules! op {
    ($method:literal $path:literal, $tag:literal, $summary:literal, $perm:expr, $body:expr, $ok:expr, $query:expr) => {
        Operation {
            method: $method,
            path: $path,
            tag: $tag,
            summary: $summary,
            permission: $perm,
            body: $body,
            ok: $ok,
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
        op!("get" "/health", "health", "Liveness; `?deep=1` also reads the store", N, N, &[(200, "`{\"status\": \"ok\"}`")], &[("deep", "1 to read the store once")]),
        op!("get" "/openapi.json", "health", "This document", N, N, &[(200, "OpenAPI 3.1")], &[]),
        op!("post" "/v1/organizations", "keys", "Create an organisation and its first admin key (operator key)", json("operator"), Some(body::<keys::OrganizationBody>), &[(201, "The organisation and its admin key (secret shown once)")], &[]),
        op!("post" "/v1/api-keys", "keys", "Mint an API key (`memberId`: admin, or the caller's own member)", json("api_keys:write"), Some(body::<keys::ApiKeyBody>), &[(201, "The key with its secret, shown once")], &[]),
        op!("get" "/v1/api-keys", "keys", "List API keys", json("api_keys:write"), N, &[(200, "A page of keys (no secrets)")], PAGE),
        op!("get" "/v1/api-keys/{id}", "keys", "Read an API key", json("api_keys:write"), N, &[(200, "The key (no secret)")], &[]),
        op!("patch" "/v1/api-keys/{id}", "keys", "Change a key's name, permissions or wallets", json("api_keys:write"), Some(body::<keys::ApiKeyPatchBody>), &[(200, "The key")], &[]),
        op!("delete" "/v1/api-keys/{id}", "keys", "Revoke a key, at once", json("api_keys:write"), N, &[(200, "`{\"id\", \"deleted\": true}`")], &[]),
        op!("post" "/v1/wallets", "wallets", "Create a wallet", json("wallets:write"), Some(body::<wallets::WalletBody>), &[(201, "The wallet")], &[]),
        op!("get" "/v1/wallets", "wallets", "List wallets", json("wallets:read"), N, &[(200, "A page of wallets")], PAGE),
        op!("get" "/v1/wallets/{id}", "wallets", "Read a wallet", json("wallets:read"), N, &[(200, "The wallet")], &[]),
        op!("patch" "/v1/wallets/{id}", "wallets", "Rename a wallet or change its metadata", json("wallets:write"), Some(body::<wallets::WalletPatchBody>), &[(200, "The wallet")], &[]),
        op!("get" "/v1/wallets/{id}/balance", "wallets", "A wallet's balance", json("wallets:read"), N, &[(200, "`{walletId, balance, currency}`")], &[]),
        op!("post" "/v1/wallets/{id}/fund", "wallets", "Bring money in from the funding account", json("wallets:fund"), Some(body::<wallets::FundBody>), &[(201, "`{transactionId, walletId, amount, newBalance, currency}`")], &[]),
        op!("get" "/v1/wallets/{id}/transactions", "wallets", "A wallet's ledger lines", json("wallets:read"), N, &[(200, "A page of ledger lines")], PAGE),
        op!("post" "/v1/wallets/{id}/policies", "policies", "Attach a policy", json("policies:write"), Some(body::<policies::PolicyBody>), &[(201, "The policy")], &[]),
        op!("get" "/v1/wallets/{id}/policies", "policies", "A wallet's policies", json("wallets:read"), N, &[(200, "`{data: [policy]}`")], &[]),
        op!("post" "/v1/wallets/{id}/policies/evaluate", "policies", "What the policies would decide now, written nowhere", json("wallets:read"), Some(body::<policies::EvaluateBody>), &[(200, "`{status: approved|requires_review|denied, outcome, rule, reason, policyId}`")], &[]),
        op!("get" "/v1/wallets/{id}/policies/{pid}", "policies", "Read a policy", json("wallets:read"), N, &[(200, "The policy")], &[]),
        op!("patch" "/v1/wallets/{id}/policies/{pid}", "policies", "Change a policy", json("policies:write"), Some(body::<policies::PolicyBody>), &[(200, "The policy")], &[]),
        op!("delete" "/v1/wallets/{id}/policies/{pid}", "policies", "Delete a policy", json("policies:write"), N, &[(200, "`{\"id\", \"deleted\": true}`")], &[]),
        op!("post" "/v1/payments", "payments", "Submit a payment: executed, held for approval, or denied", json("payments:write"), Some(body::<payments::PaymentBody>), &[(201, "Executed: the payment, COMPLETED"), (202, "Held: the payment, PENDING_APPROVAL, with `approvalId`")], &[]),
        op!("get" "/v1/payments", "payments", "List payments", json("payments:read"), N, &[(200, "A page of payments")], &[("walletId", "only this wallet's"), ("status", "COMPLETED, PENDING_APPROVAL, REJECTED, EXPIRED, FAILED"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/payments/{id}", "payments", "Read a payment", json("payments:read"), N, &[(200, "The payment")], &[]),
        op!("get" "/v1/approvals", "approvals", "List approvals", json("approvals:read"), N, &[(200, "A page of approvals")], &[("walletId", "payer wallet"), ("status", "PENDING, ESCALATED, APPROVED, REJECTED, EXPIRED"), ("team", "assigned team"), ("assignedToMe", "true: teams of the caller's person"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/approvals/{id}", "approvals", "Read an approval", json("approvals:read"), N, &[(200, "The approval")], &[]),
        op!("post" "/v1/approvals/{id}/approve", "approvals", "Approve (executes the payment or refund once the quorum is met)", json("approvals:write"), Some(body::<approvals::DecideBody>), &[(200, "The approval with the payment as it now stands (and the refund, for refunds)")], &[]),
        op!("post" "/v1/approvals/{id}/reject", "approvals", "Reject", json("approvals:write"), Some(body::<approvals::DecideBody>), &[(200, "The approval with the payment")], &[]),
        op!("post" "/v1/approvals/{id}/modify", "approvals", "Approve a lower amount", json("approvals:write"), Some(body::<approvals::ModifyBody>), &[(200, "The approval with the payment")], &[]),
        op!("post" "/v1/approvals/{id}/escalate", "approvals", "Hand forward: the chain's next tier, or (admin) a team it never had", json("approvals:write"), Some(body::<approvals::EscalateBody>), &[(200, "The approval, ESCALATED")], &[]),
        op!("get" "/v1/settings", "people", "The organisation's settings: the default team (keys bound to no wallet)", json("approvals:read"), N, &[(200, "`{orgId, defaultTeam, updatedAt}`")], &[]),
        op!("patch" "/v1/settings", "people", "Set or clear the default team: where approvals no rule or chain assigns go", json("admin"), Some(body::<settings::SettingsPatchBody>), &[(200, "`{orgId, defaultTeam, updatedAt}`")], &[]),
        op!("post" "/v1/refunds", "refunds", "Refund a completed payment: executed, held, or denied", json("refunds:write"), Some(body::<refunds::RefundBody>), &[(201, "Executed: the refund, approved"), (202, "Held: the refund, pending, with `approvalId`")], &[]),
        op!("get" "/v1/refunds", "refunds", "List refunds", json("payments:read"), N, &[(200, "A page of refunds")], &[("walletId", "payee wallet"), ("status", "pending, approved, rejected, escalated, expired, failed"), ("paymentId", "refunds of this payment"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("get" "/v1/refunds/{id}", "refunds", "Read a refund", json("payments:read"), N, &[(200, "The refund")], &[]),
        op!("get" "/v1/audit-logs", "audit", "The audit log", json("audit:read"), N, &[(200, "A page of audit entries")], &[("action", "e.g. approval.approved"), ("resourceType", "e.g. payment"), ("limit", "1-100"), ("cursor", "next page")]),
        op!("post" "/v1/members", "people", "Add a person (keys bound to no wallet)", json("members:write"), Some(body::<people::MemberBody>), &[(201, "The member")], &[]),
        op!("get" "/v1/members", "people", "List people", json("members:write"), N, &[(200, "`{data: [member]}`")], &[]),
        op!("post" "/v1/teams", "people", "Create a team (with members: admin)", json("members:write"), Some(body::<people::TeamBody>), &[(201, "The team")], &[]),
        op!("get" "/v1/teams", "people", "List teams", json("members:write"), N, &[(200, "`{data: [team]}`")], &[]),
        op!("patch" "/v1/teams/{id}", "people", "Rename a team or set its members (members: admin)", json("members:write"), Some(body::<people::TeamPatchBody>), &[(200, "The team")], &[]),
        op!("post" "/v1/routing-rules", "people", "Add a routing rule", json("policies:write"), Some(body::<people::RuleBody>), &[(201, "The rule")], &[]),
        op!("get" "/v1/routing-rules", "people", "List routing rules", json("policies:write"), N, &[(200, "`{data: [rule]}`")], &[]),
        op!("patch" "/v1/routing-rules/{id}", "people", "Change a routing rule", json("policies:write"), Some(body::<people::RuleBody>), &[(200, "The rule")], &[]),
        op!("delete" "/v1/routing-rules/{id}", "people", "Delete a routing rule", json("policies:write"), N, &[(200, "`{\"id\", \"deleted\": true}`")], &[]),
        op!("post" "/routing-rules", "people", "Add a routing rule (Humancheck spelling)", json("policies:write"), Some(body::<people::RuleBody>), &[(201, "The rule")], &[]),
        op!("get" "/routing-rules", "people", "List routing rules (Humancheck spelling)", json("policies:write"), N, &[(200, "`{data: [rule]}`")], &[]),
        op!("patch" "/routing-rules/{id}", "people", "Change a routing rule (Humancheck spelling)", json("policies:write"), Some(body::<people::RuleBody>), &[(200, "The rule")], &[]),
        op!("delete" "/routing-rules/{id}", "people", "Delete a routing rule (Humancheck spelling)", json("policies:write"), N, &[(200, "`{\"id\", \"deleted\": true}`")], &[]),
        op!("post" "/reviews", "reviews", "Ask a person to review an action (Humancheck)", json("reviews:write"), Some(body::<reviews::ReviewBody>), &[(201, "The review"), (200, "blocking: decided meanwhile"), (202, "blocking: still pending, `decision: null`")], &[]),
        op!("get" "/reviews", "reviews", "List reviews and held payments", json("approvals:read"), N, &[(200, "`{reviews, total, total_is_capped, page, page_size}`")], &[("status", "pending, approved, rejected, modified, escalated, expired"), ("task_type", "e.g. payment, refund"), ("page", "from 1; page × page_size ≤ 1000"), ("page_size", "1-100, default 20")]),
        op!("get" "/reviews/{id}", "reviews", "Read a review (`rev_…`) or a held payment (`apr_…`)", json("approvals:read, or reviews:write for its own person's reviews"), N, &[(200, "The review")], &[]),
        op!("post" "/reviews/{id}/decide", "reviews", "Decide a review (on a held payment: vote on its approval)", json("approvals:write"), Some(body::<reviews::DecideBody>), &[(200, "The decision")], &[]),
        op!("post" "/reviews/{id}/escalate", "reviews", "Hand a review to a team it never had (admin; a held payment: its chain's next tier)", json("approvals:write"), Some(body::<reviews::EscalateBody>), &[(200, "The review, escalated")], &[]),
        op!("get" "/reviews/{id}/decision", "reviews", "The decision, or null while pending", json("approvals:read, or reviews:write for its own person's reviews"), N, &[(200, "The decision or `null`")], &[("wait", "long-poll up to N seconds (0-28); at most 16 waits per key at once, more → 429")]),
        op!("post" "/v1/webhooks", "webhooks", "Subscribe a URL to events", json("webhooks:write"), Some(body::<webhooks::WebhookBody>), &[(201, "The webhook with its signing secret, shown once")], &[]),
        op!("get" "/v1/webhooks", "webhooks", "List webhooks", json("webhooks:write"), N, &[(200, "A page of webhooks")], PAGE),
        op!("get" "/v1/webhooks/dlq", "webhooks", "Dead-lettered deliveries", json("webhooks:write"), N, &[(200, "A page of dead letters")], &[("limit", "1-100"), ("cursor", "next page"), ("offset", "the SDK's paging")]),
        op!("post" "/v1/webhooks/dlq/{id}/retry", "webhooks", "Retry a dead letter (same webhook-id)", json("webhooks:write"), N, &[(200, "The delivery, pending again")], &[]),
        op!("post" "/v1/webhooks/dlq/{id}/discard", "webhooks", "Discard a dead letter", json("webhooks:write"), N, &[(200, "The delivery, discarded")], &[]),
        op!("get" "/v1/webhooks/{id}", "webhooks", "Read a webhook", json("webhooks:write"), N, &[(200, "The webhook")], &[]),
        op!("patch" "/v1/webhooks/{id}", "webhooks", "Change a webhook", json("webhooks:write"), Some(body::<webhooks::WebhookPatchBody>), &[(200, "The webhook")], &[]),
        op!("delete" "/v1/webhooks/{id}", "webhooks", "Delete a webhook", json("webhooks:write"), N, &[(200, "`{\"id\", \"deleted\": true}`")], &[]),
        op!("post" "/v1/webhooks/{id}/test", "webhooks", "Send one signed test event now", json("webhooks:write"), N, &[(200, "`{id, delivered, statusCode, durationMs}`")], &[]),
        op!("get" "/v1/webhooks/{id}/deliveries", "webhooks", "A webhook's delivery log", json("webhooks:write"), N, &[(200, "A page of deliveries")], PAGE),
    ]
}

fn method(name: &str) -> HttpMethod {
    match name {
        "post" => HttpMethod::Post,
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
    let mut paths = PathsBuilder::new();
    let mut components = ComponentsBuilder::new()
        .schema_from::<error::ErrorBody>()
        .schema_from::<error::ErrorDetail>()
        .security_scheme("apiKey", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    let any_json = || ObjectBuilder::new().schema_type(Type::Object).build();
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
            components = components.schema(name.clone(), schema);
            let content = ContentBuilder::new().schema(Some(Ref::from_schema_name(name))).build();
            builder = builder.request_body(Some(
                RequestBodyBuilder::new().content("application/json", content).required(Some(Required::True)).build(),
            ));
        }
        for (status, description) in op.ok {
            let content = ContentBuilder::new().schema(Some(any_json())).build();
            let response =
                ResponseBuilder::new().description(*description).content("application/json", content).build();
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
    let info = InfoBuilder::new()
        .title("Countersign")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Human approval for payments made by AI agents. Amounts are decimal strings in the currency's minor units.",
        ))
        .build();
    OpenApiBuilder::new().info(info).paths(paths.build()).components(Some(components.build())).build()
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
            for method in ["get", "post", "patch", "delete"] {
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
}
