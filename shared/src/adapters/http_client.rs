//! The webhook HTTP client: reqwest with a short timeout, a resolver that refuses internal
//! addresses after DNS, a redirect policy that checks every hop, and no proxy (`HTTP_PROXY` and
//! friends are ignored: a proxy would resolve the target where the guard never sees it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::ssrf::{self, TargetError};
use crate::domain::webhook::SignedHeaders;
use crate::ports::{HttpOutcome, SendError, WebhookClient};

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 3;

/// Resolves with the system resolver, then refuses the name if any address is internal.
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_private;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(Box::new(TargetError::Unresolvable) as Box<dyn std::error::Error + Send + Sync>);
            }
            for addr in &addrs {
                ssrf::guard(addr.ip(), allow)?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

pub struct HttpWebhookClient {
    http: reqwest::Client,
    allow_private: bool,
    timeout: Duration,
}

impl HttpWebhookClient {
    pub fn new(allow_private: bool, timeout: Duration) -> Result<Self, reqwest::Error> {
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.stop()
            } else {
                match ssrf::check_url(attempt.url(), allow_private) {
                    Ok(_) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            }
        });
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .redirect(redirect)
            .dns_resolver(Arc::new(GuardedResolver { allow_private }))
            .user_agent("Countersign-Webhooks/1")
            // A proxy from the environment would resolve the target itself, past the guard.
            .no_proxy()
            .pool_max_idle_per_host(8)
            .build()?;
        Ok(HttpWebhookClient { http, allow_private, timeout })
    }
}

/// Finds a guard refusal anywhere in an error's source chain.
fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<TargetError> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(t) = e.downcast_ref::<TargetError>() {
            return Some(t.clone());
        }
        current = e.source();
    }
    None
}

/// How long a target check waits for DNS before refusing the URL.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves `host` (within `DNS_TIMEOUT`) and refuses it when it resolves to nothing or to any
/// internal address.
pub async fn check_resolved(host: &str, port: u16, allow_private: bool) -> Result<(), TargetError> {
    let lookup = tokio::time::timeout(DNS_TIMEOUT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| TargetError::DnsTimeout)?;
    let addrs: Vec<SocketAddr> = lookup.map_err(|_| TargetError::Unresolvable)?.collect();
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable);
    }
    addrs.iter().try_for_each(|addr| ssrf::guard(addr.ip(), allow_private))
}

#[async_trait]
impl WebhookClient for HttpWebhookClient {
    async fn check_host(&self, host: &str, port: u16) -> Result<(), TargetError> {
        check_resolved(host, port, self.allow_private).await
    }

    async fn post(&self, url: &str, headers: &SignedHeaders, body: Vec<u8>) -> Result<HttpOutcome, SendError> {
        let parsed = url::Url::parse(url).map_err(|_| TargetError::Malformed)?;
        // Literal IPs never reach the resolver, so they are checked here.
        ssrf::check_url(&parsed, self.allow_private)?;
        let started = Instant::now();
        let result = self
            .http
            .post(parsed)
            .header("content-type", "application/json")
            .header("webhook-id", &headers.webhook_id)
            .header("webhook-timestamp", &headers.webhook_timestamp)
            .header("webhook-signature", &headers.webhook_signature)
            .header("x-countersign-signature", &headers.countersign_signature)
            .body(body)
            .send()
            .await;
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(res) => Ok(HttpOutcome { status: res.status().as_u16(), latency_ms }),
            Err(e) if e.is_timeout() => Err(SendError::Timeout(self.timeout.as_millis() as u64)),
            Err(e) => match refusal(&e) {
                Some(t) => Err(SendError::Refused(t)),
                None => Err(SendError::Failed(e.without_url().to_string())),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[tokio::test]
    async fn resolver_refuses_names_that_resolve_to_internal_addresses() {
        let guarded = GuardedResolver { allow_private: false };
        let refused = guarded.resolve(Name::from_str("localhost").expect("name")).await;
        let err = refused.err().expect("localhost resolves to loopback and must be refused");
        assert!(refusal(err.as_ref()).is_some(), "{err}");
        let allowed = GuardedResolver { allow_private: true };
        assert!(allowed.resolve(Name::from_str("localhost").expect("name")).await.is_ok());
    }

    #[tokio::test]
    async fn literal_internal_targets_are_refused_before_any_request() {
        let client = HttpWebhookClient::new(false, DEFAULT_TIMEOUT).expect("client");
        let headers = crate::domain::webhook::sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_1", 0, b"{}");
        for url in ["https://127.0.0.1/hook", "https://[::ffff:169.254.169.254]/", "http://example.com/"] {
            let result = client.post(url, &headers, b"{}".to_vec()).await;
            assert!(matches!(result, Err(SendError::Refused(_))), "{url}: {result:?}");
        }
    }
}
