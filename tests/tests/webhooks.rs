//! Webhooks end to end: on the local server's queue and on EventBridge + SQS (ministack) with the
//! webhooks Lambda handler, delivering to a real receiver that verifies with `standardwebhooks`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use countersign_tests::events::{EventStack, Receiver};
use countersign_tests::{per_event_stack, Backend, TestApp};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn subscribe(
    app: &TestApp,
    admin: &str,
    receiver: &Receiver,
    name: &str,
    events: serde_json::Value,
) -> (String, String) {
    let (status, hook) = app.post("/v1/webhooks", admin, json!({"url": receiver.url(name), "events": events})).await;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"].as_str().expect("secret shown once").to_string();
    assert!(secret.starts_with("whsec_"));
    receiver.control(name, &secret, "ok").await;
    (hook["id"].as_str().unwrap().to_string(), secret)
}

per_event_stack!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    decided_approval_reaches_a_verifying_receiver
);
async fn decided_approval_reaches_a_verifying_receiver(stack: EventStack, backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, _) = TestApp::spawn_with_events(backend, stack).await;
    let s = app.scenario("10000.00").await;
    let name = format!("decided-{stack:?}");
    let (hook, _) = subscribe(
        &app,
        &s.admin,
        &receiver,
        &name,
        json!(["approval.created", "approval.approved", "payment.completed"]),
    )
    .await;
    let (payment, approval) = app.held_payment(&s, "5000.00").await;
    let (status, _) = app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({})).await;
    assert_eq!(status, 200);

    let got = receiver.wait_for(&name, 3, WAIT).await;
    let mut types: Vec<&str> = got.iter().map(|d| d["body"]["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(types, ["approval.approved", "approval.created", "payment.completed"], "{stack:?}");
    for d in &got {
        assert_eq!(d["verified"], true, "{stack:?}: standardwebhooks verification: {d}");
        assert_eq!(d["simpleVerified"], true, "{stack:?}: X-Countersign-Signature: {d}");
        assert_eq!(d["webhookId"], d["body"]["id"], "webhook-id is the event id");
    }
    let approved = got.iter().find(|d| d["body"]["type"] == "approval.approved").unwrap();
    assert_eq!(approved["body"]["data"]["approvalId"], approval.as_str());
    let completed = got.iter().find(|d| d["body"]["type"] == "payment.completed").unwrap();
    assert_eq!(completed["body"]["data"]["paymentId"], payment.as_str());

    // The delivery log shows each delivery once, delivered on the first attempt.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, log) = app.get(&format!("/v1/webhooks/{hook}/deliveries"), &s.admin).await;
        let rows = log["data"].as_array().unwrap();
        if rows.len() == 3 && rows.iter().all(|r| r["status"] == "DELIVERED") {
            assert!(rows.iter().all(|r| r["attempts"] == 1 && r["lastStatusCode"] == 204), "{log}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stack:?}: {log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

per_event_stack!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    human_side_events_reach_a_verifying_receiver
);
/// `approval.modified`, `approval.escalated`, `review.created`, `review.decided` and
/// `review.escalated` go through the same outbox and fan-out as the payment events.
async fn human_side_events_reach_a_verifying_receiver(stack: EventStack, backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, _) = TestApp::spawn_with_events(backend, stack).await;
    let s = app.scenario("10000.00").await;
    let name = format!("human-{stack:?}");
    let kinds = ["approval.modified", "approval.escalated", "review.created", "review.decided", "review.escalated"];
    subscribe(&app, &s.admin, &receiver, &name, json!(kinds)).await;
    let (_, team) = app.post("/v1/teams", &s.admin, json!({"name": "managers"})).await;
    let team = team["id"].as_str().unwrap();

    let (_, modified) = app.held_payment(&s, "5000.00").await;
    let (status, _) =
        app.post(&format!("/v1/approvals/{modified}/modify"), &s.reviewer, json!({"amount": "4000.00"})).await;
    assert_eq!(status, 200);
    let (_, escalated) = app.held_payment(&s, "3000.00").await;
    let (status, _) = app.post(&format!("/v1/approvals/{escalated}/escalate"), &s.admin, json!({"toTeam": team})).await;
    assert_eq!(status, 200);
    let asker = app.key(&s.admin, &["reviews:write"]).await;
    let (_, review) = app.post("/reviews", &asker, json!({"task_type": "email", "proposed_action": "send"})).await;
    let review = review["id"].as_str().unwrap();
    let (status, _) = app.post(&format!("/reviews/{review}/escalate"), &s.admin, json!({"to_team_id": team})).await;
    assert_eq!(status, 200);
    let (status, _) =
        app.post(&format!("/reviews/{review}/decide"), &s.admin, json!({"decision_type": "approve"})).await;
    assert_eq!(status, 200);

    let got = receiver.wait_for(&name, kinds.len(), WAIT).await;
    let mut types: Vec<&str> = got.iter().map(|d| d["body"]["type"].as_str().unwrap()).collect();
    types.sort();
    let mut want = kinds.to_vec();
    want.sort();
    assert_eq!(types, want, "{stack:?}");
    assert!(got.iter().all(|d| d["verified"] == true), "{stack:?}: {got:?}");
    let data = |kind: &str| got.iter().find(|d| d["body"]["type"] == kind).unwrap()["body"]["data"].clone();
    assert_eq!(data("approval.modified")["approvalId"], modified.as_str());
    assert_eq!(data("approval.modified")["originalAmount"]["amount"], "5000.00");
    assert_eq!(data("approval.escalated")["assignedTeam"], team);
    assert_eq!(data("review.escalated")["assignedTeam"], team);
    assert_eq!(data("review.decided")["reviewId"], review);
}

per_event_stack!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    failing_receiver_is_retried_then_dead_lettered_then_replayed_with_the_same_id
);
async fn failing_receiver_is_retried_then_dead_lettered_then_replayed_with_the_same_id(
    stack: EventStack,
    backend: Backend,
) {
    let receiver = Receiver::start().await;
    let (app, _) = TestApp::spawn_with_events(backend, stack).await;
    let s = app.scenario("10000.00").await;
    let name = format!("failing-{stack:?}");
    let (_, secret) = subscribe(&app, &s.admin, &receiver, &name, json!(["approval.created"])).await;
    receiver.control(&name, &secret, "fail").await;
    app.held_payment(&s, "5000.00").await;

    // Three attempts (the test retry policy), all with the same webhook-id.
    let got = receiver.wait_for(&name, 3, WAIT).await;
    let id = got[0]["webhookId"].clone();
    assert!(got.iter().all(|d| d["webhookId"] == id && d["verified"] == true), "{stack:?}: {got:?}");

    let deadline = tokio::time::Instant::now() + WAIT;
    let entry = loop {
        let (_, dlq) = app.get("/v1/webhooks/dlq", &s.admin).await;
        if let Some(entry) = dlq["data"].as_array().and_then(|d| d.first()).cloned() {
            break entry;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stack:?}: never dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((entry["attempts"].as_u64(), entry["status"].as_str()), (Some(3), Some("FAILED")), "{entry}");
    assert_eq!(entry["event"]["id"], id, "the dead letter carries the whole event");
    assert!(entry["lastError"].as_str().unwrap().contains("500"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received(&name).await.len(), 3, "{stack:?}: no attempts after dead-lettering");

    receiver.control(&name, &secret, "ok").await;
    let (status, retried) =
        app.post(&format!("/v1/webhooks/dlq/{}/retry", entry["id"].as_str().unwrap()), &s.admin, json!({})).await;
    assert_eq!((status, retried["status"].as_str()), (200, Some("PENDING")), "{retried}");
    let got = receiver.wait_for(&name, 4, WAIT).await;
    assert_eq!(got[3]["webhookId"], id, "{stack:?}: replay keeps the webhook-id");
    assert_eq!(got[3]["verified"], true);
    let (_, dlq) = app.get("/v1/webhooks/dlq", &s.admin).await;
    assert_eq!(dlq["data"].as_array().unwrap().len(), 0);
}

per_event_stack!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    events_survive_a_publisher_failure_after_commit
);
async fn events_survive_a_publisher_failure_after_commit(stack: EventStack, backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, bus) = TestApp::spawn_with_events(backend, stack).await;
    let s = app.scenario("10000.00").await;
    let name = format!("outbox-{stack:?}");
    subscribe(&app, &s.admin, &receiver, &name, json!(["approval.created"])).await;
    bus.failing.store(true, Ordering::SeqCst);
    let (_, approval) = app.held_payment(&s, "5000.00").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(receiver.received(&name).await.is_empty(), "{stack:?}: nothing published yet");

    bus.failing.store(false, Ordering::SeqCst);
    let summary = app.service.sweep(None, 100).await.expect("sweep");
    assert!(summary.events_republished >= 1, "{stack:?}: {summary:?}");
    let got = receiver.wait_for(&name, 1, WAIT).await;
    assert_eq!(got[0]["body"]["data"]["approvalId"], approval.as_str());
    assert_eq!(got[0]["verified"], true);
    let again = app.service.sweep(None, 100).await.expect("sweep");
    assert_eq!(again.events_republished, 0, "published events leave the outbox");
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_api_refuses_internal_targets_and_manages_subscriptions() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.org("hooks").await;
    for url in [
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "https://[::1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://100.64.1.1/x",
        "https://localhost/x",
        "http://example.com/x",
        "not a url",
    ] {
        let (status, body) =
            app.post("/v1/webhooks", &admin, json!({"url": url, "events": ["approval.created"]})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{url}: {body}");
    }
    let (status, body) =
        app.post("/v1/webhooks", &admin, json!({"url": "https://93.184.216.34/hook", "events": ["nope"]})).await;
    assert_eq!(status, 400, "{body}");
    let (status, hook) =
        app.post("/v1/webhooks", &admin, json!({"url": "https://93.184.216.34/hook", "events": ["*"]})).await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap();
    let (_, got) = app.get(&format!("/v1/webhooks/{id}"), &admin).await;
    assert!(got.get("secret").is_none(), "secret is shown only at creation");
    let (status, patched) =
        app.call("PATCH", &format!("/v1/webhooks/{id}"), Some(&admin), Some(json!({"enabled": false}))).await;
    assert_eq!((status, patched["enabled"].as_bool()), (200, Some(false)));
    let (status, _) = app
        .call("PATCH", &format!("/v1/webhooks/{id}"), Some(&admin), Some(json!({"url": "https://192.168.0.1/"})))
        .await;
    assert_eq!(status, 400);
    let (_, list) = app.get("/v1/webhooks", &admin).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let other = app.org("other").await;
    assert_eq!(app.get(&format!("/v1/webhooks/{id}"), &other).await.0, 404);
    assert_eq!(app.call("DELETE", &format!("/v1/webhooks/{id}"), Some(&admin), None).await.0, 200);
    assert_eq!(app.get(&format!("/v1/webhooks/{id}"), &admin).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn test_endpoint_sends_one_signed_event() {
    let receiver = Receiver::start().await;
    let (app, _) = TestApp::spawn_with_events(Backend::Sqlite, EventStack::Local).await;
    let admin = app.org("t").await;
    let (hook, _) = subscribe(&app, &admin, &receiver, "test-endpoint", json!(["*"])).await;
    let (status, result) = app.post(&format!("/v1/webhooks/{hook}/test"), &admin, json!({})).await;
    assert_eq!(
        (status, result["delivered"].as_bool(), result["statusCode"].as_u64()),
        (200, Some(true), Some(204)),
        "{result}"
    );
    let got = receiver.wait_for("test-endpoint", 1, WAIT).await;
    assert_eq!((got[0]["body"]["type"].as_str(), got[0]["verified"].as_bool()), (Some("webhook.test"), Some(true)));
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_work_resumes_after_a_restart() {
    let receiver = Receiver::start().await;
    // First life: events commit but no worker runs (as if the process died right after commit).
    let app = TestApp::spawn(Backend::Sqlite).await;
    let s = app.scenario("10000.00").await;
    let settings = countersign_core::service::Settings {
        allow_private_webhooks: true,
        republish_after: Duration::ZERO, // production waits a minute before re-publishing
        ..Default::default()
    };
    // This app refuses loopback targets, so the subscription is stored directly.
    let org = app.get("/v1/wallets", &s.admin).await.1["data"][0]["orgId"].as_str().unwrap().to_string();
    let now = chrono::Utc::now();
    let hook = countersign_core::domain::webhook::Webhook {
        id: countersign_core::domain::ids::WebhookId::generate(),
        org_id: countersign_core::domain::ids::OrgId::parse(&org).unwrap(),
        url: receiver.url("restart"),
        events: vec!["approval.created".into()],
        enabled: true,
        wallet_ids: vec![],
        secret: countersign_core::domain::webhook::new_secret(),
        created_at: now,
        updated_at: now,
    };
    let write = countersign_core::layout::create(&hook).unwrap();
    app.store.store().transact(vec![write]).await.unwrap();
    receiver.control("restart", &hook.secret, "ok").await;
    let (_, approval) = app.held_payment(&s, "5000.00").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received("restart").await.is_empty());

    // Second life on the same store file: the local server's wiring, sweep and worker.
    let (service, queue) = countersign_core::local::wire(
        app.store.store(),
        std::sync::Arc::new(countersign_core::ports::SystemClock),
        settings,
    )
    .expect("wire");
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, Duration::from_millis(20)));
    tokio::spawn(countersign_core::local::run_sweeper(service.clone(), Duration::from_millis(200)));
    let got = receiver.wait_for("restart", 1, WAIT).await;
    assert_eq!(
        (got[0]["body"]["data"]["approvalId"].as_str(), got[0]["verified"].as_bool()),
        (Some(approval.as_str()), Some(true))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sweep_requeues_a_delivery_whose_message_was_lost() {
    let receiver = Receiver::start().await;
    let (app, _) = TestApp::spawn_with_events(Backend::Sqlite, EventStack::Local).await;
    let admin = app.org("lost").await;
    let (hook, _) = subscribe(&app, &admin, &receiver, "lost", json!(["approval.created"])).await;
    // A pending delivery ten minutes overdue with no queue message behind it.
    let countersign_core::service::Caller::Key(key) = app.service.authenticate(Some(&admin)).await.unwrap() else {
        panic!("an organisation key")
    };
    let now = chrono::Utc::now();
    let event =
        countersign_core::domain::event::Event::new(&key.org_id, "approval.created", json!({"lost": true}), now);
    let webhook_id = countersign_core::domain::ids::WebhookId::parse(&hook).unwrap();
    let delivery = countersign_core::domain::delivery::Delivery {
        id: countersign_core::domain::ids::DeliveryId::for_event(&event.id, &webhook_id),
        org_id: key.org_id.clone(),
        webhook_id,
        event: json!({"id": event.id, "type": event.kind, "createdAt": event.created_at, "data": event.data}),
        event_id: event.id.to_string(),
        event_type: event.kind.clone(),
        status: countersign_core::domain::delivery::DeliveryStatus::Pending,
        attempts: 1,
        last_error: Some("endpoint answered HTTP 500".into()),
        last_status_code: Some(500),
        last_latency_ms: Some(3),
        next_attempt_at: now - chrono::Duration::minutes(10),
        busy_bounces: 0,
        created_at: now - chrono::Duration::minutes(11),
        updated_at: now - chrono::Duration::minutes(11),
        delivered_at: None,
    };
    app.store.store().transact(vec![countersign_core::layout::create(&delivery).unwrap()]).await.unwrap();
    let summary = app.service.sweep(None, 100).await.expect("sweep");
    assert_eq!(summary.deliveries_requeued, 1, "{summary:?}");
    let got = receiver.wait_for("lost", 1, WAIT).await;
    assert_eq!((got[0]["webhookId"].as_str(), got[0]["verified"].as_bool()), (Some(event.id.as_str()), Some(true)));
}
