//! Agent controls (docs/api.md, "Agent controls"), on both stores: budgets per key that racing
//! payments cannot overrun, reservations settled by every way a held payment ends, the kill
//! switch for keys and wallets (nothing that starts after the freeze is acknowledged moves
//! money), and "always allow" rules whose hits are counted exactly.

use std::sync::Arc;
use std::time::Instant;

use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

/// An agent key with `budgets`, minted by the scenario's admin.
async fn budgeted_agent(app: &TestApp, s: &Scenario, budgets: Value) -> (String, String) {
    let body = json!({"name": "agent", "permissions": ["payments:write", "payments:read"], "budgets": budgets});
    let (status, body) = app.post("/v1/api-keys", &s.admin, body).await;
    assert_eq!(status, 201, "{body}");
    (body["secret"].as_str().expect("secret").into(), body["id"].as_str().expect("id").into())
}

async fn budgets_of(app: &TestApp, key: &str, id: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/v1/api-keys/{id}/budgets"), key).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().expect("data").clone()
}

fn standing(budget: &Value) -> (&str, &str, &str) {
    (
        budget["spent"].as_str().unwrap_or("?"),
        budget["reserved"].as_str().unwrap_or("?"),
        budget["remaining"].as_str().unwrap_or("?"),
    )
}

/// How many audit entries have `action` (the log pages through every payment's rows).
async fn audited(app: &TestApp, admin: &str, action: &str) -> usize {
    let (mut found, mut cursor) = (0, None::<String>);
    for _ in 0..200 {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (status, page) = app.get(&format!("/v1/audit-logs?action={action}&limit=100{after}"), admin).await;
        assert_eq!(status, 200, "{page}");
        found += page["data"].as_array().map_or(0, Vec::len);
        match page["nextCursor"].as_str() {
            Some(next) if page["hasMore"] == true => cursor = Some(next.to_string()),
            _ => return found,
        }
    }
    found
}

async fn pay(app: &TestApp, key: &str, s: &Scenario, amount: &str) -> (u16, Value) {
    app.post("/v1/payments", key, json!({"from": s.from, "to": s.to, "amount": amount})).await
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    fifty_racing_payments_never_overrun_a_budget
);
async fn fifty_racing_payments_never_overrun_a_budget(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    for on_exceed in ["deny", "hold"] {
        let budgets = json!([{"window": "day", "limit": "100.00", "currency": "USD", "onExceed": on_exceed}]);
        let (agent, id) = budgeted_agent(&app, &s, budgets).await;
        let before = app.balance(&s.admin, &s.from).await;
        let results = join_all((0..50).map(|_| pay(&app, &agent, &s, "3.00"))).await;
        let count = |status: u16| results.iter().filter(|(st, _)| *st == status).count();
        let context =
            format!("{backend:?}, onExceed {on_exceed}: {:?}", results.iter().map(|r| r.0).collect::<Vec<_>>());
        assert_eq!(count(201), 33, "{context}");
        match on_exceed {
            "deny" => {
                assert_eq!(count(403), 17, "{context}");
                assert!(
                    results.iter().filter(|(st, _)| *st == 403).all(|(_, b)| b["error"]["code"] == "BUDGET_EXCEEDED"),
                    "{context}"
                );
                let budget = &budgets_of(&app, &agent, &id).await[0];
                assert_eq!(standing(budget), ("99.00", "0.00", "1.00"), "{context}: {budget}");
            }
            _ => {
                assert_eq!(count(202), 17, "{context}");
                let held = results.iter().find(|(st, _)| *st == 202).expect("a held one");
                assert_eq!(held.1["decision"]["rule"], "budget", "{context}");
                let budget = &budgets_of(&app, &agent, &id).await[0];
                assert_eq!(standing(budget), ("99.00", "51.00", "0.00"), "{context}: {budget}");
            }
        }
        let before: f64 = before.parse().expect("balance");
        let after: f64 = app.balance(&s.admin, &s.from).await.parse().expect("balance");
        assert!((before - after - 99.0).abs() < 1e-9, "{context}: exactly 33 × 3.00 left the wallet");
    }
}

per_backend!(reservations_end_with_the_payment_they_hold);
async fn reservations_end_with_the_payment_they_hold(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "look above 5", "requireReviewAbove": "5.00"})).await;
    let budgets = json!([
        {"window": "day", "limit": "15.00", "currency": "USD"},
        {"window": "month", "limit": "500.00", "currency": "USD", "onExceed": "deny"},
        {"window": "week", "limit": "1.00", "currency": "EUR"}
    ]);
    let (agent, id) = budgeted_agent(&app, &s, budgets).await;
    let day = |list: Vec<Value>| list.into_iter().find(|b| b["window"] == "day").expect("day budget");

    // Policies hold 8.00: it reserves; 4.00 executes and is spent.
    let (status, first) = pay(&app, &agent, &s, "8.00").await;
    assert_eq!(status, 202, "{first}");
    let (status, body) = pay(&app, &agent, &s, "4.00").await;
    assert_eq!(status, 201, "{body}");
    let b = day(budgets_of(&app, &agent, &id).await);
    assert_eq!(standing(&b), ("4.00", "8.00", "3.00"), "{b}");
    assert!(b["resetsAt"].as_str().is_some_and(|t| t.ends_with("T00:00:00Z")), "{b}");
    // 5.00 (policies would let it through) takes the day over its 15.00: held by the budget,
    // reserving too.
    let (status, second) = pay(&app, &agent, &s, "5.00").await;
    assert_eq!((status, second["decision"]["rule"].as_str()), (202, Some("budget")), "{second}");
    assert_eq!(standing(&day(budgets_of(&app, &agent, &id).await)), ("4.00", "13.00", "0.00"));

    // Rejected: released.
    let first_approval = first["approvalId"].as_str().expect("approval");
    let (status, body) = app.post(&format!("/v1/approvals/{first_approval}/reject"), &s.reviewer, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(standing(&day(budgets_of(&app, &agent, &id).await)), ("4.00", "5.00", "6.00"));
    // Modified to a lower amount and executed: the lower amount is spent.
    let second_approval = second["approvalId"].as_str().expect("approval");
    let body = json!({"amount": "2.50"});
    let (status, body) = app.post(&format!("/v1/approvals/{second_approval}/modify"), &s.reviewer, body).await;
    assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{body}");
    assert_eq!(standing(&day(budgets_of(&app, &agent, &id).await)), ("6.50", "0.00", "8.50"));
    // Expired by the sweep: released.
    let (status, third) = pay(&app, &agent, &s, "6.00").await;
    assert_eq!(status, 202, "{third}");
    let list = budgets_of(&app, &agent, &id).await;
    assert_eq!(standing(&day(list.clone())), ("6.50", "6.00", "2.50"));
    let month_ends = list.iter().find(|b| b["window"] == "month").expect("month")["resetsAt"].clone();
    let month_ends: chrono::DateTime<chrono::Utc> = month_ends.as_str().expect("resetsAt").parse().expect("time");
    app.clock.advance(chrono::Duration::hours(25));
    let new_month = countersign_core::ports::Clock::now(app.clock.as_ref()) >= month_ends;
    app.service.expire_due(100).await.expect("sweep");
    let (_, expired) = app.get(&format!("/v1/payments/{}", third["id"].as_str().expect("id")), &agent).await;
    assert_eq!(expired["status"], "EXPIRED", "{expired}");
    // A day later: a fresh day budget; the month's counts what was spent.
    let list = budgets_of(&app, &agent, &id).await;
    assert_eq!(standing(&day(list.clone())), ("0.00", "0.00", "15.00"));
    let month = list.iter().find(|b| b["window"] == "month").expect("month");
    let left = if new_month { "500.00" } else { "493.50" };
    let spent = if new_month { "0.00" } else { "6.50" };
    assert_eq!(standing(month), (spent, "0.00", left), "{month}");
    // The month's deny budget refuses outright, naming itself; nothing is written.
    let (status, body) = pay(&app, &agent, &s, "600.00").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("BUDGET_EXCEEDED")), "{body}");
    let details = &body["error"]["details"];
    assert_eq!((details["window"].as_str(), details["remaining"].as_str()), (Some("month"), Some(left)), "{body}");

    // Only the key itself or a key over it reads its budgets; a key cannot change its own, and
    // a budgeted key cannot mint a key without them.
    let (status, _) = app.get(&format!("/v1/api-keys/{id}/budgets"), &s.reviewer).await;
    assert_eq!(status, 403);
    let (status, body) =
        app.call("PATCH", &format!("/v1/api-keys/{id}"), Some(&s.admin), Some(json!({"budgets": []}))).await;
    assert_eq!(status, 200, "{body}");
    let (_, admin_key) = app.get("/v1/api-keys?limit=100", &s.admin).await;
    let admin_id = admin_key["data"].as_array().unwrap().iter().find(|k| k["name"] == "admin").unwrap()["id"].clone();
    let body = json!({"budgets": [{"window": "day", "limit": "1.00", "currency": "USD"}]});
    let (status, body) =
        app.call("PATCH", &format!("/v1/api-keys/{}", admin_id.as_str().unwrap()), Some(&s.admin), Some(body)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{body}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    a_freeze_stops_everything_that_starts_after_it
);
async fn a_freeze_stops_everything_that_starts_after_it(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let s = Arc::new(app.scenario("100000.00").await);
    for target in ["key", "wallet"] {
        let (agent, key_id) = budgeted_agent(&app, &s, json!([])).await;
        let before = app.balance(&s.admin, &s.from).await;
        let started = Instant::now();
        let workers = (0..8).map(|_| {
            let (app, s, agent) = (app.clone(), s.clone(), agent.clone());
            tokio::spawn(async move {
                // Paying until refused, then a few more times, a little apart: some of those
                // start after the freeze's answer reached the test.
                let (mut seen, mut refused) = (Vec::new(), 0);
                for _ in 0..2000 {
                    let at = Instant::now();
                    let (status, body) = pay(&app, &agent, &s, "1.00").await;
                    let code = body["error"]["code"].as_str().map(String::from);
                    seen.push((at, status, code));
                    if status == 403 {
                        refused += 1;
                        if refused == 5 {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
                seen
            })
        });
        let workers: Vec<_> = workers.collect();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let path = match target {
            "key" => format!("/v1/api-keys/{key_id}/freeze"),
            _ => format!("/v1/wallets/{}/freeze", s.from),
        };
        let (status, frozen) = app.post(&path, &s.admin, json!({})).await;
        let acknowledged = Instant::now();
        assert_eq!(status, 200, "{frozen}");
        assert!(frozen["frozenAt"].is_string(), "{frozen}");
        let mut executed = 0;
        let mut after = 0;
        for worker in workers {
            for (at, status, code) in worker.await.expect("worker") {
                if status == 201 {
                    executed += 1;
                }
                if at > acknowledged {
                    after += 1;
                    let expected = if target == "key" { "KEY_FROZEN" } else { "WALLET_FROZEN" };
                    assert_eq!(
                        (status, code.as_deref()),
                        (403, Some(expected)),
                        "{backend:?} {target}: started after the freeze"
                    );
                }
            }
        }
        assert!(
            executed > 0 && after > 0,
            "{backend:?} {target}: the freeze came mid-run ({executed} executed, {:?})",
            started.elapsed()
        );
        let spent: f64 = before.parse::<f64>().unwrap() - app.balance(&s.admin, &s.from).await.parse::<f64>().unwrap();
        assert!((spent - executed as f64).abs() < 1e-9, "{backend:?} {target}: every 201 and nothing else moved money");
        // Unfrozen, it works again; the freeze and unfreeze are audited.
        let unfreeze = path.replace("/freeze", "/unfreeze");
        let (status, body) = app.post(&unfreeze, &s.admin, json!({})).await;
        assert_eq!((status, body["frozenAt"].is_null()), (200, true), "{body}");
        let (status, body) = pay(&app, &agent, &s, "1.00").await;
        assert_eq!(status, 201, "{body}");
        let action = if target == "key" { "api_key.frozen" } else { "wallet.frozen" };
        assert_eq!(audited(&app, &s.admin, action).await, 1, "{backend:?} {target}");
    }
}

per_backend!(a_frozen_wallet_holds_its_approvals_and_refunds);
async fn a_frozen_wallet_holds_its_approvals_and_refunds(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("5000.00").await;
    let (payment, approval) = app.held_payment(&s, "1500.00").await;
    let (status, done) = pay(&app, &s.agent, &s, "10.00").await;
    assert_eq!(status, 201, "{done}");
    let (status, _) = app.post(&format!("/v1/wallets/{}/freeze", s.to), &s.admin, json!({})).await;
    assert_eq!(status, 200);
    // Money into a frozen wallet: refused; its approvals execute nothing.
    let (status, body) = pay(&app, &s.agent, &s, "10.00").await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("WALLET_FROZEN")), "{body}");
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("WALLET_FROZEN")), "{body}");
    let (_, a) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
    assert_eq!((a["status"].as_str(), a["votes"].as_array().map(Vec::len)), (Some("PENDING"), Some(0)), "{a}");
    let refunder = app.key(&s.admin, &["refunds:write"]).await;
    let body = json!({"paymentId": done["id"]});
    let (status, body) = app.post("/v1/refunds", &refunder, body).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("WALLET_FROZEN")), "{body}");
    // Rejecting still works (it moves nothing); unfrozen, approving executes.
    let (status, _) = app.post(&format!("/v1/wallets/{}/unfreeze", s.to), &s.admin, json!({})).await;
    assert_eq!(status, 200);
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{body}");
    let (_, p) = app.get(&format!("/v1/payments/{payment}"), &s.agent).await;
    assert_eq!(p["status"], "COMPLETED");
    // Only admin or wallets:write freezes; a key never freezes itself.
    let (status, _) = app.post(&format!("/v1/wallets/{}/freeze", s.to), &s.reviewer, json!({})).await;
    assert_eq!(status, 403);
    let (_, keys) = app.get("/v1/api-keys?limit=100", &s.admin).await;
    let admin_id = keys["data"].as_array().unwrap().iter().find(|k| k["name"] == "admin").unwrap()["id"].clone();
    let (status, body) =
        app.post(&format!("/v1/api-keys/{}/freeze", admin_id.as_str().unwrap()), &s.admin, json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{body}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    allow_rule_hits_are_counted_exactly
);
async fn allow_rule_hits_are_counted_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "every payment", "requireHumanApproval": true})).await;
    let (_, approval) = app.held_payment(&s, "10.00").await;
    // Only when approving, with a sane cap and duration.
    for (body, field) in [
        (json!({"alwaysAllow": {"maxAmount": 20}}), "alwaysAllow.maxAmount"),
        (json!({"alwaysAllow": {"maxAmount": "20.001"}}), "alwaysAllow.maxAmount"),
        (json!({"alwaysAllow": {"maxAmount": "20.00", "expiresInDays": 366}}), "alwaysAllow.expiresInDays"),
        (json!({"alwaysAllow": {"maxAmount": "20.00", "why": 1}}), "alwaysAllow.why"),
    ] {
        let (status, err) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, body.clone()).await;
        assert_eq!((status, err["error"]["details"]["field"].as_str()), (400, Some(field)), "{body}: {err}");
    }
    let body = json!({"alwaysAllow": {"maxAmount": "20.00"}});
    let (status, err) = app.post(&format!("/v1/approvals/{approval}/reject"), &s.reviewer, body).await;
    assert_eq!((status, err["error"]["details"]["field"].as_str()), (400, Some("alwaysAllow")), "{err}");
    let body = json!({"note": "our hosting bill", "alwaysAllow": {"maxAmount": "20.00", "expiresInDays": 30}});
    let (status, decided) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, body).await;
    assert_eq!(status, 200, "{decided}");
    let rule = decided["allowRule"].clone();
    assert_eq!(
        (rule["maxAmount"].as_str(), rule["hits"].as_u64(), rule["recipient"].as_str()),
        (Some("20.00"), Some(0), Some(s.to.as_str())),
        "{rule}"
    );

    // Twenty racing payments under the cap: every one executes, each counted once.
    let results = join_all((0..20).map(|_| pay(&app, &s.agent, &s, "5.00"))).await;
    assert!(
        results.iter().all(|(st, b)| *st == 201 && b["decision"]["rule"] == "alwaysAllow"),
        "{backend:?}: {results:?}"
    );
    let (_, rules) = app.get(&format!("/v1/wallets/{}/allow-rules", s.from), &s.admin).await;
    let listed = &rules["data"][0];
    assert_eq!((listed["hits"].as_u64(), listed["lastHitAt"].is_string()), (Some(20), true), "{backend:?}: {rules}");
    // Above the cap, or to another payee: reviewed as before.
    let (status, body) = pay(&app, &s.agent, &s, "20.01").await;
    assert_eq!(status, 202, "{body}");
    // Deleted: reviewed again.
    let rid = listed["id"].as_str().expect("id");
    let (status, _) =
        app.call("DELETE", &format!("/v1/wallets/{}/allow-rules/{rid}", s.from), Some(&s.reviewer), None).await;
    assert_eq!(status, 403, "policies:write deletes");
    let (status, body) =
        app.call("DELETE", &format!("/v1/wallets/{}/allow-rules/{rid}", s.from), Some(&s.admin), None).await;
    assert_eq!((status, body["deleted"].as_bool()), (200, Some(true)), "{body}");
    let (status, _) = pay(&app, &s.agent, &s, "5.00").await;
    assert_eq!(status, 202);

    // A policy wanting two approvers is never waived by one.
    app.policy(&s.admin, &s.from, json!({"name": "two", "requireHumanApproval": true, "requiredApprovals": 2})).await;
    let (_, approval) = app.held_payment(&s, "10.00").await;
    let body = json!({"alwaysAllow": {"maxAmount": "20.00"}});
    let (status, err) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, body).await;
    assert_eq!((status, err["error"]["code"].as_str()), (409, Some("ALWAYS_ALLOW_REFUSED")), "{err}");
}

per_backend!(the_dashboards_approve_form_offers_always_allow);
/// The detail page offers "Always allow this payee" with Approve; ticked, the approval makes the
/// rule (a payment's approval needing one approver only).
async fn the_dashboards_approve_form_offers_always_allow(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| {
        let secret = countersign_core::domain::secret::ServerSecret::new("agent-controls-dashboard-secret-0123456789");
        s.session_secret = Some(Arc::new(secret.expect("secret")));
        s.public_url = Some("http://dashboard.test".into());
    })
    .await;
    let s = app.scenario("10000.00").await;
    app.policy(&s.admin, &s.from, json!({"name": "every payment", "requireHumanApproval": true})).await;
    let (_, approval) = app.held_payment(&s, "40.00").await;
    let mut browser = countersign_tests::browser::Browser::new(&app);
    let csrf = browser.signed_in(&s.reviewer).await;
    let page = browser.get(&format!("/dashboard/approvals/{approval}")).await;
    assert!(page.body.contains("Always allow this payee") && page.body.contains("name=\"allow_max\""), "{}", page.body);
    let form = [
        ("csrf", csrf.as_str()),
        ("action", "approve"),
        ("always_allow", "on"),
        ("allow_max", "60.00"),
        ("allow_days", "30"),
    ];
    let done = browser.post(&format!("/dashboard/approvals/{approval}/decide"), &form).await;
    assert!(done.status == 303 || done.status == 200, "{} {}", done.status, done.body);
    let (_, rules) = app.get(&format!("/v1/wallets/{}/allow-rules", s.from), &s.admin).await;
    let rule = &rules["data"][0];
    assert_eq!(
        (rule["maxAmount"].as_str(), rule["recipient"].as_str()),
        (Some("60.00"), Some(s.to.as_str())),
        "{rules}"
    );
    let (status, body) = pay(&app, &s.agent, &s, "55.00").await;
    assert_eq!((status, body["decision"]["rule"].as_str()), (201, Some("alwaysAllow")), "{body}");
}

per_backend!(a_modify_awaiting_more_approvals_keeps_only_the_lower_amount_reserved);
/// "Modify keeps the lower amount": modified while a second approver is still needed, the
/// reservation shrinks at once; the second approval spends the lower amount.
async fn a_modify_awaiting_more_approvals_keeps_only_the_lower_amount_reserved(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000.00").await;
    let two = json!({"name": "two people", "requireHumanApproval": true, "requiredApprovals": 2});
    app.policy(&s.admin, &s.from, two).await;
    let (agent, id) = budgeted_agent(&app, &s, json!([{"window": "day", "limit": "50.00", "currency": "USD"}])).await;
    let (status, held) = pay(&app, &agent, &s, "10.00").await;
    assert_eq!(status, 202, "{held}");
    assert_eq!(standing(&budgets_of(&app, &agent, &id).await[0]), ("0.00", "10.00", "40.00"));
    let approval = held["approvalId"].as_str().expect("approval");
    let (status, body) =
        app.post(&format!("/v1/approvals/{approval}/modify"), &s.reviewer, json!({"amount": "4.00"})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")), "{body}");
    assert_eq!(standing(&budgets_of(&app, &agent, &id).await[0]), ("0.00", "4.00", "46.00"));
    let second = app.key(&s.admin, &["approvals:read", "approvals:write"]).await;
    let (status, body) = app.post(&format!("/v1/approvals/{approval}/approve"), &second, json!({})).await;
    assert_eq!((status, body["payment"]["status"].as_str()), (200, Some("COMPLETED")), "{body}");
    assert_eq!(standing(&budgets_of(&app, &agent, &id).await[0]), ("4.00", "0.00", "46.00"));
}
