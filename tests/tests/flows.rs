//! The approval flow end to end through HTTP, on both stores.

use countersign_tests::{per_backend, Backend, TestApp, OPERATOR_KEY};
use serde_json::json;

per_backend!(held_payment_approved_executes_once_and_is_audited);
async fn held_payment_approved_executes_once_and_is_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    // Small payment executes at once and says which rule decided.
    let (status, small) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": "10.00"})).await;
    assert_eq!(status, 201, "{small}");
    assert_eq!(small["status"], "COMPLETED");
    assert_eq!(small["decision"]["outcome"], "EXECUTE");

    let (payment, approval) = app.held_payment(&s, "5000.00").await;
    let (_, pending) = app.get(&format!("/v1/approvals?status=PENDING&walletId={}", s.from), &s.reviewer).await;
    assert_eq!(pending["data"][0]["id"], approval.as_str(), "{backend:?}: {pending}");
    assert_eq!(pending["data"][0]["transactionDetails"]["amount"], "5000.00");
    assert_eq!(app.balance(&s.admin, &s.from).await, "9990.00", "held money has not moved");

    // The agent's key lacks approvals:write; and a submitting key may never approve its own.
    let (status, err) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.agent, json!({})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")));
    let admin_payment =
        app.post("/v1/payments", &s.admin, json!({"from": s.from, "to": s.to, "amount": "1500.00"})).await.1;
    let (status, err) = app
        .post(&format!("/v1/approvals/{}/approve", admin_payment["approvalId"].as_str().unwrap()), &s.admin, json!({}))
        .await;
    assert_eq!((status, err["error"]["code"].as_str()), (403, Some("SELF_APPROVAL_FORBIDDEN")));

    let (status, decided) =
        app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({"note": "vendor verified"})).await;
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["status"], "APPROVED");
    assert_eq!(decided["payment"]["status"], "COMPLETED");
    assert!(decided["resolvedBy"].as_str().unwrap().starts_with("key_"));
    assert_eq!(app.balance(&s.admin, &s.from).await, "4990.00");
    assert_eq!(app.balance(&s.admin, &s.to).await, "5010.00");

    // Second decision: 409, no second movement.
    let (status, err) =
        app.post(&format!("/v1/approvals/{approval}/reject"), &s.reviewer, json!({"reason": "late"})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("APPROVAL_NOT_PENDING")));
    assert_eq!(app.balance(&s.admin, &s.from).await, "4990.00");

    let (_, pay) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(pay["status"], "COMPLETED");
    let (_, log) = app.get("/v1/audit-logs?action=approval.approved", &s.admin).await;
    let entry = &log["data"][0];
    assert_eq!(entry["resourceId"], approval.as_str(), "{log}");
    assert!(entry["actor"].as_str().unwrap().starts_with("key_") && entry["createdAt"].is_string());
}

per_backend!(reject_discards_and_quorum_needs_two_distinct_approvers);
async fn reject_discards_and_quorum_needs_two_distinct_approvers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (payment, approval) = app.held_payment(&s, "3000.00").await;
    let (status, body) =
        app.post(&format!("/v1/approvals/{approval}/reject"), &s.reviewer, json!({"reason": "over contract"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("REJECTED")), "{body}");
    assert_eq!(body["resolutionNote"], "over contract");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "REJECTED");

    app.policy(
        &s.admin,
        &s.from,
        json!({"name": "two man rule", "requireReviewAbove": "2000.00", "requiredApprovals": 2}),
    )
    .await;
    let (_, approval) = app.held_payment(&s, "2500.00").await;
    let second = app.key(&s.admin, &["approvals:write"]).await;
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")), "{body}");
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("ALREADY_VOTED")));
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &second, json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("APPROVED")), "{body}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "7500.00");
}

per_backend!(approvals_expire_on_time_and_cannot_be_approved_late);
async fn approvals_expire_on_time_and_cannot_be_approved_late(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "short", "requireHumanApproval": true, "approvalTtlSeconds": 60}))
        .await;
    let (payment, approval) = app.held_payment(&s, "1500.00").await;
    let (_, a) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    let created = chrono::DateTime::parse_from_rfc3339(a["createdAt"].as_str().unwrap()).unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(a["expiresAt"].as_str().unwrap()).unwrap();
    assert_eq!((expires - created).num_seconds(), 60, "shortest TTL of the holding policies");
    assert_eq!(app.service.expire_due(10).await.unwrap().expired, 0, "not due yet");
    app.clock.advance(chrono::Duration::seconds(61));
    let (status, err) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("APPROVAL_EXPIRED")));
    let summary = app.service.expire_due(10).await.unwrap();
    assert_eq!((summary.read, summary.expired), (1, 1), "{backend:?}");
    assert_eq!(app.service.expire_due(10).await.unwrap().read, 0, "expired approvals leave the due index");
    assert_eq!(app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await.1["status"], "EXPIRED");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "EXPIRED");
}

per_backend!(policies_deny_hold_and_report_the_rule);
async fn policies_deny_hold_and_report_the_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("p").await;
    let (from, to) = (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    app.fund(&admin, &from, "1000.00").await;
    app.policy(
        &admin,
        &from,
        json!({"name": "r", "autoRejectAbove": "500.00", "riskScoreThreshold": 70, "blockedRecipients": []}),
    )
    .await;
    let (status, body) = app.post("/v1/payments", &admin, json!({"from": from, "to": to, "amount": "600.00"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["details"]["rule"].as_str()),
        (403, Some("POLICY_DENIED"), Some("autoRejectAbove"))
    );
    let (_, log) = app.get("/v1/audit-logs?action=payment.denied", &admin).await;
    assert_eq!(log["data"][0]["details"]["decision"]["rule"], "autoRejectAbove", "denials are audited: {log}");
    let (status, body) =
        app.post("/v1/payments", &admin, json!({"from": from, "to": to, "amount": "30.00", "riskScore": 80})).await;
    assert_eq!((status, body["decision"]["rule"].as_str()), (202, Some("riskScoreThreshold")), "{body}");
    let (status, body) =
        app.post("/v1/payments", &admin, json!({"from": from, "to": to, "amount": "30.00", "riskScore": 10})).await;
    assert_eq!(status, 201, "{body}");
    // Paging through approvals.
    for _ in 0..3 {
        app.post("/v1/payments", &admin, json!({"from": from, "to": to, "amount": "1.00", "riskScore": 90})).await;
    }
    let (_, page1) = app.get("/v1/approvals?limit=2", &admin).await;
    assert_eq!((page1["data"].as_array().unwrap().len(), page1["hasMore"].as_bool()), (2, Some(true)));
    let (_, page2) =
        app.get(&format!("/v1/approvals?limit=2&cursor={}", page1["nextCursor"].as_str().unwrap()), &admin).await;
    assert_eq!((page2["data"].as_array().unwrap().len(), page2["hasMore"].as_bool()), (2, Some(false)), "{page2}");
    assert_ne!(page1["data"][0]["id"], page2["data"][0]["id"]);
    let _ = OPERATOR_KEY;
}

per_backend!(every_policy_counts_even_beyond_one_query_page);
async fn every_policy_counts_even_beyond_one_query_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("big policies").await;
    let (from, to) = (app.wallet(&admin, "USD").await, app.wallet(&admin, "USD").await);
    app.fund(&admin, &from, "100.00").await;
    // 40 policies of ~1,000 approved recipients each (~1.4 MB): more than one DynamoDB Query page.
    let mut recipients: Vec<String> = (0..999).map(|_| format!("wal_{}", ulid::Ulid::new())).collect();
    recipients.push(to.clone());
    for i in 0..39 {
        app.policy(&admin, &from, json!({"name": format!("allow {i}"), "approvedRecipients": recipients})).await;
    }
    // The newest policy, read last, blocks the recipient.
    app.policy(&admin, &from, json!({"name": "block", "blockedRecipients": [to]})).await;
    let (status, body) = app.post("/v1/payments", &admin, json!({"from": from, "to": to, "amount": "1.00"})).await;
    assert_eq!(
        (status, body["error"]["details"]["rule"].as_str()),
        (403, Some("blockedRecipients")),
        "{backend:?}: {body}"
    );
}

per_backend!(policy_cap_holds_under_concurrent_creation);
async fn policy_cap_holds_under_concurrent_creation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("cap").await;
    let wallet = app.wallet(&admin, "USD").await;
    for i in 0..49 {
        app.policy(&admin, &wallet, json!({"name": format!("p{i}")})).await;
    }
    let path = format!("/v1/wallets/{wallet}/policies");
    let results =
        futures::future::join_all((0..5).map(|i| app.post(&path, &admin, json!({"name": format!("late {i}")})))).await;
    let created = results.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "{backend:?}: {results:?}");
    let (_, list) = app.get(&path, &admin).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 50);
}
