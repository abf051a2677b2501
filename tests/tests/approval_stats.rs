//! Review statistics (docs/api.md, "Review statistics"; DESIGN.md §2.11): every decision of an
//! approval, through any door (REST approve, reject, modify and escalate, `/reviews`, the
//! sweep's expiry, timeout rejection and escalation), leaves one record in its own transaction,
//! and `GET /v1/stats/approvals` counts them exactly per team, reviewer and agent, with exact
//! median and p90 seconds (the test clock sets every decision's time), the rubber-stamp flag,
//! windows, tenant isolation and racing approvers. Both stores.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use countersign_core::ports::Clock;
use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use futures::future::join_all;
use serde_json::{json, Value};

fn key_id(secret: &str) -> String {
    secret.trim_start_matches("csk_").rsplit_once('_').map(|(id, _)| id.to_string()).expect("a key secret")
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `GET /v1/stats/approvals?…` as `key`: 200 and its groups by key.
/// (The test clock stands still: it moves on a millisecond first, so that decisions made at
/// this instant are before the default `until`, now, as they always are on a real clock.)
async fn stats(app: &TestApp, key: &str, query: &str) -> (Value, Vec<Value>) {
    app.clock.advance(Duration::milliseconds(1));
    let (status, body) = app.get(&format!("/v1/stats/approvals?{query}"), key).await;
    assert_eq!(status, 200, "{query}: {body}");
    let groups = body["groups"].as_array().expect("groups").clone();
    (body, groups)
}

fn group<'a>(groups: &'a [Value], key: &str) -> &'a Value {
    groups.iter().find(|g| g["key"] == key).unwrap_or_else(|| panic!("no group {key} in {groups:?}"))
}

/// (decided, approved, rejected, modified, expired, escalated, median s, p90 s, rubberStamp).
fn figures(g: &Value) -> (u64, u64, u64, u64, u64, u64, f64, f64, bool) {
    let n = |f: &str| g[f].as_u64().unwrap_or_else(|| panic!("{f} in {g}"));
    let s = |f: &str| g[f].as_f64().unwrap_or_else(|| panic!("{f} in {g}"));
    (
        n("decided"),
        n("approved"),
        n("rejected"),
        n("modified"),
        n("expired"),
        n("escalated"),
        s("medianSeconds"),
        s("p90Seconds"),
        g["rubberStamp"].as_bool().expect("rubberStamp"),
    )
}

async fn ok(app: &TestApp, path: &str, key: &str, body: Value) -> Value {
    let (status, answer) = app.post(path, key, body).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// A held payment of `amount` from the scenario's first wallet by `agent`; its approval id.
async fn hold(app: &TestApp, s: &Scenario, agent: &str) -> String {
    let (status, body) =
        app.post("/v1/payments", agent, json!({"from": s.from, "to": s.to, "amount": "5000.00"})).await;
    assert_eq!(status, 202, "{body}");
    body["approvalId"].as_str().expect("approval").to_string()
}

per_backend!(decisions_through_every_door_are_counted_exactly);
/// Six approvals made at one instant, decided at known times: by Alice (REST approve at 5 s,
/// reject at 10 s), Bob (modify at 20 s, `/reviews` approve at 30 s), the admin key (escalation
/// to Risk at 40 s), Carol of Risk (approve at 50 s) and the sweep (expiry after 24 h).
async fn decisions_through_every_door_are_counted_exactly(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("100000.00").await;
    let (alice, bob, carol) =
        (app.member(&s.admin, "alice").await, app.member(&s.admin, "bob").await, app.member(&s.admin, "carol").await);
    let treasury = app.team(&s.admin, "Treasury", &[&alice, &bob]).await;
    let risk = app.team(&s.admin, "Risk", &[&carol]).await;
    let (status, _) = app.call("PATCH", "/v1/settings", Some(&s.admin), Some(json!({"defaultTeam": treasury}))).await;
    assert_eq!(status, 200);
    let decide = ["approvals:read", "approvals:write"];
    let (alices, bobs, carols) = (
        app.key_for(&s.admin, Some(&alice), &decide).await,
        app.key_for(&s.admin, Some(&bob), &decide).await,
        app.key_for(&s.admin, Some(&carol), &decide).await,
    );
    let other_agent = app.key(&s.admin, &["payments:write", "payments:read"]).await;
    let start = app.clock.now();
    let mut approvals = Vec::new();
    for agent in [&s.agent, &s.agent, &s.agent, &other_agent, &other_agent, &other_agent] {
        approvals.push(hold(&app, &s, agent).await);
    }
    let step = |seconds| app.clock.advance(Duration::seconds(seconds));
    step(5);
    ok(&app, &format!("/v1/approvals/{}/approve", approvals[0]), &alices, json!({})).await;
    step(5);
    ok(&app, &format!("/v1/approvals/{}/reject", approvals[1]), &alices, json!({"reason": "duplicate"})).await;
    step(10);
    ok(&app, &format!("/v1/approvals/{}/modify", approvals[2]), &bobs, json!({"amount": "1200.00"})).await;
    step(10);
    ok(&app, &format!("/reviews/{}/decide", approvals[3]), &bobs, json!({"decision_type": "approve"})).await;
    step(10);
    ok(&app, &format!("/v1/approvals/{}/escalate", approvals[4]), &s.admin, json!({"toTeam": risk})).await;
    step(10);
    ok(&app, &format!("/v1/approvals/{}/approve", approvals[4]), &carols, json!({})).await;
    // The sixth waits out its 24 h window; the sweep expires it.
    step(24 * 3600);
    let swept = app.service.expire_due(100).await.expect("sweep");
    assert_eq!(swept.expired, 1, "{backend:?}: {swept:?}");
    let expired_after = (24 * 3600 + 50) as f64;

    let window = format!("since={}", at(start - Duration::minutes(1)));
    let (body, by_reviewer) = stats(&app, &s.reviewer, &format!("{window}&groupBy=reviewer")).await;
    assert_eq!(body["groupBy"], "reviewer");
    assert_eq!(by_reviewer.len(), 5, "{backend:?}: {by_reviewer:?}");
    assert_eq!(figures(group(&by_reviewer, &alice)), (2, 1, 1, 0, 0, 0, 7.5, 10.0, false));
    assert_eq!(group(&by_reviewer, &alice)["name"], "alice");
    assert_eq!(figures(group(&by_reviewer, &bob)), (2, 1, 0, 1, 0, 0, 25.0, 30.0, false));
    assert_eq!(figures(group(&by_reviewer, &key_id(&s.admin))), (1, 0, 0, 0, 0, 1, 40.0, 40.0, false));
    assert_eq!(group(&by_reviewer, &key_id(&s.admin))["name"], "admin");
    assert_eq!(figures(group(&by_reviewer, &carol)), (1, 1, 0, 0, 0, 0, 50.0, 50.0, false));
    let system = group(&by_reviewer, "system");
    assert_eq!(figures(system), (1, 0, 0, 0, 1, 0, expired_after, expired_after, false));
    assert!(system.get("name").is_none(), "{system}");

    // Team: what each was assigned to when decided (the escalation counts for Treasury, which
    // handed it on; Carol's approval for Risk). Times 5, 10, 20, 30, 40 and 86,450 s: the median
    // is the mean of 20 and 30, the p90 the 6th of 6 (nearest rank).
    let (body, by_team) = stats(&app, &s.reviewer, &window).await;
    assert_eq!(body["groupBy"], "team", "the default");
    assert_eq!(by_team.len(), 2, "{backend:?}: {by_team:?}");
    assert_eq!(figures(group(&by_team, &treasury)), (6, 2, 1, 1, 1, 1, 25.0, expired_after, false));
    assert_eq!(group(&by_team, &treasury)["name"], "Treasury");
    assert_eq!(figures(group(&by_team, &risk)), (1, 1, 0, 0, 0, 0, 50.0, 50.0, false));
    assert_eq!(by_team[0]["key"], treasury.as_str(), "the busiest first");

    // Agent: the key that submitted each payment.
    let (_, by_agent) = stats(&app, &s.reviewer, &format!("{window}&groupBy=agent")).await;
    assert_eq!(figures(group(&by_agent, &key_id(&s.agent))), (3, 1, 1, 1, 0, 0, 10.0, 20.0, false));
    assert_eq!(figures(group(&by_agent, &key_id(&other_agent))), (4, 2, 0, 0, 1, 1, 45.0, expired_after, false));
    assert_eq!(group(&by_agent, &key_id(&other_agent))["name"], "k");

    // A window holds only what was decided within it: from 25 s on (Bob's /reviews approval,
    // the escalation, Carol's approval), and until the sweep.
    let (body, narrow) = stats(
        &app,
        &s.reviewer,
        &format!(
            "since={}&until={}&groupBy=team",
            at(start + Duration::seconds(25)),
            at(start + Duration::seconds(3600))
        ),
    )
    .await;
    let instant = |v: &Value| v.as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok());
    assert_eq!(instant(&body["since"]), instant(&json!(at(start + Duration::seconds(25)))));
    assert_eq!(figures(group(&narrow, &treasury)), (2, 1, 0, 0, 0, 1, 35.0, 40.0, false));
    assert_eq!(figures(group(&narrow, &risk)), (1, 1, 0, 0, 0, 0, 50.0, 50.0, false));
    // The default window (the last 30 days) holds all seven; one that ends before any holds none.
    let (_, all) = stats(&app, &s.reviewer, "groupBy=reviewer").await;
    assert_eq!(all.iter().map(|g| g["decided"].as_u64().unwrap()).sum::<u64>(), 7, "{all:?}");
    let (_, none) = stats(&app, &s.reviewer, &format!("until={}", at(start))).await;
    assert!(none.is_empty(), "{none:?}");

    // Another organisation sees none of it, and its own decisions never show here.
    let t = app.scenario("10000.00").await;
    let theirs = hold(&app, &t, &t.agent).await;
    ok(&app, &format!("/v1/approvals/{theirs}/approve"), &t.reviewer, json!({})).await;
    let (_, their_stats) = stats(&app, &t.reviewer, "groupBy=reviewer").await;
    assert_eq!(their_stats.len(), 1, "{their_stats:?}");
    assert_eq!(figures(&their_stats[0]).0, 1);
    let (_, ours) = stats(&app, &s.reviewer, "groupBy=reviewer").await;
    assert_eq!(ours.iter().map(|g| g["decided"].as_u64().unwrap()).sum::<u64>(), 7, "{ours:?}");
    assert!(ours.iter().all(|g| g["key"] != key_id(&t.reviewer)));

    // A key bound to another wallet sees none of the first wallet's decisions; no key without
    // approvals:read reads any.
    let elsewhere = app.wallet(&s.admin, "USD").await;
    let (status, bound) = app
        .post(
            "/v1/api-keys",
            &s.admin,
            json!({"name": "bound", "permissions": ["approvals:read"], "walletIds": [elsewhere]}),
        )
        .await;
    assert_eq!(status, 201, "{bound}");
    let (_, seen) = stats(&app, bound["secret"].as_str().unwrap(), "").await;
    assert!(seen.is_empty(), "{seen:?}");
    let (status, refused) = app.get("/v1/stats/approvals", &s.agent).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")));
}

per_backend!(the_sweep_records_its_expiries_timeout_rejections_and_escalations);
async fn the_sweep_records_its_expiries_timeout_rejections_and_escalations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = app.org("acme").await;
    let agent = app.key(&admin, &["payments:write", "payments:read"]).await;
    let reader = app.key(&admin, &["approvals:read"]).await;
    let desk = app.team(&admin, "Desk", &[]).await;
    let risk = app.team(&admin, "Risk", &[]).await;
    let payee = app.wallet(&admin, "USD").await;
    let mut held = Vec::new();
    for on_timeout in ["expire", "reject", "escalate"] {
        let wallet = app.wallet(&admin, "USD").await;
        app.fund(&admin, &wallet, "10000.00").await;
        let policy = json!({"name": on_timeout, "requireHumanApproval": true, "approvalTtlSeconds": 60,
            "onTimeout": on_timeout, "escalationChain": [desk, risk]});
        app.policy(&admin, &wallet, policy).await;
        let (status, body) =
            app.post("/v1/payments", &agent, json!({"from": wallet, "to": payee, "amount": "50.00"})).await;
        assert_eq!(status, 202, "{body}");
        held.push(body["approvalId"].as_str().unwrap().to_string());
    }
    app.clock.advance(Duration::seconds(61));
    assert_eq!(app.service.expire_due(100).await.expect("sweep").expired, 3);
    // Each started with the chain's first tier, Desk. The escalated one has Risk's window now;
    // when that passes too, the chain has ended.
    app.clock.advance(Duration::seconds(61));
    assert_eq!(app.service.expire_due(100).await.expect("sweep").expired, 1);
    let (_, status) = app.get(&format!("/v1/approvals/{}", held[2]), &reader).await;
    assert_eq!(status["status"], "EXPIRED");

    let (_, by_reviewer) = stats(&app, &reader, "groupBy=reviewer").await;
    assert_eq!(by_reviewer.len(), 1, "{by_reviewer:?}");
    // Times 61, 61, 61 (the escalation) and 122 s.
    assert_eq!(figures(group(&by_reviewer, "system")), (4, 0, 1, 0, 2, 1, 61.0, 122.0, false));
    let (_, by_team) = stats(&app, &reader, "groupBy=team").await;
    assert_eq!(figures(group(&by_team, &desk)), (3, 0, 1, 0, 1, 1, 61.0, 61.0, false));
    assert_eq!(figures(group(&by_team, &risk)), (1, 0, 0, 0, 1, 0, 122.0, 122.0, false));
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_fast_approver_is_flagged_a_rubber_stamp_and_a_slow_or_mixed_one_is_not
);
async fn a_fast_approver_is_flagged_a_rubber_stamp_and_a_slow_or_mixed_one_is_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000000.00").await;
    let decide = ["approvals:read", "approvals:write"];
    let (fast, slow, mixed) =
        (app.key(&s.admin, &decide).await, app.key(&s.admin, &decide).await, app.key(&s.admin, &decide).await);
    // Each approval decided alone: held, the clock moved on by the reviewer's pace, decided.
    for (reviewer, pace, rejects) in [(&fast, 3, 0), (&slow, 45, 0), (&mixed, 2, 1)] {
        for i in 0..20 {
            let approval = hold(&app, &s, &s.agent).await;
            app.clock.advance(Duration::seconds(pace));
            let verb = if i < rejects { "reject" } else { "approve" };
            ok(&app, &format!("/v1/approvals/{approval}/{verb}"), reviewer, json!({})).await;
        }
    }
    let (_, groups) = stats(&app, &s.reviewer, "groupBy=reviewer").await;
    assert_eq!(figures(group(&groups, &key_id(&fast))), (20, 20, 0, 0, 0, 0, 3.0, 3.0, true));
    assert_eq!(figures(group(&groups, &key_id(&slow))), (20, 20, 0, 0, 0, 0, 45.0, 45.0, false));
    assert_eq!(figures(group(&groups, &key_id(&mixed))), (20, 19, 1, 0, 0, 0, 2.0, 2.0, false), "95 %");
    // The flag is a reviewer's: by team the same decisions are never one.
    let (_, teams) = stats(&app, &s.reviewer, "groupBy=team").await;
    assert!(teams.iter().all(|g| g["rubberStamp"] == false), "{teams:?}");
}

per_backend!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    racing_approvers_leave_one_record_and_a_quorum_one_for_its_final_vote
);
async fn racing_approvers_leave_one_record_and_a_quorum_one_for_its_final_vote(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("1000000.00").await;
    let decide = ["approvals:read", "approvals:write"];
    let other = app.key(&s.admin, &decide).await;
    let mut approvals = Vec::new();
    for _ in 0..8 {
        approvals.push(hold(&app, &s, &s.agent).await);
    }
    // Two reviewers approve (or one rejects) each at once: one wins, one is refused.
    let races = approvals.iter().enumerate().map(|(i, a)| {
        let app = &app;
        let (s_reviewer, other) = (s.reviewer.clone(), other.clone());
        async move {
            let second = if i % 2 == 0 { "approve" } else { "reject" };
            let (first, then) = (format!("/v1/approvals/{a}/approve"), format!("/v1/approvals/{a}/{second}"));
            let (one, two) = tokio::join!(app.post(&first, &s_reviewer, json!({})), app.post(&then, &other, json!({})));
            let won = [one.0, two.0].iter().filter(|s| **s == 200).count();
            assert_eq!(won, 1, "{one:?} {two:?}");
        }
    });
    join_all(races).await;
    let (_, groups) = stats(&app, &s.reviewer, "groupBy=agent").await;
    assert_eq!(figures(group(&groups, &key_id(&s.agent))).0, 8, "one record per approval: {groups:?}");

    // A quorum of two: the first vote decides nothing; the second decides, and is its reviewer.
    let two = app.wallet(&s.admin, "USD").await;
    app.fund(&s.admin, &two, "10000.00").await;
    app.policy(&s.admin, &two, json!({"name": "two", "requireHumanApproval": true, "requiredApprovals": 2})).await;
    let (status, body) = app.post("/v1/payments", &s.agent, json!({"from": two, "to": s.to, "amount": "10.00"})).await;
    assert_eq!(status, 202, "{body}");
    let approval = body["approvalId"].as_str().unwrap().to_string();
    let third = app.key(&s.admin, &decide).await;
    ok(&app, &format!("/v1/approvals/{approval}/approve"), &third, json!({})).await;
    let (_, groups) = stats(&app, &s.reviewer, "groupBy=reviewer").await;
    assert!(groups.iter().all(|g| g["key"] != key_id(&third)), "a partial vote is no decision: {groups:?}");
    let decided: u64 = groups.iter().map(|g| g["decided"].as_u64().unwrap()).sum();
    app.clock.advance(Duration::seconds(7));
    ok(&app, &format!("/v1/approvals/{approval}/approve"), &other, json!({})).await;
    let (_, groups) = stats(&app, &s.reviewer, "groupBy=reviewer").await;
    assert_eq!(groups.iter().map(|g| g["decided"].as_u64().unwrap()).sum::<u64>(), decided + 1);
    assert!(groups.iter().all(|g| g["key"] != key_id(&third)));
}

/// `n` decision records of `org`'s `wallet` written straight to the store (100 to a transaction,
/// 8 transactions at once): the first `on_first` a millisecond apart from noon of `day`, the rest
/// from noon the next day. Every second one is Alice's (the others Bob's), every third rejected,
/// and the times cycle 0-999 ms.
async fn write_records(
    app: &TestApp,
    org: &str,
    wallet: &str,
    day: chrono::NaiveDate,
    n: usize,
    on_first: usize,
) -> (String, String) {
    use countersign_core::domain::decision_stats::{DecisionOutcome, DecisionRecord};
    use countersign_core::domain::ids::{ApiKeyId, ApprovalId, OrgId, WalletId};
    use countersign_core::domain::people::Person;
    use futures::stream::{self, StreamExt};

    let org: OrgId = serde_json::from_value(json!(org)).expect("org id");
    let wallet: WalletId = serde_json::from_value(json!(wallet)).expect("wallet id");
    let noon = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
    let (alice, bob, agent) = (ApiKeyId::generate(), ApiKeyId::generate(), ApiKeyId::generate());
    let record = |i: usize| {
        let decided_at = if i < on_first { noon } else { noon + Duration::days(1) } + Duration::milliseconds(i as i64);
        DecisionRecord {
            org_id: org.clone(),
            approval_id: ApprovalId::generate(),
            approval_version: 1,
            wallet_id: wallet.clone(),
            outcome: if i.is_multiple_of(3) { DecisionOutcome::Rejected } else { DecisionOutcome::Approved },
            team: None,
            reviewer: Some(Person::Key(if i.is_multiple_of(2) { alice.clone() } else { bob.clone() })),
            agent: agent.clone(),
            millis_to_decision: (i % 1000) as u64,
            decided_at,
        }
    };
    let store = app.store.store();
    let chunks: Vec<Vec<usize>> = (0..n).collect::<Vec<_>>().chunks(100).map(<[usize]>::to_vec).collect();
    let written: Vec<_> = stream::iter(chunks)
        .map(|chunk| {
            let store = store.clone();
            let writes: Vec<_> =
                chunk.iter().map(|i| countersign_core::layout::create(&record(*i)).expect("encode")).collect();
            async move { store.apply(&writes, None).await }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    (alice.to_string(), bob.to_string())
}

/// An organisation with a wallet and a key that reads statistics: (reader, org id, wallet id).
async fn reader_org(app: &TestApp) -> (String, String, String) {
    let admin = app.org("busy").await;
    let reader = app.key(&admin, &["approvals:read"]).await;
    let (_, wallet) = app.post("/v1/wallets", &admin, json!({"name": "w"})).await;
    let (org, wallet) = (wallet["orgId"].as_str().expect("org"), wallet["id"].as_str().expect("wallet"));
    (reader, org.to_string(), wallet.to_string())
}

per_backend!(a_busy_day_is_read_page_by_page);
/// 3,500 decisions on one day (four pages of the day's query) and 500 the next: each window
/// counts exactly its own.
async fn a_busy_day_is_read_page_by_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (reader, org, wallet) = reader_org(&app).await;
    let day = Utc::now().date_naive() - Duration::days(3);
    let (alice, bob) = write_records(&app, &org, &wallet, day, 4_000, 3_500).await;
    let first_day = format!("since={day}&until={}&groupBy=reviewer", day + Duration::days(1));
    let (_, groups) = stats(&app, &reader, &first_day).await;
    let (a, b) = (figures(group(&groups, &alice)), figures(group(&groups, &bob)));
    assert_eq!((a.0, b.0), (1_750, 1_750), "{backend:?}");
    assert_eq!((a.1 + b.1, a.2 + b.2), (2_333, 1_167), "every third rejected");
    // Alice's 1,750 times: 0, 2, … 498 ms four times each (ranks 1-1,000), 500, … 998 ms three
    // times each. The median (ranks 875 and 876) is 436 ms; the p90 (rank 1,575) the 192nd value
    // from 500 ms up, 882 ms.
    assert_eq!((a.6, a.7), (0.436, 0.882), "{backend:?}");
    let (_, both) = stats(&app, &reader, &format!("since={day}&until={}&groupBy=agent", day + Duration::days(2))).await;
    assert_eq!(figures(&both[0]).0, 4_000, "{backend:?}");
    // From the 3,400th decision's millisecond (included) to the 3,600th's (excluded), across midnight.
    let noon = day.and_hms_opt(12, 0, 0).expect("noon").and_utc();
    let (since, until) =
        (noon + Duration::milliseconds(3_400), noon + Duration::days(1) + Duration::milliseconds(3_600));
    let (_, edges) = stats(&app, &reader, &format!("since={}&until={}&groupBy=agent", at(since), at(until))).await;
    assert_eq!(figures(&edges[0]).0, 200, "{backend:?}: 100 of each day");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
/// A window holding more than 50,000 decisions is refused (400 naming `since`), never counted
/// from part of it. On SQLite only: DynamoDB Local takes over a minute to take the 50,001 items,
/// and the cap is the service's, counted over what the store's queries return (the paging it
/// relies on is checked on both stores above).
async fn a_window_of_more_than_50000_decisions_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (reader, org, wallet) = reader_org(&app).await;
    let day = Utc::now().date_naive() - Duration::days(3);
    write_records(&app, &org, &wallet, day, 50_001, 30_000).await;
    let (_, groups) = stats(&app, &reader, &format!("since={day}&until={}", day + Duration::days(1))).await;
    assert_eq!(figures(&groups[0]).0, 30_000, "a day under the cap is counted: {groups:?}");
    let (status, refused) =
        app.get(&format!("/v1/stats/approvals?since={day}&until={}", day + Duration::days(2)), &reader).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str(), refused["error"]["details"]["field"].as_str()),
        (400, Some("VALIDATION_ERROR"), Some("since")),
        "{refused}"
    );
    assert!(refused["error"]["message"].as_str().unwrap_or("").contains("narrower"), "{refused}");
}
