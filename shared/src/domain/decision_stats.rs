//! Review statistics (docs/api.md, "Review statistics"). Every decision of an approval leaves
//! one immutable `DecisionRecord`, written in the decision's own transaction: approved,
//! rejected, modified (by a person or, for a timeout reject, by the sweep), expired or escalated
//! (a person's or the sweep's). A window's records fold into counts per team, reviewer or
//! agent, with the exact median and 90th percentile of the time from the approval's creation to
//! the decision and the rubber-stamp flag. Pure.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::approval::{Approval, ApprovalStatus};
use super::ids::{ApiKeyId, ApprovalId, OrgId, TeamId, WalletId};
use super::input::InputError;
use super::people::Person;

/// The window when `since` is not given: the 30 days before `until`.
pub const DEFAULT_WINDOW_DAYS: i64 = 30;
/// The longest window one request reads (93 days: a quarter, whichever months it spans).
pub const MAX_WINDOW_DAYS: i64 = 93;
/// The most decision records one request reads; a busier window is refused (400), asking for a
/// narrower one, never answered from part of it.
pub const MAX_STATS_RECORDS: usize = 50_000;
/// A reviewer is a rubber stamp with at least this many decisions in the window …
pub const RUBBER_STAMP_MIN_DECISIONS: u64 = 20;
/// … at least this share of them plain approvals (percent) …
pub const RUBBER_STAMP_APPROVED_PERCENT: u64 = 98;
/// … and a median time to decision under this many seconds.
pub const RUBBER_STAMP_MEDIAN_SECONDS: f64 = 10.0;
/// The group of decisions nobody made (the sweep's expiries, timeout rejections and
/// escalations) when grouped by reviewer.
pub const NO_REVIEWER: &str = "system";
/// The group of decisions of approvals assigned to no team, when grouped by team.
pub const NO_TEAM: &str = "unassigned";

/// What a decision did to the approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionOutcome {
    Approved,
    Rejected,
    /// Approved at a lower amount.
    Modified,
    Expired,
    /// Handed to another team (the approval stays open; its next decision is recorded too).
    Escalated,
}

impl DecisionOutcome {
    /// What the decision that closed `approval` did; `None` while it is open (a vote of a quorum
    /// that still waits for more decides nothing).
    pub fn closing(approval: &Approval) -> Option<Self> {
        match approval.status {
            ApprovalStatus::Approved if approval.original_amount.is_some() => Some(DecisionOutcome::Modified),
            ApprovalStatus::Approved => Some(DecisionOutcome::Approved),
            ApprovalStatus::Rejected => Some(DecisionOutcome::Rejected),
            ApprovalStatus::Expired => Some(DecisionOutcome::Expired),
            ApprovalStatus::Pending | ApprovalStatus::Escalated => None,
        }
    }
}

/// One decision of one approval, as it was made. Never rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionRecord {
    pub org_id: OrgId,
    pub approval_id: ApprovalId,
    /// The approval's version the decision moved on from: an approval decided (escalated, then
    /// approved) twice in one millisecond still leaves two records.
    pub approval_version: u64,
    /// The payer's wallet: keys bound to wallets see only their wallets' decisions.
    pub wallet_id: WalletId,
    pub outcome: DecisionOutcome,
    /// The team the approval was assigned to when decided (for an escalation: the team that
    /// handed it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<TeamId>,
    /// The person who decided (of a quorum: the one whose vote completed it); none for the
    /// sweep's decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer: Option<Person>,
    /// The key that submitted the payment or refund.
    pub agent: ApiKeyId,
    /// Milliseconds from the approval's creation to the decision.
    pub millis_to_decision: u64,
    pub decided_at: DateTime<Utc>,
}

impl DecisionRecord {
    /// The record of `outcome`, decided at `now` on `approval` as read at `version`.
    pub fn new(
        approval: &Approval,
        version: u64,
        outcome: DecisionOutcome,
        team: Option<TeamId>,
        reviewer: Option<Person>,
        now: DateTime<Utc>,
    ) -> Self {
        let millis = (now - approval.created_at).num_milliseconds().max(0);
        DecisionRecord {
            org_id: approval.org_id.clone(),
            approval_id: approval.id.clone(),
            approval_version: version,
            wallet_id: approval.wallet_id.clone(),
            outcome,
            team,
            reviewer,
            agent: approval.created_by.clone(),
            millis_to_decision: u64::try_from(millis).unwrap_or(0),
            decided_at: now,
        }
    }
}

/// How decisions are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Team,
    Reviewer,
    Agent,
}

impl GroupBy {
    pub fn parse(text: &str) -> Result<Self, InputError> {
        match text {
            "team" => Ok(GroupBy::Team),
            "reviewer" => Ok(GroupBy::Reviewer),
            "agent" => Ok(GroupBy::Agent),
            _ => Err(InputError::invalid("groupBy", "must be team, reviewer or agent")),
        }
    }

    /// The group `record` falls in.
    pub fn key_of(self, record: &DecisionRecord) -> String {
        match self {
            GroupBy::Team => record.team.as_ref().map_or_else(|| NO_TEAM.to_string(), ToString::to_string),
            GroupBy::Reviewer => record.reviewer.as_ref().map_or_else(|| NO_REVIEWER.to_string(), ToString::to_string),
            GroupBy::Agent => record.agent.to_string(),
        }
    }
}

/// The time a statistics request covers: from `since` (included) to `until` (excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Window {
    /// `until` defaults to `now`, `since` to 30 days before `until`; `since` must come before
    /// `until`, at most 93 days before it.
    pub fn resolve(
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Self, InputError> {
        let until = until.unwrap_or(now);
        let since = match since {
            Some(since) => since,
            None => until
                .checked_sub_signed(Duration::days(DEFAULT_WINDOW_DAYS))
                .ok_or_else(|| InputError::invalid("until", "is too early"))?,
        };
        if since >= until {
            return Err(InputError::invalid("since", "must be before until"));
        }
        if until - since > Duration::days(MAX_WINDOW_DAYS) {
            return Err(InputError::invalid(
                "since",
                format!("the window is at most {MAX_WINDOW_DAYS} days: ask for a narrower one"),
            ));
        }
        Ok(Window { since, until })
    }

    /// The days (UTC) the window touches, oldest first: at most 94.
    pub fn days(&self) -> Vec<NaiveDate> {
        let last = (self.until - Duration::milliseconds(1)).date_naive();
        self.since.date_naive().iter_days().take_while(|d| *d <= last).collect()
    }

    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.since <= at && at < self.until
    }
}

/// `2026-12-07` (midnight UTC) or an RFC 3339 time, for `field`.
pub fn parse_instant(field: &'static str, text: &str) -> Result<DateTime<Utc>, InputError> {
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        if let Some(midnight) = day.and_hms_opt(0, 0, 0) {
            return Ok(midnight.and_utc());
        }
    }
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        InputError::invalid(field, "must be a date (2026-12-07) or an RFC 3339 time (2026-12-07T09:30:00Z)")
    })
}

/// One group's figures.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStats {
    /// The team's, reviewer's (member or key) or agent's (key) id; `unassigned` (no team) or
    /// `system` (no reviewer: the sweep's decisions).
    pub key: String,
    /// The team's, member's or key's name, where it still exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub decided: u64,
    pub approved: u64,
    pub rejected: u64,
    pub modified: u64,
    pub expired: u64,
    pub escalated: u64,
    /// Seconds from the approvals' creation to these decisions: the median (the middle value;
    /// the mean of the two middle ones for an even count) …
    pub median_seconds: f64,
    /// … and the 90th percentile (nearest rank: the smallest value at least 90 % are at or under).
    pub p90_seconds: f64,
    /// A reviewer with ≥ 20 decisions, ≥ 98 % plain approvals and a median under 10 s.
    pub rubber_stamp: bool,
}

/// The median of sorted values (the mean of the two middle ones for an even count); 0 for none.
pub fn median(sorted: &[u64]) -> f64 {
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2] as f64,
        _ => (sorted[n / 2 - 1] as f64 + sorted[n / 2] as f64) / 2.0,
    }
}

/// The nearest-rank percentile `p` (1-100) of sorted values: the value at rank ⌈p·n/100⌉; 0 for none.
pub fn nearest_rank(sorted: &[u64], p: usize) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    let rank = (p * n).div_ceil(100).clamp(1, n);
    sorted[rank - 1] as f64
}

/// Counts, times and the flag of each group of `records`, the busiest first (then by key).
pub fn summarize<'a>(records: impl IntoIterator<Item = &'a DecisionRecord>, by: GroupBy) -> Vec<GroupStats> {
    let mut groups: std::collections::BTreeMap<String, (GroupStats, Vec<u64>)> = Default::default();
    for record in records {
        let key = by.key_of(record);
        let (stats, times) = groups.entry(key.clone()).or_insert_with(|| (empty(key), Vec::new()));
        stats.decided += 1;
        *match record.outcome {
            DecisionOutcome::Approved => &mut stats.approved,
            DecisionOutcome::Rejected => &mut stats.rejected,
            DecisionOutcome::Modified => &mut stats.modified,
            DecisionOutcome::Expired => &mut stats.expired,
            DecisionOutcome::Escalated => &mut stats.escalated,
        } += 1;
        times.push(record.millis_to_decision);
    }
    let mut out: Vec<GroupStats> = groups
        .into_values()
        .map(|(mut stats, mut times)| {
            times.sort_unstable();
            stats.median_seconds = median(&times) / 1000.0;
            stats.p90_seconds = nearest_rank(&times, 90) / 1000.0;
            stats.rubber_stamp = by == GroupBy::Reviewer && stats.key != NO_REVIEWER && rubber_stamp(&stats);
            stats
        })
        .collect();
    out.sort_by(|a, b| b.decided.cmp(&a.decided).then_with(|| a.key.cmp(&b.key)));
    out
}

fn empty(key: String) -> GroupStats {
    GroupStats {
        key,
        name: None,
        decided: 0,
        approved: 0,
        rejected: 0,
        modified: 0,
        expired: 0,
        escalated: 0,
        median_seconds: 0.0,
        p90_seconds: 0.0,
        rubber_stamp: false,
    }
}

/// Many decisions, nearly all plain approvals, made fast.
fn rubber_stamp(stats: &GroupStats) -> bool {
    stats.decided >= RUBBER_STAMP_MIN_DECISIONS
        && stats.approved * 100 >= RUBBER_STAMP_APPROVED_PERCENT * stats.decided
        && stats.median_seconds < RUBBER_STAMP_MEDIAN_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(reviewer: Option<&ApiKeyId>, outcome: DecisionOutcome, millis: u64) -> DecisionRecord {
        DecisionRecord {
            org_id: OrgId::generate(),
            approval_id: ApprovalId::generate(),
            approval_version: 1,
            wallet_id: WalletId::generate(),
            outcome,
            team: None,
            reviewer: reviewer.map(|k| Person::Key(k.clone())),
            agent: ApiKeyId::generate(),
            millis_to_decision: millis,
            decided_at: Utc::now(),
        }
    }

    #[test]
    fn median_and_p90_are_exact() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[7]), 7.0);
        assert_eq!(median(&[1, 2, 3, 10]), 2.5);
        assert_eq!(median(&[1, 2, 3, 4, 100]), 3.0);
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(nearest_rank(&ten, 90), 9.0);
        let eleven: Vec<u64> = (1..=11).collect();
        assert_eq!(nearest_rank(&eleven, 90), 10.0, "rank ⌈9.9⌉ = 10");
        assert_eq!(nearest_rank(&[5], 90), 5.0);
        assert_eq!(nearest_rank(&[], 90), 0.0);
    }

    #[test]
    fn a_fast_approver_is_a_rubber_stamp_and_a_slow_or_mixed_one_is_not() {
        let (fast, slow, mixed) = (ApiKeyId::generate(), ApiKeyId::generate(), ApiKeyId::generate());
        let mut records: Vec<DecisionRecord> =
            (0..20).map(|_| record(Some(&fast), DecisionOutcome::Approved, 3_000)).collect();
        records.extend((0..20).map(|_| record(Some(&slow), DecisionOutcome::Approved, 10_000)));
        records.extend((0..19).map(|_| record(Some(&mixed), DecisionOutcome::Approved, 1_000)));
        records.push(record(Some(&mixed), DecisionOutcome::Rejected, 1_000));
        records.extend((0..25).map(|_| record(None, DecisionOutcome::Expired, 1_000)));
        let groups = summarize(&records, GroupBy::Reviewer);
        let flag = |k: &str| groups.iter().find(|g| g.key == k).map(|g| g.rubber_stamp);
        assert_eq!(flag(fast.as_str()), Some(true));
        assert_eq!(flag(slow.as_str()), Some(false), "a median of exactly 10 s is not under 10 s");
        assert_eq!(flag(mixed.as_str()), Some(false), "19 of 20 is 95 %");
        assert_eq!(flag(NO_REVIEWER), Some(false), "the sweep is nobody");
        assert_eq!(groups[0].key, NO_REVIEWER, "the busiest first");
        let by_team = summarize(&records, GroupBy::Team);
        assert_eq!(by_team.len(), 1);
        assert_eq!((by_team[0].key.as_str(), by_team[0].decided, by_team[0].rubber_stamp), (NO_TEAM, 85, false));
    }

    #[test]
    fn windows_default_and_refuse_what_they_cannot_read() {
        let now = parse_instant("until", "2026-12-07T12:00:00Z").unwrap();
        let w = Window::resolve(None, None, now).unwrap();
        assert_eq!((w.until, w.until - w.since), (now, Duration::days(30)));
        let day = |d| parse_instant("since", d).unwrap();
        assert!(Window::resolve(Some(day("2026-01-01")), Some(day("2026-04-04")), now).is_ok(), "93 days");
        assert!(Window::resolve(Some(day("2026-01-01")), Some(day("2026-04-05")), now).is_err(), "94 days");
        assert!(Window::resolve(Some(now), Some(now), now).is_err());
        assert!(Window::resolve(Some(now + Duration::days(1)), None, now).is_err());
        let w = Window::resolve(Some(day("2026-12-01")), Some(day("2026-12-03")), now).unwrap();
        assert_eq!(w.days(), vec![day("2026-12-01").date_naive(), day("2026-12-02").date_naive()]);
        assert!(parse_instant("since", "yesterday").is_err());
        assert!(parse_instant("since", "2026-02-30").is_err());
        assert_eq!(parse_instant("since", "2026-12-07T10:00:00+02:00").unwrap(), day("2026-12-07T08:00:00Z"));
    }
}
