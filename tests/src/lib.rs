//! Test harness: real stores (SQLite file, DynamoDB Local over HTTP) and the real router served
//! on a loopback port. DynamoDB tests need `COUNTERSIGN_TEST_DYNAMODB_ENDPOINT`; without it they
//! fail (never skip), so a missing emulator is seen.

pub mod authenticator;
pub mod browser;
pub mod doors;
pub mod events;
pub mod fake_slack;
pub mod faults;
pub mod invariants;
pub mod proxy;
pub mod seed;
pub mod template;

use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{Credentials, Region};
use chrono::{DateTime, Duration, Utc};
use countersign_core::adapters::dynamodb::DynamoStore;
use countersign_core::adapters::sqlite::SqliteStore;
use countersign_core::domain::org::hash_secret;
use countersign_core::ports::{Clock, Store};
use countersign_core::service::{Countersign, Settings};
use serde_json::{json, Value};

pub const OPERATOR_KEY: &str = "test-operator-key-0123456789";
pub const ENDPOINT_ENV: &str = "COUNTERSIGN_TEST_DYNAMODB_ENDPOINT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Dynamo,
}

/// One `#[tokio::test]` per backend, so a failure on one store does not hide the other's result:
/// `per_backend!(name);` turns `async fn name(backend: Backend)` into the tests `name::sqlite`
/// and `name::dynamo` (`cargo test sqlite` / `cargo test dynamo` select them). The test attribute
/// defaults to `#[tokio::test(flavor = "multi_thread")]`; another may be given first:
/// `per_backend!(#[tokio::test(flavor = "multi_thread", worker_threads = 4)] name);`.
#[macro_export]
macro_rules! per_backend {
    (#[$test:meta] $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[$test]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }

                #[$test]
                async fn dynamo() {
                    super::$name($crate::Backend::Dynamo).await
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $crate::per_backend!(#[tokio::test(flavor = "multi_thread")] $($name),*);
    };
}

/// One `#[tokio::test]` per event stack, each on the store it runs with in production: the local
/// queue on SQLite (the local server) and EventBridge + SQS on DynamoDB (AWS).
/// `per_event_stack!(name);` turns `async fn name(stack: EventStack, backend: Backend)` into the
/// tests `name::local_sqlite` and `name::aws_dynamo`. The test attribute is given as for
/// [`per_backend!`].
#[macro_export]
macro_rules! per_event_stack {
    (#[$test:meta] $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[$test]
                async fn local_sqlite() {
                    super::$name($crate::events::EventStack::Local, $crate::Backend::Sqlite).await
                }

                #[$test]
                async fn aws_dynamo() {
                    super::$name($crate::events::EventStack::Aws, $crate::Backend::Dynamo).await
                }
            }
        )*
    };
    ($($name:ident),* $(,)?) => {
        $crate::per_event_stack!(#[tokio::test(flavor = "multi_thread")] $($name),*);
    };
}

/// A store under test, with a way to count what it holds.
#[derive(Clone)]
pub enum TestStore {
    Sqlite(SqliteStore),
    Dynamo { store: DynamoStore, client: aws_sdk_dynamodb::Client, table: String },
}

/// The local DynamoDB emulator's endpoint; a test that needs it fails (never skips) without it.
pub fn dynamo_endpoint() -> String {
    std::env::var(ENDPOINT_ENV).unwrap_or_else(|_| {
        panic!("{ENDPOINT_ENV} is not set: start DynamoDB Local (scripts/test does) and point this at it")
    })
}

/// A DynamoDB client for the local emulator.
pub async fn dynamo_client() -> aws_sdk_dynamodb::Client {
    dynamo_client_at(&dynamo_endpoint()).await
}

/// A DynamoDB client for an emulator at `endpoint` (SDK defaults otherwise, as the Lambdas use).
pub async fn dynamo_client_at(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "countersign-tests"))
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&config)
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("countersign-test-{}", ulid::Ulid::new()));
                TestStore::Sqlite(SqliteStore::open_dir(&dir).expect("open sqlite store"))
            }
            Backend::Dynamo => Self::dynamo_with(dynamo_client().await).await,
        }
    }

    /// A fresh table, created from the template, on the DynamoDB Local at `endpoint`.
    pub async fn dynamo_at(endpoint: &str) -> Self {
        Self::dynamo_with(dynamo_client_at(endpoint).await).await
    }

    /// A fresh table on DynamoDB Local whose store asks for the capacity each request consumed
    /// (`DynamoStore::metered`), as the cost figures need.
    pub async fn metered_dynamo() -> Self {
        let TestStore::Dynamo { store, client, table } = Self::dynamo_with(dynamo_client().await).await else {
            unreachable!("dynamo")
        };
        TestStore::Dynamo { store: store.metered(), client, table }
    }

    async fn dynamo_with(client: aws_sdk_dynamodb::Client) -> Self {
        let table = format!("countersign-test-{}", ulid::Ulid::new());
        let store = DynamoStore::new(client.clone(), table.clone());
        template::create_table(&client, &table).await;
        TestStore::Dynamo { store, client, table }
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            TestStore::Sqlite(s) => Arc::new(s.clone()),
            TestStore::Dynamo { store, .. } => Arc::new(store.clone()),
        }
    }

    /// Every item in the store (a Scan on DynamoDB: tests only).
    pub async fn item_count(&self) -> u64 {
        match self {
            TestStore::Sqlite(s) => s.item_count().await.expect("count"),
            TestStore::Dynamo { client, table, .. } => {
                let mut total = 0u64;
                let mut start = None;
                loop {
                    let out = client
                        .scan()
                        .table_name(table)
                        .select(aws_sdk_dynamodb::types::Select::Count)
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scan");
                    total += out.count as u64;
                    start = out.last_evaluated_key;
                    if start.is_none() {
                        return total;
                    }
                }
            }
        }
    }
}

/// A clock tests can move forward.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(ManualClock(Mutex::new(Utc::now())))
    }

    pub fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

type StoreWrapper<'a> = Box<dyn FnOnce(Arc<dyn Store>) -> Arc<dyn Store> + 'a>;
type SettingsTuner<'a> = Box<dyn FnOnce(&mut Settings) + 'a>;

/// The real router on a loopback port over a real store.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub store: TestStore,
    pub clock: Arc<ManualClock>,
    pub service: Arc<Countersign>,
    /// The fake of Slack's Web API the service talks to (the Slack door's answers land there).
    pub slack: Option<fake_slack::FakeSlack>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(TestStore::new(backend).await, None, None, None).await.0
    }

    /// With `tune` applied to the service's settings (e.g. a short review wait).
    pub async fn spawn_tuned(backend: Backend, tune: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_with(TestStore::new(backend).await, None, None, Some(Box::new(tune))).await.0
    }

    /// The service on a fresh table in the DynamoDB Local at `endpoint` (an emulator the test
    /// runs itself, e.g. to stop and restart it).
    pub async fn spawn_on_dynamo_at(endpoint: &str) -> Self {
        Self::spawn_with(TestStore::dynamo_at(endpoint).await, None, None, None).await.0
    }

    /// The service on `wrap(store)`: a store wrapper that injects faults.
    pub async fn spawn_wrapped(backend: Backend, wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>) -> Self {
        Self::spawn_with(TestStore::new(backend).await, None, Some(Box::new(wrap)), None).await.0
    }

    /// With event wiring: webhooks are delivered through `stack` to real receivers. Retries are
    /// fast (3 attempts, 200 ms base) and stuck events are re-published at once by the sweep.
    pub async fn spawn_with_events(backend: Backend, stack: events::EventStack) -> (Self, Arc<events::SwitchableBus>) {
        let (app, bus) = Self::spawn_with(TestStore::new(backend).await, Some(stack), None, None).await;
        (app, bus.expect("bus"))
    }

    /// What every test service starts from.
    fn settings() -> Settings {
        Settings {
            operator_key_hash: Some(hash_secret(OPERATOR_KEY)),
            // Seals audit checkpoints and signs receipts, as every deployment does.
            audit_signer: Some(Arc::new(countersign_core::proof::signing::AuditSigner::generate())),
            // A host name: passkeys take no IP address as relying party.
            public_url: Some("http://localhost:8080".into()),
            // Seals stored secrets (Slack's), as every deployment does.
            encryption_key: Some(Arc::new(
                countersign_core::domain::encryption::EncryptionKey::parse(
                    &countersign_core::domain::encryption::EncryptionKey::generate_text(),
                )
                .expect("a fresh key parses"),
            )),
            ..Settings::default()
        }
    }

    /// A service whose wiring (Slack's Web API, a mailer, a queue on its store) `wire` sets.
    pub async fn spawn_wired(
        backend: Backend,
        tune: impl FnOnce(&mut Settings),
        wire: impl FnOnce(&mut countersign_core::service::Wiring, Arc<dyn Store>),
    ) -> Self {
        let store = TestStore::new(backend).await;
        let clock = ManualClock::new();
        let mut settings = Self::settings();
        tune(&mut settings);
        let mut wiring = countersign_core::service::Wiring::default();
        let slack = Self::fake_slack(&mut wiring).await;
        wire(&mut wiring, store.store());
        let service = Countersign::new(store.store(), clock.clone(), settings).with_wiring(wiring);
        Self { slack: Some(slack), ..Self::serve(store, clock, service).await }
    }

    /// A fake of Slack's Web API, wired as the service's.
    async fn fake_slack(wiring: &mut countersign_core::service::Wiring) -> fake_slack::FakeSlack {
        let fake = fake_slack::FakeSlack::start().await;
        wiring.slack = fake.client();
        fake
    }

    async fn spawn_with(
        store: TestStore,
        stack: Option<events::EventStack>,
        wrap: Option<StoreWrapper<'_>>,
        tune: Option<SettingsTuner<'_>>,
    ) -> (Self, Option<Arc<events::SwitchableBus>>) {
        let clock = ManualClock::new();
        let mut settings = Self::settings();
        if let Some(tune) = tune {
            tune(&mut settings);
        }
        let served = match wrap {
            Some(wrap) => wrap(store.store()),
            None => store.store(),
        };
        let mut plain = countersign_core::service::Wiring::default();
        let slack = Self::fake_slack(&mut plain).await;
        let mut service = Countersign::new(served.clone(), clock.clone(), settings.clone()).with_wiring(plain);
        let mut bus = None;
        if let Some(stack) = stack {
            settings.allow_private_webhooks = true;
            settings.retry = countersign_core::domain::delivery::RetryPolicy {
                max_attempts: 3,
                base: std::time::Duration::from_millis(200),
                cap: std::time::Duration::from_secs(1),
            };
            settings.republish_after = std::time::Duration::ZERO;
            let client = Arc::new(
                countersign_core::adapters::http_client::HttpWebhookClient::new(
                    true,
                    std::time::Duration::from_secs(2),
                )
                .expect("client"),
            );
            let slot = Arc::new(tokio::sync::OnceCell::new());
            let (mut wiring, switch) = events::wire_events(stack, served.clone(), client, slot.clone()).await;
            wiring.slack = slack.client();
            service = Countersign::new(served, clock.clone(), settings).with_wiring(wiring);
            let _ = slot.set(Arc::new(service.clone()));
            bus = Some(switch);
        }
        (Self { slack: Some(slack), ..Self::serve(store, clock, service).await }, bus)
    }

    /// `service` (over `store`, on `clock`) served by the real router on a loopback port.
    pub async fn serve(store: TestStore, clock: Arc<ManualClock>, service: Countersign) -> Self {
        let service = Arc::new(service);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = countersign_core::api::router(service.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client");
        TestApp { base: format!("http://{addr}"), http, store, clock, service, slack: None }
    }

    /// Sends a request; returns status and JSON body (`Null` when the body is not JSON).
    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends raw bytes as the body (malformed JSON, oversized bodies).
    pub async fn call_raw(&self, method: &str, path: &str, auth: Option<&str>, body: Vec<u8>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req =
            self.http.request(method, format!("{}{path}", self.base)).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let res = req.body(body).send().await.expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(key), Some(body)).await
    }

    pub async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.call("GET", path, Some(key), None).await
    }

    /// A new organisation; returns its admin key secret.
    pub async fn org(&self, name: &str) -> String {
        let (status, body) = self.post("/v1/organizations", OPERATOR_KEY, json!({"name": name})).await;
        assert_eq!(status, 201, "{body}");
        body["adminKey"]["secret"].as_str().expect("secret").to_string()
    }

    /// A key with the given permissions, made by `admin`.
    pub async fn key(&self, admin: &str, permissions: &[&str]) -> String {
        let (status, body) = self.post("/v1/api-keys", admin, json!({"name": "k", "permissions": permissions})).await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().expect("secret").to_string()
    }

    pub async fn wallet(&self, key: &str, currency: &str) -> String {
        let (status, body) = self.post("/v1/wallets", key, json!({"name": "w", "currency": currency})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    pub async fn fund(&self, key: &str, wallet: &str, amount: &str) {
        let (status, body) = self.post(&format!("/v1/wallets/{wallet}/fund"), key, json!({"amount": amount})).await;
        assert_eq!(status, 201, "{body}");
    }

    pub async fn balance(&self, key: &str, wallet: &str) -> String {
        let (status, body) = self.get(&format!("/v1/wallets/{wallet}/balance"), key).await;
        assert_eq!(status, 200, "{body}");
        body["balance"].as_str().expect("balance").to_string()
    }

    pub async fn policy(&self, key: &str, wallet: &str, policy: Value) -> String {
        let (status, body) = self.post(&format!("/v1/wallets/{wallet}/policies"), key, policy).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// An org with an admin key, an agent key (payments), a reviewer key (approvals) and two USD
    /// wallets, the first funded with `funds` and held by a policy for payments above 1000.
    pub async fn scenario(&self, funds: &str) -> Scenario {
        let admin = self.org("acme").await;
        let agent = self.key(&admin, &["payments:write", "payments:read", "wallets:read"]).await;
        let reviewer = self.key(&admin, &["approvals:read", "approvals:write"]).await;
        let from = self.wallet(&admin, "USD").await;
        let to = self.wallet(&admin, "USD").await;
        self.fund(&admin, &from, funds).await;
        self.policy(
            &admin,
            &from,
            json!({"name": "review large", "maxTransactionAmount": "1000.00", "requireHumanApproval": true}),
        )
        .await;
        Scenario { admin, agent, reviewer, from, to }
    }

    /// A new member (a person behind keys) of `admin`'s organisation; its id.
    pub async fn member(&self, admin: &str, name: &str) -> String {
        let body = json!({"name": name, "email": format!("{name}@example.com")});
        let (status, body) = self.post("/v1/members", admin, body).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Asks `minter` to mint a key, bound to `member` when given; the answer as it came.
    pub async fn mint(&self, minter: &str, member: Option<&str>, permissions: &[&str]) -> (u16, Value) {
        let mut body = json!({"name": "k", "permissions": permissions});
        if let Some(m) = member {
            body["memberId"] = json!(m);
        }
        self.post("/v1/api-keys", minter, body).await
    }

    /// A key minted by `minter`, bound to `member` when given; its secret.
    pub async fn key_for(&self, minter: &str, member: Option<&str>, permissions: &[&str]) -> String {
        let (status, body) = self.mint(minter, member, permissions).await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().expect("secret").to_string()
    }

    /// A team of `members`, made by `admin`; its id.
    pub async fn team(&self, admin: &str, name: &str, members: &[&str]) -> String {
        let (status, body) = self.post("/v1/teams", admin, json!({"name": name, "members": members})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().expect("id").to_string()
    }

    /// Submits a payment held for approval; returns (payment id, approval id).
    pub async fn held_payment(&self, s: &Scenario, amount: &str) -> (String, String) {
        let (status, body) =
            self.post("/v1/payments", &s.agent, json!({"from": s.from, "to": s.to, "amount": amount})).await;
        assert_eq!(status, 202, "{body}");
        (body["id"].as_str().expect("id").into(), body["approvalId"].as_str().expect("approval").into())
    }
}

pub struct Scenario {
    pub admin: String,
    pub agent: String,
    pub reviewer: String,
    pub from: String,
    pub to: String,
}

/// Runs one API Gateway event (an `events/` fixture) through the shared router as the HTTP
/// Lambdas do, with `authorization` replaced when given. Returns status and JSON body.
pub async fn invoke_http_event(
    service: Arc<Countersign>,
    event_json: &str,
    authorization: Option<&str>,
) -> (u16, Value) {
    use tower::ServiceExt;
    let mut request = lambda_http::request::from_str(event_json).expect("API Gateway event");
    if let Some(auth) = authorization {
        request.headers_mut().insert("authorization", auth.parse().expect("header"));
    }
    let response = countersign_core::api::router(service).oneshot(request).await.expect("router");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A service on an in-memory store whose operator key is the one in the `events/` fixtures.
pub fn fixture_service() -> Arc<Countersign> {
    let settings = Settings { operator_key_hash: Some(hash_secret(FIXTURE_OPERATOR_KEY)), ..Settings::default() };
    let store = SqliteStore::in_memory().expect("store");
    Arc::new(Countersign::new(Arc::new(store), Arc::new(countersign_core::ports::SystemClock), settings))
}

/// The operator key the `events/` fixtures and the README use.
pub const FIXTURE_OPERATOR_KEY: &str = "local-operator-key-change-me";
