//! Countersign core: the domain, the ports it needs, the adapters that fill them, the application
//! service that composes them, and the HTTP API served by every function and by the local server.
//!
//! Layers (outer may use inner, never the reverse):
//! `domain` (pure rules) ← `ports` (traits) ← `adapters` (DynamoDB, SQLite) ← `service` ← `api`.
//! Beside them: `layout` (how records sit in the single table: keys, indexes, TTLs) and `engine`
//! (prefetch → plan → commit, which every use case in `service` runs its changes through).
//! `proof` (audit entry hashes, signed checkpoints, the offline verifiers) and `passkey` (WebAuthn
//! relying-party checks for registration and step-up assertions) stand apart and pure.

pub mod adapters;
pub mod api;
pub mod config;
pub mod domain;
mod engine;
pub mod error;
pub mod layout;
#[cfg(feature = "local")]
pub mod local;
pub mod passkey;
pub mod ports;
pub mod proof;
pub mod service;

pub use error::AppError;
