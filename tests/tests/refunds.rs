//! Refunds, policy evaluation and velocity (docs/api.md, "Refunds"; RefundKit) through HTTP on both stores:
//! RefundKit's examples as written, approval of held refunds through the approvals routes, the
//! reservation that keeps partial refunds within the payment (a 50-way race), expiry, velocity,
//! and bad input on every new route.

use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use serde_json::{json, Value};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// A completed payment of `amount` from the scenario's `from` to `to`, and a refunds key.
async fn paid(app: &TestApp, s: &Scenario, amount: &str) -> String {
    let (status, body) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": amount})).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_string()
}

/// RefundKit's engine: auto-approve below 50.00, review above 200.00, risk at or above 70.
async fn refundkit_policy(app: &TestApp, s: &Scenario) {
    let policy = json!({
        "name": "refunds", "appliesTo": ["refund"], "autoApproveBelow": "50.00",
        "requireReviewAbove": "200.00", "riskScoreThreshold": 70
    });
    app.policy(&s.admin, &s.to, policy).await;
}

per_backend!(refundkit_examples_hold_as_written);
async fn refundkit_examples_hold_as_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    refundkit_policy(&app, &s).await;
    let payment = paid(&app, &s, "1000.00").await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;

    // Evaluation first: the same answers, written nowhere.
    let before = app.store.item_count().await;
    let path = format!("/v1/wallets/{}/policies/evaluate", s.to);
    let evaluate = |amount: &str, risk: i64| json!({"kind": "refund", "amount": amount, "riskScore": risk});
    let cases = [
        ("30.00", 30, "approved", "policy"),
        ("150.00", 30, "requires_review", "autoApproveBelow"),
        ("250.00", 30, "requires_review", "requireReviewAbove"),
        ("30.00", 80, "requires_review", "riskScoreThreshold"),
    ];
    for (amount, risk, status, rule) in cases {
        let (got, body) = app.post(&path, &s.admin, evaluate(amount, risk)).await;
        assert_eq!(
            (got, body["status"].as_str(), body["rule"].as_str()),
            (200, Some(status), Some(rule)),
            "{backend:?} {amount}: {body}"
        );
    }
    let (_, risky) = app.post(&path, &s.admin, evaluate("30.00", 80)).await;
    assert!(risky["reason"].as_str().unwrap().starts_with("Risk score exceeds threshold"), "{risky}");
    let (_, payments) = app.post(&path, &s.admin, json!({"kind": "payment", "amount": "250.00"})).await;
    assert_eq!(payments["status"], "approved", "refund rules do not govern payments: {payments}");
    assert_eq!(app.store.item_count().await, before, "{backend:?}: evaluation writes nothing");

    let refund = |amount: &str, risk: i64| json!({"paymentId": payment, "amount": amount, "riskScore": risk, "reason": "return"});
    let (status, executed) = app.post("/v1/refunds", &refunder, refund("30.00", 30)).await;
    assert_eq!((status, executed["status"].as_str()), (201, Some("approved")), "{backend:?}: {executed}");
    assert!(
        executed["id"].as_str().unwrap().starts_with("rfd_") && executed["transactionId"].is_string(),
        "{executed}"
    );
    for (amount, risk, rule) in
        [("150.00", 30, "autoApproveBelow"), ("250.00", 30, "requireReviewAbove"), ("30.00", 80, "riskScoreThreshold")]
    {
        let (status, held) = app.post("/v1/refunds", &refunder, refund(amount, risk)).await;
        assert_eq!(
            (status, held["status"].as_str(), held["decision"]["rule"].as_str()),
            (202, Some("pending"), Some(rule)),
            "{backend:?} {amount}: {held}"
        );
        assert!(held["approvalId"].as_str().unwrap().starts_with("apr_"), "{held}");
    }
    // Money moved back once, for the executed refund only; the rest is reserved.
    assert_eq!(app.balance(&s.admin, &s.to).await, "970.00");
    assert_eq!(app.balance(&s.admin, &s.from).await, "9030.00");
    let (_, read) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(
        (read["status"].as_str(), read["refundedAmount"].as_str(), read["refundPendingAmount"].as_str()),
        (Some("COMPLETED"), Some("30.00"), Some("430.00")),
        "{read}"
    );
    let (_, lines) = app.get(&format!("/v1/wallets/{}/transactions", s.to), &s.admin).await;
    let debit = lines["data"].as_array().unwrap().iter().find(|l| l["kind"] == "DEBIT").expect("refund debit");
    assert_eq!(
        (debit["refundId"].clone(), debit["paymentId"].as_str()),
        (executed["id"].clone(), Some(payment.as_str())),
        "{debit}"
    );
}

per_backend!(held_refunds_are_decided_through_approvals);
async fn held_refunds_are_decided_through_approvals(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.allow_private_webhooks = true).await;
    let s = app.scenario("10000.00").await;
    app.policy(&s.admin, &s.to, json!({"name": "every refund", "appliesTo": ["refund"], "requireHumanApproval": true}))
        .await;
    let payment = paid(&app, &s, "500.00").await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;

    let (status, held) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "200.00"})).await;
    assert_eq!(status, 202, "{backend:?}: {held}");
    let approval = held["approvalId"].as_str().unwrap().to_string();
    // The asker cannot approve it; a reviewer can, and the money moves back once.
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &refunder, json!({})).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) =
        app.post(&format!("/v1/approvals/{approval}/modify"), &s.reviewer, json!({"amount": "100.00"})).await;
    assert_eq!((status, code(&body)), (409, Some("REFUND_NOT_MODIFIABLE")), "{body}");
    let (status, decided) =
        app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({"note": "ok"})).await;
    assert_eq!(status, 200, "{backend:?}: {decided}");
    assert_eq!(
        (decided["refund"]["status"].as_str(), decided["payment"]["refundedAmount"].as_str()),
        (Some("approved"), Some("200.00")),
        "{decided}"
    );
    assert_eq!(app.balance(&s.admin, &s.to).await, "300.00");
    let (status, _) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!(status, 409, "decided once");

    // Rejected: the reservation is released, so the rest can still be refunded.
    let (_, second) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment})).await;
    assert_eq!(second["amount"], "300.00", "default: what is left: {second}");
    let (status, body) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "0.01"})).await;
    assert_eq!((status, code(&body)), (409, Some("REFUND_EXCEEDS_PAYMENT")), "all reserved: {body}");
    let second_approval = second["approvalId"].as_str().unwrap();
    let (status, _) =
        app.post(&format!("/v1/approvals/{second_approval}/reject"), &s.reviewer, json!({"reason": "no"})).await;
    assert_eq!(status, 200);
    let (_, rejected) = app.get(&format!("/v1/refunds/{}", second["id"].as_str().unwrap()), &refunder).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    // Through /reviews too, as a `refund` task; and it expires when nobody decides.
    let (_, third) = app
        .post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "100.00", "reason": "damaged"}))
        .await;
    let third_approval = third["approvalId"].as_str().unwrap();
    let (_, listed) = app.get("/reviews?task_type=refund&status=pending", &s.reviewer).await;
    assert_eq!(
        (listed["total"].as_u64(), listed["reviews"][0]["id"].as_str()),
        (Some(1), Some(third_approval)),
        "{listed}"
    );
    let action = format!("Refund 100.00 USD from {} to {} (payment {payment}): damaged", s.to, s.from);
    assert_eq!(listed["reviews"][0]["proposed_action"].as_str(), Some(action.as_str()), "{listed}");
    app.clock.advance(chrono::Duration::hours(25));
    app.service.sweep(None, 100).await.expect("sweep");
    let (_, expired) = app.get(&format!("/v1/refunds/{}", third["id"].as_str().unwrap()), &refunder).await;
    assert_eq!(expired["status"], "expired", "{backend:?}: {expired}");
    let (_, read) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!((read["refundedAmount"].as_str(), read.get("refundPendingAmount")), (Some("200.00"), None), "{read}");
    let (status, body) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "300.01"})).await;
    assert_eq!((status, body["error"]["details"]["remaining"].as_str()), (409, Some("300.00")), "{body}");

    let (_, audit) = app.get("/v1/audit-logs?limit=100", &s.admin).await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    for action in ["refund.held", "refund.approved", "refund.rejected", "refund.expired"] {
        assert!(actions.contains(&action), "{action}: {actions:?}");
    }
    let hook = json!({"url": "http://127.0.0.1:9/h", "events": ["refund.pending", "refund.approved", "refund.rejected", "refund.expired", "refund.failed"]});
    assert_eq!(app.post("/v1/webhooks", &s.admin, hook).await.0, 201, "refund events are subscribable");
    let (_, page) = app.get(&format!("/v1/refunds?paymentId={payment}&limit=10"), &refunder).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(3), "{page}");
    let (_, approved) = app.get("/v1/refunds?status=approved", &refunder).await;
    assert_eq!(approved["data"].as_array().map(Vec::len), Some(1), "{approved}");
}

per_backend!(only_completed_payments_refund_and_idempotency_replays);
async fn only_completed_payments_refund_and_idempotency_replays(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;
    let (held, _) = app.held_payment(&s, "5000.00").await;
    let (status, body) = app.post("/v1/refunds", &refunder, json!({"paymentId": held})).await;
    assert_eq!((status, code(&body)), (409, Some("PAYMENT_NOT_REFUNDABLE")), "{backend:?}: {body}");
    let payment = paid(&app, &s, "100.00").await;
    let body = json!({"paymentId": payment, "amount": "40.00", "idempotencyKey": "return-7"});
    let (first, a) = app.post("/v1/refunds", &refunder, body.clone()).await;
    let (again, b) = app.post("/v1/refunds", &refunder, body).await;
    assert_eq!((first, again, &a["id"]), (201, 201, &b["id"]), "{backend:?}: replayed");
    let (status, reuse) = app
        .post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "41.00", "idempotencyKey": "return-7"}))
        .await;
    assert_eq!((status, code(&reuse)), (409, Some("IDEMPOTENCY_KEY_REUSE")), "{reuse}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "60.00", "refunded once");
    // A refund policy that denies: 403, nothing moves.
    app.policy(&s.admin, &s.to, json!({"name": "cap", "appliesTo": ["refund"], "autoRejectAbove": "10.00"})).await;
    let (status, denied) = app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "20.00"})).await;
    assert_eq!((status, code(&denied)), (403, Some("POLICY_DENIED")), "{denied}");
    assert_eq!(app.balance(&s.admin, &s.to).await, "60.00");
    // Agents without refunds:write cannot ask.
    assert_eq!(app.post("/v1/refunds", &s.agent, json!({"paymentId": payment})).await.0, 403);
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    fifty_partial_refunds_never_exceed_the_payment
);
async fn fifty_partial_refunds_never_exceed_the_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let payment = paid(&app, &s, "100.00").await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;
    let calls = (0..50).map(|_| app.post("/v1/refunds", &refunder, json!({"paymentId": payment, "amount": "3.00"})));
    let results = futures::future::join_all(calls).await;
    let executed = results.iter().filter(|(status, _)| *status == 201).count();
    for (status, body) in &results {
        assert!(
            *status == 201 || (*status == 409 && code(body) == Some("REFUND_EXCEEDS_PAYMENT")) || *status == 503,
            "{backend:?}: {status} {body}"
        );
    }
    assert!(executed <= 33, "{backend:?}: {executed} × 3.00 refunded from 100.00");
    let refunded = format!("{}.00", executed * 3);
    let (_, read) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(read["refundedAmount"].as_str(), Some(refunded.as_str()), "{read}");
    let left = format!("{}.00", 100 - executed * 3);
    assert_eq!(app.balance(&s.admin, &s.to).await, left, "{backend:?}: the payee paid back exactly what was refunded");
    assert!(executed >= 25, "{backend:?}: most refunds got through ({executed})");
}

per_backend!(velocity_stops_a_runaway_loop);
async fn velocity_stops_a_runaway_loop(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let policy = app.policy(&s.admin, &s.from, json!({"name": "velocity", "maxPaymentsPerHour": 3})).await;
    for _ in 0..3 {
        paid(&app, &s, "1.00").await;
    }
    let body = json!({"from": s.from, "to": s.to, "amount": "1.00"});
    let (status, denied) = app.post("/v1/payments", &s.agent, body.clone()).await;
    assert_eq!(
        (status, denied["error"]["details"]["rule"].as_str()),
        (403, Some("maxPaymentsPerHour")),
        "{backend:?}: {denied}"
    );
    let (_, evaluated) =
        app.post(&format!("/v1/wallets/{}/policies/evaluate", s.from), &s.admin, json!({"amount": "1.00"})).await;
    assert_eq!(evaluated["status"], "denied", "{evaluated}");
    // With a human in the loop the next one is held instead.
    let path = format!("/v1/wallets/{}/policies/{policy}", s.from);
    let (status, _) = app
        .call(
            "PATCH",
            &path,
            Some(&s.admin),
            Some(json!({"requireHumanApproval": true, "maxTransactionAmount": "1000.00"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, held) = app.post("/v1/payments", &s.agent, body.clone()).await;
    assert_eq!((status, held["decision"]["rule"].as_str()), (202, Some("maxPaymentsPerHour")), "{held}");
    // Two hours on, the window is empty again.
    app.clock.advance(chrono::Duration::hours(2));
    assert_eq!(app.post("/v1/payments", &s.agent, body).await.0, 201, "{backend:?}");
}

per_backend!(bad_refund_evaluate_and_velocity_requests_name_the_field);
async fn bad_refund_evaluate_and_velocity_requests_name_the_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let payment = paid(&app, &s, "100.00").await;
    let other = app.org("other").await;
    let refunder = app.key(&s.admin, &["refunds:write", "payments:read"]).await;
    let evaluate = format!("/v1/wallets/{}/policies/evaluate", s.from);
    let policies = format!("/v1/wallets/{}/policies", s.from);
    let bad = "VALIDATION_ERROR";
    // (method, name, path, body, status, code, field named)
    type Row<'a> = (&'a str, &'a str, String, Value, u16, &'a str, Option<&'a str>);
    let rows: Vec<Row> = vec![
        ("POST", "refund without payment", "/v1/refunds".into(), json!({}), 400, bad, Some("paymentId")),
        (
            "POST",
            "refund bad payment id",
            "/v1/refunds".into(),
            json!({"paymentId": "pay_x"}),
            400,
            bad,
            Some("paymentId"),
        ),
        (
            "POST",
            "refund amount number",
            "/v1/refunds".into(),
            json!({"paymentId": payment, "amount": 5}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            "POST",
            "refund negative",
            "/v1/refunds".into(),
            json!({"paymentId": payment, "amount": "-5.00"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            "POST",
            "refund too many decimals",
            "/v1/refunds".into(),
            json!({"paymentId": payment, "amount": "1.001"}),
            400,
            "INVALID_AMOUNT",
            Some("amount"),
        ),
        (
            "POST",
            "refund risk above 100",
            "/v1/refunds".into(),
            json!({"paymentId": payment, "riskScore": 101}),
            400,
            bad,
            Some("riskScore"),
        ),
        (
            "POST",
            "refund unknown field",
            "/v1/refunds".into(),
            json!({"paymentId": payment, "currency": "USD"}),
            400,
            bad,
            Some("currency"),
        ),
        (
            "POST",
            "refund above the payment",
            "/v1/refunds".into(),
            json!({"paymentId": payment, "amount": "100.01"}),
            409,
            "REFUND_EXCEEDS_PAYMENT",
            Some("amount"),
        ),
        (
            "POST",
            "refund unknown payment",
            "/v1/refunds".into(),
            json!({"paymentId": "pay_01J00000000000000000000000"}),
            404,
            "PAYMENT_NOT_FOUND",
            None,
        ),
        ("GET", "refunds bad status", "/v1/refunds?status=open".into(), Value::Null, 400, bad, Some("status")),
        ("GET", "refunds bad payment", "/v1/refunds?paymentId=nope".into(), Value::Null, 400, bad, Some("paymentId")),
        (
            "GET",
            "unknown refund",
            "/v1/refunds/rfd_01J00000000000000000000000".into(),
            Value::Null,
            404,
            "REFUND_NOT_FOUND",
            None,
        ),
        (
            "POST",
            "evaluate bad kind",
            evaluate.clone(),
            json!({"kind": "transfer", "amount": "1.00"}),
            400,
            bad,
            Some("kind"),
        ),
        ("POST", "evaluate without amount", evaluate.clone(), json!({"kind": "payment"}), 400, bad, Some("amount")),
        (
            "POST",
            "evaluate bad recipient",
            evaluate.clone(),
            json!({"amount": "1.00", "to": "bob"}),
            400,
            bad,
            Some("to"),
        ),
        (
            "POST",
            "evaluate risk as text",
            evaluate.clone(),
            json!({"amount": "1.00", "riskScore": "high"}),
            400,
            bad,
            Some("riskScore"),
        ),
        (
            "POST",
            "evaluate unknown field",
            evaluate.clone(),
            json!({"amount": "1.00", "from": "x"}),
            400,
            bad,
            Some("from"),
        ),
        (
            "POST",
            "policy applies to nothing",
            policies.clone(),
            json!({"name": "p", "appliesTo": []}),
            400,
            bad,
            Some("appliesTo"),
        ),
        (
            "POST",
            "policy applies to transfers",
            policies.clone(),
            json!({"name": "p", "appliesTo": ["transfer"]}),
            400,
            bad,
            Some("appliesTo"),
        ),
        (
            "POST",
            "policy kind twice",
            policies.clone(),
            json!({"name": "p", "appliesTo": ["refund", "refund"]}),
            400,
            bad,
            Some("appliesTo"),
        ),
        (
            "POST",
            "velocity zero",
            policies.clone(),
            json!({"name": "p", "maxPaymentsPerHour": 0}),
            400,
            bad,
            Some("maxPaymentsPerHour"),
        ),
        (
            "POST",
            "velocity as text",
            policies.clone(),
            json!({"name": "p", "maxPaymentsPerHour": "ten"}),
            400,
            bad,
            Some("maxPaymentsPerHour"),
        ),
    ];
    for k in [&s.admin, &refunder, &other] {
        app.get("/v1/wallets", k).await;
    }
    let before = app.store.item_count().await;
    let mut wrong = Vec::new();
    for (method, name, path, body, status, expected, field) in &rows {
        let key = if path.starts_with("/v1/refunds") { &refunder } else { &s.admin };
        let (got, answer) = app.call(method, path, Some(key), (!body.is_null()).then(|| body.clone())).await;
        let seen = (got, code(&answer), answer["error"]["details"]["field"].as_str());
        if seen != (*status, Some(*expected), *field) {
            wrong.push(format!("{name}: {answer}"));
        }
    }
    // Another organisation's payment and wallet are not found.
    let (status, body) = app.post("/v1/refunds", &other, json!({"paymentId": payment})).await;
    assert_eq!((status, code(&body)), (404, Some("PAYMENT_NOT_FOUND")), "{body}");
    let (status, body) = app.post(&evaluate, &other, json!({"amount": "1.00"})).await;
    assert_eq!((status, code(&body)), (404, Some("WALLET_NOT_FOUND")), "{body}");
    assert!(wrong.is_empty(), "{backend:?}: {} rows wrong:\n{}", wrong.len(), wrong.join("\n"));
    assert_eq!(app.store.item_count().await, before, "{backend:?}: refused requests wrote nothing");
}
