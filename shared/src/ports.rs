//! Ports: what the core needs from the outside world. Adapters live in `adapters`.
//!
//! The store is a single-table, DynamoDB-shaped item store: items keyed by `(pk, sk)`, each with a
//! version for optimistic concurrency, up to four secondary index keys, and all-or-nothing
//! conditional transactions. Every state change in Countersign is one `transact` call.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

mod adjust;
mod body;
pub use adjust::{check as adjust_check, Adjustment, Guard, GuardFailed};
pub use body::Body;
pub mod notify;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key { pk: pk.into(), sk: sk.into() }
    }
}

/// Secondary indexes. Each is sparse: an item appears only when it sets that index's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index {
    /// The table's own `(pk, sk)`.
    Primary,
    /// Everything of one type in one organisation, newest first (`ORG#o#PAYMENT`).
    ByOrg,
    /// One type by status in one organisation (`ORG#o#APPROVAL#PENDING`).
    ByStatus,
    /// One type by wallet, sort key `STATUS#id` so a status prefix narrows it.
    ByWallet,
    /// Due-time index: pending approvals by `expiresAt`, unpublished events by creation time.
    Due,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexKeys {
    pub by_org: Option<(String, String)>,
    pub by_status: Option<(String, String)>,
    pub by_wallet: Option<(String, String)>,
    pub due: Option<(String, String)>,
}

impl IndexKeys {
    pub fn get(&self, index: Index) -> Option<&(String, String)> {
        match index {
            Index::Primary => None,
            Index::ByOrg => self.by_org.as_ref(),
            Index::ByStatus => self.by_status.as_ref(),
            Index::ByWallet => self.by_wallet.as_ref(),
            Index::Due => self.due.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Key,
    /// Starts at 1; every write of an existing item stores `expected + 1`.
    pub version: u64,
    pub indexes: IndexKeys,
    /// Epoch seconds after which the store may delete the item (DynamoDB TTL).
    pub expires_at_epoch: Option<i64>,
    pub body: Body,
    /// Top-level body fields that `Write::Adjust` moves in place (decimal strings or integers):
    /// a store that does arithmetic itself (DynamoDB) keeps them as numbers beside the body.
    /// Empty on items as read (the store gives them back inside the body).
    pub counters: &'static [&'static str],
    /// Kept compressed where the store keeps structure (DynamoDB: `data` as deflated JSON, a
    /// fraction of the write units): records only ever read whole by key or index, never
    /// conditioned on a field (the outbox's events).
    pub compact: bool,
}

/// A condition on the item currently stored at a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No item may exist at the key.
    Absent,
    /// The stored item must have exactly this version.
    Version(u64),
}

// Puts are the common case; boxing their item would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        expect: Expect,
    },
    Delete {
        key: Key,
        expect: Expect,
    },
    /// Asserts a condition without writing.
    Check {
        key: Key,
        expect: Expect,
    },
    /// Changes a stored item in place without its version being expected: counters move, fields
    /// are set, only where the item exists and every guard holds (checked on the item as stored
    /// before this change). The version goes up by one. Concurrent adjustments of one item all
    /// apply, in some order, so writers that only adjust conflict only while committing. Never
    /// changes index keys or TTL.
    Adjust {
        key: Key,
        adjustment: Adjustment,
    },
    /// Asserts that the item exists and every guard holds, without writing (and whatever its
    /// version).
    Require {
        key: Key,
        guards: Vec<Guard>,
    },
}

/// Position after which a page starts: the last item returned by the previous page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    pub index_sk: Option<String>,
    pub pk: String,
    pub sk: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    /// Only sort keys starting with this.
    pub sk_prefix: Option<String>,
    /// Only sort keys `>=` this (a key range with `sk_at_most`: a backtest's window of ULIDs).
    /// DynamoDB takes one sort-key condition: a prefix, or a range, not both.
    pub sk_at_least: Option<String>,
    /// Only sort keys `<=` this (due-time reads).
    pub sk_at_most: Option<String>,
    pub newest_first: bool,
    pub limit: usize,
    pub after: Option<Position>,
}

impl Query {
    pub fn new(index: Index, pk: impl Into<String>, limit: usize) -> Self {
        Query {
            index,
            pk: pk.into(),
            sk_prefix: None,
            sk_at_least: None,
            sk_at_most: None,
            newest_first: true,
            limit,
            after: None,
        }
    }
}

impl Item {
    /// Where this item stands in `index`, for continuing a page after it.
    pub fn position(&self, index: Index) -> Position {
        Position {
            index_sk: self.indexes.get(index).map(|(_, sk)| sk.clone()),
            pk: self.key.pk.clone(),
            sk: self.key.sk.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A condition of the transaction did not hold (someone else wrote first).
    #[error("condition failed")]
    ConditionFailed,
    /// The transaction collided with another one in flight; retrying may succeed.
    #[error("transaction conflict")]
    Conflict,
    /// The page position is not one this store issued.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The store could not be reached or answered with an error, and nothing was applied;
    /// details are for logs only.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The transaction may or may not have been applied (a timeout or a dropped connection after
    /// sending, a 500, the same token still in progress). Resending the same writes with the
    /// same token resolves it.
    #[error("transaction outcome unknown: {0}")]
    Ambiguous(String),
}

/// Identifies one transaction across resends (DynamoDB's `ClientRequestToken`): a resend with
/// the same token after an ambiguous outcome is applied at most once.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TxToken(String);

impl TxToken {
    /// A new token (a ULID: 26 characters, within DynamoDB's 36).
    pub fn generate() -> Self {
        TxToken(ulid::Ulid::new().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A transaction in a store's write queue (`Store::queue`): its outcome, once committed.
pub struct Queued {
    outcome: futures::future::BoxFuture<'static, Result<(), StoreError>>,
    known: bool,
}

impl Queued {
    pub fn new(outcome: impl std::future::Future<Output = Result<(), StoreError>> + Send + 'static) -> Self {
        Queued { outcome: Box::pin(outcome), known: false }
    }

    /// Already applied (or refused): the outcome is known.
    pub fn ready(outcome: Result<(), StoreError>) -> Self {
        Queued { outcome: Box::pin(std::future::ready(outcome)), known: true }
    }

    /// Whether the outcome was known when it was queued (a store without a write queue): its
    /// writes were never pending.
    pub fn is_known(&self) -> bool {
        self.known
    }

    pub async fn outcome(self) -> Result<(), StoreError> {
        self.outcome.await
    }
}

/// How long a store MUST remember a token (DynamoDB: 10 minutes).
pub const TOKEN_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// The persistence port.
#[async_trait]
pub trait Store: Send + Sync {
    /// Strongly consistent read of one item.
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError>;

    /// Strongly consistent reads of many items, answered in the order of `keys` (a key may
    /// repeat). Stores that can batch them do so in one request (DynamoDB: BatchGetItem); this
    /// default reads them concurrently.
    async fn get_many(&self, keys: &[Key]) -> Result<Vec<Option<Item>>, StoreError> {
        futures::future::try_join_all(keys.iter().map(|key| self.get(key))).await
    }

    /// Whether each read is a network round trip (a remote store), so that reading what a
    /// request needs ahead of time, in one batch, pays (`service::ahead`).
    fn reads_are_round_trips(&self) -> bool {
        false
    }

    /// Applies every write or none.
    /// MUST return `StoreError::ConditionFailed` if any `Expect` does not hold, and leave
    /// everything unchanged. MUST NOT touch one key twice in one call.
    /// With a token, MUST apply a transaction at most once: a resend with a token whose
    /// transaction committed within `TOKEN_WINDOW` succeeds without writing again. MUST return
    /// `StoreError::Ambiguous` (never `Unavailable`) when it cannot tell whether the writes were
    /// applied.
    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError>;

    /// `apply` in two steps: first queues the transaction behind every transaction queued
    /// before it (their conditions are checked before its own), then answers its outcome, with
    /// the same guarantees as `apply`. A caller may let others plan on top of it in between:
    /// `after` names the queued transactions (by token) a plan built on, and the transaction
    /// MUST fail with `ConditionFailed` unless every one of them committed. (A version alone
    /// cannot tell: a write that fails would have made the same version as another that
    /// committed in its place.) A resend of a transaction whose token already committed
    /// succeeds whatever `after` says.
    /// Stores without a write queue apply at once (this default): nothing queued through them
    /// is ever pending, so nothing can be built on it, and a non-empty `after` is refused.
    async fn queue(&self, writes: &[Write], token: Option<&TxToken>, after: &[TxToken]) -> Result<Queued, StoreError> {
        if !after.is_empty() {
            return Ok(Queued::ready(Err(StoreError::ConditionFailed)));
        }
        Ok(Queued::ready(self.apply(writes, token).await))
    }

    /// `apply` without a token, for writes whose loss or repetition is harmless (bookkeeping).
    async fn transact(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.apply(&writes, None).await
    }

    /// Reads up to `limit` items of one index partition in sort-key order, starting after
    /// `after`. Secondary indexes may lag writes slightly (DynamoDB GSIs are eventually
    /// consistent); the primary index is strongly consistent.
    async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError>;
}

/// Time, injected so tests can move it.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Messages on the webhook queue: a published event to fan out, a delivery due for a retry, or
/// a notification due.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum QueueMessage {
    Event {
        event: crate::domain::event::Event,
    },
    /// The delivery's attempt `attempt` (its attempt count when the message was sent) is due. A
    /// message whose attempt is no longer the delivery's is dropped, so duplicate messages never
    /// become parallel retry chains. (Messages from before this field: `None`, always taken.)
    #[serde(rename_all = "camelCase")]
    Delivery {
        webhook_id: crate::domain::ids::WebhookId,
        delivery_id: crate::domain::ids::DeliveryId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A notification's attempt `attempt` is due (a retry, or a reminder's time has come).
    #[serde(rename_all = "camelCase")]
    Notification {
        /// The approval or review it is about (its partition).
        subject: String,
        notification_id: crate::domain::ids::NotificationId,
        attempt: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event bus unavailable: {0}")]
pub struct BusError(pub String);

/// What one publish achieved, event by event.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Published {
    /// Accepted by the bus.
    pub accepted: Vec<crate::domain::ids::EventId>,
    /// Refused by the bus for what they are (too large, malformed), or still failing after the
    /// adapter's retries; with the reason.
    pub refused: Vec<(crate::domain::ids::EventId, String)>,
}

/// Where committed events go (EventBridge in AWS; the local queue in the local server).
#[async_trait]
pub trait EventBus: Send + Sync {
    /// Publishes what it can. MUST report every event it sent as accepted or refused, and MUST
    /// NOT let one refused event or batch stop the others. Events it could not get to (the bus
    /// unreachable) are in neither list: they stay in the outbox and the sweep retries them.
    async fn publish(&self, events: &[crate::domain::event::Event]) -> Result<Published, BusError>;
}

/// Operational metrics (CloudWatch metrics in AWS). Every metric, its unit and its dimension are
/// named in `domain::metric`; callers record a value once what it measures has committed.
pub trait Metrics: Send + Sync {
    /// One value of `metric`, in its unit (`Metric::unit`).
    fn record(&self, metric: crate::domain::metric::Metric, value: f64);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("queue unavailable: {0}")]
pub struct QueueError(pub String);

/// The webhook work queue (SQS in AWS; a store-backed queue in the local server).
#[async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Longest delay one send supports (SQS: 15 minutes); longer waits are re-sent.
    fn max_delay(&self) -> std::time::Duration;
    async fn send(&self, message: &QueueMessage, delay: std::time::Duration) -> Result<(), QueueError>;
}

/// What one POST to a webhook achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpOutcome {
    pub status: u16,
    pub latency_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("target refused: {0}")]
    Refused(#[from] crate::domain::ssrf::TargetError),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Failed(String),
}

/// Sends signed webhook requests, refusing internal targets after DNS and on redirects.
#[async_trait]
pub trait WebhookClient: Send + Sync {
    /// Resolves `host` and checks every address it gives. MUST return
    /// `TargetError::Unresolvable` when it resolves to nothing and `TargetError::Forbidden` when
    /// any address is internal (unless the client allows private targets).
    async fn check_host(&self, host: &str, port: u16) -> Result<(), crate::domain::ssrf::TargetError>;

    async fn post(
        &self,
        url: &str,
        headers: &crate::domain::webhook::SignedHeaders,
        body: Vec<u8>,
    ) -> Result<HttpOutcome, SendError>;
}
