//! The commit loop shared by every state change, with Stripe-style idempotency.

use std::future::Future;
use std::time::Duration;

use chrono::Duration as ChronoDuration;
use rand::Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::records::{self, IdempotencyRecord};
use super::Countersign;
use crate::domain::ids::OrgId;
use crate::domain::input::InputError;
use crate::error::{AppError, AppResult};
use crate::ports::{StoreError, Write};

/// How many times a plan is remade after losing a race before giving up with 503.
const MAX_ATTEMPTS: u32 = 100;
const IDEMPOTENCY_TTL_HOURS: i64 = 24;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    Ok,
    Created,
    Accepted,
}

impl ReplyStatus {
    pub fn code(self) -> u16 {
        match self {
            ReplyStatus::Ok => 200,
            ReplyStatus::Created => 201,
            ReplyStatus::Accepted => 202,
        }
    }

    fn from_code(code: u16) -> Self {
        match code {
            201 => ReplyStatus::Created,
            202 => ReplyStatus::Accepted,
            _ => ReplyStatus::Ok,
        }
    }
}

/// The outcome of a state change as the client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: ReplyStatus,
    pub body: serde_json::Value,
    /// True when this is a replay of an earlier request with the same idempotency key.
    pub replayed: bool,
}

impl Reply {
    pub fn new(status: ReplyStatus, body: &impl Serialize) -> AppResult<Self> {
        let body = serde_json::to_value(body).map_err(|e| AppError::Corrupt(e.to_string()))?;
        Ok(Reply { status, body, replayed: false })
    }
}

/// A planned state change: the writes to commit and the reply to give if they commit.
pub struct Plan {
    pub writes: Vec<Write>,
    pub reply: Reply,
}

/// An idempotency key with the fingerprint of the request it came with.
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

impl Idempotency {
    /// Validates the key; the fingerprint covers the whole request body except the key itself.
    pub fn new(scope: impl Into<String>, key: &str, request: &serde_json::Value) -> AppResult<Self> {
        if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS || key.chars().any(char::is_control) {
            return Err(InputError::invalid("idempotencyKey", "must be 1 to 255 printable characters").into());
        }
        let mut body = request.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("idempotencyKey");
        }
        // serde_json maps are sorted, so equal bodies hash equally whatever their key order.
        let request_hash = hex::encode(Sha256::digest(body.to_string().as_bytes()));
        Ok(Idempotency { scope: scope.into(), key: key.to_string(), request_hash })
    }
}

impl Countersign {
    /// Plans and commits until the plan wins, the plan refuses (an error), or the attempts run
    /// out. With an idempotency key, a stored earlier reply is replayed instead (or 409 when the
    /// request differs), and concurrent duplicates execute once: the idempotency record is part
    /// of the same transaction.
    pub(crate) async fn commit<F, Fut>(
        &self,
        org: &OrgId,
        idempotency: Option<&Idempotency>,
        mut plan: F,
    ) -> AppResult<Reply>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<Plan>>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let mut stale_version = None;
            if let Some(idem) = idempotency {
                match self.replay(org, idem).await? {
                    Prior::Reply(reply) => return Ok(reply),
                    Prior::Expired(version) => stale_version = Some(version),
                    Prior::None => {}
                }
            }
            let Plan { mut writes, reply } = plan().await?;
            if let Some(idem) = idempotency {
                let now = self.now();
                let record = IdempotencyRecord {
                    org_id: org.clone(),
                    scope: idem.scope.clone(),
                    key: idem.key.clone(),
                    request_hash: idem.request_hash.clone(),
                    status: reply.status.code(),
                    response: reply.body.clone(),
                    created_at: now,
                    expires_at: now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS),
                };
                // An expired record the store has not yet deleted is overwritten, conditionally.
                writes.push(match stale_version {
                    Some(version) => records::update(&record, version)?,
                    None => records::create(&record)?,
                });
            }
            let events = super::events::committed_events(&writes);
            match self.store.transact(writes).await {
                Ok(()) => {
                    self.publish_committed(events).await;
                    return Ok(reply);
                }
                Err(StoreError::ConditionFailed | StoreError::Conflict) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contention)
    }

    /// Commits creations planned once from nothing read (only an id collision could make them
    /// conflict, and then a retry would conflict again).
    pub(crate) async fn commit_new(&self, org: &OrgId, writes: Vec<Write>, reply: Reply) -> AppResult<Reply> {
        self.commit(org, None, || {
            let plan = Plan { writes: writes.clone(), reply: reply.clone() };
            async move { Ok(plan) }
        })
        .await
    }

    /// The commit loop for work nobody asked for over HTTP (the expiry sweep): the plan may find
    /// nothing to do (`None`). Returns whether a plan committed.
    pub(crate) async fn commit_system<F, Fut>(&self, mut plan: F) -> AppResult<bool>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = AppResult<Option<Vec<Write>>>>,
    {
        for attempt in 0..MAX_ATTEMPTS {
            let Some(writes) = plan().await? else {
                return Ok(false);
            };
            let events = super::events::committed_events(&writes);
            match self.store.transact(writes).await {
                Ok(()) => {
                    self.publish_committed(events).await;
                    return Ok(true);
                }
                Err(StoreError::ConditionFailed | StoreError::Conflict) => backoff(attempt).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::Contention)
    }

    async fn replay(&self, org: &OrgId, idem: &Idempotency) -> AppResult<Prior> {
        let key = records::idempotency_key(org, &idem.scope, &idem.key);
        let Some(stored) = self.read::<IdempotencyRecord>(&key).await? else {
            return Ok(Prior::None);
        };
        let record = stored.value;
        if record.expires_at <= self.now() {
            return Ok(Prior::Expired(stored.version));
        }
        if record.request_hash != idem.request_hash {
            return Err(AppError::IdempotencyKeyReuse);
        }
        Ok(Prior::Reply(Reply { status: ReplyStatus::from_code(record.status), body: record.response, replayed: true }))
    }
}

enum Prior {
    None,
    Reply(Reply),
    Expired(u64),
}

/// Jittered exponential backoff, capped so a busy wallet still settles in well under a second.
async fn backoff(attempt: u32) {
    let cap_ms = 2u64.saturating_pow(attempt.min(5)).min(25);
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
