//! Table-driven: malformed, unauthorised and cross-tenant requests each get a 4xx in the error
//! envelope, never a 5xx, and write nothing. Runs on both stores.

use countersign_tests::{per_backend, Backend, TestApp, OPERATOR_KEY};
use serde_json::{json, Value};

enum Body {
    None,
    Json(Value),
    Raw(Vec<u8>),
}

enum Who {
    Nobody,
    Admin,
    Agent,
    Reviewer,
    Revoked,
    Raw(String),
    OtherAdmin,
    Operator,
    KeyWriter,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    who: Who,
    body: Body,
    status: u16,
    code: &'static str,
}

fn case(
    name: &'static str,
    method: &'static str,
    path: impl Into<String>,
    who: Who,
    body: Body,
    status: u16,
    code: &'static str,
) -> Case {
    Case { name, method, path: path.into(), who, body, status, code }
}

per_backend!(malformed_requests_get_4xx_envelopes_and_write_nothing);
async fn malformed_requests_get_4xx_envelopes_and_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("5000.00").await;
    let (_, approval) = app.held_payment(&s, "1500.00").await;
    let policy = app.policy(&s.admin, &s.from, json!({"name": "p"})).await;
    let other_admin = app.org("other").await;
    let other_wallet = app.wallet(&other_admin, "USD").await;
    let other_to = app.wallet(&other_admin, "USD").await;
    app.fund(&other_admin, &other_wallet, "100.00").await;
    let (_, other_pay) =
        app.post("/v1/payments", &other_admin, json!({"from": other_wallet, "to": other_to, "amount": "1.00"})).await;
    app.policy(&other_admin, &other_wallet, json!({"name": "hold", "requireHumanApproval": true})).await;
    let (_, other_held) =
        app.post("/v1/payments", &other_admin, json!({"from": other_wallet, "to": other_to, "amount": "1.00"})).await;
    let other_approval = other_held["approvalId"].as_str().unwrap().to_string();
    let revoked = app.key(&s.admin, &["payments:write"]).await;
    let revoked_id = revoked.split('_').take(3).collect::<Vec<_>>()[1..].join("_");
    let (st, _) = app.call("DELETE", &format!("/v1/api-keys/{revoked_id}"), Some(&s.admin), None).await;
    assert_eq!(st, 200);
    let key_writer = app.key(&s.admin, &["api_keys:write"]).await;
    let admin_key_id = s.admin.split('_').take(3).collect::<Vec<_>>()[1..].join("_");
    let wrong_secret = format!("{}{}", &s.agent[..s.agent.len() - 4], "0000");
    // Use every key once before counting, so `lastUsedAt` refreshes are not in the window.
    for k in [&s.admin, &s.agent, &s.reviewer, &other_admin, &key_writer] {
        app.get("/v1/wallets", k).await;
    }

    let pay = |extra: Value| {
        let mut b = json!({"from": s.from, "to": s.to, "amount": "10.00"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() && k.starts_with('-') {
                b.as_object_mut().unwrap().remove(&k[1..]);
            } else {
                b[k] = v.clone();
            }
        }
        Body::Json(b)
    };
    use Who::*;
    let p = "/v1/payments";
    let w = format!("/v1/wallets/{}", s.from);
    let cases = vec![
        case("amount as number", "POST", p, Agent, pay(json!({"amount": 10})), 400, "INVALID_AMOUNT"),
        case("negative amount", "POST", p, Agent, pay(json!({"amount": "-5.00"})), 400, "INVALID_AMOUNT"),
        case("zero amount", "POST", p, Agent, pay(json!({"amount": "0"})), 400, "INVALID_AMOUNT"),
        case("zero with decimals", "POST", p, Agent, pay(json!({"amount": "0.00"})), 400, "INVALID_AMOUNT"),
        case("exponent", "POST", p, Agent, pay(json!({"amount": "1e3"})), 400, "INVALID_AMOUNT"),
        case("too many decimals", "POST", p, Agent, pay(json!({"amount": "10.001"})), 400, "INVALID_AMOUNT"),
        case("word", "POST", p, Agent, pay(json!({"amount": "ten"})), 400, "INVALID_AMOUNT"),
        case("empty amount", "POST", p, Agent, pay(json!({"amount": ""})), 400, "INVALID_AMOUNT"),
        case("thousands separator", "POST", p, Agent, pay(json!({"amount": "1,000.00"})), 400, "INVALID_AMOUNT"),
        case("leading space", "POST", p, Agent, pay(json!({"amount": " 10.00"})), 400, "INVALID_AMOUNT"),
        case(
            "absurd magnitude",
            "POST",
            p,
            Agent,
            pay(json!({"amount": "1000000000000000.00"})),
            400,
            "INVALID_AMOUNT",
        ),
        case("NaN", "POST", p, Agent, pay(json!({"amount": "NaN"})), 400, "INVALID_AMOUNT"),
        case("null amount", "POST", p, Agent, pay(json!({"amount": null})), 400, "INVALID_AMOUNT"),
        case("plus sign", "POST", p, Agent, pay(json!({"amount": "+1.00"})), 400, "INVALID_AMOUNT"),
        case("hex", "POST", p, Agent, pay(json!({"amount": "0x10"})), 400, "INVALID_AMOUNT"),
        case("non-ascii digits", "POST", p, Agent, pay(json!({"amount": "١٢"})), 400, "INVALID_AMOUNT"),
        case("amount as object", "POST", p, Agent, pay(json!({"amount": {"v": "1"}})), 400, "INVALID_AMOUNT"),
        case("lower-case currency", "POST", p, Agent, pay(json!({"currency": "usd"})), 400, "VALIDATION_ERROR"),
        case("unknown currency", "POST", p, Agent, pay(json!({"currency": "XXX"})), 400, "VALIDATION_ERROR"),
        case("short currency", "POST", p, Agent, pay(json!({"currency": "US"})), 400, "VALIDATION_ERROR"),
        case("currency as number", "POST", p, Agent, pay(json!({"currency": 840})), 400, "VALIDATION_ERROR"),
        case("currency mismatch", "POST", p, Agent, pay(json!({"currency": "EUR"})), 400, "VALIDATION_ERROR"),
        case("metal currency", "POST", p, Agent, pay(json!({"currency": "XAU"})), 400, "VALIDATION_ERROR"),
        case("missing from", "POST", p, Agent, pay(json!({"-from": null})), 400, "VALIDATION_ERROR"),
        case("missing to", "POST", p, Agent, pay(json!({"-to": null})), 400, "VALIDATION_ERROR"),
        case("missing amount", "POST", p, Agent, pay(json!({"-amount": null})), 400, "VALIDATION_ERROR"),
        case("from as number", "POST", p, Agent, pay(json!({"from": 7})), 400, "VALIDATION_ERROR"),
        case("from equals to", "POST", p, Agent, pay(json!({"to": s.from})), 400, "VALIDATION_ERROR"),
        case("malformed wallet id", "POST", p, Agent, pay(json!({"from": "wal_bad"})), 400, "VALIDATION_ERROR"),
        case(
            "unknown recipient",
            "POST",
            p,
            Agent,
            pay(json!({"to": "wal_01J00000000000000000000000"})),
            404,
            "WALLET_NOT_FOUND",
        ),
        case("risk above 100", "POST", p, Agent, pay(json!({"riskScore": 101})), 400, "VALIDATION_ERROR"),
        case("risk as text", "POST", p, Agent, pay(json!({"riskScore": "high"})), 400, "VALIDATION_ERROR"),
        case("confidence above 1", "POST", p, Agent, pay(json!({"confidenceScore": 1.5})), 400, "VALIDATION_ERROR"),
        case("unknown urgency", "POST", p, Agent, pay(json!({"urgency": "asap"})), 400, "VALIDATION_ERROR"),
        case(
            "description too long",
            "POST",
            p,
            Agent,
            pay(json!({"description": "x".repeat(1001)})),
            400,
            "VALIDATION_ERROR",
        ),
        case("metadata array", "POST", p, Agent, pay(json!({"metadata": [1, 2]})), 400, "VALIDATION_ERROR"),
        // What DynamoDB or the bus cannot hold is refused up front (once a 503 retried forever).
        case("metadata 1e200", "POST", p, Agent, pay(json!({"metadata": {"n": 1e200}})), 400, "VALIDATION_ERROR"),
        case("metadata 1e-200", "POST", p, Agent, pay(json!({"metadata": {"n": 1e-200}})), 400, "VALIDATION_ERROR"),
        case(
            "metadata beyond i64",
            "POST",
            p,
            Agent,
            pay(json!({"metadata": {"n": u64::MAX}})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "metadata nested 40 deep",
            "POST",
            p,
            Agent,
            pay(json!({"metadata": {"d": (0..40).fold(json!(1), |inner, _| json!([inner]))}})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "metadata 51 keys",
            "POST",
            p,
            Agent,
            pay(json!({"metadata": (0..51).map(|i| (format!("k{i}"), json!(i))).collect::<serde_json::Map<_, _>>()})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "metadata over 8 KiB",
            "POST",
            p,
            Agent,
            pay(json!({"metadata": {"blob": "x".repeat(9000)}})),
            400,
            "VALIDATION_ERROR",
        ),
        case("unknown field", "POST", p, Agent, pay(json!({"merchantHint": {"domain": "x"}})), 400, "VALIDATION_ERROR"),
        case("empty idempotency key", "POST", p, Agent, pay(json!({"idempotencyKey": ""})), 400, "VALIDATION_ERROR"),
        case(
            "idempotency key too long",
            "POST",
            p,
            Agent,
            pay(json!({"idempotencyKey": "k".repeat(300)})),
            400,
            "VALIDATION_ERROR",
        ),
        case("truncated JSON", "POST", p, Agent, Body::Raw(b"{".to_vec()), 400, "VALIDATION_ERROR"),
        case("array body", "POST", p, Agent, Body::Raw(b"[]".to_vec()), 400, "VALIDATION_ERROR"),
        case("string body", "POST", p, Agent, Body::Raw(b"\"pay\"".to_vec()), 400, "VALIDATION_ERROR"),
        case("broken JSON", "POST", p, Agent, Body::Raw(b"{\"from\": }".to_vec()), 400, "VALIDATION_ERROR"),
        case("invalid UTF-8", "POST", p, Agent, Body::Raw(vec![b'{', 0xff, 0xfe, b'}']), 400, "VALIDATION_ERROR"),
        case(
            "oversized body",
            "POST",
            p,
            Agent,
            Body::Raw(format!("{{\"pad\": \"{}\"}}", "x".repeat(1_100_000)).into_bytes()),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        case("wallet without name", "POST", "/v1/wallets", Admin, Body::Json(json!({})), 400, "VALIDATION_ERROR"),
        case(
            "wallet blank name",
            "POST",
            "/v1/wallets",
            Admin,
            Body::Json(json!({"name": "  "})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "wallet bad currency",
            "POST",
            "/v1/wallets",
            Admin,
            Body::Json(json!({"name": "w", "currency": "ZZZ"})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "fund negative",
            "POST",
            format!("{w}/fund"),
            Admin,
            Body::Json(json!({"amount": "-1"})),
            400,
            "INVALID_AMOUNT",
        ),
        case(
            "fund too precise",
            "POST",
            format!("{w}/fund"),
            Admin,
            Body::Json(json!({"amount": "1.234"})),
            400,
            "INVALID_AMOUNT",
        ),
        case(
            "fund unknown wallet",
            "POST",
            "/v1/wallets/wal_01J00000000000000000000000/fund",
            Admin,
            Body::Json(json!({"amount": "1.00"})),
            404,
            "WALLET_NOT_FOUND",
        ),
        case("get unknown wallet", "GET", "/v1/wallets/wal_nope", Admin, Body::None, 404, "WALLET_NOT_FOUND"),
        case("limit zero", "GET", "/v1/wallets?limit=0", Admin, Body::None, 400, "VALIDATION_ERROR"),
        case("limit not a number", "GET", "/v1/wallets?limit=abc", Admin, Body::None, 400, "VALIDATION_ERROR"),
        case("limit too large", "GET", "/v1/payments?limit=1000", Agent, Body::None, 400, "VALIDATION_ERROR"),
        case("garbage cursor", "GET", "/v1/approvals?cursor=garbage", Reviewer, Body::None, 400, "VALIDATION_ERROR"),
        case("unknown status", "GET", "/v1/approvals?status=WAITING", Reviewer, Body::None, 400, "VALIDATION_ERROR"),
        case(
            "stats: since a word",
            "GET",
            "/v1/stats/approvals?since=yesterday",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: no such day",
            "GET",
            "/v1/stats/approvals?until=2026-02-30",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: time without zone",
            "GET",
            "/v1/stats/approvals?since=2026-12-01T10:00:00",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: since = until",
            "GET",
            "/v1/stats/approvals?since=2026-12-01&until=2026-12-01",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: since after until",
            "GET",
            "/v1/stats/approvals?since=2026-12-02&until=2026-12-01",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: 94 days",
            "GET",
            "/v1/stats/approvals?since=2026-01-01&until=2026-04-05",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: since far back",
            "GET",
            "/v1/stats/approvals?since=2020-01-01",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: unknown groupBy",
            "GET",
            "/v1/stats/approvals?groupBy=wallet",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "stats: empty groupBy",
            "GET",
            "/v1/stats/approvals?groupBy=",
            Reviewer,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case("stats: agent reads them", "GET", "/v1/stats/approvals", Agent, Body::None, 403, "PERMISSION_DENIED"),
        case(
            "policy without name",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"requireHumanApproval": true})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy numeric limit",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"name": "p", "maxTransactionAmount": 1000})),
            400,
            "INVALID_AMOUNT",
        ),
        case(
            "policy risk threshold 200",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"name": "p", "riskScoreThreshold": 200})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy ttl zero",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"name": "p", "approvalTtlSeconds": 0})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy zero approvers",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"name": "p", "requiredApprovals": 0})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy bad recipient",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"name": "p", "approvedRecipients": ["x"]})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy unknown mode",
            "POST",
            format!("{w}/policies"),
            Admin,
            Body::Json(json!({"name": "p", "mode": "audit"})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "patch policy mode as number",
            "PATCH",
            format!("{w}/policies/{policy}"),
            Admin,
            Body::Json(json!({"mode": 1})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "patch policy mode upper case",
            "PATCH",
            format!("{w}/policies/{policy}"),
            Admin,
            Body::Json(json!({"mode": "SHADOW"})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "shadow stats of an unknown policy",
            "GET",
            format!("{w}/policies/pol_01J00000000000000000000000/shadow-stats"),
            Admin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "shadow stats malformed policy id",
            "GET",
            format!("{w}/policies/pol_nope/shadow-stats"),
            Admin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "shadow stats malformed wallet id",
            "GET",
            format!("/v1/wallets/wal_nope/policies/{policy}/shadow-stats"),
            Admin,
            Body::None,
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "shadow stats of another org's policy",
            "GET",
            format!("{w}/policies/{policy}/shadow-stats"),
            OtherAdmin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "shadow stats by a reviewer",
            "GET",
            format!("{w}/policies/{policy}/shadow-stats"),
            Reviewer,
            Body::None,
            403,
            "PERMISSION_DENIED",
        ),
        case(
            "patch policy bad amount",
            "PATCH",
            format!("{w}/policies/{policy}"),
            Admin,
            Body::Json(json!({"dailySpendingLimit": "-3"})),
            400,
            "INVALID_AMOUNT",
        ),
        case(
            "policy versions of a malformed wallet id",
            "GET",
            format!("/v1/wallets/wal_nope/policies/{policy}/versions"),
            Admin,
            Body::None,
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "policy versions of a malformed policy id",
            "GET",
            format!("{w}/policies/pol_nope/versions"),
            Admin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "policy versions of an unknown policy",
            "GET",
            format!("{w}/policies/pol_01J00000000000000000000000/versions"),
            Admin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "policy versions limit zero",
            "GET",
            format!("{w}/policies/{policy}/versions?limit=0"),
            Admin,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy versions garbage cursor",
            "GET",
            format!("{w}/policies/{policy}/versions?cursor=garbage"),
            Admin,
            Body::None,
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "policy versions without wallets:read",
            "GET",
            format!("{w}/policies/{policy}/versions"),
            Reviewer,
            Body::None,
            403,
            "PERMISSION_DENIED",
        ),
        case(
            "other org lists our policy's versions",
            "GET",
            format!("{w}/policies/{policy}/versions"),
            OtherAdmin,
            Body::None,
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "other org reads our policy's version",
            "GET",
            format!("{w}/policies/{policy}/versions/1"),
            OtherAdmin,
            Body::None,
            404,
            "POLICY_VERSION_NOT_FOUND",
        ),
        case(
            "policy version of a malformed policy id",
            "GET",
            format!("{w}/policies/pol_nope/versions/1"),
            Admin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "policy version of a malformed wallet id",
            "GET",
            format!("/v1/wallets/wal_nope/policies/{policy}/versions/1"),
            Admin,
            Body::None,
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "policy version 0",
            "GET",
            format!("{w}/policies/{policy}/versions/0"),
            Admin,
            Body::None,
            404,
            "POLICY_VERSION_NOT_FOUND",
        ),
        case(
            "policy version -1",
            "GET",
            format!("{w}/policies/{policy}/versions/-1"),
            Admin,
            Body::None,
            404,
            "POLICY_VERSION_NOT_FOUND",
        ),
        case(
            "policy version abc",
            "GET",
            format!("{w}/policies/{policy}/versions/abc"),
            Admin,
            Body::None,
            404,
            "POLICY_VERSION_NOT_FOUND",
        ),
        case(
            "policy version beyond u32",
            "GET",
            format!("{w}/policies/{policy}/versions/99999999999999999999"),
            Admin,
            Body::None,
            404,
            "POLICY_VERSION_NOT_FOUND",
        ),
        case(
            "policy version 2 of 1",
            "GET",
            format!("{w}/policies/{policy}/versions/2"),
            Admin,
            Body::None,
            404,
            "POLICY_VERSION_NOT_FOUND",
        ),
        case(
            "unknown approval",
            "POST",
            "/v1/approvals/apr_01J00000000000000000000000/approve",
            Reviewer,
            Body::Json(json!({})),
            404,
            "APPROVAL_NOT_FOUND",
        ),
        case(
            "malformed approval id",
            "POST",
            "/v1/approvals/nope/approve",
            Reviewer,
            Body::Json(json!({})),
            404,
            "APPROVAL_NOT_FOUND",
        ),
        case(
            "reject reason too long",
            "POST",
            format!("/v1/approvals/{approval}/reject"),
            Reviewer,
            Body::Json(json!({"reason": "x".repeat(2000)})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "approve unknown field",
            "POST",
            format!("/v1/approvals/{approval}/approve"),
            Reviewer,
            Body::Json(json!({"amount": "1"})),
            400,
            "VALIDATION_ERROR",
        ),
        case("no key", "GET", "/v1/wallets", Nobody, Body::None, 401, "UNAUTHORIZED"),
        case("garbage key", "GET", "/v1/wallets", Raw("Bearer csk_garbage".into()), Body::None, 401, "UNAUTHORIZED"),
        case(
            "wrong secret",
            "GET",
            "/v1/payments",
            Raw(format!("Bearer {wrong_secret}")),
            Body::None,
            401,
            "UNAUTHORIZED",
        ),
        case("basic auth", "GET", "/v1/wallets", Raw("Basic dXNlcjpwYXNz".into()), Body::None, 401, "UNAUTHORIZED"),
        case("revoked key", "POST", p, Revoked, pay(json!({})), 401, "API_KEY_REVOKED"),
        case("agent lists approvals", "GET", "/v1/approvals", Agent, Body::None, 403, "PERMISSION_DENIED"),
        case("reviewer pays", "POST", p, Reviewer, pay(json!({})), 403, "PERMISSION_DENIED"),
        case("agent reads audit", "GET", "/v1/audit-logs", Agent, Body::None, 403, "PERMISSION_DENIED"),
        case(
            "key writer escalates",
            "POST",
            "/v1/api-keys",
            KeyWriter,
            Body::Json(json!({"name": "x", "permissions": ["admin"]})),
            403,
            "PERMISSION_DENIED",
        ),
        case(
            "key writer revokes the admin key",
            "DELETE",
            format!("/v1/api-keys/{admin_key_id}"),
            KeyWriter,
            Body::None,
            403,
            "PERMISSION_DENIED",
        ),
        case(
            "key writer demotes the admin key",
            "PATCH",
            format!("/v1/api-keys/{admin_key_id}"),
            KeyWriter,
            Body::Json(json!({"permissions": ["api_keys:write"]})),
            403,
            "PERMISSION_DENIED",
        ),
        case(
            "unknown permission",
            "POST",
            "/v1/api-keys",
            Admin,
            Body::Json(json!({"name": "x", "permissions": ["root"]})),
            400,
            "VALIDATION_ERROR",
        ),
        case(
            "org by non-operator",
            "POST",
            "/v1/organizations",
            Admin,
            Body::Json(json!({"name": "x"})),
            403,
            "PERMISSION_DENIED",
        ),
        case("org without name", "POST", "/v1/organizations", Operator, Body::Json(json!({})), 400, "VALIDATION_ERROR"),
        case("operator cannot pay", "POST", p, Operator, pay(json!({})), 403, "PERMISSION_DENIED"),
        case(
            "other org's wallet",
            "GET",
            format!("/v1/wallets/{other_wallet}"),
            Admin,
            Body::None,
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "other org's payment",
            "GET",
            format!("/v1/payments/{}", other_pay["id"].as_str().unwrap()),
            Admin,
            Body::None,
            404,
            "PAYMENT_NOT_FOUND",
        ),
        case(
            "other org's approval",
            "POST",
            format!("/v1/approvals/{other_approval}/approve"),
            Admin,
            Body::Json(json!({})),
            404,
            "APPROVAL_NOT_FOUND",
        ),
        case(
            "pay from other org's wallet",
            "POST",
            p,
            Admin,
            pay(json!({"from": other_wallet})),
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "fund other org's wallet",
            "POST",
            format!("/v1/wallets/{other_wallet}/fund"),
            Admin,
            Body::Json(json!({"amount": "5.00"})),
            404,
            "WALLET_NOT_FOUND",
        ),
        case(
            "other org reads our policy",
            "GET",
            format!("{w}/policies/{policy}"),
            OtherAdmin,
            Body::None,
            404,
            "POLICY_NOT_FOUND",
        ),
        case(
            "other org lists our wallet's approvals",
            "GET",
            format!("/v1/approvals?walletId={}", s.from),
            OtherAdmin,
            Body::None,
            200,
            "",
        ),
        case("unknown route", "GET", "/v1/nothing", Admin, Body::None, 404, "NOT_FOUND"),
        case("wrong method", "DELETE", w.clone(), Admin, Body::None, 405, "METHOD_NOT_ALLOWED"),
    ];
    assert!(cases.len() >= 60, "{} cases", cases.len());

    let before = app.store.item_count().await;
    for c in &cases {
        let auth = match &c.who {
            Nobody => None,
            Admin => Some(format!("Bearer {}", s.admin)),
            Agent => Some(format!("Bearer {}", s.agent)),
            Reviewer => Some(format!("Bearer {}", s.reviewer)),
            Revoked => Some(format!("Bearer {revoked}")),
            OtherAdmin => Some(format!("Bearer {other_admin}")),
            Operator => Some(format!("Bearer {OPERATOR_KEY}")),
            KeyWriter => Some(format!("Bearer {key_writer}")),
            Raw(h) => Some(h.clone()),
        };
        let bytes = match &c.body {
            Body::None => Vec::new(),
            Body::Json(v) => serde_json::to_vec(v).unwrap(),
            Body::Raw(b) => b.clone(),
        };
        let (status, body) = app.call_raw(c.method, &c.path, auth.as_deref(), bytes).await;
        assert!(status < 500, "{backend:?} {}: got {status} {body}", c.name);
        assert_eq!(status, c.status, "{backend:?} {}: {body}", c.name);
        if c.status == 200 {
            // Another org's wallet id filters to nothing of ours: an empty page, not a leak.
            assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{}", c.name);
            continue;
        }
        assert_eq!(body["error"]["code"], c.code, "{backend:?} {}: {body}", c.name);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}: {body}", c.name);
    }
    assert_eq!(app.store.item_count().await, before, "{backend:?}: refused requests must write nothing");
}

/// One row: who calls, how, what comes back, and the field the error names (every 400 names one).
struct Refusal {
    name: &'static str,
    who: Who,
    method: &'static str,
    path: String,
    body: Value,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

#[allow(clippy::too_many_arguments)]
fn refusal(
    name: &'static str,
    who: Who,
    method: &'static str,
    path: impl Into<String>,
    body: Value,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Refusal {
    Refusal { name, who, method, path: path.into(), body, status, code, field }
}

/// Sends every row as `key(who)`: each answers its status and code, naming its field (every 400
/// names one) with a message, and nothing is written.
async fn refused_every_row(app: &TestApp, backend: Backend, rows: &[Refusal], key: impl Fn(&Who) -> String) {
    let before = app.store.item_count().await;
    let mut wrong = Vec::new();
    for r in rows {
        let body = (!r.body.is_null()).then(|| r.body.clone());
        let (status, got) = app.call(r.method, &r.path, Some(&key(&r.who)), body).await;
        let seen = (status, got["error"]["code"].as_str(), got["error"]["details"]["field"].as_str());
        let has_message = got["error"]["message"].as_str().is_some_and(|m| !m.is_empty());
        if seen != (r.status, Some(r.code), r.field) || !has_message {
            wrong.push(format!("{}: {status} {got}", r.name));
        }
        assert!(r.status != 400 || r.field.is_some(), "{}: every 400 names its field", r.name);
    }
    assert!(wrong.is_empty(), "{backend:?}: {} rows wrong:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(app.store.item_count().await, before, "{backend:?}: refused requests wrote nothing");
}

per_backend!(every_human_side_route_refuses_bad_input_naming_the_field);
/// Members, teams, routing rules (both spellings), modify, escalate and reviews (docs/api.md,
/// "Teams and routing", "Reviews"): 4xx in the envelope, the field named, nothing written.
async fn every_human_side_route_refuses_bad_input_naming_the_field(backend: Backend) {
    use Who::*;
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (_, approval) = app.held_payment(&s, "5000.00").await;
    let other = app.org("other").await;
    let (_, foreign) = app.post("/v1/teams", &other, json!({"name": "theirs"})).await;
    let foreign = foreign["id"].as_str().unwrap().to_string();
    let (_, team) = app.post("/v1/teams", &s.admin, json!({"name": "ours"})).await;
    let team = team["id"].as_str().unwrap().to_string();
    let (_, rule) =
        app.post("/v1/routing-rules", &s.admin, json!({"name": "r", "conditions": {}, "assignToTeam": team})).await;
    let rule = format!("/v1/routing-rules/{}", rule["id"].as_str().unwrap());
    let asker = app.key(&s.admin, &["reviews:write"]).await;
    let (_, review) = app.post("/reviews", &asker, json!({"task_type": "wire", "proposed_action": "wire"})).await;
    let review = format!("/reviews/{}", review["id"].as_str().unwrap());
    let held = format!("/reviews/{approval}");
    let apr = format!("/v1/approvals/{approval}");
    let bulk = "/v1/approvals/bulk";
    let t = format!("/v1/teams/{team}");
    // Slack: one member already linked to a Slack user, another to try the same user with.
    let linked = app.member(&s.admin, "linked").await;
    let unlinked = app.member(&s.admin, "unlinked").await;
    let (status, body) = app
        .call("PATCH", &format!("/v1/members/{linked}"), Some(&s.admin), Some(json!({"slackUserId": "U0TAKEN"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let m = format!("/v1/members/{unlinked}");
    let slack = "/v1/integrations/slack";
    let slack_body = |extra: Value| {
        let mut b = json!({"botToken": "xoxb-1234567890", "signingSecret": "0123456789abcdef0123456789abcdef"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let log = "/v1/notifications/deliveries";
    let new_rule =
        |conditions: Value| json!({"name": "r", "priority": 1, "conditions": conditions, "assignToTeam": team});
    let seed_rule = |extra: Value| {
        let mut b = json!({"name": "r", "priority": 1, "conditions": {}, "assign_to_team_id": team});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let review_body = |extra: Value| {
        let mut b = json!({"task_type": "payment", "proposed_action": "pay"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let bad = "VALIDATION_ERROR";
    let rows = vec![
        // Members.
        refusal("member without email", Admin, "POST", "/v1/members", json!({"name": "a"}), 400, bad, Some("email")),
        refusal(
            "member bad email",
            Admin,
            "POST",
            "/v1/members",
            json!({"name": "a", "email": "nope"}),
            400,
            bad,
            Some("email"),
        ),
        refusal(
            "member blank name",
            Admin,
            "POST",
            "/v1/members",
            json!({"name": " ", "email": "a@b.co"}),
            400,
            bad,
            Some("name"),
        ),
        refusal(
            "member unknown field",
            Admin,
            "POST",
            "/v1/members",
            json!({"name": "a", "email": "a@b.co", "role": "x"}),
            400,
            bad,
            Some("role"),
        ),
        refusal(
            "member by an agent",
            Agent,
            "POST",
            "/v1/members",
            json!({"name": "a", "email": "a@b.co"}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        // Members' Slack users.
        refusal(
            "member slack id with markup",
            Admin,
            "PATCH",
            m.clone(),
            json!({"slackUserId": "<@U1>"}),
            400,
            bad,
            Some("slackUserId"),
        ),
        refusal(
            "member slack id a number",
            Admin,
            "PATCH",
            m.clone(),
            json!({"slackUserId": 7}),
            400,
            bad,
            Some("slackUserId"),
        ),
        refusal("member patch unknown field", Admin, "PATCH", m.clone(), json!({"role": "x"}), 400, bad, Some("role")),
        refusal(
            "member slack user taken",
            Admin,
            "PATCH",
            m.clone(),
            json!({"slackUserId": "U0TAKEN"}),
            409,
            "SLACK_USER_TAKEN",
            None,
        ),
        refusal(
            "member patch by an agent",
            Agent,
            "PATCH",
            m.clone(),
            json!({"slackUserId": "U0X"}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "unknown member",
            Admin,
            "PATCH",
            "/v1/members/mem_01J00000000000000000000000",
            json!({"slackUserId": "U0X"}),
            404,
            "MEMBER_NOT_FOUND",
            None,
        ),
        refusal(
            "other org's member",
            OtherAdmin,
            "PATCH",
            m.clone(),
            json!({"slackUserId": "U0X"}),
            404,
            "MEMBER_NOT_FOUND",
            None,
        ),
        // The Slack integration, the notification log, Slack's click endpoint.
        refusal(
            "slack without token",
            Admin,
            "PUT",
            slack,
            slack_body(json!({"botToken": null})),
            400,
            bad,
            Some("botToken"),
        ),
        refusal(
            "slack token not a bot token",
            Admin,
            "PUT",
            slack,
            slack_body(json!({"botToken": "abc"})),
            400,
            bad,
            Some("botToken"),
        ),
        refusal(
            "slack short signing secret",
            Admin,
            "PUT",
            slack,
            slack_body(json!({"signingSecret": "short"})),
            400,
            bad,
            Some("signingSecret"),
        ),
        refusal(
            "slack channel with markup",
            Admin,
            "PUT",
            slack,
            slack_body(json!({"defaultChannel": "<!channel>"})),
            400,
            bad,
            Some("defaultChannel"),
        ),
        refusal("slack unknown field", Admin, "PUT", slack, slack_body(json!({"colour": 1})), 400, bad, Some("colour")),
        refusal("slack by a reviewer", Reviewer, "PUT", slack, slack_body(json!({})), 403, "PERMISSION_DENIED", None),
        refusal(
            "team slack channel with markup",
            Admin,
            "PATCH",
            t.clone(),
            json!({"slackChannel": "#a b"}),
            400,
            bad,
            Some("slackChannel"),
        ),
        refusal(
            "log unknown channel",
            Admin,
            "GET",
            format!("{log}?channel=fax"),
            Value::Null,
            400,
            bad,
            Some("channel"),
        ),
        refusal("log unknown kind", Admin, "GET", format!("{log}?kind=loud"), Value::Null, 400, bad, Some("kind")),
        refusal(
            "log unknown status",
            Admin,
            "GET",
            format!("{log}?status=LOST"),
            Value::Null,
            400,
            bad,
            Some("status"),
        ),
        refusal(
            "log bad approval id",
            Admin,
            "GET",
            format!("{log}?approvalId=x"),
            Value::Null,
            400,
            bad,
            Some("approvalId"),
        ),
        refusal(
            "log bad review id",
            Admin,
            "GET",
            format!("{log}?reviewId=x"),
            Value::Null,
            400,
            bad,
            Some("reviewId"),
        ),
        refusal("log by a reviewer", Reviewer, "GET", log, Value::Null, 403, "PERMISSION_DENIED", None),
        refusal(
            "slack click naming no organisation",
            Admin,
            "POST",
            "/integrations/slack/interactions",
            json!({"payload": "{}"}),
            401,
            "UNAUTHORIZED",
            None,
        ),
        // Teams.
        refusal("team without name", Admin, "POST", "/v1/teams", json!({}), 400, bad, Some("name")),
        refusal(
            "team unknown member",
            Admin,
            "POST",
            "/v1/teams",
            json!({"name": "t", "members": ["mem_01J00000000000000000000000"]}),
            404,
            "MEMBER_NOT_FOUND",
            None,
        ),
        refusal(
            "team malformed member",
            Admin,
            "POST",
            "/v1/teams",
            json!({"name": "t", "members": ["bob"]}),
            400,
            bad,
            Some("members"),
        ),
        refusal(
            "team members not a list",
            Admin,
            "POST",
            "/v1/teams",
            json!({"name": "t", "members": "bob"}),
            400,
            bad,
            Some("members"),
        ),
        refusal(
            "team patch bad member",
            Admin,
            "PATCH",
            t.clone(),
            json!({"members": ["bob"]}),
            400,
            bad,
            Some("members"),
        ),
        refusal("team patch blank name", Admin, "PATCH", t.clone(), json!({"name": " "}), 400, bad, Some("name")),
        refusal(
            "team patch unknown field",
            Admin,
            "PATCH",
            t.clone(),
            json!({"colour": "red"}),
            400,
            bad,
            Some("colour"),
        ),
        refusal(
            "unknown team",
            Admin,
            "PATCH",
            "/v1/teams/team_01J00000000000000000000000",
            json!({"name": "x"}),
            404,
            "TEAM_NOT_FOUND",
            None,
        ),
        refusal("other org's team", OtherAdmin, "PATCH", t.clone(), json!({"name": "x"}), 404, "TEAM_NOT_FOUND", None),
        // Routing rules.
        refusal(
            "rule wrong operator",
            Admin,
            "POST",
            "/v1/routing-rules",
            new_rule(json!({"amount": {"operator": "~", "value": 1}})),
            400,
            bad,
            Some("conditions.amount"),
        ),
        refusal(
            "rule field that does not exist",
            Admin,
            "POST",
            "/v1/routing-rules",
            new_rule(json!({"colour": {"operator": "=", "value": "red"}})),
            400,
            bad,
            Some("conditions"),
        ),
        refusal(
            "rule in without a list",
            Admin,
            "POST",
            "/v1/routing-rules",
            new_rule(json!({"currency": {"operator": "in", "value": "USD"}})),
            400,
            bad,
            Some("conditions.currency"),
        ),
        refusal(
            "rule number compared with text",
            Admin,
            "POST",
            "/v1/routing-rules",
            new_rule(json!({"amount": {"operator": ">", "value": "lots"}})),
            400,
            bad,
            Some("conditions.amount"),
        ),
        refusal(
            "rule condition without operator",
            Admin,
            "POST",
            "/v1/routing-rules",
            new_rule(json!({"amount": {"value": 1}})),
            400,
            bad,
            Some("conditions.amount"),
        ),
        refusal(
            "rule priority as text",
            Admin,
            "POST",
            "/v1/routing-rules",
            json!({"name": "r", "priority": "high", "conditions": {}, "assignToTeam": team}),
            400,
            bad,
            Some("priority"),
        ),
        refusal(
            "rule unknown body field",
            Admin,
            "POST",
            "/v1/routing-rules",
            json!({"name": "r", "conditions": {}, "assignToTeam": team, "colour": 1}),
            400,
            bad,
            Some("colour"),
        ),
        refusal(
            "rule of another org's team",
            Admin,
            "POST",
            "/v1/routing-rules",
            json!({"name": "r", "conditions": {}, "assignToTeam": foreign}),
            404,
            "TEAM_NOT_FOUND",
            None,
        ),
        refusal(
            "seed rule without team",
            Admin,
            "POST",
            "/routing-rules",
            json!({"name": "r"}),
            400,
            bad,
            Some("assignToTeam"),
        ),
        refusal(
            "seed rule wrong operator",
            Admin,
            "POST",
            "/routing-rules",
            seed_rule(json!({"conditions": {"task_type": {"operator": "is", "value": "payment"}}})),
            400,
            bad,
            Some("conditions.task_type"),
        ),
        refusal(
            "seed rule unknown field",
            Admin,
            "POST",
            "/routing-rules",
            seed_rule(json!({"colour": 1})),
            400,
            bad,
            Some("colour"),
        ),
        refusal(
            "seed rule metadata without path",
            Admin,
            "POST",
            "/routing-rules",
            seed_rule(json!({"conditions": {"metadata.": {"operator": "=", "value": 1}}})),
            400,
            bad,
            Some("conditions.metadata"),
        ),
        refusal(
            "rule patch bad operator",
            Admin,
            "PATCH",
            rule.clone(),
            json!({"conditions": {"amount": {"operator": "~", "value": 1}}}),
            400,
            bad,
            Some("conditions.amount"),
        ),
        refusal(
            "rule patch bad team",
            Admin,
            "PATCH",
            rule.clone(),
            json!({"assignToTeam": "finance"}),
            400,
            bad,
            Some("assignToTeam"),
        ),
        refusal(
            "rule patch active as text",
            Admin,
            "PATCH",
            rule.clone(),
            json!({"isActive": "yes"}),
            400,
            bad,
            Some("isActive"),
        ),
        refusal(
            "unknown rule",
            Admin,
            "DELETE",
            "/v1/routing-rules/rule_01J00000000000000000000000",
            Value::Null,
            404,
            "ROUTING_RULE_NOT_FOUND",
            None,
        ),
        refusal(
            "other org deletes our rule",
            OtherAdmin,
            "DELETE",
            rule.clone(),
            Value::Null,
            404,
            "ROUTING_RULE_NOT_FOUND",
            None,
        ),
        // Modify and escalate.
        refusal(
            "modify above the original",
            Reviewer,
            "POST",
            format!("{apr}/modify"),
            json!({"amount": "5000.01"}),
            400,
            bad,
            Some("amount"),
        ),
        refusal(
            "modify to zero",
            Reviewer,
            "POST",
            format!("{apr}/modify"),
            json!({"amount": "0.00"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        refusal(
            "modify without amount",
            Reviewer,
            "POST",
            format!("{apr}/modify"),
            json!({"note": "x"}),
            400,
            bad,
            Some("amount"),
        ),
        refusal(
            "modify number amount",
            Reviewer,
            "POST",
            format!("{apr}/modify"),
            json!({"amount": 5}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        refusal(
            "modify by the agent",
            Agent,
            "POST",
            format!("{apr}/modify"),
            json!({"amount": "1.00"}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "escalate bad team",
            Reviewer,
            "POST",
            format!("{apr}/escalate"),
            json!({"toTeam": "x"}),
            400,
            bad,
            Some("toTeam"),
        ),
        refusal(
            "escalate unknown field",
            Reviewer,
            "POST",
            format!("{apr}/escalate"),
            json!({"team": "x"}),
            400,
            bad,
            Some("team"),
        ),
        refusal(
            "escalate to another org's team",
            Admin,
            "POST",
            format!("{apr}/escalate"),
            json!({"toTeam": foreign}),
            404,
            "TEAM_NOT_FOUND",
            None,
        ),
        refusal(
            "escalate without a chain",
            Admin,
            "POST",
            format!("{apr}/escalate"),
            json!({}),
            409,
            "NO_ESCALATION_TARGET",
            None,
        ),
        // Reviews.
        refusal(
            "review by a reviewer",
            Reviewer,
            "POST",
            "/reviews",
            review_body(json!({})),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "review missing task_type",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"task_type": null})),
            400,
            bad,
            Some("task_type"),
        ),
        refusal(
            "review blank action",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"proposed_action": "  "})),
            400,
            bad,
            Some("proposed_action"),
        ),
        refusal(
            "review confidence above 1",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"confidence_score": 1.5})),
            400,
            bad,
            Some("confidence_score"),
        ),
        refusal(
            "review unknown urgency",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"urgency": "asap"})),
            400,
            bad,
            Some("urgency"),
        ),
        refusal(
            "review metadata not an object",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"metadata": [1]})),
            400,
            bad,
            Some("metadata"),
        ),
        refusal(
            "review unknown field",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"reviewer": "me"})),
            400,
            bad,
            Some("reviewer"),
        ),
        refusal(
            "review blocking as text",
            Admin,
            "POST",
            "/reviews",
            review_body(json!({"blocking": "yes"})),
            400,
            bad,
            Some("blocking"),
        ),
        refusal("page_size 0", Admin, "GET", "/reviews?page_size=0", Value::Null, 400, bad, Some("page_size")),
        refusal("page_size 101", Admin, "GET", "/reviews?page_size=101", Value::Null, 400, bad, Some("page_size")),
        refusal("page 0", Admin, "GET", "/reviews?page=0", Value::Null, 400, bad, Some("page")),
        refusal("unknown status", Admin, "GET", "/reviews?status=open", Value::Null, 400, bad, Some("status")),
        refusal(
            "decide without decision_type",
            Reviewer,
            "POST",
            format!("{review}/decide"),
            json!({"notes": "x"}),
            400,
            bad,
            Some("decision_type"),
        ),
        refusal(
            "decide unknown decision_type",
            Reviewer,
            "POST",
            format!("{review}/decide"),
            json!({"decision_type": "maybe"}),
            400,
            bad,
            Some("decision_type"),
        ),
        refusal(
            "modify without modified_action",
            Reviewer,
            "POST",
            format!("{review}/decide"),
            json!({"decision_type": "modify"}),
            400,
            bad,
            Some("modified_action"),
        ),
        refusal(
            "modified_amount on a plain review",
            Reviewer,
            "POST",
            format!("{review}/decide"),
            json!({"decision_type": "modify", "modified_action": "x", "modified_amount": "1.00"}),
            400,
            bad,
            Some("modified_amount"),
        ),
        refusal(
            "self-reported reviewer",
            Reviewer,
            "POST",
            format!("{review}/decide"),
            json!({"decision_type": "approve", "reviewer_name": "x"}),
            400,
            bad,
            Some("reviewer_name"),
        ),
        refusal(
            "payment modify without amount",
            Reviewer,
            "POST",
            format!("{held}/decide"),
            json!({"decision_type": "modify", "modified_action": "x"}),
            400,
            bad,
            Some("modified_amount"),
        ),
        refusal(
            "payment modify above the original",
            Reviewer,
            "POST",
            format!("{held}/decide"),
            json!({"decision_type": "modify", "modified_action": "x", "modified_amount": "9000.00"}),
            400,
            bad,
            Some("modified_amount"),
        ),
        refusal(
            "decide by the asker",
            KeyWriter,
            "POST",
            format!("{review}/decide"),
            json!({"decision_type": "approve"}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "decide another org's review",
            OtherAdmin,
            "POST",
            format!("{review}/decide"),
            json!({"decision_type": "approve"}),
            404,
            "REVIEW_NOT_FOUND",
            None,
        ),
        refusal(
            "read another org's held payment",
            OtherAdmin,
            "GET",
            held.clone(),
            Value::Null,
            404,
            "REVIEW_NOT_FOUND",
            None,
        ),
        refusal(
            "unknown review",
            Admin,
            "GET",
            "/reviews/rev_01J00000000000000000000000",
            Value::Null,
            404,
            "REVIEW_NOT_FOUND",
            None,
        ),
        refusal(
            "not a review id",
            Admin,
            "GET",
            "/reviews/pay_01J00000000000000000000000",
            Value::Null,
            404,
            "REVIEW_NOT_FOUND",
            None,
        ),
        refusal(
            "wait above 28",
            Admin,
            "GET",
            format!("{review}/decision?wait=29"),
            Value::Null,
            400,
            bad,
            Some("wait"),
        ),
        refusal(
            "escalate review without team",
            Reviewer,
            "POST",
            format!("{review}/escalate"),
            json!({}),
            400,
            bad,
            Some("to_team_id"),
        ),
        refusal(
            "escalate review to another org's team",
            Reviewer,
            "POST",
            format!("{review}/escalate"),
            json!({"to_team_id": foreign}),
            404,
            "TEAM_NOT_FOUND",
            None,
        ),
        // Comments on an approval.
        refusal("comment without body", Reviewer, "POST", format!("{apr}/comments"), json!({}), 400, bad, Some("body")),
        refusal(
            "comment blank",
            Reviewer,
            "POST",
            format!("{apr}/comments"),
            json!({"body": " \n "}),
            400,
            bad,
            Some("body"),
        ),
        refusal(
            "comment too long",
            Agent,
            "POST",
            format!("{apr}/comments"),
            json!({"body": "x".repeat(4001)}),
            400,
            bad,
            Some("body"),
        ),
        refusal(
            "comment body a number",
            Reviewer,
            "POST",
            format!("{apr}/comments"),
            json!({"body": 7}),
            400,
            bad,
            Some("body"),
        ),
        refusal(
            "comment unknown field",
            Reviewer,
            "POST",
            format!("{apr}/comments"),
            json!({"body": "ok", "author": "me"}),
            400,
            bad,
            Some("author"),
        ),
        refusal(
            "comment control character",
            Reviewer,
            "POST",
            format!("{apr}/comments"),
            json!({"body": "ring\u{7}"}),
            400,
            bad,
            Some("body"),
        ),
        refusal(
            "comment by a key that is neither reviewer nor requester",
            KeyWriter,
            "POST",
            format!("{apr}/comments"),
            json!({"body": "hello"}),
            404,
            "APPROVAL_NOT_FOUND",
            None,
        ),
        refusal(
            "comments of another org's approval",
            OtherAdmin,
            "GET",
            format!("{apr}/comments"),
            Value::Null,
            404,
            "APPROVAL_NOT_FOUND",
            None,
        ),
        refusal(
            "comments bad limit",
            Reviewer,
            "GET",
            format!("{apr}/comments?limit=0"),
            Value::Null,
            400,
            bad,
            Some("limit"),
        ),
        // Bulk decisions: the body is checked whole before anything is decided.
        refusal("bulk without ids", Reviewer, "POST", bulk, json!({"decision": "approve"}), 400, bad, Some("ids")),
        refusal(
            "bulk empty ids",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": []}),
            400,
            bad,
            Some("ids"),
        ),
        refusal(
            "bulk over 100 ids",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": vec![approval.clone(); 101]}),
            400,
            bad,
            Some("ids"),
        ),
        refusal(
            "bulk malformed id",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": [approval, approval, approval, "nope"]}),
            400,
            bad,
            Some("ids[3]"),
        ),
        refusal(
            "bulk id a number",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": [approval, 5]}),
            400,
            bad,
            Some("ids[1]"),
        ),
        refusal(
            "bulk ids not a list",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": approval}),
            400,
            bad,
            Some("ids"),
        ),
        refusal(
            "bulk unknown decision",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "modify", "ids": [approval]}),
            400,
            bad,
            Some("decision"),
        ),
        refusal(
            "bulk without decision",
            Reviewer,
            "POST",
            bulk,
            json!({"ids": [approval]}),
            400,
            bad,
            Some("decision"),
        ),
        refusal(
            "bulk note too long",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "reject", "ids": [approval], "note": "x".repeat(1001)}),
            400,
            bad,
            Some("note"),
        ),
        refusal(
            "bulk unknown field",
            Reviewer,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": [approval], "alwaysAllow": {}}),
            400,
            bad,
            Some("alwaysAllow"),
        ),
        refusal(
            "bulk by an agent",
            Agent,
            "POST",
            bulk,
            json!({"decision": "approve", "ids": [approval]}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
    ];
    // The key writer here is the review asker (reviews:write only).
    for k in [&s.admin, &s.agent, &s.reviewer, &other, &asker] {
        app.get("/v1/wallets", k).await;
    }
    let key = |who: &Who| match who {
        Admin => s.admin.clone(),
        Agent => s.agent.clone(),
        Reviewer => s.reviewer.clone(),
        OtherAdmin => other.clone(),
        KeyWriter => asker.clone(),
        _ => unreachable!("not used in this table"),
    };
    refused_every_row(&app, backend, &rows, key).await;
}

per_backend!(every_agent_control_route_refuses_bad_input_naming_the_field);
/// Budgets, freezes, allow rules and `alwaysAllow`: each bad request is a 4xx naming its field
/// (or the refusal), and nothing is written.
async fn every_agent_control_route_refuses_bad_input_naming_the_field(backend: Backend) {
    use Who::*;
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (_, approval) = app.held_payment(&s, "5000.00").await;
    let other = app.org("other").await;
    let other_wallet = app.wallet(&other, "USD").await;
    let (_, other_key) =
        app.post("/v1/api-keys", &other, json!({"name": "k", "permissions": ["payments:write"]})).await;
    let other_key = other_key["id"].as_str().unwrap().to_string();
    let (_, agent_key) =
        app.post("/v1/api-keys", &s.admin, json!({"name": "a", "permissions": ["payments:write"]})).await;
    let agent_id = agent_key["id"].as_str().unwrap().to_string();
    let keys = "/v1/api-keys";
    let key = format!("{keys}/{agent_id}");
    let mint = |budgets: Value| json!({"name": "b", "permissions": ["payments:write"], "budgets": budgets});
    let budget = |extra: Value| {
        let mut b = json!({"window": "day", "limit": "100.00", "currency": "USD"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        json!([b])
    };
    let bad = "VALIDATION_ERROR";
    let amount = "INVALID_AMOUNT";
    let approve = format!("/v1/approvals/{approval}/approve");
    let allow = |a: Value| json!({"alwaysAllow": a});
    let rules = format!("/v1/wallets/{}/allow-rules", s.from);
    let rows = vec![
        refusal(
            "budget without window",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"window": null}))),
            400,
            bad,
            Some("budgets[0].window"),
        ),
        refusal(
            "budget unknown window",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"window": "year"}))),
            400,
            bad,
            Some("budgets.window"),
        ),
        refusal(
            "budget limit a number",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"limit": 100}))),
            400,
            amount,
            Some("budgets.limit"),
        ),
        refusal(
            "budget limit zero",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"limit": "0"}))),
            400,
            amount,
            Some("budgets.limit"),
        ),
        refusal(
            "budget limit sub-cent",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"limit": "1.001"}))),
            400,
            amount,
            Some("budgets.limit"),
        ),
        refusal(
            "budget unknown currency",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"currency": "XXX"}))),
            400,
            amount,
            Some("budgets.currency"),
        ),
        refusal(
            "budget onExceed",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"onExceed": "warn"}))),
            400,
            bad,
            Some("budgets.onExceed"),
        ),
        refusal(
            "budget unknown field",
            Admin,
            "POST",
            keys,
            mint(budget(json!({"hard": true}))),
            400,
            bad,
            Some("budgets[0].hard"),
        ),
        refusal(
            "two day budgets in USD",
            Admin,
            "POST",
            keys,
            mint(
                json!([{"window": "day", "limit": "1.00", "currency": "USD"}, {"window": "day", "limit": "2.00", "currency": "USD"}]),
            ),
            400,
            bad,
            Some("budgets"),
        ),
        refusal(
            "patch budgets not a list",
            Admin,
            "PATCH",
            key.clone(),
            json!({"budgets": {}}),
            400,
            bad,
            Some("budgets"),
        ),
        refusal(
            "budgets of another org's key",
            Admin,
            "GET",
            format!("{keys}/{other_key}/budgets"),
            Value::Null,
            404,
            "API_KEY_NOT_FOUND",
            None,
        ),
        refusal(
            "budgets by a reviewer",
            Reviewer,
            "GET",
            format!("{key}/budgets"),
            Value::Null,
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "budgets of a malformed key id",
            Admin,
            "GET",
            format!("{keys}/nope/budgets"),
            Value::Null,
            404,
            "API_KEY_NOT_FOUND",
            None,
        ),
        refusal(
            "freeze by a reviewer",
            Reviewer,
            "POST",
            format!("{key}/freeze"),
            json!({}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "freeze another org's key",
            Admin,
            "POST",
            format!("{keys}/{other_key}/freeze"),
            json!({}),
            404,
            "API_KEY_NOT_FOUND",
            None,
        ),
        refusal(
            "freeze a malformed key id",
            Admin,
            "POST",
            format!("{keys}/key_x/freeze"),
            json!({}),
            404,
            "API_KEY_NOT_FOUND",
            None,
        ),
        refusal(
            "freeze wallet by an agent",
            Agent,
            "POST",
            format!("/v1/wallets/{}/freeze", s.from),
            json!({}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "freeze another org's wallet",
            Admin,
            "POST",
            format!("/v1/wallets/{other_wallet}/freeze"),
            json!({}),
            404,
            "WALLET_NOT_FOUND",
            None,
        ),
        refusal(
            "unfreeze a malformed wallet",
            Admin,
            "POST",
            "/v1/wallets/wal_x/unfreeze",
            json!({}),
            404,
            "WALLET_NOT_FOUND",
            None,
        ),
        refusal(
            "allow rules of another org's wallet",
            Admin,
            "GET",
            format!("/v1/wallets/{other_wallet}/allow-rules"),
            Value::Null,
            404,
            "WALLET_NOT_FOUND",
            None,
        ),
        refusal(
            "delete unknown allow rule",
            Admin,
            "DELETE",
            format!("{rules}/alw_01JEA54N6AVHB24CP7DGZ4B1H6"),
            Value::Null,
            404,
            "ALLOW_RULE_NOT_FOUND",
            None,
        ),
        refusal(
            "delete malformed allow rule",
            Admin,
            "DELETE",
            format!("{rules}/nope"),
            Value::Null,
            404,
            "ALLOW_RULE_NOT_FOUND",
            None,
        ),
        refusal(
            "delete allow rule by a reviewer",
            Reviewer,
            "DELETE",
            format!("{rules}/alw_01JEA54N6AVHB24CP7DGZ4B1H6"),
            Value::Null,
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "alwaysAllow without cap",
            Reviewer,
            "POST",
            approve.clone(),
            allow(json!({})),
            400,
            bad,
            Some("alwaysAllow.maxAmount"),
        ),
        refusal(
            "alwaysAllow cap a number",
            Reviewer,
            "POST",
            approve.clone(),
            allow(json!({"maxAmount": 5})),
            400,
            amount,
            Some("alwaysAllow.maxAmount"),
        ),
        refusal(
            "alwaysAllow days zero",
            Reviewer,
            "POST",
            approve.clone(),
            allow(json!({"maxAmount": "5.00", "expiresInDays": 0})),
            400,
            bad,
            Some("alwaysAllow.expiresInDays"),
        ),
        refusal(
            "alwaysAllow days text",
            Reviewer,
            "POST",
            approve.clone(),
            allow(json!({"maxAmount": "5.00", "expiresInDays": "30"})),
            400,
            bad,
            Some("alwaysAllow.expiresInDays"),
        ),
        refusal(
            "alwaysAllow on reject",
            Reviewer,
            "POST",
            format!("/v1/approvals/{approval}/reject"),
            allow(json!({"maxAmount": "5.00"})),
            400,
            bad,
            Some("alwaysAllow"),
        ),
    ];
    for k in [&s.admin, &s.agent, &s.reviewer, &other] {
        app.get("/v1/wallets", k).await;
    }
    let key = |who: &Who| match who {
        Admin => s.admin.clone(),
        Agent => s.agent.clone(),
        Reviewer => s.reviewer.clone(),
        _ => unreachable!("not used in this table"),
    };
    refused_every_row(&app, backend, &rows, key).await;
}

per_backend!(policy_change_routes_refuse_bad_input);
/// `/v1/policy-changes` and the four-eyes setting (docs/api.md, "Four-eyes on policy changes"):
/// bad ids, unknown and other organisations' changes (404), bad bodies (the field named), the
/// requester's own approval and missing permissions; nothing written.
async fn policy_change_routes_refuse_bad_input(backend: Backend) {
    use Who::*;
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100.00").await;
    let other = app.org("other").await;
    let other_wallet = app.wallet(&other, "USD").await;
    let on = json!({"policyChangesNeedApproval": true});
    for admin in [&s.admin, &other] {
        let (status, body) = app.call("PATCH", "/v1/settings", Some(admin), Some(on.clone())).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, mine) = app.post(&format!("/v1/wallets/{}/policies", s.from), &s.admin, json!({"name": "p"})).await;
    assert_eq!(status, 202, "{mine}");
    let (status, theirs) =
        app.post(&format!("/v1/wallets/{other_wallet}/policies"), &other, json!({"name": "p"})).await;
    assert_eq!(status, 202, "{theirs}");
    let mine = format!("/v1/policy-changes/{}", mine["changeId"].as_str().unwrap());
    let theirs = format!("/v1/policy-changes/{}", theirs["changeId"].as_str().unwrap());
    let unknown = "/v1/policy-changes/chg_01JEA54N6AVHB24CP7DGZ4B1H6";
    let bad = "VALIDATION_ERROR";
    let missing = "POLICY_CHANGE_NOT_FOUND";
    let long = "x".repeat(1_001);
    let policies = format!("/v1/wallets/{}/policies", s.from);
    let rows = vec![
        refusal(
            "list by unknown status",
            Admin,
            "GET",
            "/v1/policy-changes?status=done",
            Value::Null,
            400,
            bad,
            Some("status"),
        ),
        refusal("list with limit 0", Admin, "GET", "/v1/policy-changes?limit=0", Value::Null, 400, bad, Some("limit")),
        refusal(
            "list with a forged cursor",
            Admin,
            "GET",
            "/v1/policy-changes?cursor=bm9wZQ",
            Value::Null,
            400,
            bad,
            Some("cursor"),
        ),
        refusal(
            "list without wallets:read",
            Reviewer,
            "GET",
            "/v1/policy-changes",
            Value::Null,
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal("get a malformed id", Admin, "GET", "/v1/policy-changes/chg_nope", Value::Null, 404, missing, None),
        refusal(
            "get another kind of id",
            Admin,
            "GET",
            "/v1/policy-changes/pol_01JEA5V8PNG0R6BQHGCGHAPZZ8",
            Value::Null,
            404,
            missing,
            None,
        ),
        refusal("get an unknown change", Admin, "GET", unknown, Value::Null, 404, missing, None),
        refusal("get another org's change", Admin, "GET", theirs.clone(), Value::Null, 404, missing, None),
        refusal(
            "approve another org's change",
            Admin,
            "POST",
            format!("{theirs}/approve"),
            json!({}),
            404,
            missing,
            None,
        ),
        refusal(
            "reject another org's change",
            Admin,
            "POST",
            format!("{theirs}/reject"),
            json!({}),
            404,
            missing,
            None,
        ),
        refusal(
            "approve an unknown change",
            Admin,
            "POST",
            format!("{unknown}/approve"),
            json!({}),
            404,
            missing,
            None,
        ),
        refusal(
            "approve a malformed id",
            Admin,
            "POST",
            "/v1/policy-changes/nope/approve",
            json!({}),
            404,
            missing,
            None,
        ),
        refusal(
            "approve with a field",
            Admin,
            "POST",
            format!("{mine}/approve"),
            json!({"note": "ok"}),
            400,
            bad,
            Some("note"),
        ),
        refusal(
            "reject with a number reason",
            Admin,
            "POST",
            format!("{mine}/reject"),
            json!({"reason": 5}),
            400,
            bad,
            Some("reason"),
        ),
        refusal(
            "reject with an unknown field",
            Admin,
            "POST",
            format!("{mine}/reject"),
            json!({"why": "x"}),
            400,
            bad,
            Some("why"),
        ),
        refusal(
            "reject with a long reason",
            Admin,
            "POST",
            format!("{mine}/reject"),
            json!({"reason": long}),
            400,
            bad,
            Some("reason"),
        ),
        refusal(
            "approve one's own change",
            Admin,
            "POST",
            format!("{mine}/approve"),
            json!({}),
            403,
            "SELF_APPROVAL_FORBIDDEN",
            None,
        ),
        refusal(
            "approve without policies:write",
            Agent,
            "POST",
            format!("{mine}/approve"),
            json!({}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "reject without policies:write",
            Reviewer,
            "POST",
            format!("{mine}/reject"),
            json!({}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "four-eyes as text",
            Admin,
            "PATCH",
            "/v1/settings",
            json!({"policyChangesNeedApproval": "yes"}),
            400,
            bad,
            Some("policyChangesNeedApproval"),
        ),
        refusal(
            "four-eyes by a non-admin",
            Agent,
            "PATCH",
            "/v1/settings",
            json!({"policyChangesNeedApproval": false}),
            403,
            "PERMISSION_DENIED",
            None,
        ),
        refusal(
            "pending policy without a name",
            Admin,
            "POST",
            policies.clone(),
            json!({"enabled": true}),
            400,
            bad,
            Some("name"),
        ),
        refusal(
            "pending policy with a number limit",
            Admin,
            "POST",
            policies.clone(),
            json!({"name": "p", "dailySpendingLimit": 5}),
            400,
            "INVALID_AMOUNT",
            Some("dailySpendingLimit"),
        ),
        refusal(
            "pending change of an unknown policy",
            Admin,
            "PATCH",
            format!("{policies}/pol_01JEA5V8PNG0R6BQHGCGHAPZZ8"),
            json!({"name": "x"}),
            404,
            "POLICY_NOT_FOUND",
            None,
        ),
        refusal(
            "pending deletion of an unknown rule",
            Admin,
            "DELETE",
            "/v1/routing-rules/rule_01JEA54N6AVHB24CP7DGZ4B1H6",
            Value::Null,
            404,
            "ROUTING_RULE_NOT_FOUND",
            None,
        ),
    ];
    for k in [&s.admin, &s.agent, &s.reviewer, &other] {
        app.get("/v1/wallets", k).await;
    }
    let key = |who: &Who| match who {
        Admin => s.admin.clone(),
        Agent => s.agent.clone(),
        Reviewer => s.reviewer.clone(),
        _ => unreachable!("not used in this table"),
    };
    refused_every_row(&app, backend, &rows, key).await;
}

per_backend!(the_backtest_route_refuses_bad_input_naming_the_field);
/// `POST /v1/wallets/{id}/policies/backtest` (docs/api.md, "Backtest"): every field, the window,
/// the draft (its fields named under `policy.`), `replace`, another wallet's or organisation's
/// objects: 4xx in the envelope, the field named, nothing written.
async fn the_backtest_route_refuses_bad_input_naming_the_field(backend: Backend) {
    use Who::*;
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100.00").await;
    let policy = app.policy(&s.admin, &s.from, json!({"name": "p"})).await;
    let elsewhere = app.wallet(&s.admin, "USD").await;
    let elsewhere_policy = app.policy(&s.admin, &elsewhere, json!({"name": "q"})).await;
    let other = app.org("other").await;
    let other_wallet = app.wallet(&other, "USD").await;
    let other_policy = app.policy(&other, &other_wallet, json!({"name": "r"})).await;
    let path = format!("/v1/wallets/{}/policies/backtest", s.from);
    let body = |extra: Value| {
        let mut b = json!({"policy": {"maxTransactionAmount": "10.00"}, "since": "2026-11-01T00:00:00Z",
            "until": "2026-11-02T00:00:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    let draft = |p: Value| body(json!({"policy": p}));
    let (bad, amount) = ("VALIDATION_ERROR", "INVALID_AMOUNT");
    let row = |name, body, status, code, field| refusal(name, Admin, "POST", path.clone(), body, status, code, field);
    let rows = vec![
        row("no policy", body(json!({"policy": null})), 400, bad, Some("policy")),
        row("policy not an object", draft(json!(5)), 400, bad, Some("policy")),
        row("policy unknown field", draft(json!({"limit": "5.00"})), 400, bad, Some("policy.limit")),
        row(
            "policy numeric limit",
            draft(json!({"maxTransactionAmount": 10})),
            400,
            amount,
            Some("policy.maxTransactionAmount"),
        ),
        row(
            "policy negative limit",
            draft(json!({"dailySpendingLimit": "-1"})),
            400,
            amount,
            Some("policy.dailySpendingLimit"),
        ),
        row(
            "policy limit past cents",
            draft(json!({"autoRejectAbove": "1.001"})),
            400,
            amount,
            Some("policy.autoRejectAbove"),
        ),
        row("policy risk 200", draft(json!({"riskScoreThreshold": 200})), 400, bad, Some("policy.riskScoreThreshold")),
        row(
            "policy zero approvers",
            draft(json!({"requiredApprovals": 0})),
            400,
            bad,
            Some("policy.requiredApprovals"),
        ),
        row("policy blank name", draft(json!({"name": "  "})), 400, bad, Some("policy.name")),
        row(
            "policy bad recipient",
            draft(json!({"blockedRecipients": ["x"]})),
            400,
            bad,
            Some("policy.blockedRecipients"),
        ),
        row(
            "policy zero per hour",
            draft(json!({"maxPaymentsPerHour": 0})),
            400,
            bad,
            Some("policy.maxPaymentsPerHour"),
        ),
        row("policy unknown kind", draft(json!({"appliesTo": ["loan"]})), 400, bad, Some("policy.appliesTo")),
        row("policy bad timeout", draft(json!({"onTimeout": "never"})), 400, bad, Some("policy.onTimeout")),
        row(
            "policy unknown team",
            draft(json!({"escalationChain": ["team_01JEA5CZSN4RCA53RNF39CQ0M1"]})),
            404,
            "TEAM_NOT_FOUND",
            None,
        ),
        row("unknown field", body(json!({"from": "2026-11-01T00:00:00Z"})), 400, bad, Some("from")),
        row("no since", body(json!({"since": null})), 400, bad, Some("since")),
        row("since not a time", body(json!({"since": "yesterday"})), 400, bad, Some("since")),
        row("since a number", body(json!({"since": 1764547200})), 400, bad, Some("since")),
        row("since without a zone", body(json!({"since": "2026-11-01T00:00:00"})), 400, bad, Some("since")),
        row("no until", body(json!({"until": null})), 400, bad, Some("until")),
        row("until equals since", body(json!({"until": "2026-11-01T00:00:00Z"})), 400, bad, Some("until")),
        row("until before since", body(json!({"until": "2026-10-01T00:00:00Z"})), 400, bad, Some("until")),
        row("window over 93 days", body(json!({"until": "2027-02-03T00:00:01Z"})), 400, bad, Some("until")),
        row("replace not an id", body(json!({"replace": "pol_x"})), 400, bad, Some("replace")),
        row("replace a number", body(json!({"replace": 7})), 400, bad, Some("replace")),
        row(
            "replace unknown policy",
            body(json!({"replace": "pol_01JEA5CZSN4RCA53RNF39CQ0M1"})),
            404,
            "POLICY_NOT_FOUND",
            None,
        ),
        row(
            "replace another wallet's policy",
            body(json!({"replace": elsewhere_policy})),
            404,
            "POLICY_NOT_FOUND",
            None,
        ),
        row("replace another org's policy", body(json!({"replace": other_policy})), 404, "POLICY_NOT_FOUND", None),
        refusal(
            "another org's wallet",
            Admin,
            "POST",
            format!("/v1/wallets/{other_wallet}/policies/backtest"),
            body(json!({})),
            404,
            "WALLET_NOT_FOUND",
            None,
        ),
        refusal(
            "our wallet, another org's key",
            OtherAdmin,
            "POST",
            path.clone(),
            body(json!({"replace": policy})),
            404,
            "WALLET_NOT_FOUND",
            None,
        ),
        refusal(
            "malformed wallet id",
            Admin,
            "POST",
            "/v1/wallets/wal_x/policies/backtest",
            body(json!({})),
            404,
            "WALLET_NOT_FOUND",
            None,
        ),
        refusal(
            "without wallets:read",
            Reviewer,
            "POST",
            path.clone(),
            body(json!({})),
            403,
            "PERMISSION_DENIED",
            None,
        ),
    ];
    for k in [&s.admin, &s.reviewer, &other] {
        app.get("/v1/wallets", k).await;
    }
    let key = |who: &Who| match who {
        Admin => s.admin.clone(),
        Reviewer => s.reviewer.clone(),
        OtherAdmin => other.clone(),
        _ => unreachable!("not used in this table"),
    };
    refused_every_row(&app, backend, &rows, key).await;
}
