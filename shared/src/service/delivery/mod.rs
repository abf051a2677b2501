//! Getting decisions out: the transactional outbox and its publisher, webhook subscriptions,
//! the fan-out to deliveries and their sending, with per-endpoint slots.

pub(crate) mod endpoints;
pub(crate) mod events;
pub(crate) mod fanout;
pub(crate) mod webhooks;
