//! Reviews (docs/api.md, "Reviews"; Humancheck-compatible): an agent proposes any action and a person
//! approves, rejects or modifies it; nothing is executed by us. pending → approved | rejected |
//! modified | expired, decided once. Pure: callers persist the result with a conditional write.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::escalation::{self, EscalationError, Route};
use super::ids::{ApiKeyId, OrgId, ReviewDecisionId, ReviewId, TeamId};
use super::payment::Urgency;
use super::people::Person;
use super::score::Score;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReviewStatus {
    Pending,
    Approved,
    Rejected,
    Modified,
    /// Handed to another team; decided like a pending one.
    Escalated,
    Expired,
}

impl ReviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Modified => "modified",
            ReviewStatus::Escalated => "escalated",
            ReviewStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionType {
    Approve,
    Reject,
    Modify,
}

impl DecisionType {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// A person's decision on a review. `reviewer_id`/`reviewer_name` are the deciding key's
/// person (a member's id and name, or the key's id and name), never what a client says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewDecision {
    pub id: ReviewDecisionId,
    pub review_id: ReviewId,
    pub decision_type: DecisionType,
    pub modified_action: Option<String>,
    pub notes: Option<String>,
    pub reviewer: Person,
    pub reviewer_name: String,
    /// The key the decision came through.
    pub key_id: ApiKeyId,
    pub timestamp: DateTime<Utc>,
}

/// A review request that passed every check needing no stored state.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReview {
    pub task_type: String,
    pub proposed_action: String,
    pub agent_reasoning: Option<String>,
    pub confidence_score: Option<Score>,
    pub urgency: Urgency,
    pub framework: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    pub id: ReviewId,
    pub org_id: OrgId,
    pub task_type: String,
    pub proposed_action: String,
    pub agent_reasoning: Option<String>,
    pub confidence_score: Option<Score>,
    pub urgency: Urgency,
    pub framework: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub status: ReviewStatus,
    pub assigned_team: Option<TeamId>,
    pub created_by: ApiKeyId,
    /// The person who asked for the review: they may reject (withdraw) it, never approve it.
    pub created_by_person: Person,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decision: Option<ReviewDecision>,
    /// The teams it was assigned before its current one, oldest first: escalation never goes
    /// back to any of them (unset on reviews from before: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_teams: Vec<TeamId>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    #[error("review is {}, not pending", .0.as_str())]
    NotPending(ReviewStatus),
    #[error("review window closed; it can no longer be decided")]
    Expired,
    #[error("the person who asked for a review cannot approve it")]
    SelfApproval,
    #[error("{0}")]
    Escalation(#[from] EscalationError),
}

/// A review's window in seconds: at most 30 days.
fn window(ttl_seconds: u64) -> i64 {
    i64::try_from(ttl_seconds).unwrap_or(i64::MAX / 1000).min(30 * 24 * 3600)
}

impl Review {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        org_id: OrgId,
        request: NewReview,
        created_by: ApiKeyId,
        created_by_person: Person,
        assigned_team: Option<TeamId>,
        ttl_seconds: u64,
        now: DateTime<Utc>,
    ) -> Self {
        let ttl = window(ttl_seconds);
        Review {
            id: ReviewId::generate(),
            org_id,
            task_type: request.task_type,
            proposed_action: request.proposed_action,
            agent_reasoning: request.agent_reasoning,
            confidence_score: request.confidence_score,
            urgency: request.urgency,
            framework: request.framework,
            metadata: request.metadata,
            status: ReviewStatus::Pending,
            assigned_team,
            created_by,
            created_by_person,
            created_at: now,
            updated_at: now,
            expires_at: now + chrono::Duration::seconds(ttl),
            decision: None,
            previous_teams: Vec::new(),
        }
    }

    /// Whether it still waits for a decision (pending or escalated).
    pub fn is_open(&self) -> bool {
        matches!(self.status, ReviewStatus::Pending | ReviewStatus::Escalated)
    }

    /// Records `decision`, once. Time is checked here (at the write), not only by the sweep.
    pub fn decide(&mut self, decision: ReviewDecision, now: DateTime<Utc>) -> Result<(), ReviewError> {
        if !self.is_open() {
            return Err(ReviewError::NotPending(self.status));
        }
        if now >= self.expires_at {
            return Err(ReviewError::Expired);
        }
        let by_submitter = decision.reviewer == self.created_by_person || decision.key_id == self.created_by;
        if decision.decision_type != DecisionType::Reject && by_submitter {
            return Err(ReviewError::SelfApproval);
        }
        self.status = match decision.decision_type {
            DecisionType::Approve => ReviewStatus::Approved,
            DecisionType::Reject => ReviewStatus::Rejected,
            DecisionType::Modify => ReviewStatus::Modified,
        };
        self.updated_at = now;
        self.decision = Some(decision);
        Ok(())
    }

    /// The team `person` (through `key`) may hand it to: a review has no chain, so only an admin
    /// names one, never a team it had, and never the person who asked for it.
    pub fn escalation_target(
        &self,
        person: &Person,
        key: &ApiKeyId,
        to: &TeamId,
        admin: bool,
    ) -> Result<TeamId, ReviewError> {
        if !self.is_open() {
            return Err(ReviewError::NotPending(self.status));
        }
        if *person == self.created_by_person || *key == self.created_by {
            return Err(EscalationError::BySubmitter.into());
        }
        let route = Route { current: self.assigned_team.as_ref(), previous: &self.previous_teams, chain: &[] };
        Ok(route.target(Some(to), admin)?)
    }

    /// Hands an open review to `team` (checked by `escalation_target`) with a fresh window of
    /// `ttl_seconds`, cut at one window after its creation (it has no chain of tiers).
    pub fn escalate(&mut self, team: TeamId, ttl_seconds: u64, now: DateTime<Utc>) -> Result<(), ReviewError> {
        if !self.is_open() {
            return Err(ReviewError::NotPending(self.status));
        }
        if now >= self.expires_at {
            return Err(ReviewError::Expired);
        }
        let latest = escalation::latest_deadline(self.created_at, 0, ttl_seconds).max(self.expires_at);
        let window = u64::try_from(window(ttl_seconds)).unwrap_or(0);
        let deadline = escalation::escalated_deadline(now, window, latest).ok_or(EscalationError::ChainEnded)?;
        self.status = ReviewStatus::Escalated;
        if let Some(previous) = self.assigned_team.replace(team) {
            self.previous_teams.push(previous);
        }
        self.expires_at = deadline;
        self.updated_at = now;
        Ok(())
    }

    /// Moves an open review whose window has passed to expired.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<(), ReviewError> {
        if !self.is_open() || now < self.expires_at {
            return Err(ReviewError::NotPending(self.status));
        }
        self.status = ReviewStatus::Expired;
        self.updated_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn review() -> Review {
        let key = ApiKeyId::generate();
        let request = NewReview {
            task_type: "payment".into(),
            proposed_action: "pay".into(),
            agent_reasoning: None,
            confidence_score: None,
            urgency: Urgency::Medium,
            framework: None,
            metadata: Default::default(),
        };
        Review::new(OrgId::generate(), request, key.clone(), Person::Key(key), None, 3600, Utc::now())
    }

    fn decision(r: &Review, by: &ApiKeyId, decision_type: DecisionType) -> ReviewDecision {
        ReviewDecision {
            id: ReviewDecisionId::generate(),
            review_id: r.id.clone(),
            decision_type,
            modified_action: None,
            notes: None,
            reviewer: Person::Key(by.clone()),
            reviewer_name: "k".into(),
            key_id: by.clone(),
            timestamp: Utc::now(),
        }
    }

    #[test]
    fn decided_once() {
        let mut r = review();
        let k = ApiKeyId::generate();
        assert_eq!(r.decide(decision(&r, &k, DecisionType::Modify), Utc::now()), Ok(()));
        assert_eq!(r.status, ReviewStatus::Modified);
        assert_eq!(
            r.decide(decision(&r, &k, DecisionType::Reject), Utc::now()),
            Err(ReviewError::NotPending(ReviewStatus::Modified))
        );
    }

    #[test]
    fn submitter_may_reject_but_not_approve() {
        let mut r = review();
        let me = r.created_by.clone();
        assert_eq!(r.decide(decision(&r, &me, DecisionType::Approve), Utc::now()), Err(ReviewError::SelfApproval));
        assert_eq!(r.decide(decision(&r, &me, DecisionType::Modify), Utc::now()), Err(ReviewError::SelfApproval));
        assert_eq!(r.decide(decision(&r, &me, DecisionType::Reject), Utc::now()), Ok(()));
    }

    #[test]
    fn escalation_moves_an_open_review_to_another_team_within_its_window() {
        let mut r = review();
        let now = Utc::now();
        let team = TeamId::generate();
        let created = r.created_at;
        assert_eq!(r.escalate(team.clone(), 3600, now), Ok(()));
        assert_eq!((r.status, r.assigned_team.as_ref()), (ReviewStatus::Escalated, Some(&team)));
        assert_eq!(r.expires_at, created + Duration::seconds(3600), "no later than one window after creation");
        let k = ApiKeyId::generate();
        assert_eq!(r.decide(decision(&r, &k, DecisionType::Approve), now), Ok(()));
        assert_eq!(r.escalate(team, 600, now), Err(ReviewError::NotPending(ReviewStatus::Approved)));
    }

    #[test]
    fn only_an_admin_hands_a_review_on_forward_and_never_its_asker() {
        let mut r = review();
        let (asker, key) = (r.created_by_person.clone(), r.created_by.clone());
        let (other, admin_key) = (ApiKeyId::generate(), ApiKeyId::generate());
        let them = Person::Key(other.clone());
        let (first, second) = (TeamId::generate(), TeamId::generate());
        let by_submitter = Err(ReviewError::Escalation(EscalationError::BySubmitter));
        assert_eq!(r.escalation_target(&asker, &key, &first, true), by_submitter);
        let needs_admin = Err(ReviewError::Escalation(EscalationError::NamedTeamNeedsAdmin));
        assert_eq!(r.escalation_target(&them, &other, &first, false), needs_admin);
        let admin = Person::Key(admin_key.clone());
        assert_eq!(r.escalation_target(&admin, &admin_key, &first, true), Ok(first.clone()));
        r.escalate(first.clone(), 3600, Utc::now()).expect("escalate");
        r.escalate(second.clone(), 3600, Utc::now()).expect("escalate");
        assert_eq!(r.previous_teams, vec![first.clone()]);
        let had = Err(ReviewError::Escalation(EscalationError::AlreadyAssigned(first.clone())));
        assert_eq!(r.escalation_target(&admin, &admin_key, &first, true), had);
    }

    #[test]
    fn expiry_needs_the_due_time_and_closes_the_review() {
        let mut r = review();
        let later = r.expires_at + Duration::seconds(1);
        let k = ApiKeyId::generate();
        assert_eq!(r.decide(decision(&r, &k, DecisionType::Approve), later), Err(ReviewError::Expired));
        assert!(r.expire(Utc::now()).is_err());
        assert_eq!(r.expire(later), Ok(()));
        assert_eq!(r.status, ReviewStatus::Expired);
    }
}
