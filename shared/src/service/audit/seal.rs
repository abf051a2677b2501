//! Sealing the audit log (the sweep's job, never intake's): per organisation, entries at least
//! [`SEAL_AFTER`] old and not yet sealed become the next checkpoint: the RFC 6962 Merkle root of
//! their hashes in id order, chained to the previous checkpoint and signed. Writers never touch a
//! shared head item; the checkpoint's creation is the one conditional write (sequence numbers
//! are keys), so two sweeps racing make one checkpoint and the loser stops.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::domain::audit::AuditEntry;
use crate::domain::ids::OrgId;
use crate::error::{AppError, AppResult};
use crate::layout::{self, audit_partition, checkpoint_partition, decode, Stored, ALL_ORGS};
use crate::ports::{Index, Position, Query, StoreError};
use crate::proof::checkpoint::{Checkpoint, SealedEntry, GENESIS};
use crate::proof::signing::AuditSigner;
use crate::service::UseCases;

/// How old an entry must be before it is sealed: longer than any plan takes from making an
/// entry (its id carries that time) to committing it, so no entry commits behind a checkpoint
/// that should have held it.
pub const SEAL_AFTER: ChronoDuration = ChronoDuration::seconds(60);
/// Entries in one checkpoint at most (an inclusion proof stays ≤ 10 hashes).
pub const MAX_CHECKPOINT_ENTRIES: usize = 1_000;
/// Organisations sealed at once.
const ORG_CONCURRENCY: usize = 8;
/// Organisations read per page of the organisation list.
const ORG_PAGE: usize = 100;

/// What one sealing pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SealSummary {
    pub organizations: usize,
    pub checkpoints: usize,
    pub entries_sealed: usize,
    /// Organisations whose sealing failed this pass (each logged; retried on the next).
    pub failed: usize,
}

impl std::ops::AddAssign for SealSummary {
    fn add_assign(&mut self, other: Self) {
        self.organizations += other.organizations;
        self.checkpoints += other.checkpoints;
        self.entries_sealed += other.entries_sealed;
        self.failed += other.failed;
    }
}

/// The id every entry made at or before `at` sorts at or below (ULIDs: time first).
fn last_id_at(at: DateTime<Utc>) -> String {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let ulid = ulid::Ulid::from_parts(ms, u128::MAX);
    format!("aud_{ulid}")
}

impl UseCases {
    /// Seals every organisation's entries older than [`SEAL_AFTER`], until each is caught up or
    /// `time_left` says stop. Without a signing key there is nothing to sign with: a no-op.
    pub async fn seal_audit_logs(&self, time_left: &(dyn Fn() -> bool + Sync)) -> AppResult<(SealSummary, bool)> {
        let Some(signer) = self.settings.audit_signer.clone() else {
            return Ok((SealSummary::default(), false));
        };
        let cutoff = last_id_at(self.now() - SEAL_AFTER);
        let mut summary = SealSummary::default();
        let mut first_error = None;
        let mut after: Option<Position> = None;
        loop {
            if !time_left() {
                return Ok((summary, true));
            }
            let mut query = Query::new(Index::ByOrg, ALL_ORGS, ORG_PAGE);
            query.newest_first = false;
            query.after = after.take();
            let items = self.store().query(query).await?;
            let read = items.len();
            after = items.last().map(|i| i.position(Index::ByOrg));
            let orgs: Vec<OrgId> =
                items.iter().filter_map(|i| i.key.pk.strip_prefix("ORG#").and_then(OrgId::parse)).collect();
            let done: Vec<AppResult<SealSummary>> = stream::iter(orgs)
                .map(|org| {
                    let (signer, cutoff) = (&signer, &cutoff);
                    async move { self.seal_org(&org, signer, cutoff, time_left).await }
                })
                .buffer_unordered(ORG_CONCURRENCY)
                .collect()
                .await;
            // One organisation's failure (logged, counted) never holds up the others'.
            for outcome in done {
                match outcome {
                    Ok(sealed) => summary += sealed,
                    Err(e) => {
                        tracing::error!(error = %e, "sealing one organisation's audit log failed; the others go on");
                        summary.failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            if read < ORG_PAGE {
                // Every organisation failing is the phase failing (the store is down, say).
                return match first_error {
                    Some(e) if summary.organizations == 0 => Err(e),
                    _ => Ok((summary, false)),
                };
            }
        }
    }

    /// Seals one organisation's unsealed entries up to `cutoff`, a checkpoint per
    /// [`MAX_CHECKPOINT_ENTRIES`].
    async fn seal_org(
        &self,
        org: &OrgId,
        signer: &AuditSigner,
        cutoff: &str,
        time_left: &(dyn Fn() -> bool + Sync),
    ) -> AppResult<SealSummary> {
        let mut summary = SealSummary { organizations: 1, ..Default::default() };
        let mut last = self.last_checkpoint(org).await?;
        while time_left() {
            let (seq, prev, after) = match &last {
                Some(c) => (c.seq + 1, c.hash.clone(), Some(c.to_id.clone())),
                None => (1, GENESIS.to_string(), None),
            };
            let entries = self.entries_after(org, after.as_deref(), Some(cutoff), MAX_CHECKPOINT_ENTRIES).await?;
            if entries.is_empty() {
                break;
            }
            let sealed: Vec<SealedEntry> =
                entries.iter().map(|e| SealedEntry { id: e.id.to_string(), hash: e.hash.clone() }).collect();
            let checkpoint = Checkpoint::seal(org.as_str(), seq, &prev, &sealed, self.now(), signer)
                .map_err(|e| AppError::Corrupt(format!("cannot seal {org}'s audit log: {e}")))?;
            match self.store().transact(vec![layout::create(&checkpoint)?]).await {
                Ok(()) => {}
                // Another sweep sealed this sequence number first: it is caught up, not us.
                Err(StoreError::ConditionFailed) => break,
                Err(e) => return Err(e.into()),
            }
            summary.checkpoints += 1;
            summary.entries_sealed += sealed.len();
            let full = sealed.len() == MAX_CHECKPOINT_ENTRIES;
            last = Some(checkpoint);
            if !full {
                break;
            }
        }
        Ok(summary)
    }

    /// The organisation's newest checkpoint.
    pub(crate) async fn last_checkpoint(&self, org: &OrgId) -> AppResult<Option<Checkpoint>> {
        let query = Query::new(Index::Primary, checkpoint_partition(org.as_str()), 1);
        let items = self.store().query(query).await?;
        items.into_iter().next().map(|i| decode::<Checkpoint>(i).map(|s| s.value)).transpose()
    }

    /// Up to `limit` audit entries after `after` (an entry id) and at most `at_most`, oldest
    /// first, each with its hash (computed for entries written before hashing).
    pub(crate) async fn entries_after(
        &self,
        org: &OrgId,
        after: Option<&str>,
        at_most: Option<&str>,
        limit: usize,
    ) -> AppResult<Vec<AuditEntry>> {
        let partition = audit_partition(org);
        let mut query = Query::new(Index::Primary, partition.clone(), limit);
        query.newest_first = false;
        query.sk_at_most = at_most.map(str::to_string);
        query.after = after.map(|sk| Position { index_sk: None, pk: partition.clone(), sk: sk.to_string() });
        let items = self.store().query(query).await?;
        items.into_iter().map(|i| decode::<AuditEntry>(i).map(|s: Stored<AuditEntry>| s.value.hashed())).collect()
    }
}
