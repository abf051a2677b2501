//! The webhooks Lambda's handler, as a library so integration tests drive the same code the
//! Lambda runs.

pub mod handler;
