//! Held payments seen through `/reviews` (`task_type: "payment"`, docs/api.md, "Reviews"): listed beside
//! reviews, decided there exactly as through `/v1/approvals` (money moves once), modified with a
//! structured amount; and escalation of reviews and held payments through `/reviews`. Both stores.

use countersign_tests::{per_backend, Backend, TestApp};
use serde_json::{json, Value};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

fn field(body: &Value) -> Option<&str> {
    body["error"]["details"]["field"].as_str()
}

per_backend!(a_held_payment_is_a_review_and_deciding_it_there_pays_once);
async fn a_held_payment_is_a_review_and_deciding_it_there_pays_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let body = json!({
        "from": s.from, "to": s.to, "amount": "5000.00", "description": "ACME invoice 7",
        "agentReasoning": "quarterly licence", "confidenceScore": 0.8, "urgency": "high",
        "metadata": {"vendor": "ACME Corp"}
    });
    let (status, held) = app.post("/v1/payments", &s.agent, body).await;
    assert_eq!(status, 202, "{held}");
    let (payment, approval) = (held["id"].as_str().unwrap(), held["approvalId"].as_str().unwrap());
    let reviewer = app.key(&s.admin, &["approvals:read", "approvals:write"]).await;
    let (_, real) = app
        .post(
            "/reviews",
            &app.key(&s.admin, &["reviews:write"]).await,
            json!({"task_type": "email", "proposed_action": "send the newsletter"}),
        )
        .await;

    let (status, listed) = app.get("/reviews?task_type=payment", &reviewer).await;
    assert_eq!((status, listed["total"].as_u64()), (200, Some(1)), "{backend:?}: {listed}");
    let review = &listed["reviews"][0];
    assert_eq!(
        (review["id"].as_str(), review["task_type"].as_str(), review["status"].as_str()),
        (Some(approval), Some("payment"), Some("pending")),
        "{review}"
    );
    assert_eq!(
        review["proposed_action"].as_str(),
        Some(format!("Pay 5000.00 USD from {} to {}: ACME invoice 7", s.from, s.to).as_str())
    );
    assert_eq!(
        (review["agent_reasoning"].as_str(), review["urgency"].as_str(), review["metadata"]["vendor"].as_str()),
        (Some("quarterly licence"), Some("high"), Some("ACME Corp"))
    );
    assert_eq!(
        (
            review["payment"]["id"].as_str(),
            review["payment"]["amount"].as_str(),
            review["payment"]["currency"].as_str()
        ),
        (Some(payment), Some("5000.00"), Some("USD"))
    );
    let (_, everything) = app.get("/reviews", &reviewer).await;
    assert_eq!(everything["total"], 2, "reviews and held payments together: {everything}");
    assert_eq!(everything["reviews"][0]["id"], real["id"], "newest first");
    let (status, one) = app.get(&format!("/reviews/{approval}"), &reviewer).await;
    assert_eq!((status, &one), (200, review));
    let (_, none) = app.get(&format!("/reviews/{approval}/decision"), &reviewer).await;
    assert_eq!(none, Value::Null);

    // The submitter's person cannot approve it here either.
    let path = format!("/reviews/{approval}/decide");
    let (status, body) = app.post(&path, &s.agent, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 403, "{body}");
    let (status, decision) =
        app.post(&path, &reviewer, json!({"decision_type": "approve", "notes": "known vendor"})).await;
    assert_eq!(status, 200, "{backend:?}: {decision}");
    assert_eq!(
        (decision["decision_type"].as_str(), decision["review_id"].as_str(), decision["notes"].as_str()),
        (Some("approve"), Some(approval), Some("known vendor"))
    );
    assert!(decision["id"].as_str().unwrap().starts_with("dec_"), "{decision}");
    assert_eq!(decision["reviewer_name"], "k", "the deciding key's name: {decision}");
    let (status, again) = app.post(&path, &reviewer, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 409, "decided once: {again}");
    let (_, via_api) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!(code(&via_api), Some("APPROVAL_NOT_PENDING"), "{via_api}");

    let (_, paid) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(paid["status"], "COMPLETED", "{paid}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "5000.00", "{backend:?}: paid once");
    let (_, read) = app.get(&format!("/reviews/{approval}"), &reviewer).await;
    assert_eq!((read["status"].as_str(), &read["decision"]), (Some("approved"), &decision), "{read}");
    let (_, got) = app.get(&format!("/reviews/{approval}/decision?wait=1"), &reviewer).await;
    assert_eq!(got, decision);

    // A key bound to another wallet does not see it; another org gets a 404.
    let other = app.org("other").await;
    assert_eq!(app.get(&format!("/reviews/{approval}"), &other).await.0, 404);
    assert_eq!(app.get("/reviews?task_type=payment", &other).await.1["total"], 0);
    // An agent that may only ask for reviews cannot read payments through them.
    let asker = app.key(&s.admin, &["reviews:write"]).await;
    assert_eq!(app.get(&format!("/reviews/{approval}"), &asker).await.0, 403);
}

per_backend!(modify_and_reject_a_held_payment_through_reviews);
async fn modify_and_reject_a_held_payment_through_reviews(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (payment, approval) = app.held_payment(&s, "5000.00").await;
    let path = format!("/reviews/{approval}/decide");
    let action = "Process payment of $4,000.00 to ACME Corp";
    let cases = [
        (json!({"decision_type": "modify", "modified_action": action}), "modified_amount"),
        (json!({"decision_type": "modify", "modified_amount": "4000.00"}), "modified_action"),
        (
            json!({"decision_type": "modify", "modified_action": action, "modified_amount": "5000.01"}),
            "modified_amount",
        ),
        (json!({"decision_type": "modify", "modified_action": action, "modified_amount": 4000.5}), "modified_amount"),
        (json!({"decision_type": "modify", "modified_action": action, "modified_amount": "40.001"}), "modified_amount"),
        (json!({"decision_type": "approve", "modified_amount": "4000.00"}), "modified_amount"),
    ];
    let items = app.store.item_count().await;
    for (body, named) in cases {
        let (status, err) = app.post(&path, &s.reviewer, body.clone()).await;
        assert_eq!((status, field(&err)), (400, Some(named)), "{backend:?} {body}: {err}");
    }
    assert_eq!(app.store.item_count().await, items, "nothing written");

    let body =
        json!({"decision_type": "modify", "modified_action": action, "modified_amount": "4000.00", "notes": "cap"});
    let (status, decision) = app.post(&path, &s.reviewer, body).await;
    assert_eq!(status, 200, "{backend:?}: {decision}");
    assert_eq!(
        (decision["decision_type"].as_str(), decision["modified_action"].as_str()),
        (Some("modify"), Some(action))
    );
    let (_, paid) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!((paid["status"].as_str(), paid["amount"].as_str()), (Some("COMPLETED"), Some("4000.00")), "{paid}");
    assert_eq!(app.balance(&s.admin, &s.from).await, "6000.00");
    let (_, read) = app.get(&format!("/reviews/{approval}"), &s.reviewer).await;
    assert_eq!(
        (read["status"].as_str(), read["payment"]["amount"].as_str(), read["payment"]["originalAmount"].as_str()),
        (Some("modified"), Some("4000.00"), Some("5000.00")),
        "{read}"
    );
    let (_, modified) = app.get("/reviews?status=modified", &s.reviewer).await;
    assert_eq!(modified["total"], 1, "{modified}");
    let (_, approved) = app.get("/reviews?status=approved", &s.reviewer).await;
    assert_eq!(approved["total"], 0, "a modified one is not listed as approved: {approved}");

    // Modify through /v1/approvals shows as a modify decision too, with the amounts in words.
    let (_, second) = app.held_payment(&s, "2000.00").await;
    app.post(&format!("/v1/approvals/{second}/modify"), &s.reviewer, json!({"amount": "1500.00"})).await;
    let (_, d) = app.get(&format!("/reviews/{second}/decision"), &s.reviewer).await;
    assert_eq!(
        (d["decision_type"].as_str(), d["modified_action"].as_str()),
        (Some("modify"), Some("Pay 1500.00 USD instead of 2000.00 USD")),
        "{d}"
    );

    let (rejected_payment, third) = app.held_payment(&s, "3000.00").await;
    let (status, d) = app
        .post(
            &format!("/reviews/{third}/decide"),
            &s.reviewer,
            json!({"decision_type": "reject", "notes": "unknown vendor"}),
        )
        .await;
    assert_eq!((status, d["decision_type"].as_str()), (200, Some("reject")), "{d}");
    let (_, gone) = app.get(&format!("/v1/payments/{rejected_payment}"), &s.agent).await;
    assert_eq!(gone["status"], "REJECTED");
    assert_eq!(app.balance(&s.admin, &s.from).await, "4500.00", "{backend:?}");
    let (_, rejected) = app.get(&format!("/reviews/{third}"), &s.reviewer).await;
    assert_eq!(
        (rejected["status"].as_str(), rejected["decision"]["notes"].as_str()),
        (Some("rejected"), Some("unknown vendor"))
    );
}

per_backend!(a_quorum_vote_through_reviews_leaves_it_pending);
async fn a_quorum_vote_through_reviews_leaves_it_pending(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let policy = json!({"name": "two", "requireReviewAbove": "100.00", "requiredApprovals": 2});
    app.policy(&s.admin, &s.from, policy).await;
    let (payment, approval) = app.held_payment(&s, "500.00").await;
    let path = format!("/reviews/{approval}/decide");
    let (ann, ben) = (app.member(&s.admin, "ann").await, app.member(&s.admin, "ben").await);
    let perms = ["approvals:read", "approvals:write"];
    let (anns, bens) =
        (app.key_for(&s.admin, Some(&ann), &perms).await, app.key_for(&s.admin, Some(&ben), &perms).await);
    let (status, vote) = app.post(&path, &anns, json!({"decision_type": "approve"})).await;
    assert_eq!((status, vote["reviewer_name"].as_str()), (200, Some("ann")), "{vote}");
    let (_, read) = app.get(&format!("/reviews/{approval}"), &anns).await;
    assert_eq!((read["status"].as_str(), &read["decision"]), (Some("pending"), &Value::Null), "{read}");
    let (status, again) =
        app.post(&path, &app.key_for(&s.admin, Some(&ann), &perms).await, json!({"decision_type": "approve"})).await;
    assert_eq!((status, code(&again)), (409, Some("ALREADY_VOTED")), "one person, one vote: {again}");
    let (status, closing) = app.post(&path, &bens, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 200, "{closing}");
    let (_, d) = app.get(&format!("/reviews/{approval}/decision"), &anns).await;
    assert_eq!((d["reviewer_id"].as_str(), d["reviewer_name"].as_str()), (Some(ben.as_str()), Some("ben")), "{d}");
    assert_eq!(app.get(&format!("/v1/payments/{payment}"), &s.agent).await.1["status"], "COMPLETED");
}

per_backend!(reviews_escalate_to_another_team);
async fn reviews_escalate_to_another_team(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.allow_private_webhooks = true).await;
    let admin = app.org("acme").await;
    let agent = app.key(&admin, &["reviews:write"]).await;
    let (ann, ben) = (app.member(&admin, "ann").await, app.member(&admin, "ben").await);
    let (first, second) = (app.team(&admin, "desk", &[&ann]).await, app.team(&admin, "managers", &[&ben]).await);
    let rule = json!({
        "name": "all to the desk", "priority": 1, "conditions": {"task_type": {"operator": "=", "value": "wire"}},
        "assign_to_team_id": first, "is_active": true
    });
    assert_eq!(app.post("/routing-rules", &admin, rule).await.0, 201);
    let (_, review) =
        app.post("/reviews", &agent, json!({"task_type": "wire", "proposed_action": "wire 9,000 EUR"})).await;
    let id = review["id"].as_str().unwrap();
    assert_eq!(review["assigned_team_id"].as_str(), Some(first.as_str()), "{review}");
    let perms = ["approvals:read", "approvals:write"];
    let (anns, bens) = (app.key_for(&admin, Some(&ann), &perms).await, app.key_for(&admin, Some(&ben), &perms).await);
    let path = format!("/reviews/{id}/escalate");
    let elsewhere = app.org("other").await;
    let (_, theirs) = app.post("/v1/teams", &elsewhere, json!({"name": "theirs", "members": []})).await;

    let items = app.store.item_count().await;
    for (body, named) in [
        (json!({}), "to_team_id"),
        (json!({"to_team_id": "nope"}), "to_team_id"),
        (json!({"to_team_id": second, "team": "x"}), "team"),
        (json!({"to_team_id": second, "notes": "x".repeat(5000)}), "notes"),
    ] {
        let (status, err) = app.post(&path, &anns, body.clone()).await;
        assert_eq!((status, field(&err)), (400, Some(named)), "{backend:?} {body}: {err}");
    }
    let (status, err) = app.post(&path, &anns, json!({"to_team_id": theirs["id"]})).await;
    assert_eq!((status, code(&err)), (404, Some("TEAM_NOT_FOUND")), "another org's team: {err}");
    let (status, err) = app.post(&path, &bens, json!({"to_team_id": second})).await;
    assert_eq!((status, code(&err)), (403, Some("NOT_ASSIGNED")), "only the assigned team escalates: {err}");
    assert_eq!(app.store.item_count().await, items, "nothing written");

    // A review has no chain: only an admin names the team it goes to (issue 21).
    let (status, err) = app.post(&path, &anns, json!({"to_team_id": second})).await;
    assert_eq!((status, code(&err)), (403, Some("PERMISSION_DENIED")), "a member names no team: {err}");
    assert_eq!(app.store.item_count().await, items, "nothing written");

    let (status, escalated) = app.post(&path, &admin, json!({"to_team_id": second, "notes": "over my limit"})).await;
    assert_eq!(status, 200, "{backend:?}: {escalated}");
    assert_eq!(
        (escalated["status"].as_str(), escalated["assigned_team_id"].as_str()),
        (Some("escalated"), Some(second.as_str()))
    );
    let decide = format!("/reviews/{id}/decide");
    let (status, err) = app.post(&decide, &anns, json!({"decision_type": "approve"})).await;
    assert_eq!((status, code(&err)), (403, Some("NOT_ASSIGNED")), "{err}");
    let (_, listed) = app.get("/reviews?status=escalated", &bens).await;
    assert_eq!(listed["total"], 1, "{listed}");
    let (status, d) = app.post(&decide, &bens, json!({"decision_type": "approve"})).await;
    assert_eq!((status, d["reviewer_name"].as_str()), (200, Some("ben")), "{d}");
    let (status, err) = app.post(&path, &bens, json!({"to_team_id": first})).await;
    assert_eq!((status, code(&err)), (409, Some("REVIEW_NOT_PENDING")), "{err}");
    let (_, log) = app.get("/v1/audit-logs?action=review.escalated", &admin).await;
    assert_eq!(log["data"][0]["details"]["toTeam"].as_str(), Some(second.as_str()), "{log}");
    let (status, hook) =
        app.post("/v1/webhooks", &admin, json!({"url": "http://127.0.0.1:9/h", "events": ["review.escalated"]})).await;
    assert_eq!(status, 201, "subscribable: {hook}");
}

per_backend!(a_held_payment_escalates_through_reviews_along_its_chain);
async fn a_held_payment_escalates_through_reviews_along_its_chain(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let (ann, ben) = (app.member(&s.admin, "ann").await, app.member(&s.admin, "ben").await);
    let (first, second) = (app.team(&s.admin, "tier 1", &[&ann]).await, app.team(&s.admin, "tier 2", &[&ben]).await);
    let policy = json!({"name": "tiers", "requireReviewAbove": "100.00", "escalationChain": [first, second]});
    app.policy(&s.admin, &s.from, policy).await;
    let (_, approval) = app.held_payment(&s, "500.00").await;
    let anns = app.key_for(&s.admin, Some(&ann), &["approvals:read", "approvals:write"]).await;
    let (status, escalated) = app.post(&format!("/reviews/{approval}/escalate"), &anns, json!({})).await;
    assert_eq!(status, 200, "{backend:?}: {escalated}");
    assert_eq!(
        (escalated["status"].as_str(), escalated["assigned_team_id"].as_str(), escalated["task_type"].as_str()),
        (Some("escalated"), Some(second.as_str()), Some("payment"))
    );
    let (_, api) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!(api["status"], "ESCALATED", "one record: {api}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    fifty_deciders_escalators_and_sweeps_leave_one_outcome
);
/// A review's team races itself: 25 members decide, 25 escalate, while the sweep runs; exactly
/// one of them wins. Then, at the deadline, 25 deciders race 25 sweeps: only the expiry lands.
async fn fifty_deciders_escalators_and_sweeps_leave_one_outcome(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("acme").await;
    let agent = app.key(&admin, &["reviews:write"]).await;
    let mut members = Vec::new();
    for i in 0..50 {
        members.push(app.member(&admin, &format!("m{i}")).await);
    }
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let desk = app.team(&admin, "desk", &refs).await;
    let managers = app.team(&admin, "managers", &[]).await;
    let rule = json!({"name": "desk", "conditions": {}, "assign_to_team_id": desk, "is_active": true});
    assert_eq!(app.post("/routing-rules", &admin, rule).await.0, 201);
    let mut keys = Vec::new();
    for m in &members {
        keys.push(app.key_for(&admin, Some(m), &["approvals:read", "approvals:write"]).await);
    }
    let ask = json!({"task_type": "wire", "proposed_action": "wire 9,000 EUR"});
    let (_, raced) = app.post("/reviews", &agent, ask.clone()).await;
    let (_, late) = app.post("/reviews", &agent, ask).await;
    let raced = raced["id"].as_str().unwrap().to_string();
    app.clock.advance(chrono::Duration::seconds(5));

    // A review has no chain, so only an admin names the team it escalates to (issue 21): the
    // escalations race through the admin key.
    let calls = keys.iter().enumerate().map(|(i, key)| {
        let (action, body, key) = if i % 2 == 0 {
            ("decide", json!({"decision_type": "approve"}), key)
        } else {
            ("escalate", json!({"to_team_id": managers}), &admin)
        };
        let path = format!("/reviews/{raced}/{action}");
        let app = &app;
        async move { (action, app.post(&path, key, body).await) }
    });
    let sweeps = (0..5).map(|_| app.service.sweep(None, 100));
    let (results, swept) = tokio::join!(futures::future::join_all(calls), futures::future::join_all(sweeps));
    assert!(swept.iter().all(Result::is_ok), "{backend:?}: {swept:?}");
    let winners: Vec<_> = results.iter().filter(|(_, (status, _))| *status == 200).collect();
    assert_eq!(winners.len(), 1, "{backend:?}: {results:?}");
    for (_, (status, body)) in &results {
        // Once escalated, the review is still open but already with `managers`: never again.
        let loser = matches!(code(body), Some("REVIEW_NOT_PENDING" | "NOT_ASSIGNED" | "NO_ESCALATION_TARGET"));
        assert!(*status == 200 || loser, "{backend:?}: {status} {body}");
    }
    let (_, read) = app.get(&format!("/reviews/{raced}"), &keys[0]).await;
    let (_, decided) = app.get("/v1/audit-logs?action=review.decided", &admin).await;
    let (_, escalated) = app.get("/v1/audit-logs?action=review.escalated", &admin).await;
    let counts = (decided["data"].as_array().map(Vec::len), escalated["data"].as_array().map(Vec::len));
    match winners[0].0 {
        "decide" => {
            assert_eq!((read["status"].as_str(), counts), (Some("approved"), (Some(1), Some(0))), "{backend:?}")
        }
        _ => assert_eq!((read["status"].as_str(), counts), (Some("escalated"), (Some(0), Some(1))), "{backend:?}"),
    }

    // At the deadline the write's own time check and the sweep agree: it expires, once.
    let late = late["id"].as_str().unwrap().to_string();
    let (_, before) = app.get(&format!("/reviews/{late}"), &keys[0]).await;
    let expires_at: chrono::DateTime<chrono::Utc> = before["expires_at"].as_str().unwrap().parse().unwrap();
    {
        use countersign_core::ports::Clock;
        app.clock.advance(expires_at - app.clock.now() + chrono::Duration::seconds(1));
    }
    let calls = keys.iter().take(25).map(|key| {
        let path = format!("/reviews/{late}/decide");
        let app = &app;
        async move { app.post(&path, key, json!({"decision_type": "approve"})).await }
    });
    let sweeps = (0..25).map(|_| app.service.sweep(None, 100));
    let (results, swept) = tokio::join!(futures::future::join_all(calls), futures::future::join_all(sweeps));
    let refused = |(status, body): &(u16, Value)| {
        *status == 409 && matches!(code(body), Some("REVIEW_EXPIRED" | "REVIEW_NOT_PENDING"))
    };
    assert!(results.iter().all(refused), "{backend:?}: {results:?}");
    let expired: usize = swept.into_iter().map(|s| s.expect("sweep").approvals_expired).sum();
    // An escalation hands a review on within its one window (issue 21): an escalated `raced`
    // is due by now too.
    let due = if winners[0].0 == "escalate" { 2 } else { 1 };
    assert_eq!(expired, due, "{backend:?}: one expiry each");
    let (_, after) = app.get(&format!("/reviews/{late}"), &keys[0]).await;
    assert_eq!(after["status"], "expired", "{after}");
}
