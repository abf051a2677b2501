//! How each record is laid out in the single table: its key, its index entries, its TTL.
//! Every key prefix and index pattern, with what reads it, is in docs/architecture.md (section
//! "Access patterns"), the one table of them; `tests/tests/access_patterns.rs` fails when a key
//! written here is missing from it.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::domain::approval::Approval;
use crate::domain::audit::AuditEntry;
use crate::domain::comment::Comment;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::ids::{
    ApiKeyId, ApprovalId, CommentId, DeliveryId, MemberId, NotificationId, OrgId, PaymentId, PolicyId, ReviewId,
    RoutingRuleId, TeamId, WalletId, WebhookId,
};
use crate::domain::ledger::LedgerEntry;
use crate::domain::notification::{Notification, SlackIntegration, SlackUserLink};
use crate::domain::org::{ApiKey, OrgSettings, Organization};
use crate::domain::payment::Payment;
use crate::domain::people::{Member, Person, Team};
use crate::domain::policy::Policy;
use crate::domain::review::Review;
use crate::domain::routing::RoutingRule;
use crate::domain::step_up::{PasskeyCredential, RegistrationChallenge, StepUpNonce};
use crate::domain::wallet::Wallet;
use crate::domain::webhook::Webhook;
use crate::error::{AppError, AppResult};
use crate::ports::{Body, Expect, Index, IndexKeys, Item, Key, Query, Write};
use crate::proof::checkpoint::Checkpoint;

pub const DUE_APPROVALS: &str = "APPROVAL";
pub const DUE_OUTBOX: &str = "OUTBOX";
pub const DUE_NOTIFICATIONS: &str = "NOTIFICATION";
pub const DUE_DELIVERIES: &str = "DELIVERY";
pub const DUE_REVIEWS: &str = "REVIEW";
/// Parked outbox events, for operators (not swept).
pub const PARKED_OUTBOX: &str = "OUTBOX_PARKED";
/// Each due kind is spread over this many partitions (`APPROVAL#0` … `APPROVAL#15`), so no
/// single index partition takes every pending approval or unpublished event (docs/architecture.md, "Due-index capacity").
pub const DUE_SHARDS: u32 = 16;

/// The due partition of the record with `id`: a stable shard from the id's hash.
pub fn due_partition(kind: &str, id: &str) -> String {
    let digest = sha2::Sha256::digest(id.as_bytes());
    format!("{kind}#{}", u32::from(digest[0]) % DUE_SHARDS)
}

/// Every partition the sweep reads for `kind`: the shards, and the unsharded partition that
/// records written before sharding still sit in.
pub fn due_partitions(kind: &str) -> Vec<String> {
    (0..DUE_SHARDS).map(|n| format!("{kind}#{n}")).chain(std::iter::once(kind.to_string())).collect()
}

/// Sortable timestamp for sort keys.
pub fn sort_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub trait Record: Serialize + DeserializeOwned {
    /// Used in "not found" errors.
    const NAME: &'static str;
    fn key(&self) -> Key;
    fn indexes(&self) -> IndexKeys {
        IndexKeys::default()
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        None
    }
    /// Fields `Tx::adjust` moves in place (`Item::counters`).
    const COUNTERS: &'static [&'static str] = &[];
    /// Kept compressed by stores that can (`Item::compact`).
    const COMPACT: bool = false;
}

/// A record as read, with the version its next write must expect.
#[derive(Debug, Clone)]
pub struct Stored<R> {
    pub value: R,
    pub version: u64,
}

pub fn decode<R: Record>(item: Item) -> AppResult<Stored<R>> {
    let value = item
        .body
        .decode()
        .map_err(|e| AppError::Corrupt(format!("{} {}/{}: {e}", R::NAME, item.key.pk, item.key.sk)))?;
    Ok(Stored { value, version: item.version })
}

fn encode<R: Record>(record: &R, version: u64) -> AppResult<Item> {
    Ok(Item {
        key: record.key(),
        version,
        indexes: record.indexes(),
        expires_at_epoch: record.expires_at_epoch(),
        body: Body::encode(record).map_err(|e| AppError::Corrupt(e.to_string()))?,
        counters: R::COUNTERS,
        compact: R::COMPACT,
    })
}

/// A put that only succeeds if nothing is stored at the record's key yet.
pub fn create<R: Record>(record: &R) -> AppResult<Write> {
    Ok(Write::Put { item: encode(record, 1)?, expect: Expect::Absent })
}

/// A version for a record whose versions must never repeat, written at `now`: its milliseconds,
/// then 20 random bits. An idempotency record that expired (24 h) was written at least a day
/// before any record that replaces it, and a wait slot deleted and taken again gets new random
/// bits, so neither carries the version a late reader of the old one expects (two writes in one
/// millisecond differ by their random bits). 42 bits of milliseconds last until 2109; the whole
/// stays below 2^62, a positive integer in both stores.
pub fn fresh_version(now: chrono::DateTime<chrono::Utc>) -> u64 {
    use rand::Rng;
    const MILLIS_BITS: u32 = 42;
    const RANDOM_BITS: u32 = 20;
    let millis = u64::try_from(now.timestamp_millis()).unwrap_or(0) & ((1 << MILLIS_BITS) - 1);
    (millis << RANDOM_BITS) | rand::rng().random_range(0..1u64 << RANDOM_BITS)
}

/// `create`, at `version` rather than 1 (a record whose versions must never repeat).
pub fn create_at<R: Record>(record: &R, version: u64) -> AppResult<Write> {
    Ok(Write::Put { item: encode(record, version)?, expect: Expect::Absent })
}

/// `update`, to `version` rather than `read_version + 1`.
pub fn replace<R: Record>(record: &R, read_version: u64, version: u64) -> AppResult<Write> {
    Ok(Write::Put { item: encode(record, version)?, expect: Expect::Version(read_version) })
}

/// A put that only succeeds if the stored version is still `read_version`.
pub fn update<R: Record>(record: &R, read_version: u64) -> AppResult<Write> {
    Ok(Write::Put { item: encode(record, read_version + 1)?, expect: Expect::Version(read_version) })
}

/// Every item of a primary-index partition whose sort key starts with `prefix`, oldest first,
/// up to `cap`.
pub fn partition_query(partition: String, prefix: &str, cap: usize) -> Query {
    let mut query = Query::new(Index::Primary, partition, cap);
    query.sk_prefix = Some(prefix.into());
    query.newest_first = false;
    query
}

pub fn org_key(id: &OrgId) -> Key {
    Key::new(format!("ORG#{id}"), "ORG")
}
/// Beside the organisation's own record: one per organisation.
pub fn settings_key(org: &OrgId) -> Key {
    Key::new(format!("ORG#{org}"), "SETTINGS")
}
pub fn api_key_key(id: &ApiKeyId) -> Key {
    Key::new(format!("APIKEY#{id}"), "APIKEY")
}
pub fn wallet_key(id: &WalletId) -> Key {
    Key::new(format!("WALLET#{id}"), "WALLET")
}
pub fn rate_key(wallet: &WalletId) -> Key {
    Key::new(format!("WALLET#{wallet}"), "RATE")
}
/// Sorts before the wallet's `POLICY#` keys: one query with the prefix `POLICY` reads the set
/// first, then its policies (a change committed after the set was read moved the set).
pub fn policy_set_key(wallet: &WalletId) -> Key {
    Key::new(format!("WALLET#{wallet}"), "POLICY")
}
pub fn policy_key(wallet: &WalletId, id: &PolicyId) -> Key {
    Key::new(format!("WALLET#{wallet}"), format!("POLICY#{id}"))
}
/// A shadow policy's would-have counts, beside its wallet (outside the `POLICY` prefix the
/// wallet's policies are queried by).
pub fn shadow_stats_key(wallet: &WalletId, policy: &PolicyId) -> Key {
    Key::new(format!("WALLET#{wallet}"), format!("SHADOW#{policy}"))
}
/// One version of a policy, beside the wallet's policies (the number zero-padded, so a policy's
/// versions sort oldest first); kept after the policy is deleted.
pub fn policy_version_key(wallet: &WalletId, policy: &PolicyId, version: u32) -> Key {
    Key::new(format!("WALLET#{wallet}"), format!("POLICYVER#{policy}#{version:010}"))
}
/// A policy's versions, oldest first (query on `POLICYVER#<policy>#`), up to `cap`.
pub fn policy_versions_query(wallet: &WalletId, policy: &PolicyId, cap: usize) -> Query {
    partition_query(format!("WALLET#{wallet}"), &format!("POLICYVER#{policy}#"), cap)
}
pub fn payment_key(id: &PaymentId) -> Key {
    Key::new(format!("PAYMENT#{id}"), "PAYMENT")
}
pub fn refund_key(id: &crate::domain::ids::RefundId) -> Key {
    Key::new(format!("REFUND#{id}"), "REFUND")
}
pub fn approval_key(id: &ApprovalId) -> Key {
    Key::new(format!("APPROVAL#{id}"), "APPROVAL")
}
/// A comment, in its approval's partition (beside the approval itself), in the order written.
pub fn comment_key(approval: &ApprovalId, id: &CommentId) -> Key {
    Key::new(format!("APPROVAL#{approval}"), format!("COMMENT#{id}"))
}
/// An approval's comments, oldest first (query on `COMMENT#`), up to `cap`.
pub fn comments_query(approval: &ApprovalId, cap: usize) -> Query {
    partition_query(format!("APPROVAL#{approval}"), "COMMENT#", cap)
}
pub fn review_key(id: &ReviewId) -> Key {
    Key::new(format!("REVIEW#{id}"), "REVIEW")
}
pub fn audit_partition(org: &OrgId) -> String {
    format!("ORG#{org}#AUDIT")
}
/// One resource's audit entries (an approval's history), oldest first by id.
pub fn audit_resource_partition(org: &OrgId, resource_id: &str) -> String {
    format!("ORG#{org}#AUDIT#{resource_id}")
}
pub fn by_org_partition(org: &OrgId, kind: &str) -> String {
    format!("ORG#{org}#{kind}")
}
pub fn by_status_partition(org: &OrgId, kind: &str, status: &str) -> String {
    format!("ORG#{org}#{kind}#{status}")
}
pub fn by_wallet_partition(org: &OrgId, wallet: &WalletId, kind: &str) -> String {
    format!("ORG#{org}#WALLET#{wallet}#{kind}")
}

/// Every organisation, in one partition of the by-org index: the sweep seals each one's audit
/// log. Organisations are made by the operator, rarely: one partition holds them well.
pub const ALL_ORGS: &str = "ORGS";

impl Record for Organization {
    const NAME: &'static str = "organization";
    fn key(&self) -> Key {
        org_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys { by_org: Some((ALL_ORGS.into(), self.id.to_string())), ..Default::default() }
    }
}

impl Record for OrgSettings {
    const NAME: &'static str = "settings";
    fn key(&self) -> Key {
        settings_key(&self.org_id)
    }
}

impl Record for ApiKey {
    const NAME: &'static str = "api key";
    fn key(&self) -> Key {
        api_key_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "APIKEY"), self.id.to_string())),
            ..Default::default()
        }
    }
}

impl Record for Wallet {
    const NAME: &'static str = "wallet";
    const COUNTERS: &'static [&'static str] = &["balance", "spentOnDay"];
    fn key(&self) -> Key {
        wallet_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "WALLET"), self.id.to_string())),
            ..Default::default()
        }
    }
}

impl Record for crate::domain::policy_set::PolicySet {
    const NAME: &'static str = "policy set";
    fn key(&self) -> Key {
        policy_set_key(&self.wallet_id)
    }
}

impl Record for Policy {
    const NAME: &'static str = "policy";
    fn key(&self) -> Key {
        policy_key(&self.wallet_id, &self.id)
    }
}

impl Record for crate::domain::shadow::ShadowStats {
    const NAME: &'static str = "shadow stats";
    const COUNTERS: &'static [&'static str] = crate::domain::shadow::COUNTERS;
    fn key(&self) -> Key {
        shadow_stats_key(&self.wallet_id, &self.policy_id)
    }
}

impl Record for crate::domain::policy_version::PolicyVersion {
    const NAME: &'static str = "policy version";
    fn key(&self) -> Key {
        policy_version_key(&self.wallet_id, &self.policy_id, self.version)
    }
}

impl Record for LedgerEntry {
    const NAME: &'static str = "transaction";
    fn key(&self) -> Key {
        Key::new(format!("WALLET#{}", self.wallet_id), format!("TXN#{}", self.id))
    }
}

impl Record for Payment {
    const NAME: &'static str = "payment";
    fn key(&self) -> Key {
        payment_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        let status = self.status().as_str();
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "PAYMENT"), self.id.to_string())),
            // No byStatus entry: a payment changes status once or twice and each change would
            // move it there (two index writes); the rare org-wide listing by status reads byOrg
            // and keeps that status (`list_payments`).
            by_status: None,
            by_wallet: Some((
                by_wallet_partition(&self.org_id, &self.from, "PAYMENT"),
                format!("{status}#{}", self.id),
            )),
            due: None,
        }
    }
}

impl Record for crate::domain::refund::Refund {
    const NAME: &'static str = "refund";
    fn key(&self) -> Key {
        refund_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        let status = self.status.as_str().to_uppercase();
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "REFUND"), self.id.to_string())),
            by_status: Some((by_status_partition(&self.org_id, "REFUND", &status), self.id.to_string())),
            by_wallet: Some((by_wallet_partition(&self.org_id, &self.from, "REFUND"), format!("{status}#{}", self.id))),
            due: None,
        }
    }
}

impl Record for Approval {
    const NAME: &'static str = "approval";
    fn key(&self) -> Key {
        approval_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        let status = self.status.as_str();
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "APPROVAL"), self.id.to_string())),
            by_status: Some((by_status_partition(&self.org_id, "APPROVAL", status), self.id.to_string())),
            by_wallet: Some((
                by_wallet_partition(&self.org_id, &self.wallet_id, "APPROVAL"),
                format!("{status}#{}", self.id),
            )),
            // Sparse: only pending approvals are in the due index, so the sweep reads only them.
            due: self.is_open().then(|| {
                (due_partition(DUE_APPROVALS, self.id.as_str()), format!("{}#{}", sort_time(self.expires_at), self.id))
            }),
        }
    }
}

impl Record for Comment {
    const NAME: &'static str = "comment";
    fn key(&self) -> Key {
        comment_key(&self.approval_id, &self.id)
    }
}

impl Record for crate::domain::velocity::PaymentRate {
    const COUNTERS: &'static [&'static str] = &["count"];
    const NAME: &'static str = "payment rate";
    fn key(&self) -> Key {
        rate_key(&self.wallet_id)
    }
}

/// A wallet's "always allow" rule for one payee: beside the wallet, read by key at intake.
pub fn allow_rule_key(wallet: &WalletId, recipient: &WalletId) -> Key {
    Key::new(format!("WALLET#{wallet}"), format!("ALLOW#{recipient}"))
}

/// Every allow rule of a wallet (at most `cap`).
pub fn allow_rules_query(wallet: &WalletId, cap: usize) -> Query {
    partition_query(format!("WALLET#{wallet}"), "ALLOW#", cap)
}

impl Record for crate::domain::allow_rule::AllowRule {
    const NAME: &'static str = "allow rule";
    fn key(&self) -> Key {
        allow_rule_key(&self.wallet_id, &self.recipient)
    }
}

/// A key's spend and reservations in one currency, window and period: beside the key.
pub fn budget_counter_key(
    key: &ApiKeyId,
    currency: crate::domain::money::Currency,
    period: crate::domain::budget::BudgetPeriod,
) -> Key {
    Key::new(format!("APIKEY#{key}"), format!("BUDGET#{currency}#{}#{}", period.window.as_str(), period.start))
}

impl Record for crate::domain::budget::BudgetCounter {
    const COUNTERS: &'static [&'static str] = &["spent", "reserved", "used"];
    const NAME: &'static str = "budget counter";
    fn key(&self) -> Key {
        budget_counter_key(&self.key_id, self.currency, self.period())
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.expires_at().timestamp())
    }
}

impl Record for Review {
    const NAME: &'static str = "review";
    fn key(&self) -> Key {
        review_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        let status = self.status.as_str().to_uppercase();
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "REVIEW"), self.id.to_string())),
            by_status: Some((by_status_partition(&self.org_id, "REVIEW", &status), self.id.to_string())),
            by_wallet: None,
            // Sparse: only open reviews, so the sweep reads only them.
            due: self.is_open().then(|| {
                (due_partition(DUE_REVIEWS, self.id.as_str()), format!("{}#{}", sort_time(self.expires_at), self.id))
            }),
        }
    }
}

impl Record for AuditEntry {
    const NAME: &'static str = "audit entry";
    fn key(&self) -> Key {
        Key::new(audit_partition(&self.org_id), self.id.to_string())
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys {
            by_wallet: Some((audit_resource_partition(&self.org_id, &self.resource_id), self.id.to_string())),
            ..Default::default()
        }
    }
}

/// An organisation's decision records of one day (UTC), `ORG#<org>#DECIDED#2026-12-07`: a
/// window's statistics read its days, each one bounded query.
pub fn decisions_partition(org: &OrgId, day: chrono::NaiveDate) -> String {
    format!("ORG#{org}#DECIDED#{}", day.format("%Y-%m-%d"))
}
/// `<decidedAt>#<approval>#<approval version>`: in time order within the day.
pub fn decision_sort_key(decided_at: DateTime<Utc>, approval: &ApprovalId, version: u64) -> String {
    format!("{}#{approval}#{version}", sort_time(decided_at))
}

impl Record for crate::domain::decision_stats::DecisionRecord {
    const NAME: &'static str = "decision record";
    fn key(&self) -> Key {
        Key::new(
            decisions_partition(&self.org_id, self.decided_at.date_naive()),
            decision_sort_key(self.decided_at, &self.approval_id, self.approval_version),
        )
    }
}

/// An organisation's sealed checkpoints, by sequence number (zero-padded, so they sort).
pub fn checkpoint_partition(org: &str) -> String {
    format!("ORG#{org}#CHECKPOINT")
}
/// The same checkpoints by the last entry each seals (by-wallet index, sort key `toId~`): the
/// checkpoint that seals entry `e` is the first whose sort key is after `e` (`toId >= e`; the
/// `~` keeps an entry id from ever equalling a sort key, so "after" needs no "at or after").
pub fn checkpoint_by_last_entry(org: &str) -> String {
    format!("ORG#{org}#CHECKPOINT#TO")
}
pub fn checkpoint_sort_key(seq: u64) -> String {
    format!("{seq:012}")
}

impl Record for Checkpoint {
    const NAME: &'static str = "checkpoint";
    fn key(&self) -> Key {
        Key::new(checkpoint_partition(&self.org_id), checkpoint_sort_key(self.seq))
    }
    fn indexes(&self) -> IndexKeys {
        let sk = format!("{}~", self.to_id);
        IndexKeys { by_wallet: Some((checkpoint_by_last_entry(&self.org_id), sk)), ..Default::default() }
    }
}

/// One person's passkeys, by credential id.
pub fn passkey_partition(org: &OrgId, person: &Person) -> String {
    format!("ORG#{org}#PASSKEY#{person}")
}
/// Keyed by the SHA-256 of the credential id: WebAuthn allows ids up to 1,023 bytes, more than a
/// DynamoDB sort key holds once base64url-encoded.
pub fn passkey_key(org: &OrgId, person: &Person, credential_id: &str) -> Key {
    Key::new(passkey_partition(org, person), hex::encode(sha2::Sha256::digest(credential_id.as_bytes())))
}
/// A step-up nonce (random, so unguessable; kept 5 minutes).
pub fn step_up_nonce_key(nonce: &str) -> Key {
    Key::new(format!("STEPUP#{nonce}"), "NONCE")
}
/// A passkey registration's challenge (random; kept 5 minutes).
pub fn registration_challenge_key(challenge: &str) -> Key {
    Key::new(format!("PASSKEYREG#{challenge}"), "CHALLENGE")
}

impl Record for PasskeyCredential {
    const NAME: &'static str = "passkey";
    fn key(&self) -> Key {
        passkey_key(&self.org_id, &self.person, &self.credential_id)
    }
}

impl Record for StepUpNonce {
    const NAME: &'static str = "step-up nonce";
    fn key(&self) -> Key {
        step_up_nonce_key(&self.nonce)
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.expires_at.timestamp())
    }
}

impl Record for RegistrationChallenge {
    const NAME: &'static str = "passkey registration";
    fn key(&self) -> Key {
        registration_challenge_key(&self.challenge)
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.expires_at.timestamp())
    }
}

impl Record for Event {
    const NAME: &'static str = "event";
    // Written once, marked once when published, read whole by the sweep: a third of its size
    // compressed, which on DynamoDB is half its write units.
    const COMPACT: bool = true;
    fn key(&self) -> Key {
        Key::new(format!("EVENT#{}", self.id), "EVENT")
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys {
            due: if self.unpublished() {
                Some((
                    due_partition(DUE_OUTBOX, self.id.as_str()),
                    format!("{}#{}", sort_time(self.created_at), self.id),
                ))
            } else if self.parked_at.is_some() && self.published_at.is_none() {
                Some((PARKED_OUTBOX.to_string(), format!("{}#{}", sort_time(self.created_at), self.id)))
            } else {
                None
            },
            ..Default::default()
        }
    }
}

pub fn member_key(org: &OrgId, id: &MemberId) -> Key {
    Key::new(format!("ORG#{org}#MEMBER"), format!("MEMBER#{id}"))
}
pub fn team_key(org: &OrgId, id: &TeamId) -> Key {
    Key::new(format!("ORG#{org}#TEAM"), format!("TEAM#{id}"))
}
pub fn rule_key(org: &OrgId, id: &RoutingRuleId) -> Key {
    Key::new(format!("ORG#{org}#RULE"), format!("RULE#{id}"))
}

impl Record for Member {
    const NAME: &'static str = "member";
    fn key(&self) -> Key {
        member_key(&self.org_id, &self.id)
    }
}

impl Record for Team {
    const NAME: &'static str = "team";
    fn key(&self) -> Key {
        team_key(&self.org_id, &self.id)
    }
}

/// A policy change (four-eyes), in its organisation's partition of changes.
pub fn policy_change_key(org: &OrgId, id: &crate::domain::ids::PolicyChangeId) -> Key {
    Key::new(format!("ORG#{org}#POLICYCHANGE"), format!("POLICYCHANGE#{id}"))
}

impl Record for crate::domain::policy_change::PolicyChange {
    const NAME: &'static str = "policy change";
    fn key(&self) -> Key {
        policy_change_key(&self.org_id, &self.id)
    }
    fn indexes(&self) -> IndexKeys {
        let status = self.status.as_str().to_uppercase();
        IndexKeys {
            by_org: Some((by_org_partition(&self.org_id, "POLICYCHANGE"), self.id.to_string())),
            by_status: Some((by_status_partition(&self.org_id, "POLICYCHANGE", &status), self.id.to_string())),
            by_wallet: None,
            due: None,
        }
    }
}

impl Record for RoutingRule {
    const NAME: &'static str = "routing rule";
    fn key(&self) -> Key {
        rule_key(&self.org_id, &self.id)
    }
}

pub fn webhook_partition(org: &OrgId) -> String {
    format!("ORG#{org}#WEBHOOK")
}
pub fn webhook_key(org: &OrgId, id: &WebhookId) -> Key {
    Key::new(webhook_partition(org), format!("WEBHOOK#{id}"))
}
pub fn delivery_key(id: &DeliveryId) -> Key {
    Key::new(format!("DELIVERY#{id}"), "DELIVERY")
}
pub fn deliveries_partition(org: &OrgId, webhook: &WebhookId) -> String {
    format!("ORG#{org}#WEBHOOK#{webhook}#DELIVERY")
}

impl Record for Webhook {
    const NAME: &'static str = "webhook";
    fn key(&self) -> Key {
        webhook_key(&self.org_id, &self.id)
    }
}

impl Record for Delivery {
    const NAME: &'static str = "delivery";
    fn key(&self) -> Key {
        delivery_key(&self.id)
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys {
            by_status: Some((by_status_partition(&self.org_id, "DELIVERY", self.status.as_str()), self.id.to_string())),
            by_wallet: Some((deliveries_partition(&self.org_id, &self.webhook_id), self.id.to_string())),
            // Sparse: pending deliveries by next attempt, so the sweep can re-queue any whose
            // queue message was lost.
            due: (self.status == DeliveryStatus::Pending).then(|| {
                let sk = format!("{}#{}", sort_time(self.next_attempt_at), self.id);
                (due_partition(DUE_DELIVERIES, self.id.as_str()), sk)
            }),
            by_org: None,
        }
    }
}

pub fn dead_letter_partition(org: &OrgId) -> String {
    by_status_partition(org, "DELIVERY", DeliveryStatus::Failed.as_str())
}

/// The first response to an idempotent request, replayed for retries with the same key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotencyRecord {
    pub org_id: OrgId,
    /// The key that made the request: records are per calling key.
    pub api_key_id: ApiKeyId,
    pub scope: String,
    pub key: String,
    pub request_hash: String,
    /// The outcome as the service returned it, replayed as it was.
    pub outcome: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Records of one calling key: `IDEM#<org>#<key id>#<scope>#<client key>`. (Records of the
/// earlier layout, `IDEM#<org>#<scope>#<client key>`, shared by the whole organisation, are never
/// read again: their third part is a scope, never a key id, and TTL deletes them within 24 h.)
pub fn idempotency_key(org: &OrgId, caller: &ApiKeyId, scope: &str, key: &str) -> Key {
    Key::new(format!("IDEM#{org}#{caller}#{scope}#{key}"), "IDEM")
}

impl Record for IdempotencyRecord {
    const NAME: &'static str = "idempotency record";
    fn key(&self) -> Key {
        idempotency_key(&self.org_id, &self.api_key_id, &self.scope, &self.key)
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.expires_at.timestamp())
    }
}

/// A notification, in its subject's partition (an approval's or a review's: the outcome finds the
/// messages to update there).
pub fn notification_key(subject: &str, id: &NotificationId) -> Key {
    Key::new(format!("NOTIFICATION#{subject}"), format!("NOTIFICATION#{id}"))
}
/// The organisation's notification log, newest first.
pub fn notifications_partition(org: &OrgId) -> String {
    format!("ORG#{org}#NOTIFICATION")
}

impl Record for Notification {
    const NAME: &'static str = "notification";
    fn key(&self) -> Key {
        notification_key(self.subject_id(), &self.id)
    }
    fn indexes(&self) -> IndexKeys {
        IndexKeys {
            by_org: Some((notifications_partition(&self.org_id), self.id.to_string())),
            by_status: Some((
                by_status_partition(&self.org_id, "NOTIFICATION", self.status.as_str()),
                self.id.to_string(),
            )),
            by_wallet: None,
            // Sparse: pending notifications by next attempt (reminders wait here until due).
            due: (self.status == DeliveryStatus::Pending).then(|| {
                let sk = format!("{}#{}", sort_time(self.next_attempt_at), self.id);
                (due_partition(DUE_NOTIFICATIONS, self.id.as_str()), sk)
            }),
        }
    }
}

pub fn slack_integration_key(org: &OrgId) -> Key {
    Key::new(format!("ORG#{org}#INTEGRATION"), "INTEGRATION#slack")
}

impl Record for SlackIntegration {
    const NAME: &'static str = "slack integration";
    fn key(&self) -> Key {
        slack_integration_key(&self.org_id)
    }
}

pub fn slack_user_key(org: &OrgId, slack_user: &str) -> Key {
    Key::new(format!("ORG#{org}#SLACKUSER"), format!("SLACKUSER#{slack_user}"))
}

impl Record for SlackUserLink {
    const NAME: &'static str = "slack user";
    fn key(&self) -> Key {
        slack_user_key(&self.org_id, &self.slack_user_id)
    }
}

#[cfg(test)]
mod fresh_version_tests {
    use super::fresh_version;

    /// A record written after another expired (a day later) never carries a version a retry
    /// may have read from the expired one, nor 1, and fits both stores' integers.
    #[test]
    fn idempotency_record_versions_never_restart() {
        let then = chrono::Utc::now();
        let later = then + chrono::Duration::hours(24);
        let (old, new) = (fresh_version(then), fresh_version(later));
        assert!(old > 1 && new > old, "{old} then {new}");
        assert!(new < 1 << 62);
        let same_ms: std::collections::HashSet<u64> = (0..64).map(|_| fresh_version(then)).collect();
        assert!(same_ms.len() > 60, "writes in one millisecond differ by their random bits");
    }
}
