//! Reaching reviewers where they work (docs/api.md, "Slack and email"): notifications are
//! built-in subscribers of the outbox, delivered like webhook deliveries (claimed, retried with
//! the webhook backoff, listed in a log) and never in the way of a decision.

pub(crate) mod facts;
pub(crate) mod integration;
pub(crate) mod interactions;
pub(crate) mod log;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod send;
