//! Notification ports: Slack's Web API and an outgoing mail server. Both report whether a failure
//! is worth retrying, since deliveries are retried like webhooks.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::email::EmailContent;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackError {
    /// HTTP 429: try again after `retry_after` (Slack's `Retry-After`).
    #[error("rate limited by Slack, retry after {} s", retry_after.as_secs())]
    RateLimited { retry_after: Duration },
    /// Slack answered `ok: false` with this error code (`channel_not_found`, `invalid_auth`, …).
    #[error("Slack refused the call: {0}")]
    Api(String),
    /// Transport failure, timeout or 5xx: nothing to blame on the request, retrying may succeed.
    #[error("Slack unavailable: {0}")]
    Unavailable(String),
}

/// Slack's Web API.
#[async_trait]
pub trait SlackApi: Send + Sync {
    /// Calls Web API `method` ("chat.postMessage", "chat.update", "chat.postEphemeral") with bot
    /// `token` and a JSON body. Ok: the response object (its `ok` is true).
    async fn call(&self, token: &str, method: &str, body: &serde_json::Value) -> Result<serde_json::Value, SlackError>;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// Permanent: the server refused for good (5xx reply, a bad address). Retrying will not help.
    #[error("mail rejected: {0}")]
    Rejected(String),
    /// Transient: no connection, a timeout, a 4xx reply. Retrying may succeed.
    #[error("mail server unavailable: {0}")]
    Unavailable(String),
}

/// An outgoing mail server.
#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, to: &str, content: &EmailContent) -> Result<(), MailError>;
}
