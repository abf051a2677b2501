//! Pure domain types and rules: no I/O, no AWS, no HTTP.

pub mod approval;
pub mod audit;
pub mod delivery;
pub mod escalation;
pub mod event;
pub mod idempotency;
pub mod ids;
pub mod input;
pub mod ledger;
pub mod money;
pub mod org;
pub mod payment;
pub mod payment_review;
pub mod people;
pub mod permission;
pub mod policy;
pub mod refund;
pub mod review;
pub mod review_link;
pub mod routing;
pub mod score;
pub mod secret;
pub mod ssrf;
pub mod velocity;
pub mod wallet;
pub mod webhook;
