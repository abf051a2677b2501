//! Adapters that fill the ports: DynamoDB, EventBridge and SQS for Lambda; SQLite and a
//! store-backed queue for the local server; reqwest for webhook delivery.

pub mod dynamodb;
pub mod eventbridge;
pub mod http_client;
pub mod local_queue;
pub mod sqlite;
pub mod sqs;
