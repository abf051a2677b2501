//! Slack's Web API over reqwest: `POST {base}/{method}` with the bot token and a JSON body, the
//! answer sorted into success, Slack's refusal, rate limiting or unavailability.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::RETRY_AFTER;
use reqwest::StatusCode;

use crate::ports::notify::{SlackApi, SlackError};

/// Where Slack's Web API lives (`COUNTERSIGN_SLACK_API_URL` overrides it, e.g. for a fake).
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// When a 429 says nothing of when to come back.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// A longer `Retry-After` is taken as this: deliveries keep their own deadline.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Slack's answers are a few kilobytes (the posted message echoed back); more is not Slack.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// `ok: false` codes that say Slack, not the request, failed: retried like a 5xx.
const TRANSIENT_ERRORS: [&str; 4] = ["internal_error", "fatal_error", "service_unavailable", "request_timeout"];
/// `ok: false` codes that mean "too many messages": retried like a 429.
const RATE_LIMIT_ERRORS: [&str; 2] = ["ratelimited", "rate_limited"];

pub struct HttpSlackApi {
    /// Built on first use: most functions and most organisations never call Slack, and a
    /// Lambda's cold start should not pay for a TLS client it may not need.
    http: std::sync::OnceLock<reqwest::Client>,
    timeout: Duration,
    base_url: String,
}

impl HttpSlackApi {
    /// A client for the Web API at `base_url` (e.g. `DEFAULT_BASE_URL`, an http(s) URL), each
    /// call bounded by `timeout`.
    pub fn new(base_url: String, timeout: Duration) -> Result<Self, String> {
        let base_url = base_url.trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err("must be an http(s) URL".into());
        }
        Ok(HttpSlackApi { http: std::sync::OnceLock::new(), timeout, base_url })
    }

    fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .user_agent("Countersign-Notify/1")
            // Slack's API never redirects; a redirect would carry the token elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }

    fn http(&self) -> Result<&reqwest::Client, SlackError> {
        if let Some(client) = self.http.get() {
            return Ok(client);
        }
        let client = Self::client(self.timeout).map_err(|e| SlackError::Unavailable(e.to_string()))?;
        Ok(self.http.get_or_init(|| client))
    }
}

#[async_trait]
impl SlackApi for HttpSlackApi {
    async fn call(&self, token: &str, method: &str, body: &serde_json::Value) -> Result<serde_json::Value, SlackError> {
        // Method names are ours ("chat.update"), but a path is never built from anything else.
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            return Err(SlackError::Api(format!("invalid_method: {method:?}")));
        }
        let response = self
            .http()?
            .post(format!("{}/{method}", self.base_url))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = response.status();
        let retry_after = retry_after(response.headers().get(RETRY_AFTER));
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(SlackError::RateLimited { retry_after });
        }
        if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            return Err(SlackError::Unavailable(format!("HTTP {}", status.as_u16())));
        }
        if !status.is_success() {
            return Err(SlackError::Api(format!("http_{}", status.as_u16())));
        }
        let bytes = read_bounded(response).await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| SlackError::Unavailable("Slack's answer is not JSON".into()))?;
        if answer.get("ok").and_then(serde_json::Value::as_bool) == Some(true) {
            return Ok(answer);
        }
        let code = answer.get("error").and_then(serde_json::Value::as_str).unwrap_or("unknown_error");
        let code: String = code.chars().take(200).collect();
        if RATE_LIMIT_ERRORS.contains(&code.as_str()) {
            return Err(SlackError::RateLimited { retry_after });
        }
        if TRANSIENT_ERRORS.contains(&code.as_str()) {
            return Err(SlackError::Unavailable(code));
        }
        Err(SlackError::Api(code))
    }
}

/// A request that could not be built (a token that is no header value) will never go; anything
/// else (connect, TLS, timeout, a cut answer) may next time.
fn transport_error(error: &reqwest::Error) -> SlackError {
    let error_text = with_causes(error);
    if error.is_builder() {
        SlackError::Api(format!("invalid_request: {error_text}"))
    } else if error.is_timeout() {
        SlackError::Unavailable(format!("timed out: {error_text}"))
    } else {
        SlackError::Unavailable(error_text)
    }
}

/// The error and its causes ("error sending request …: connection refused"): reqwest's own text
/// leaves out why.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// `Retry-After` in seconds (what Slack sends), else the default; capped.
fn retry_after(value: Option<&reqwest::header::HeaderValue>) -> Duration {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|secs| Duration::from_secs(secs).min(MAX_RETRY_AFTER))
        .unwrap_or(DEFAULT_RETRY_AFTER)
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, SlackError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(&e))? {
        if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(SlackError::Unavailable("Slack's answer is too large".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Json;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use axum::Router;
    use serde_json::json;

    /// A fake Web API: each method answers one way; `chat.postMessage` echoes what it got.
    async fn fake_slack() -> String {
        async fn post_message(headers: HeaderMap, Json(body): Json<serde_json::Value>) -> Response {
            let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let content_type =
                headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            Json(
                json!({"ok": true, "ts": "1700000000.000100", "auth": auth, "contentType": content_type, "echo": body}),
            )
            .into_response()
        }
        let app = Router::new()
            .route("/chat.postMessage", post(post_message))
            .route("/chat.update", post(|| async { Json(json!({"ok": false, "error": "channel_not_found"})) }))
            .route("/chat.postEphemeral", post(|| async { Json(json!({"ok": false})) }))
            .route("/chat.delete", post(|| async { Json(json!({"ok": false, "error": "internal_error"})) }))
            .route("/chat.meMessage", post(|| async { Json(json!({"ok": false, "error": "ratelimited"})) }))
            .route(
                "/limited.now",
                post(|| async { (AxumStatus::TOO_MANY_REQUESTS, [("retry-after", "7")], "slow down") }),
            )
            .route("/limited.vague", post(|| async { (AxumStatus::TOO_MANY_REQUESTS, "slow down") }))
            .route("/broken.now", post(|| async { (AxumStatus::INTERNAL_SERVER_ERROR, "oops") }))
            .route("/gateway.down", post(|| async { (AxumStatus::BAD_GATEWAY, "<html>bad gateway</html>") }))
            .route("/not.json", post(|| async { "<html>captive portal</html>" }))
            .route("/too.large", post(|| async { "x".repeat(MAX_RESPONSE_BYTES + 1) }))
            .route(
                "/slow.method",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Json(json!({"ok": true}))
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn calls_are_sorted_by_how_slack_answered() {
        let base = fake_slack().await;
        let api = HttpSlackApi::new(base.clone(), Duration::from_secs(2)).unwrap();
        let body = json!({"channel": "C42", "text": "hi"});

        let answer = api.call("xoxb-token", "chat.postMessage", &body).await.unwrap();
        assert_eq!(answer["ts"], "1700000000.000100");
        assert_eq!(answer["auth"], "Bearer xoxb-token");
        assert!(answer["contentType"].as_str().unwrap().starts_with("application/json"));
        assert_eq!(answer["echo"], body);

        let call = |method: &'static str| {
            let api = &api;
            let body = &body;
            async move { api.call("xoxb-token", method, body).await }
        };
        assert_eq!(call("chat.update").await, Err(SlackError::Api("channel_not_found".into())));
        assert_eq!(call("chat.postEphemeral").await, Err(SlackError::Api("unknown_error".into())));
        assert_eq!(call("chat.delete").await, Err(SlackError::Unavailable("internal_error".into())));
        assert_eq!(call("chat.meMessage").await, Err(SlackError::RateLimited { retry_after: Duration::from_secs(1) }));
        assert_eq!(call("limited.now").await, Err(SlackError::RateLimited { retry_after: Duration::from_secs(7) }));
        assert_eq!(call("limited.vague").await, Err(SlackError::RateLimited { retry_after: Duration::from_secs(1) }));
        assert_eq!(call("broken.now").await, Err(SlackError::Unavailable("HTTP 500".into())));
        assert_eq!(call("gateway.down").await, Err(SlackError::Unavailable("HTTP 502".into())));
        assert!(matches!(call("not.json").await, Err(SlackError::Unavailable(_))));
        assert!(matches!(call("too.large").await, Err(SlackError::Unavailable(_))));
        assert_eq!(call("no.such").await, Err(SlackError::Api("http_404".into())));
        assert!(matches!(call("../admin").await, Err(SlackError::Api(_))));
        assert!(matches!(api.call("bad\ntoken", "chat.postMessage", &body).await, Err(SlackError::Api(_))));

        let impatient = HttpSlackApi::new(base, Duration::from_millis(200)).unwrap();
        let slow = impatient.call("xoxb-token", "slow.method", &body).await;
        assert!(matches!(&slow, Err(SlackError::Unavailable(e)) if e.starts_with("timed out")), "{slow:?}");
    }

    #[tokio::test]
    async fn an_unreachable_slack_is_unavailable() {
        // A port just freed: nothing listens there.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let api = HttpSlackApi::new(format!("http://{address}"), Duration::from_secs(2)).unwrap();
        let result = api.call("xoxb-token", "chat.postMessage", &json!({})).await;
        assert!(matches!(result, Err(SlackError::Unavailable(_))), "{result:?}");
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        use reqwest::header::HeaderValue;
        assert_eq!(retry_after(Some(&HeaderValue::from_static("30"))), Duration::from_secs(30));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("999999"))), MAX_RETRY_AFTER);
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), DEFAULT_RETRY_AFTER);
        assert_eq!(retry_after(None), DEFAULT_RETRY_AFTER);
    }
}
