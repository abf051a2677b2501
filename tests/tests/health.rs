//! `GET /health` and `GET /health?deep=1`: the plain check never touches the store; the deep one
//! reads it once and answers 503 `SERVICE_UNAVAILABLE` when the store cannot be reached.

use std::sync::Arc;

use aws_sdk_dynamodb::config::{Credentials, Region};
use countersign_core::adapters::dynamodb::DynamoStore;
use countersign_core::ports::SystemClock;
use countersign_core::service::{Countersign, Settings};
use countersign_tests::{dynamo_client, invoke_http_event, per_backend, Backend, TestApp};
use serde_json::json;

const HEALTH_EVENT: &str = include_str!("../../events/approvals/health.json");
const DEEP_HEALTH_EVENT: &str = include_str!("../../events/approvals/health-deep.json");

per_backend!(plain_and_deep_health_answer_ok);
async fn plain_and_deep_health_answer_ok(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.call("GET", "/health", None, None).await, (200, json!({"status": "ok"})));
    assert_eq!(app.call("GET", "/health?deep=0", None, None).await, (200, json!({"status": "ok"})));
    // The probe key holds no item: the read finds nothing, and that is healthy.
    assert_eq!(app.call("GET", "/health?deep=1", None, None).await, (200, json!({"status": "ok", "store": "ok"})));
    assert_eq!(app.store.item_count().await, 0, "the deep check writes nothing");
    let (status, body) = app.call("GET", "/health?deep=yes", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("VALIDATION_ERROR")), "{body}");
    assert_eq!(body["error"]["details"]["field"], "deep");
}

/// A service on DynamoDB whose table does not exist (what a function sees when it calls the wrong
/// endpoint or region).
async fn service_on_missing_table() -> Arc<Countersign> {
    let table = format!("countersign-missing-{}", ulid::Ulid::new());
    let store = DynamoStore::new(dynamo_client().await, table);
    Arc::new(Countersign::new(Arc::new(store), Arc::new(SystemClock), Settings::default()))
}

#[tokio::test]
async fn deep_health_is_503_when_the_table_is_missing() {
    let service = service_on_missing_table().await;
    // Through the approvals Lambda's door: API Gateway HTTP API events.
    let (status, body) = invoke_http_event(service.clone(), HEALTH_EVENT, None).await;
    assert_eq!((status, body), (200, json!({"status": "ok"})), "the plain check does not read the store");
    let (status, body) = invoke_http_event(service, DEEP_HEALTH_EVENT, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("SERVICE_UNAVAILABLE")), "{body}");
    assert_eq!(body["error"]["message"], "temporarily unavailable; retry shortly", "no internal text leaks");
}

#[tokio::test]
async fn deep_health_is_503_when_the_endpoint_is_unreachable() {
    // A loopback port nothing listens on: the store cannot be reached at all.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "countersign-tests"))
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "countersign");
    let service = Arc::new(Countersign::new(Arc::new(store), Arc::new(SystemClock), Settings::default()));
    let (status, body) = invoke_http_event(service, DEEP_HEALTH_EVENT, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("SERVICE_UNAVAILABLE")), "{body}");
}
