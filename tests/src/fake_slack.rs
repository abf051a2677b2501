//! A local fake of Slack's Web API for the Rust tests (the Python suites use
//! tests/peers/fake_slack.py): `POST /api/<method>` with a bearer token and a JSON body, answered
//! as Slack does (`{"ok": true, ...}`, `{"ok": false, "error"}` with HTTP 200, 429 with
//! `Retry-After`), every call recorded.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// One call as Slack received it.
#[derive(Debug, Clone)]
pub struct SlackCall {
    pub method: String,
    pub token: Option<String>,
    pub body: Value,
}

#[derive(Default)]
struct Inner {
    calls: Vec<SlackCall>,
    /// HTTP statuses to answer the next calls with (503, 429), first first.
    failures: Vec<u16>,
    next_ts: u64,
}

#[derive(Clone, Default)]
pub struct FakeSlack {
    inner: Arc<Mutex<Inner>>,
    /// `http://127.0.0.1:<port>/api`: what `COUNTERSIGN_SLACK_API_URL` names.
    pub base_url: String,
}

impl FakeSlack {
    pub async fn start() -> Self {
        let mut fake = FakeSlack::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        fake.base_url = format!("http://{}/api", listener.local_addr().expect("addr"));
        let router = Router::new().route("/api/{method}", post(answer)).with_state(fake.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        fake
    }

    /// A client of this fake, as the service's Slack Web API.
    pub fn client(&self) -> Arc<dyn countersign_core::ports::notify::SlackApi> {
        let api = countersign_core::adapters::slack_api::HttpSlackApi::new(
            self.base_url.clone(),
            std::time::Duration::from_secs(2),
        )
        .expect("a loopback URL");
        Arc::new(api)
    }

    /// Calls so far of `method`.
    pub fn calls(&self, method: &str) -> Vec<SlackCall> {
        self.lock().calls.iter().filter(|c| c.method == method).cloned().collect()
    }

    /// The next `n` calls are answered with HTTP `status` (429 carries `Retry-After: 1`).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().failures.extend(std::iter::repeat_n(status, n));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn answer(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let mut inner = fake.lock();
    inner.calls.push(SlackCall { method: method.clone(), token: token.clone(), body: body.clone() });
    if !inner.failures.is_empty() {
        let status = inner.failures.remove(0);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut response = (status, "slack is having a moment").into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert("retry-after", "1".parse().expect("header"));
        }
        return response;
    }
    if !token.as_deref().is_some_and(|t| t.starts_with("xoxb-")) {
        return Json(json!({"ok": false, "error": "invalid_auth"})).into_response();
    }
    inner.next_ts += 1;
    let ts = format!("1700000000.{:06}", inner.next_ts);
    let channel = body["channel"].clone();
    Json(match method.as_str() {
        "chat.postMessage" => json!({"ok": true, "channel": channel, "ts": ts, "message": {"text": body["text"]}}),
        "chat.update" => json!({"ok": true, "channel": channel, "ts": body["ts"], "text": body["text"]}),
        "chat.postEphemeral" => json!({"ok": true, "message_ts": ts}),
        _ => json!({"ok": false, "error": "unknown_method"}),
    })
    .into_response()
}
