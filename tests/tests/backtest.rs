//! Policy backtest (DESIGN.md §2.11, docs/api.md "Backtest"): a draft policy replayed over a
//! wallet's past payments, beside its current policies, on both stores: exact counts and the
//! exact changed list, a draft that tightens and one that replaces a policy to loosen, the
//! daily limit replayed with the day's earlier payments, the window's bounds, the 10,000 cap,
//! and nothing written.

use chrono::{DateTime, Duration, DurationRound, Utc};
use countersign_core::domain::ids::{OrgId, WalletId};
use countersign_core::ports::Clock;
use countersign_tests::{per_backend, seed, Backend, Scenario, TestApp};
use serde_json::{json, Value};

fn now(app: &TestApp) -> DateTime<Utc> {
    app.clock.as_ref().now()
}

/// One payment a minute after the last; (status, id, createdAt).
async fn pay(app: &TestApp, s: &Scenario, amount: &str) -> (u16, String, String) {
    app.clock.advance(Duration::minutes(1));
    let (status, body) =
        app.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": amount})).await;
    assert!([201, 202].contains(&status), "{status} {body}");
    (status, body["id"].as_str().expect("id").into(), body["createdAt"].as_str().expect("createdAt").into())
}

async fn backtest(app: &TestApp, key: &str, wallet: &str, body: Value) -> Value {
    let (status, reply) = app.post(&format!("/v1/wallets/{wallet}/policies/backtest"), key, body).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

fn counts(executed: u64, held: u64, denied: u64) -> Value {
    json!({"executed": executed, "held": held, "denied": denied})
}

/// The changed rows as (paymentId, before, after, rule, policyId, draft).
fn rows(reply: &Value) -> Vec<(String, String, String, String, Value, bool)> {
    reply["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| {
            (
                c["paymentId"].as_str().unwrap().into(),
                c["before"].as_str().unwrap().into(),
                c["after"].as_str().unwrap().into(),
                c["rule"].as_str().unwrap().into(),
                c["policyId"].clone(),
                c["draft"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn row(
    id: &str,
    before: &str,
    after: &str,
    rule: &str,
    policy: Value,
    draft: bool,
) -> (String, String, String, String, Value, bool) {
    (id.into(), before.into(), after.into(), rule.into(), policy, draft)
}

/// What a backtest must leave as it was: every item, the wallet's policies, the audit log.
async fn state(app: &TestApp, s: &Scenario) -> (u64, Value, Value) {
    let (_, policies) = app.get(&format!("/v1/wallets/{}/policies", s.from), &s.admin).await;
    let (_, audit) = app.get("/v1/audit-logs?limit=100", &s.admin).await;
    (app.store.item_count().await, policies["data"].clone(), audit["data"].clone())
}

per_backend!(a_tighter_draft_and_a_looser_replacement_show_exactly_what_changes);
async fn a_tighter_draft_and_a_looser_replacement_show_exactly_what_changes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Payments above 1000.00 are held ("review large").
    let s = app.scenario("10000.00").await;
    let (_, listed) = app.get(&format!("/v1/wallets/{}/policies", s.from), &s.admin).await;
    let review = listed["data"][0]["id"].as_str().expect("policy").to_string();
    let since = now(&app);
    let mut made = Vec::new();
    for (amount, status) in
        [("100.00", 201), ("300.00", 201), ("1500.00", 202), ("50.00", 201), ("1100.00", 202), ("800.00", 201)]
    {
        let (got, id, _) = pay(&app, &s, amount).await;
        assert_eq!(got, status, "{amount}");
        made.push(id);
    }
    // Since then, payments above 1200.00 are denied: under the current policies the 1500.00
    // is denied, the 1100.00 held, the rest executed.
    app.policy(&s.admin, &s.from, json!({"name": "cap", "autoRejectAbove": "1200.00"})).await;
    let until = now(&app) + Duration::minutes(1);
    let window = |policy: Value| json!({"policy": policy, "since": since.to_rfc3339(), "until": until.to_rfc3339()});
    // The agent key reads wallets: wallets:read is what a backtest needs, as evaluate.
    let readers = [s.admin.as_str(), s.agent.as_str()];
    let before = state(&app, &s).await;

    let tight =
        backtest(&app, readers[1], &s.from, window(json!({"name": "tight", "maxTransactionAmount": "250.00"}))).await;
    assert_eq!(tight["payments"], 6, "{backend:?}: {tight}");
    assert_eq!((&tight["before"], &tight["after"]), (&counts(4, 1, 1), &counts(2, 0, 4)), "{backend:?}: {tight}");
    assert_eq!(tight["changedTotal"], 3);
    assert_eq!(
        rows(&tight),
        [
            row(&made[1], "executed", "denied", "maxTransactionAmount", Value::Null, true),
            row(&made[4], "held", "denied", "maxTransactionAmount", Value::Null, true),
            row(&made[5], "executed", "denied", "maxTransactionAmount", Value::Null, true),
        ],
        "{backend:?}: {tight}"
    );

    // "review large" replaced by a looser one: the 1100.00 would have executed.
    let mut looser = window(json!({"maxTransactionAmount": "2000.00", "requireHumanApproval": true}));
    looser["replace"] = json!(review);
    let loose = backtest(&app, readers[0], &s.from, looser).await;
    assert_eq!((&loose["before"], &loose["after"]), (&counts(4, 1, 1), &counts(5, 0, 1)), "{backend:?}: {loose}");
    assert_eq!(
        rows(&loose),
        [row(&made[4], "held", "executed", "maxTransactionAmount", json!(review), false)],
        "{backend:?}: {loose}"
    );
    assert_eq!(loose["changedTotal"], 1);

    // The window: since is inclusive, until exclusive (the 300.00 and the 1500.00).
    let (_, first) = app.get(&format!("/v1/payments/{}", made[1]), &s.admin).await;
    let (_, fourth) = app.get(&format!("/v1/payments/{}", made[3]), &s.admin).await;
    let bounded = json!({"policy": {"maxTransactionAmount": "250.00"},
        "since": first["createdAt"], "until": fourth["createdAt"]});
    let narrow = backtest(&app, readers[0], &s.from, bounded).await;
    assert_eq!(narrow["payments"], 2, "{backend:?}: {narrow}");
    assert_eq!((&narrow["before"], &narrow["after"]), (&counts(1, 0, 1), &counts(0, 0, 2)), "{backend:?}: {narrow}");

    // A window before any payment: nothing to replay.
    let empty = json!({"policy": {}, "since": (since - Duration::days(2)).to_rfc3339(), "until": since.to_rfc3339()});
    let none = backtest(&app, readers[0], &s.from, empty).await;
    assert_eq!((&none["payments"], &none["changed"]), (&json!(0), &json!([])), "{backend:?}: {none}");

    assert_eq!(state(&app, &s).await, before, "{backend:?}: a backtest writes nothing");
}

per_backend!(the_daily_limit_is_replayed_with_the_days_earlier_payments);
async fn the_daily_limit_is_replayed_with_the_days_earlier_payments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    // 00:00 UTC tomorrow, so the day's payments stay on one day.
    let midnight = now(&app).duration_trunc(Duration::days(1)).unwrap() + Duration::days(1);
    app.clock.advance(midnight - now(&app));
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(pay(&app, &s, "200.00").await);
    }
    app.clock.advance(Duration::days(1));
    made.push(pay(&app, &s, "200.00").await);
    // The window starts at the second: the first (earlier that day) still counts towards the
    // day's spend, so the third would make 600.00 > 500.00; the next day starts afresh.
    let body = json!({"policy": {"name": "daily", "dailySpendingLimit": "500.00"},
        "since": made[1].2, "until": (now(&app) + Duration::minutes(1)).to_rfc3339()});
    let reply = backtest(&app, &s.admin, &s.from, body).await;
    assert_eq!(reply["payments"], 3, "{backend:?}: {reply}");
    assert_eq!((&reply["before"], &reply["after"]), (&counts(3, 0, 0), &counts(2, 0, 1)), "{backend:?}: {reply}");
    assert_eq!(
        rows(&reply),
        [row(&made[2].1, "executed", "denied", "dailySpendingLimit", Value::Null, true)],
        "{backend:?}: {reply}"
    );
    // A held payment spends nothing in the replay: every 200.00 is held for review, so the
    // third is within the daily limit (held, not denied).
    let held = json!({"policy": {"requireReviewAbove": "150.00", "dailySpendingLimit": "500.00"},
        "since": made[1].2, "until": (now(&app) + Duration::minutes(1)).to_rfc3339()});
    let reply = backtest(&app, &s.admin, &s.from, held).await;
    assert_eq!(&reply["after"], &counts(0, 3, 0), "{backend:?}: {reply}");
}

per_backend!(a_window_with_more_than_ten_thousand_payments_is_refused);
async fn a_window_with_more_than_ten_thousand_payments_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10.00").await;
    let (_, wallet) = app.get(&format!("/v1/wallets/{}", s.from), &s.admin).await;
    let org = OrgId::parse(wallet["orgId"].as_str().unwrap()).unwrap();
    let (from, to) = (WalletId::parse(&s.from).unwrap(), WalletId::parse(&s.to).unwrap());
    let start = (now(&app) - Duration::days(3)).duration_trunc(Duration::seconds(1)).unwrap();
    seed::payments(app.store.store(), &org, &from, &to, 10_001, start, Duration::seconds(1)).await;
    let window = |seconds: i64| {
        json!({"policy": {"maxTransactionAmount": "25.00"}, "since": start.to_rfc3339(),
            "until": (start + Duration::seconds(seconds)).to_rfc3339()})
    };
    let reply = backtest(&app, &s.admin, &s.from, window(10_000)).await;
    // Amounts cycle 1..=50: 25 of every 50 are above 25.00.
    assert_eq!((&reply["payments"], &reply["after"]["denied"]), (&json!(10_000), &json!(5_000)), "{backend:?}");
    assert_eq!((reply["changedTotal"].as_u64(), reply["changed"].as_array().map(Vec::len)), (Some(5_000), Some(100)));
    let (status, refused) =
        app.post(&format!("/v1/wallets/{}/policies/backtest", s.from), &s.admin, window(10_001)).await;
    assert_eq!((status, &refused["error"]["code"]), (400, &json!("VALIDATION_ERROR")), "{backend:?}: {refused}");
    assert_eq!(refused["error"]["details"]["field"], "since", "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("narrow the window"), "{refused}");
}

per_backend!(shadow_policies_never_decide_a_replay_and_a_shadow_draft_is_tried_enforced);
/// A shadow policy on the wallet changes no replay (it never decides a payment), and a draft sent
/// with `"mode": "shadow"` is still asked what it would do enforced.
async fn shadow_policies_never_decide_a_replay_and_a_shadow_draft_is_tried_enforced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let s = app.scenario("10000.00").await;
    let since = now(&app);
    for amount in ["100.00", "300.00", "800.00"] {
        let (status, _, _) = pay(&app, &s, amount).await;
        assert_eq!(status, 201, "{amount}");
    }
    let shadow = json!({"name": "watch", "mode": "shadow", "maxTransactionAmount": "50.00"});
    app.policy(&s.admin, &s.from, shadow).await;
    let until = now(&app) + Duration::minutes(1);
    let window = |policy: Value| json!({"policy": policy, "since": since.to_rfc3339(), "until": until.to_rfc3339()});

    let nothing = backtest(&app, &s.admin, &s.from, window(json!({}))).await;
    assert_eq!((&nothing["before"], &nothing["after"]), (&counts(3, 0, 0), &counts(3, 0, 0)), "{backend:?}: {nothing}");

    let drafted = window(json!({"mode": "shadow", "maxTransactionAmount": "250.00"}));
    let reply = backtest(&app, &s.admin, &s.from, drafted).await;
    assert_eq!((&reply["before"], &reply["after"]), (&counts(3, 0, 0), &counts(1, 0, 2)), "{backend:?}: {reply}");
    assert_eq!(reply["changedTotal"], 2, "{backend:?}: {reply}");
}
