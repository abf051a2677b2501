//! Adapters that fill the ports: DynamoDB, EventBridge and SQS for Lambda (feature `aws`); SQLite
//! and a store-backed queue for the local server (feature `local`); reqwest for webhook delivery
//! and Slack's Web API; lettre for email over SMTP; null adapters where nothing is wired.

pub mod capacity;
#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod emf;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod http_client;
#[cfg(feature = "local")]
pub mod local_queue;
pub mod null;
pub mod slack_api;
pub mod smtp;
#[cfg(feature = "local")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;

/// An SDK client built by its first use. A function builds only the clients every request needs
/// (the store) during its cold start; the bus and queue clients (about 0.2-0.3 ms each to build)
/// wait for the first request that publishes or enqueues, which many requests never do.
#[cfg(feature = "aws")]
pub type OnFirstUse<C> = std::sync::LazyLock<C, Box<dyn FnOnce() -> C + Send>>;
