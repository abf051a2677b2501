//! Review statistics (docs/api.md, "Review statistics"): the one write every decision of an
//! approval adds to its own transaction (`record_closing`, `record_escalation`), and
//! `GET /v1/stats/approvals`, which reads a window's records day partition by day partition
//! (one bounded query each, never a scan) and folds them into groups.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::domain::approval::Approval;
use crate::domain::decision_stats::{
    summarize, DecisionOutcome, DecisionRecord, GroupBy, GroupStats, Window, MAX_STATS_RECORDS,
};
use crate::domain::ids::{ApiKeyId, OrgId, TeamId};
use crate::domain::input::InputError;
use crate::domain::org::ApiKey;
use crate::domain::people::Person;
use crate::domain::permission::Permission;
use crate::engine::plan::Tx;
use crate::error::AppResult;
use crate::layout::{api_key_key, decisions_partition, decode, sort_time, Stored};
use crate::ports::{Index, Position, Query};
use crate::service::{require, Caller, UseCases};

/// Day partitions read at once.
const DAYS_AT_ONCE: usize = 8;
/// Records one query of a day asks for.
const PAGE: usize = 1_000;

/// What `GET /v1/stats/approvals` answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalStats {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub group_by: GroupBy,
    pub groups: Vec<GroupStats>,
}

/// What closing `approval` (read at `approval.version`, now closed by this plan) decided, by
/// `reviewer` (none: the sweep), for the team it was assigned to: its record, in `tx`. Nothing
/// while it is still open (a vote of a quorum that waits for more decides nothing).
pub(crate) fn record_closing(tx: &mut Tx, approval: &Stored<Approval>, reviewer: Option<Person>) -> AppResult<()> {
    match DecisionOutcome::closing(&approval.value) {
        Some(outcome) => {
            let team = approval.value.assigned_team.clone();
            tx.create(&DecisionRecord::new(&approval.value, approval.version, outcome, team, reviewer, tx.now()))
        }
        None => Ok(()),
    }
}

/// An escalation of `approval` (read at `approval.version`) away from team `from`, by `by`
/// (none: the sweep): its record, in `tx`.
pub(crate) fn record_escalation(
    tx: &mut Tx,
    approval: &Stored<Approval>,
    from: Option<TeamId>,
    by: Option<Person>,
) -> AppResult<()> {
    let record = DecisionRecord::new(&approval.value, approval.version, DecisionOutcome::Escalated, from, by, tx.now());
    tx.create(&record)
}

impl UseCases {
    /// `GET /v1/stats/approvals`: the decisions of `window` (those of the caller's wallets, for a
    /// key bound to some), grouped `by` team, reviewer or agent, with the groups' names.
    pub async fn approval_stats(
        &self,
        caller: &Caller,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        by: GroupBy,
    ) -> AppResult<ApprovalStats> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        let window = Window::resolve(since, until, self.now())?;
        let records = self.decisions_in(&caller.org_id, &window).await?;
        let mine = records.iter().filter(|r| caller.may_use(&r.wallet_id));
        let mut groups = summarize(mine, by);
        self.name_groups(caller, by, &mut groups).await?;
        Ok(ApprovalStats { since: window.since, until: window.until, group_by: by, groups })
    }

    /// Every decision record of `org` in `window`, oldest day first; refused (400) when there are
    /// more than `MAX_STATS_RECORDS`.
    async fn decisions_in(&self, org: &OrgId, window: &Window) -> AppResult<Vec<DecisionRecord>> {
        let read = AtomicUsize::new(0);
        let read = &read;
        let days: Vec<Vec<DecisionRecord>> = futures::stream::iter(window.days())
            .map(|day| self.decisions_of_day(org, day, window, read))
            .buffered(DAYS_AT_ONCE)
            .try_collect()
            .await?;
        Ok(days.into_iter().flatten().collect())
    }

    /// One day's records within `window`, page by page; counts them into `read` and stops with
    /// the refusal once it passes the cap (so a busy window costs at most a page per day read at
    /// once beyond it).
    async fn decisions_of_day(
        &self,
        org: &OrgId,
        day: NaiveDate,
        window: &Window,
        read: &AtomicUsize,
    ) -> AppResult<Vec<DecisionRecord>> {
        let partition = decisions_partition(org, day);
        // Sort keys start with the decision's time to the millisecond: `since`'s millisecond
        // sorts before every key of that millisecond, and `~` after every key of `until`'s (the
        // records' own times then decide at the edges).
        let mut after = Some(Position { index_sk: None, pk: partition.clone(), sk: sort_time(window.since) });
        let mut records = Vec::new();
        loop {
            let mut query = Query::new(Index::Primary, partition.clone(), PAGE);
            query.newest_first = false;
            query.sk_at_most = Some(format!("{}~", sort_time(window.until)));
            query.after = after.take();
            let items = self.store().query(query).await?;
            let n = items.len();
            let last = items.last().map(|i| i.position(Index::Primary));
            if read.fetch_add(n, Ordering::Relaxed) + n > MAX_STATS_RECORDS {
                return Err(InputError::invalid(
                    "since",
                    format!("the window holds more than {MAX_STATS_RECORDS} decisions: ask for a narrower one"),
                )
                .into());
            }
            for item in items {
                let record = decode::<DecisionRecord>(item)?.value;
                // The sort key's bounds are by text; the record's own time decides.
                if window.contains(record.decided_at) {
                    records.push(record);
                }
            }
            if n < PAGE {
                return Ok(records);
            }
            after = last;
        }
    }

    /// The names of the groups' teams, members and keys (a group whose team, member or key is
    /// gone keeps its id alone).
    async fn name_groups(&self, caller: &ApiKey, by: GroupBy, groups: &mut [GroupStats]) -> AppResult<()> {
        let org = &caller.org_id;
        let r = self.reader();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut keys: BTreeSet<ApiKeyId> = BTreeSet::new();
        match by {
            GroupBy::Team => names.extend(r.org_teams(org).await?.into_iter().map(|t| (t.id.to_string(), t.name))),
            GroupBy::Reviewer => {
                if groups.iter().any(|g| g.key.starts_with(crate::domain::ids::MemberId::PREFIX)) {
                    names.extend(r.org_members(org).await?.into_iter().map(|m| (m.id.to_string(), m.name)));
                }
                keys.extend(groups.iter().filter_map(|g| ApiKeyId::parse(&g.key)));
            }
            GroupBy::Agent => keys.extend(groups.iter().filter_map(|g| ApiKeyId::parse(&g.key))),
        }
        if !keys.is_empty() {
            let wanted: Vec<_> = keys.iter().map(api_key_key).collect();
            for item in self.store().get_many(&wanted).await?.into_iter().flatten() {
                let key = decode::<ApiKey>(item)?.value;
                // Ids are global: a key of another organisation is never named here.
                if key.org_id == *org {
                    names.insert(key.id.to_string(), key.name);
                }
            }
        }
        for group in groups {
            group.name = names.get(&group.key).cloned();
        }
        Ok(())
    }
}
