//! Countersign core: the domain, the ports it needs, the adapters that fill them, the application
//! service that composes them, and the HTTP API served by every function and by the local server.
//!
//! Layers (outer may use inner, never the reverse):
//! `domain` (pure rules) ← `ports` (traits) ← `adapters` (DynamoDB, SQLite) ← `service` ← `api`.

pub mod adapters;
pub mod api;
pub mod config;
pub mod domain;
pub mod error;
#[cfg(feature = "local")]
pub mod local;
pub mod ports;
pub mod service;

pub use error::AppError;
