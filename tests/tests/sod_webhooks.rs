//! Separation of duties, the webhook and network side (docs/api.md, "Webhooks"): who hears approval events,
//! one organisation's hanging endpoint never delays another's deliveries, and `countersign mcp`
//! never sends its key in clear to another host. (The webhook client's proxy test runs in its
//! own binary, `sod_webhook_proxy.rs`: it sets process-wide environment variables.)

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use countersign_core::domain::org::hash_secret;
use countersign_core::ports::SystemClock;
use countersign_core::service::Settings;
use countersign_tests::events::{EventStack, Receiver};
use countersign_tests::{per_event_stack, Backend, ManualClock, TestApp, TestStore, OPERATOR_KEY};
use serde_json::{json, Value};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(20);

/// Subscribes `key`'s organisation (bound to `key`'s wallets, if any) to `events` at the
/// receiver's `name`; returns the subscription id.
async fn subscribe(app: &TestApp, key: &str, receiver: &Receiver, name: &str, events: Value) -> String {
    let (status, hook) = app.post("/v1/webhooks", key, json!({"url": receiver.url(name), "events": events})).await;
    assert_eq!(status, 201, "{hook}");
    receiver.control(name, hook["secret"].as_str().expect("secret"), "ok").await;
    hook["id"].as_str().expect("id").to_string()
}

/// A key with `webhooks:write` (and `approvals:read` to hear approvals, `wallets:read` to hear
/// policy changes: what `"*"` includes), bound to `wallet`.
async fn wallet_key(app: &TestApp, admin: &str, wallet: &str) -> String {
    let permissions = ["webhooks:write", "approvals:read", "wallets:read"];
    let body = json!({"name": "hooks", "permissions": permissions, "walletIds": [wallet]});
    let (status, key) = app.post("/v1/api-keys", admin, body).await;
    assert_eq!(status, 201, "{key}");
    key["secret"].as_str().expect("secret").to_string()
}

/// Besides `policy.*`: the scenario's own policy is made before the subscriptions, and on the
/// queued stacks its event may be fanned out after they exist (heard or not, by timing).
fn not_setup(delivery: &Value) -> bool {
    !delivery["body"]["type"].as_str().is_some_and(|t| t.starts_with("policy."))
}

fn types(deliveries: &[Value]) -> Vec<String> {
    let mut types: Vec<String> = deliveries.iter().map(|d| d["body"]["type"].as_str().unwrap().to_string()).collect();
    types.sort();
    types
}

per_event_stack!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_payee_bound_subscription_hears_payment_completed_only
);
/// The payee's wallet-bound subscription learns that money arrived, nothing of the payer's
/// approval (its creation, decision, voters, notes); the payer's and an unbound one hear all.
async fn a_payee_bound_subscription_hears_payment_completed_only(stack: EventStack, backend: Backend) {
    let receiver = Receiver::start().await;
    let (app, _) = TestApp::spawn_with_events(backend, stack).await;
    let s = app.scenario("10000.00").await;
    let kinds = json!(["*"]);
    let payee = format!("payee-{stack:?}");
    let payer = format!("payer-{stack:?}");
    let unbound = format!("unbound-{stack:?}");
    let payee_key = wallet_key(&app, &s.admin, &s.to).await;
    let payee_hook = subscribe(&app, &payee_key, &receiver, &payee, kinds.clone()).await;
    let payer_key = wallet_key(&app, &s.admin, &s.from).await;
    subscribe(&app, &payer_key, &receiver, &payer, kinds.clone()).await;
    subscribe(&app, &s.admin, &receiver, &unbound, kinds).await;

    let (_, approval) = app.held_payment(&s, "5000.00").await;
    let (status, body) =
        app.post(&format!("/v1/approvals/{approval}/approve"), &s.reviewer, json!({"note": "ok, invoice 42"})).await;
    assert_eq!(status, 200, "{body}");

    let everything = ["approval.approved", "approval.created", "payment.completed"];
    assert_eq!(types(&receiver.wait_for_where(&payer, 3, WAIT, not_setup).await), everything, "{stack:?}: the payer's");
    assert_eq!(types(&receiver.wait_for_where(&unbound, 3, WAIT, not_setup).await), everything, "{stack:?}: unbound");
    let heard = receiver.wait_for(&payee, 1, WAIT).await;
    assert_eq!(types(&heard), ["payment.completed"], "{stack:?}: the payee's");
    // Every event's deliveries are committed before any is sent: the payee's log is complete.
    let (status, log) = app.get(&format!("/v1/webhooks/{payee_hook}/deliveries"), &payee_key).await;
    assert_eq!(status, 200, "{log}");
    let logged: Vec<&str> = log["data"].as_array().unwrap().iter().map(|d| d["eventType"].as_str().unwrap()).collect();
    assert_eq!(logged, ["payment.completed"], "{stack:?}: {log}");
    assert_eq!(types(&receiver.received(&payee).await), ["payment.completed"], "{stack:?}");
}

/// Webhook ids an in-process endpoint accepted (it answers at once).
type Arrivals = Arc<Mutex<Vec<String>>>;

async fn answering_endpoint() -> (String, Arrivals) {
    endpoint_failing_first(0).await
}

/// An endpoint that answers 500 to its first `failures` requests, then 204.
async fn endpoint_failing_first(failures: usize) -> (String, Arrivals) {
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let hook = move |headers: axum::http::HeaderMap| {
        let (seen, requests) = (seen.clone(), requests.clone());
        async move {
            if requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < failures {
                return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
            }
            let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            seen.lock().unwrap().push(id);
            axum::http::StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(hook));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, arrivals)
}

/// An endpoint that accepts connections and never answers (it keeps them open).
async fn hanging_endpoint() -> String {
    format!("{}/hook", hanging_host("127.0.0.1").await)
}

/// `http://ip:port` of a server on loopback address `ip` that accepts connections and never
/// answers, whatever the path.
async fn hanging_host(ip: &str) -> String {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    base
}

/// The local server as `countersign serve` wires it (outbox relay, store-backed queue and its
/// worker, the real webhook client with its 5 s timeout) on a SQLite file, served on a port;
/// retries 200 ms apart.
async fn local_server() -> (TestApp, Arc<countersign_core::service::Countersign>) {
    let store = TestStore::new(Backend::Sqlite).await;
    let settings = Settings {
        operator_key_hash: Some(hash_secret(OPERATOR_KEY)),
        allow_private_webhooks: true,
        retry: countersign_core::domain::delivery::RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(1),
        },
        ..Settings::default()
    };
    let (service, queue) =
        countersign_core::local::wire(store.store(), Arc::new(SystemClock), settings).expect("local wiring");
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, Duration::from_millis(100)));
    // The served copy shares the relay, queue and client; the relay fans out through `service`.
    (TestApp::serve(store, ManualClock::new(), (*service).clone()).await, service)
}

/// Org A's endpoint hangs with 200 events for it; org B's next event still reaches B at once,
/// though B's endpoint fails the first attempt (so the retry goes through the same queue
/// worker as A's hanging deliveries).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_endpoint_never_delays_another_organisations_deliveries() {
    let (app, _service) = local_server().await;
    let a = app.scenario("1000000.00").await;
    let (status, body) =
        app.post("/v1/webhooks", &a.admin, json!({"url": hanging_endpoint().await, "events": ["*"]})).await;
    assert_eq!(status, 201, "{body}");
    let b = app.scenario("10000.00").await;
    let (b_url, b_arrivals) = endpoint_failing_first(1).await;
    let (status, body) =
        app.post("/v1/webhooks", &b.admin, json!({"url": b_url, "events": ["approval.created"]})).await;
    assert_eq!(status, 201, "{body}");

    // 200 events for A's hanging endpoint (each held payment commits `approval.created`).
    for _ in 0..200 {
        app.held_payment(&a, "1500.00").await;
    }
    let started = Instant::now();
    let (_, approval) = app.held_payment(&b, "1500.00").await;
    let (status, detail) = app.get(&format!("/v1/approvals/{approval}"), &b.reviewer).await;
    assert_eq!(status, 200, "{detail}");
    loop {
        if !b_arrivals.lock().unwrap().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "org B's approval.created not delivered within 5 s while org A's endpoint hangs"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Org A subscribes twelve URLs on two hanging hosts (paths and queries differ, so each is its
/// own subscription); 250 events give it 3,000 deliveries that never get an answer, more than
/// the queue worker's places many times over. Org B's next event still reaches B at once, its
/// retry going through the same queue worker: A's subscriptions share A's line to each host
/// and A's bounded share of places, and A's turned-away deliveries come back less and less
/// often.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_hanging_urls_of_one_organisation_never_delay_another_organisations_deliveries() {
    let (app, _service) = local_server().await;
    let a = app.scenario("1000000.00").await;
    let hosts = [hanging_host("127.0.0.1").await, hanging_host("127.0.0.2").await];
    let urls = ["/h?1", "/h?2", "/h?3", "/h?4", "/h?5", "/h?6", "/a", "/b", "/c", "/d", "/hook", "/other/path"];
    for (n, path) in urls.iter().enumerate() {
        let url = format!("{}{path}", hosts[n % 2]);
        let (status, body) = app.post("/v1/webhooks", &a.admin, json!({"url": url, "events": ["*"]})).await;
        assert_eq!(status, 201, "{url}: {body}");
    }
    let b = app.scenario("10000.00").await;
    let (b_url, b_arrivals) = endpoint_failing_first(1).await;
    let (status, body) =
        app.post("/v1/webhooks", &b.admin, json!({"url": b_url, "events": ["approval.created"]})).await;
    assert_eq!(status, 201, "{body}");

    for _ in 0..250 {
        app.held_payment(&a, "1500.00").await;
    }
    // A's deliveries that found no place are back from the queue by now, in the worker's pool.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    app.held_payment(&b, "1500.00").await;
    while b_arrivals.lock().unwrap().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "org B's approval.created not delivered within 5 s while org A's twelve endpoints hang"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `countersign` binary (`cargo build --bin countersign`; scripts/test sets it).
fn countersign_bin() -> String {
    let bin = std::env::var("COUNTERSIGN_BIN")
        .unwrap_or_else(|_| panic!("COUNTERSIGN_BIN is not set: build `countersign` and point it at the binary"));
    assert!(std::path::Path::new(&bin).exists(), "COUNTERSIGN_BIN={bin} does not exist");
    bin
}

/// `countersign mcp --url <url>` with a key and an open stdin.
fn mcp_bridge(url: &str) -> tokio::process::Child {
    tokio::process::Command::new(countersign_bin())
        .args(["mcp", "--url", url])
        .env("COUNTERSIGN_API_KEY", "sk_live_would_travel_in_clear")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start countersign mcp")
}

/// This machine's address on its default route, if it has one that is not loopback.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

/// Refused at once, with a message that says why, and nothing connected to.
async fn assert_refused(url: &str, listener: Option<&TcpListener>) {
    let child = mcp_bridge(url);
    let out = tokio::time::timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{url}: still running after 5 s"))
        .expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{url}: {stderr}");
    assert!(stderr.contains("refusing") && stderr.contains("https://"), "{url}: {stderr}");
    if let Some(listener) = listener {
        let connected = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(connected.is_err(), "{url}: the bridge connected before refusing");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_bridge_refuses_plain_http_to_another_host_before_connecting() {
    assert_refused("http://example.com/mcp", None).await;
    if let Some(ip) = non_loopback_address() {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind on this machine's address");
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        assert_refused(&url, Some(&listener)).await;
    }

    // Loopback stays allowed (the local server's own address): the bridge connects.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let _child = mcp_bridge(&format!("http://127.0.0.1:{}/mcp", listener.local_addr().unwrap().port()));
    let connected = tokio::time::timeout(Duration::from_secs(10), listener.accept()).await;
    assert!(connected.is_ok(), "http:// to loopback is accepted and connected to");
}

/// The relay commits a delivery (its first attempt claimed), marks the event, then sends; a
/// process killed in between leaves a claimed delivery and no queue message. The next worker
/// to start queues it again for when the dead process's claim runs out.
#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_claimed_by_a_process_that_died_is_sent_after_a_restart() {
    use countersign_core::domain::delivery::{Delivery, DeliveryStatus};
    use countersign_core::domain::event::Event;
    use countersign_core::domain::ids::{DeliveryId, OrgId, WebhookId};
    use countersign_core::domain::webhook::{new_secret, Webhook};
    use countersign_core::layout;

    let store = TestStore::new(Backend::Sqlite).await;
    let (url, arrivals) = answering_endpoint().await;
    let now = chrono::Utc::now();
    let org = OrgId::generate();
    let hook = Webhook {
        id: WebhookId::generate(),
        org_id: org.clone(),
        url,
        events: vec!["*".into()],
        enabled: true,
        wallet_ids: vec![],
        secret: new_secret(),
        created_at: now,
        updated_at: now,
    };
    let event = Event::new(&org, "approval.created", json!({"n": 1}), now);
    // As the relay leaves it: first attempt claimed for a minute, event marked, nothing queued.
    let delivery = Delivery {
        id: DeliveryId::for_event(&event.id, &hook.id),
        org_id: org.clone(),
        webhook_id: hook.id.clone(),
        event: json!({"id": event.id, "type": event.kind, "createdAt": event.created_at, "data": event.data}),
        event_id: event.id.to_string(),
        event_type: event.kind.clone(),
        status: DeliveryStatus::Pending,
        attempts: 1,
        last_error: None,
        last_status_code: None,
        last_latency_ms: None,
        next_attempt_at: now + chrono::Duration::seconds(60),
        busy_bounces: 0,
        created_at: now,
        updated_at: now,
        delivered_at: None,
    };
    let writes = vec![layout::create(&hook).unwrap(), layout::create(&delivery).unwrap()];
    store.store().transact(writes).await.unwrap();

    // The restarted process, once the dead one's claim has run out.
    let clock = ManualClock::new();
    clock.advance(chrono::Duration::seconds(61));
    let settings = Settings { allow_private_webhooks: true, ..Settings::default() };
    let (service, queue) = countersign_core::local::wire(store.store(), clock, settings).expect("wire");
    tokio::spawn(countersign_core::local::run_queue_worker(service.clone(), queue, Duration::from_millis(20)));
    let deadline = Instant::now() + WAIT;
    while arrivals.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the claimed delivery was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*arrivals.lock().unwrap(), [event.id.to_string()]);
}

countersign_tests::per_backend!(hearing_approvals_and_reviews_needs_approvals_read);
async fn hearing_approvals_and_reviews_needs_approvals_read(backend: Backend) {
    let app = TestApp::spawn_tuned(backend, |s| s.allow_private_webhooks = true).await;
    let s = app.scenario("1000.00").await;
    let hooks_only = app.key(&s.admin, &["webhooks:write"]).await;
    // What approvals:read keeps from this key, a subscription would hand it: refused.
    for events in [json!(["*"]), json!(["approval.approved"]), json!(["review.decided"])] {
        let body = json!({"url": "http://127.0.0.1:9/h", "events": events});
        let (status, answer) = app.post("/v1/webhooks", &hooks_only, body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{events}: {answer}");
    }
    let body = json!({"url": "http://127.0.0.1:9/h", "events": ["payment.completed"]});
    let (status, hook) = app.post("/v1/webhooks", &hooks_only, body).await;
    assert_eq!(status, 201, "{hook}");
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().expect("id"));
    let (status, answer) = app.call("PATCH", &path, Some(&hooks_only), Some(json!({"events": ["*"]}))).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{answer}");
}
