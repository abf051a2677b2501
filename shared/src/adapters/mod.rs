//! Adapters that fill the ports: DynamoDB for Lambda, SQLite for the local server.

pub mod dynamodb;
pub mod sqlite;
