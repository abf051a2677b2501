//! Configuration from the environment, read once per cold start.

use std::sync::Arc;

use crate::adapters::dynamodb::DynamoStore;
use crate::domain::org::hash_secret;
use crate::ports::SystemClock;
use crate::service::{Countersign, Settings};

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

/// Settings from `COUNTERSIGN_ADMIN_KEY` (operator key, kept only as a hash) and
/// `COUNTERSIGN_DEFAULT_APPROVAL_TTL_SECONDS` (default 86400).
pub fn settings_from_env() -> Result<Settings, ConfigError> {
    let mut settings = Settings::default();
    if let Ok(key) = std::env::var(ENV_ADMIN_KEY) {
        if key.len() < 16 {
            return Err(ConfigError::Invalid {
                name: ENV_ADMIN_KEY,
                reason: "must be at least 16 characters".into(),
            });
        }
        settings.operator_key_hash = Some(hash_secret(&key));
    }
    if let Ok(ttl) = std::env::var(ENV_DEFAULT_TTL) {
        settings.default_approval_ttl_seconds =
            ttl.parse()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| ConfigError::Invalid {
                    name: ENV_DEFAULT_TTL,
                    reason: "must be a positive whole number".into(),
                })?;
    }
    Ok(settings)
}

/// The service on DynamoDB: AWS config loaded once, table from `COUNTERSIGN_TABLE`.
pub async fn dynamo_service() -> Result<(Countersign, DynamoStore), ConfigError> {
    let table = std::env::var(ENV_TABLE).map_err(|_| ConfigError::Missing { name: ENV_TABLE })?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), table);
    let service = Countersign::new(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        settings_from_env()?,
    );
    Ok((service, store))
}

/// JSON logs for Lambda/CloudWatch, level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .json()
        .try_init();
}
