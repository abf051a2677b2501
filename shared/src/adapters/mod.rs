//! Adapters that fill the ports: DynamoDB, EventBridge and SQS for Lambda (feature `aws`); SQLite
//! and a store-backed queue for the local server (feature `local`); reqwest for webhook delivery;
//! null adapters where nothing is wired.

#[cfg(feature = "aws")]
pub mod dynamodb;
pub mod emf;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod http_client;
#[cfg(feature = "local")]
pub mod local_queue;
pub mod null;
#[cfg(feature = "local")]
pub mod sqlite;
#[cfg(feature = "aws")]
pub mod sqs;
