//! Configuration from the environment, read once per cold start.

use crate::adapters::http_client::HttpWebhookClient;
use crate::domain::org::hash_secret;
use crate::domain::secret::ServerSecret;
use crate::service::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

pub const ENV_ADMIN_KEY: &str = "COUNTERSIGN_ADMIN_KEY";
pub const ENV_TABLE: &str = "COUNTERSIGN_TABLE";
pub const ENV_DEFAULT_TTL: &str = "COUNTERSIGN_DEFAULT_APPROVAL_TTL_SECONDS";
/// The longest approval window anyone may configure (30 days), as for policies.
pub const MAX_APPROVAL_TTL_SECONDS: u64 = crate::service::MAX_APPROVAL_TTL_SECONDS;
pub const ENV_ALLOW_PRIVATE: &str = "COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS";
pub const ENV_MAX_ATTEMPTS: &str = "COUNTERSIGN_WEBHOOK_MAX_ATTEMPTS";
pub const ENV_BACKOFF_BASE_MS: &str = "COUNTERSIGN_WEBHOOK_BACKOFF_BASE_MS";
pub const ENV_REPUBLISH_AFTER: &str = "COUNTERSIGN_REPUBLISH_AFTER_SECONDS";
pub const ENV_WEBHOOK_TIMEOUT_MS: &str = "COUNTERSIGN_WEBHOOK_TIMEOUT_MS";
pub const ENV_EVENT_BUS: &str = "COUNTERSIGN_EVENT_BUS";
pub const ENV_QUEUE_URL: &str = "COUNTERSIGN_WEBHOOK_QUEUE_URL";
pub const ENV_REVIEW_WAIT: &str = "COUNTERSIGN_REVIEW_WAIT_SECONDS";
pub const ENV_SESSION_SECRET: &str = "COUNTERSIGN_SESSION_SECRET";
pub const ENV_PUBLIC_URL: &str = "COUNTERSIGN_PUBLIC_URL";
pub const ENV_PREWARM: &str = "COUNTERSIGN_PREWARM";
pub const ENV_SIGNING_KEY: &str = "COUNTERSIGN_SIGNING_KEY";
pub const ENV_RETIRED_KEYS: &str = "COUNTERSIGN_RETIRED_SIGNING_KEYS";
pub const ENV_ENCRYPTION_KEY: &str = "COUNTERSIGN_ENCRYPTION_KEY";
pub const ENV_SLACK_API_URL: &str = "COUNTERSIGN_SLACK_API_URL";
pub const ENV_SMTP_URL: &str = "COUNTERSIGN_SMTP_URL";
pub const ENV_EMAIL_FROM: &str = "COUNTERSIGN_EMAIL_FROM";

/// Slack's Web API, unless `COUNTERSIGN_SLACK_API_URL` names another (a test's fake).
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";
/// One Slack Web API call: Slack answers in well under a second; a click's reply must fit in 3 s.
pub const SLACK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(2500);

fn parse_env<T: std::str::FromStr>(
    name: &'static str,
    valid: impl Fn(&T) -> bool,
    reason: &str,
) -> Result<Option<T>, ConfigError> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(text) => text
            .parse::<T>()
            .ok()
            .filter(|v| valid(v))
            .map(Some)
            .ok_or_else(|| ConfigError::Invalid { name, reason: reason.into() }),
    }
}

/// Timeout for one webhook POST (`COUNTERSIGN_WEBHOOK_TIMEOUT_MS`, default 5000).
pub fn webhook_timeout() -> Result<std::time::Duration, ConfigError> {
    Ok(parse_env::<u64>(ENV_WEBHOOK_TIMEOUT_MS, |v| (100..=30_000).contains(v), "must be 100 to 30000 milliseconds")?
        .map(std::time::Duration::from_millis)
        .unwrap_or(crate::adapters::http_client::DEFAULT_TIMEOUT))
}

/// Settings from the environment: the operator key (kept only as a hash), the default approval
/// window, the private-webhook switch and the webhook retry schedule (README, Configuration).
pub fn settings_from_env() -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    if let Ok(key) = std::env::var(ENV_ADMIN_KEY) {
        if key.len() < 16 {
            return Err(ConfigError::Invalid { name: ENV_ADMIN_KEY, reason: "must be at least 16 characters".into() });
        }
        settings.operator_key_hash = Some(hash_secret(&key));
    }
    if let Some(ttl) = parse_env::<u64>(
        ENV_DEFAULT_TTL,
        |v| (1..=MAX_APPROVAL_TTL_SECONDS).contains(v),
        "must be 1 to 2592000 seconds (30 days)",
    )? {
        settings.default_approval_ttl_seconds = ttl;
    }
    if let Some(allow) = parse_env::<bool>(ENV_ALLOW_PRIVATE, |_| true, "must be true or false")? {
        settings.allow_private_webhooks = allow;
    }
    if let Some(n) = parse_env::<u32>(ENV_MAX_ATTEMPTS, |v| (1..=50).contains(v), "must be 1 to 50")? {
        settings.retry.max_attempts = n;
    }
    if let Some(s) = parse_env::<u64>(ENV_REPUBLISH_AFTER, |v| (5..=3600).contains(v), "must be 5 to 3600 seconds")? {
        settings.republish_after = std::time::Duration::from_secs(s);
    }
    if let Some(ms) = parse_env::<u64>(ENV_BACKOFF_BASE_MS, |v| *v >= 1, "must be a positive number of milliseconds")? {
        settings.retry.base = std::time::Duration::from_millis(ms);
    }
    if let Some(secs) =
        parse_env::<u64>(ENV_REVIEW_WAIT, |v| *v <= crate::service::MAX_REVIEW_WAIT_SECONDS, "must be 0 to 28 seconds")?
    {
        settings.review_wait = std::time::Duration::from_secs(secs);
    }
    if let Ok(secret) = std::env::var(ENV_SESSION_SECRET) {
        let secret = ServerSecret::new(&secret)
            .map_err(|e| ConfigError::Invalid { name: ENV_SESSION_SECRET, reason: e.to_string() })?;
        settings.session_secret = Some(std::sync::Arc::new(secret));
    }
    if let Ok(url) = std::env::var(ENV_PUBLIC_URL) {
        settings.public_url =
            Some(public_url(&url).map_err(|reason| ConfigError::Invalid { name: ENV_PUBLIC_URL, reason })?);
    }
    if let Ok(secret) = std::env::var(ENV_SIGNING_KEY) {
        // The reason names the shape expected, never the value.
        let signer = crate::proof::signing::AuditSigner::from_secret(&secret)
            .map_err(|e| ConfigError::Invalid { name: ENV_SIGNING_KEY, reason: e.to_string() })?;
        settings.audit_signer = Some(std::sync::Arc::new(signer));
    }
    if let Ok(list) = std::env::var(ENV_RETIRED_KEYS) {
        settings.retired_keys = list
            .split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| {
                crate::proof::signing::Jwk::from_public_key_text(x)
                    .map_err(|e| ConfigError::Invalid { name: ENV_RETIRED_KEYS, reason: format!("{x:?}: {e}") })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Ok(key) = std::env::var(ENV_ENCRYPTION_KEY) {
        let key = crate::domain::encryption::EncryptionKey::parse(&key)
            .map_err(|e| ConfigError::Invalid { name: ENV_ENCRYPTION_KEY, reason: e.to_string() })?;
        settings.encryption_key = Some(std::sync::Arc::new(key));
    }
    Ok(settings)
}

/// The Slack Web API client and the SMTP mailer from `COUNTERSIGN_SLACK_API_URL`,
/// `COUNTERSIGN_SMTP_URL` and `COUNTERSIGN_EMAIL_FROM` (the last two together or neither).
pub fn notify_wiring(wiring: &mut crate::service::Wiring) -> Result<(), ConfigError> {
    use std::sync::Arc;
    let url = std::env::var(ENV_SLACK_API_URL).unwrap_or_else(|_| DEFAULT_SLACK_API_URL.to_string());
    let slack = crate::adapters::slack_api::HttpSlackApi::new(url, SLACK_TIMEOUT)
        .map_err(|reason| ConfigError::Invalid { name: ENV_SLACK_API_URL, reason })?;
    wiring.slack = Arc::new(slack);
    let set = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty()).ok_or(());
    match (set(ENV_SMTP_URL), set(ENV_EMAIL_FROM)) {
        (Ok(url), Ok(from)) => {
            // The reason names what is wrong, never the URL (it may hold a password).
            let mailer = crate::adapters::smtp::SmtpMailer::from_url(&url, &from)
                .map_err(|reason| ConfigError::Invalid { name: ENV_SMTP_URL, reason })?;
            wiring.mailer = Some(Arc::new(mailer));
        }
        (Ok(_), Err(_)) => return Err(ConfigError::Missing { name: ENV_EMAIL_FROM }),
        (Err(_), Ok(_)) => return Err(ConfigError::Missing { name: ENV_SMTP_URL }),
        (Err(_), Err(_)) => {}
    }
    Ok(())
}

/// `COUNTERSIGN_PUBLIC_URL` as links use it: an http(s) URL with no query or fragment, without a
/// trailing slash.
pub fn public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http or https URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a query, a fragment or credentials".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// An AWS service a Lambda function may call: one per AWS adapter. Each function's wiring lists
/// the adapters its code can reach ([`functions`]); [`aws_service`] wires only those, so a
/// function can only call what it lists, and `tests/tests/iam.rs` checks that each function's
/// policy in `infra/template.yaml` grants exactly the listed adapters' IAM actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsAdapter {
    /// The table (`adapters::dynamodb::DynamoStore`), the store of every function.
    DynamoDb,
    /// The event bus (`adapters::eventbridge::EventBridgeBus`): outbox events after commit.
    EventBridge,
    /// The webhook queue (`adapters::sqs::SqsQueue`): messages for the webhooks function.
    Sqs,
}

impl AwsAdapter {
    /// The IAM actions the adapter's code calls, as the adapter declares them next to its calls.
    #[cfg(feature = "aws")]
    pub fn iam_actions(self) -> &'static [&'static str] {
        match self {
            AwsAdapter::DynamoDb => crate::adapters::dynamodb::IAM_ACTIONS,
            AwsAdapter::EventBridge => crate::adapters::eventbridge::IAM_ACTIONS,
            AwsAdapter::Sqs => crate::adapters::sqs::IAM_ACTIONS,
        }
    }
}

/// Each Lambda function's AWS adapters: what its code can reach, and so what its IAM policy
/// grants (no more). An unlisted bus is the null bus (events wait in the outbox for the sweep);
/// an unlisted queue refuses sends.
pub mod functions {
    use super::AwsAdapter::{self, DynamoDb, EventBridge, Sqs};

    /// `functions/intake` serves the payment routes (`/v1/payments*`): reads and commits on the
    /// table, and publishes the committed events (`approval.created`, `payment.completed`) to the
    /// bus. Nothing on a payment route sends to the webhook queue.
    pub const INTAKE: &[AwsAdapter] = &[DynamoDb, EventBridge];
    /// `functions/approvals` serves every other route: the table; the bus for the events of
    /// approvals, rejections and executed payments; the queue for a dead-letter retry
    /// (`POST /v1/webhooks/dlq/{id}/retry` enqueues the delivery after it commits).
    pub const APPROVALS: &[AwsAdapter] = &[DynamoDb, EventBridge, Sqs];
    /// `functions/expiry` runs the sweep: the table (due approvals expired by conditional
    /// transactions); the bus for `approval.expired` and for re-publishing stuck outbox events;
    /// the queue for re-queueing overdue pending deliveries whose message was lost.
    pub const EXPIRY: &[AwsAdapter] = &[DynamoDb, EventBridge, Sqs];
    /// `functions/webhooks` fans events out and delivers: the table (deliveries written directly,
    /// never through the commit loop, so it publishes no events) and the queue for delayed
    /// retries. It never touches the bus: its input comes from the bus rule through the queue.
    pub const WEBHOOKS: &[AwsAdapter] = &[DynamoDb, Sqs];

    /// Every Lambda function by its binary name (`BuildProperties.Binary` in the template).
    pub const ALL: &[(&str, &[AwsAdapter])] =
        &[("intake", INTAKE), ("approvals", APPROVALS), ("expiry", EXPIRY), ("webhooks", WEBHOOKS)];
}

/// The service as a Lambda runs it, with only the `adapters` its function lists
/// ([`functions`]): AWS config loaded once; the DynamoDB table from `COUNTERSIGN_TABLE` (every
/// function lists DynamoDB); with [`AwsAdapter::EventBridge`], events to the bus
/// `COUNTERSIGN_EVENT_BUS`; with [`AwsAdapter::Sqs`], messages to the queue
/// `COUNTERSIGN_WEBHOOK_QUEUE_URL`. Each of those two is also optional at run time: without a
/// bus, events wait in the outbox for the sweep. Only the listed adapters' SDK clients are built.
#[cfg(feature = "aws")]
pub async fn aws_service(adapters: &[AwsAdapter]) -> Result<crate::service::Countersign, ConfigError> {
    use std::sync::Arc;

    use crate::adapters::dynamodb::DynamoStore;
    use crate::adapters::eventbridge::EventBridgeBus;
    use crate::adapters::sqs::SqsQueue;
    use crate::ports::SystemClock;
    use crate::service::{Countersign, Wiring};

    if !adapters.contains(&AwsAdapter::DynamoDb) {
        return Err(ConfigError::Invalid {
            name: "adapters",
            reason: "every function needs DynamoDb, its store".into(),
        });
    }
    let table = std::env::var(ENV_TABLE).map_err(|_| ConfigError::Missing { name: ENV_TABLE })?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let settings = settings_from_env()?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let mut wiring = Wiring::default();
    if adapters.contains(&AwsAdapter::EventBridge) {
        if let Ok(bus) = std::env::var(ENV_EVENT_BUS) {
            wiring.bus = Arc::new(EventBridgeBus::on_first_use(aws.clone(), bus));
        }
    }
    if adapters.contains(&AwsAdapter::Sqs) {
        if let Ok(url) = std::env::var(ENV_QUEUE_URL) {
            wiring.queue = Arc::new(SqsQueue::on_first_use(aws.clone(), url));
        }
    }
    wiring.client = Arc::new(webhook_client(&settings)?);
    wiring.metrics = Arc::new(crate::adapters::emf::EmfMetrics);
    notify_wiring(&mut wiring)?;
    let service = Countersign::new(Arc::new(store), Arc::new(SystemClock), settings).with_wiring(wiring);
    prewarm(&service).await;
    Ok(service)
}

/// How long init may spend pre-warming the store before it gives up (and the first request
/// connects as it would have).
#[cfg(feature = "aws")]
const PREWARM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// With `COUNTERSIGN_PREWARM=1`, reads the store once during init (the health probe's GetItem),
/// so that the first invoke finds the connection open (TCP and TLS set up, credentials resolved,
/// the first request's code paths run). Off by default: on DynamoDB Local (loopback, no TLS) the
/// GetItem costs init more than it saves the first invoke; `bench/init_time.py` measures both
/// ways, so the choice can be made again where TLS is paid. Never fatal: a store that cannot be
/// reached now is met again by the first request, which reports it.
#[cfg(feature = "aws")]
async fn prewarm(service: &crate::service::Countersign) {
    if std::env::var(ENV_PREWARM).map_or(true, |v| v != "1") {
        return;
    }
    match tokio::time::timeout(PREWARM_TIMEOUT, service.check_store()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "pre-warming the store failed; the first request will connect"),
        Err(_) => tracing::warn!("pre-warming the store timed out; the first request will connect"),
    }
}

pub fn webhook_client(settings: &Settings) -> Result<HttpWebhookClient, ConfigError> {
    HttpWebhookClient::new(settings.allow_private_webhooks, webhook_timeout()?)
        .map_err(|e| ConfigError::Invalid { name: ENV_WEBHOOK_TIMEOUT_MS, reason: e.to_string() })
}

/// JSON logs for Lambda/CloudWatch, level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).without_time().json().try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_read_every_knob_and_refuse_bad_values() {
        // One test touches the process environment, so nothing else races it.
        std::env::set_var(ENV_ALLOW_PRIVATE, "true");
        std::env::set_var(ENV_MAX_ATTEMPTS, "3");
        std::env::set_var(ENV_BACKOFF_BASE_MS, "250");
        std::env::set_var(ENV_REPUBLISH_AFTER, "15");
        std::env::set_var(ENV_DEFAULT_TTL, "60");
        std::env::set_var(ENV_REVIEW_WAIT, "3");
        std::env::set_var(ENV_SESSION_SECRET, "too short");
        assert!(settings_from_env().is_err());
        std::env::set_var(ENV_SESSION_SECRET, "a-session-secret-of-at-least-32-chars");
        std::env::set_var(ENV_PUBLIC_URL, "ftp://example.com");
        assert!(settings_from_env().is_err());
        std::env::set_var(ENV_PUBLIC_URL, "https://approvals.example.com/");
        let s = settings_from_env().unwrap();
        assert!(s.session_secret.is_some());
        assert_eq!(s.public_url.as_deref(), Some("https://approvals.example.com"));
        assert_eq!(s.review_wait, std::time::Duration::from_secs(3));
        std::env::set_var(ENV_REVIEW_WAIT, "29");
        assert!(settings_from_env().is_err());
        std::env::set_var(ENV_REVIEW_WAIT, "3");
        assert!(s.allow_private_webhooks);
        assert_eq!(
            (s.retry.max_attempts, s.retry.base, s.default_approval_ttl_seconds),
            (3, std::time::Duration::from_millis(250), 60)
        );
        assert_eq!(s.republish_after, std::time::Duration::from_secs(15));
        std::env::set_var(ENV_MAX_ATTEMPTS, "0");
        assert!(settings_from_env().is_err());
        std::env::set_var(ENV_ALLOW_PRIVATE, "yes");
        std::env::set_var(ENV_MAX_ATTEMPTS, "3");
        assert!(settings_from_env().is_err());
        std::env::set_var(ENV_ALLOW_PRIVATE, "true");
        std::env::set_var(ENV_REPUBLISH_AFTER, "1");
        assert!(settings_from_env().is_err(), "below 5 s");
        let knobs = [
            ENV_ALLOW_PRIVATE,
            ENV_MAX_ATTEMPTS,
            ENV_BACKOFF_BASE_MS,
            ENV_DEFAULT_TTL,
            ENV_REPUBLISH_AFTER,
            ENV_REVIEW_WAIT,
            ENV_SESSION_SECRET,
            ENV_PUBLIC_URL,
        ];
        for name in knobs {
            std::env::remove_var(name);
        }
    }
}
