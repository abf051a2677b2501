//! The approval state machine: PENDING → APPROVED | REJECTED | EXPIRED, with quorum and separation
//! of duties. Pure: callers persist the result with a conditional write.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::escalation::{self, EscalationError, Route};
use super::ids::{ApiKeyId, ApprovalId, OrgId, PaymentId, PolicyId, RefundId, TeamId, WalletId};
use super::money::{opt_decimal_string, Money};
use super::people::Person;
use super::policy::OnTimeout;
use super::policy_version::PolicyVersionRef;
use rust_decimal::Decimal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApprovalStatus {
    Pending,
    /// Handed to another team; decided like a pending one, by that team.
    Escalated,
    Approved,
    Rejected,
    Expired,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "PENDING",
            ApprovalStatus::Escalated => "ESCALATED",
            ApprovalStatus::Approved => "APPROVED",
            ApprovalStatus::Rejected => "REJECTED",
            ApprovalStatus::Expired => "EXPIRED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionDetails {
    /// `amount` and `currency` on the wire.
    #[serde(flatten)]
    pub amount: Money,
    pub recipient: WalletId,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VoteDecision {
    Approve,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vote {
    pub key_id: ApiKeyId,
    /// The person who voted (unset on votes from before people: the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub person: Option<Person>,
    pub decision: VoteDecision,
    pub note: Option<String>,
    /// What the reviewer approved instead, in words, when they modified it through `/reviews`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_action: Option<String>,
    /// The reviewer's name when the vote came through `/reviews` (looked up from the key's person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewer_name: Option<String>,
    pub at: DateTime<Utc>,
    /// The passkey assertion this vote was made with, when the amount needed a step-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey: Option<crate::domain::step_up::VotePasskey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub id: ApprovalId,
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    pub payment_id: PaymentId,
    /// Set when the approval decides a refund of `payment_id` (not the payment itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<RefundId>,
    pub policy_id: Option<PolicyId>,
    pub transaction_details: TransactionDetails,
    pub status: ApprovalStatus,
    /// Why the payment was held (the deciding rule's explanation).
    pub reason: String,
    pub required_approvals: u32,
    pub votes: Vec<Vote>,
    pub expires_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    pub resolution_note: Option<String>,
    pub created_by: ApiKeyId,
    /// The person who submitted the payment (unset on approvals from before people: the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub created_by_person: Option<Person>,
    /// The team a routing rule assigned; only its members (or an admin key) decide.
    #[serde(default)]
    pub assigned_team: Option<TeamId>,
    /// SHA-256 of the canonical transaction details this approval shows: a decision executes
    /// only a payment with exactly these details (unset on approvals from before binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details_hash: Option<String>,
    /// The amount first asked for, when a reviewer approved a lower one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_amount: Option<Money>,
    /// Escalation tiers (teams) from the holding policy, and what a timeout does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation_chain: Vec<TeamId>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// The window each tier gets (the deadline resets on escalation, within `latest_deadline`).
    #[serde(default)]
    pub window_seconds: u64,
    /// The teams it was assigned before its current one, oldest first: escalation never goes
    /// back to any of them (unset on approvals from before: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_teams: Vec<TeamId>,
    /// What the held payment reserved in its key's budgets, settled when it is decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<super::budget::Reservation>,
    /// The versions of the policies it was held under (its payment's or refund's): its quorum,
    /// escalation chain and step-up threshold are theirs, whatever the policies say now (unset
    /// on approvals from before policy versions: their step-up follows the current policies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_versions: Option<Vec<PolicyVersionRef>>,
    /// The step-up threshold of those versions (the lowest `stepUpAbove` among them): approving
    /// or modifying above it needs a passkey. Meaningful only with `policyVersions`.
    #[serde(default, with = "opt_decimal_string", skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub step_up_above: Option<Decimal>,
    pub created_at: DateTime<Utc>,
}

impl Vote {
    /// The person who cast it.
    pub fn voter(&self) -> Person {
        self.person.clone().unwrap_or_else(|| Person::Key(self.key_id.clone()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval is {0:?}, not PENDING")]
    NotPending(ApprovalStatus),
    #[error("approval window closed; it can no longer be decided")]
    Expired,
    #[error("the key that submitted a payment cannot approve it")]
    SelfApproval,
    #[error("this key has already voted on the approval")]
    AlreadyVoted,
    #[error("{0}")]
    Escalation(#[from] EscalationError),
}

/// What a vote did to the approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Recorded; more approvers are still needed.
    AwaitingMoreApprovals,
    Approved,
    Rejected,
}

/// What an approval decides: its payment, or a refund of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalSubject<'a> {
    Payment(&'a PaymentId),
    Refund { payment: &'a PaymentId, refund: &'a RefundId },
}

impl Approval {
    /// The step-up threshold its votes need when it was pinned at hold time (`Some(None)`: no
    /// step-up); `None` for an approval from before policy versions, whose votes use the
    /// wallet's current policies.
    pub fn pinned_step_up(&self) -> Option<Option<Decimal>> {
        self.policy_versions.as_ref().map(|_| self.step_up_above)
    }

    /// What this approval decides.
    pub fn subject(&self) -> ApprovalSubject<'_> {
        match &self.refund_id {
            None => ApprovalSubject::Payment(&self.payment_id),
            Some(refund) => ApprovalSubject::Refund { payment: &self.payment_id, refund },
        }
    }

    /// Checks the approval can still be decided at `now` (time is checked at the write, not only
    /// by the sweep).
    /// Whether it still waits for a decision (pending or escalated).
    pub fn is_open(&self) -> bool {
        matches!(self.status, ApprovalStatus::Pending | ApprovalStatus::Escalated)
    }

    /// Whether `person` (through `key`) may cast `decision` now: open, not their own request when
    /// approving, and no vote of theirs yet. Checked before anything else a vote needs (a passkey
    /// step-up), so a refusal names the real reason.
    pub fn ensure_may_vote(
        &self,
        person: &Person,
        key: &ApiKeyId,
        decision: VoteDecision,
        now: DateTime<Utc>,
    ) -> Result<(), ApprovalError> {
        self.ensure_open(now)?;
        let submitted_by_voter = *person == self.submitter() || *key == self.created_by;
        if decision == VoteDecision::Approve && submitted_by_voter {
            return Err(ApprovalError::SelfApproval);
        }
        if self.votes.iter().any(|v| v.voter() == *person || v.key_id == *key) {
            return Err(ApprovalError::AlreadyVoted);
        }
        Ok(())
    }

    pub fn ensure_open(&self, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        if !self.is_open() {
            return Err(ApprovalError::NotPending(self.status));
        }
        if now >= self.expires_at {
            return Err(ApprovalError::Expired);
        }
        Ok(())
    }

    /// The person who submitted the payment.
    pub fn submitter(&self) -> Person {
        self.created_by_person.clone().unwrap_or_else(|| Person::Key(self.created_by.clone()))
    }

    /// Records a vote. Any reject ends it; approval needs `required_approvals` distinct people,
    /// none of them the submitter (however many keys one person holds).
    pub fn cast(&mut self, vote: Vote, now: DateTime<Utc>) -> Result<Resolution, ApprovalError> {
        self.ensure_may_vote(&vote.voter(), &vote.key_id, vote.decision, now)?;
        let decision = vote.decision;
        let resolver = vote.key_id.to_string();
        let note = vote.note.clone();
        self.votes.push(vote);
        // Each vote is a distinct person (refused above otherwise), so counting votes counts people.
        let approvals = self.votes.iter().filter(|v| v.decision == VoteDecision::Approve).count();
        let resolution = match decision {
            VoteDecision::Reject => Resolution::Rejected,
            VoteDecision::Approve if approvals as u32 >= self.required_approvals.max(1) => Resolution::Approved,
            VoteDecision::Approve => return Ok(Resolution::AwaitingMoreApprovals),
        };
        self.status = match resolution {
            Resolution::Rejected => ApprovalStatus::Rejected,
            _ => ApprovalStatus::Approved,
        };
        self.resolved_at = Some(now);
        self.resolved_by = Some(resolver);
        self.resolution_note = note;
        Ok(resolution)
    }

    /// Where it stands for escalation: its team, the teams it had, its chain.
    pub fn route(&self) -> Route<'_> {
        Route { current: self.assigned_team.as_ref(), previous: &self.previous_teams, chain: &self.escalation_chain }
    }

    /// Whether `person` (through `key`) submitted it: they never escalate it, as they never
    /// approve it.
    pub fn submitted_by(&self, person: &Person, key: &ApiKeyId) -> bool {
        *person == self.submitter() || *key == self.created_by
    }

    /// The team a person's escalation goes to (`to`, or the chain's next tier), checked forward
    /// only and never by the submitter; the system (the sweep) passes no person.
    pub fn escalation_target(
        &self,
        by: Option<(&Person, &ApiKeyId)>,
        to: Option<&TeamId>,
        admin: bool,
    ) -> Result<TeamId, ApprovalError> {
        if by.is_some_and(|(person, key)| self.submitted_by(person, key)) {
            return Err(EscalationError::BySubmitter.into());
        }
        Ok(self.route().target(to, admin)?)
    }

    /// The latest it may stay open: one window for the team it starts with and one per tier of
    /// its chain, however often it is escalated.
    pub fn latest_deadline(&self) -> DateTime<Utc> {
        escalation::latest_deadline(self.created_at, self.escalation_chain.len(), self.window_seconds)
    }

    /// Hands the open approval to `team` (checked by `escalation_target`) with a fresh window,
    /// cut at `latest_deadline`; `ChainEnded` when none of that time is left.
    pub fn escalate(&mut self, team: TeamId, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        if !self.is_open() {
            return Err(ApprovalError::NotPending(self.status));
        }
        let deadline = escalation::escalated_deadline(now, self.window_seconds, self.latest_deadline())
            .ok_or(EscalationError::ChainEnded)?;
        self.status = ApprovalStatus::Escalated;
        if let Some(previous) = self.assigned_team.replace(team) {
            self.previous_teams.push(previous);
        }
        self.expires_at = deadline;
        Ok(())
    }

    /// Ends an approval nobody decided in time as REJECTED (a policy's `onTimeout: reject`).
    pub fn reject_on_timeout(&mut self, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        if !self.is_open() || now < self.expires_at {
            return Err(ApprovalError::NotPending(self.status));
        }
        self.status = ApprovalStatus::Rejected;
        self.resolved_at = Some(now);
        self.resolved_by = Some("system".into());
        self.resolution_note = Some("no decision in time".into());
        Ok(())
    }

    /// Moves an open approval whose window has passed to EXPIRED.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Result<(), ApprovalError> {
        if !self.is_open() {
            return Err(ApprovalError::NotPending(self.status));
        }
        if now < self.expires_at {
            return Err(ApprovalError::NotPending(self.status));
        }
        self.status = ApprovalStatus::Expired;
        self.resolved_at = Some(now);
        self.resolved_by = Some("system".into());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;

    fn approval(required: u32) -> Approval {
        let now = Utc::now();
        Approval {
            id: ApprovalId::generate(),
            org_id: OrgId::generate(),
            wallet_id: WalletId::generate(),
            payment_id: PaymentId::generate(),
            refund_id: None,
            policy_id: None,
            transaction_details: TransactionDetails {
                amount: Money::parse("5000.00", crate::domain::money::Currency::USD).unwrap(),
                recipient: WalletId::generate(),
                description: None,
            },
            status: ApprovalStatus::Pending,
            reason: "held".into(),
            required_approvals: required,
            votes: vec![],
            expires_at: now + Duration::hours(1),
            resolved_at: None,
            resolved_by: None,
            resolution_note: None,
            created_by: ApiKeyId::generate(),
            created_by_person: None,
            assigned_team: None,
            details_hash: None,
            original_amount: None,
            escalation_chain: vec![],
            on_timeout: OnTimeout::Expire,
            window_seconds: 3600,
            previous_teams: vec![],
            reservation: None,
            policy_versions: None,
            step_up_above: None,
            created_at: now,
        }
    }

    #[test]
    fn the_step_up_is_pinned_only_on_approvals_held_under_versions() {
        let old = approval(1);
        assert_eq!(old.pinned_step_up(), None, "from before versions: the current policies decide");
        let pinned = Approval { policy_versions: Some(vec![]), ..approval(1) };
        assert_eq!(pinned.pinned_step_up(), Some(None), "held with no step-up: none is needed");
        let above = rust_decimal::Decimal::new(10000, 2);
        let pinned = Approval { policy_versions: Some(vec![]), step_up_above: Some(above), ..approval(1) };
        assert_eq!(pinned.pinned_step_up(), Some(Some(above)));
    }

    fn vote(key: &ApiKeyId, decision: VoteDecision) -> Vote {
        Vote {
            passkey: None,
            key_id: key.clone(),
            person: None,
            decision,
            note: None,
            modified_action: None,
            reviewer_name: None,
            at: Utc::now(),
        }
    }

    #[test]
    fn single_approver_approves() {
        let mut a = approval(1);
        let k = ApiKeyId::generate();
        assert_eq!(a.cast(vote(&k, VoteDecision::Approve), Utc::now()), Ok(Resolution::Approved));
        assert_eq!(a.status, ApprovalStatus::Approved);
        assert_eq!(a.resolved_by.as_deref(), Some(k.as_str()));
        assert_eq!(
            a.cast(vote(&ApiKeyId::generate(), VoteDecision::Reject), Utc::now()),
            Err(ApprovalError::NotPending(ApprovalStatus::Approved))
        );
    }

    #[test]
    fn submitter_cannot_approve_but_may_withdraw_by_rejecting() {
        let mut a = approval(1);
        let creator = a.created_by.clone();
        assert_eq!(a.cast(vote(&creator, VoteDecision::Approve), Utc::now()), Err(ApprovalError::SelfApproval));
        assert_eq!(a.cast(vote(&creator, VoteDecision::Reject), Utc::now()), Ok(Resolution::Rejected));
    }

    #[test]
    fn quorum_needs_distinct_approvers() {
        let mut a = approval(2);
        let k1 = ApiKeyId::generate();
        assert_eq!(a.cast(vote(&k1, VoteDecision::Approve), Utc::now()), Ok(Resolution::AwaitingMoreApprovals));
        assert_eq!(a.cast(vote(&k1, VoteDecision::Approve), Utc::now()), Err(ApprovalError::AlreadyVoted));
        assert_eq!(a.status, ApprovalStatus::Pending);
        assert_eq!(a.cast(vote(&ApiKeyId::generate(), VoteDecision::Approve), Utc::now()), Ok(Resolution::Approved));
    }

    #[test]
    fn expired_window_refuses_votes_and_expire_needs_due_time() {
        let mut a = approval(1);
        let later = a.expires_at + Duration::seconds(1);
        assert_eq!(a.cast(vote(&ApiKeyId::generate(), VoteDecision::Approve), later), Err(ApprovalError::Expired));
        assert!(a.expire(Utc::now()).is_err());
        assert!(a.expire(later).is_ok());
        assert_eq!(a.status, ApprovalStatus::Expired);
    }

    proptest! {
        /// Whatever sequence of votes arrives, the approval resolves at most once and never moves
        /// out of a final state.
        #[test]
        fn resolves_at_most_once(votes in proptest::collection::vec((0usize..4, any::<bool>()), 0..12), required in 1u32..4) {
            let mut a = approval(required);
            let keys: Vec<ApiKeyId> = (0..4).map(|_| ApiKeyId::generate()).collect();
            let mut resolutions = 0;
            for (k, approve) in votes {
                let d = if approve { VoteDecision::Approve } else { VoteDecision::Reject };
                let before = a.status;
                match a.cast(vote(&keys[k], d), Utc::now()) {
                    Ok(Resolution::Approved) | Ok(Resolution::Rejected) => resolutions += 1,
                    Ok(Resolution::AwaitingMoreApprovals) => prop_assert_eq!(a.status, ApprovalStatus::Pending),
                    Err(_) => prop_assert_eq!(a.status, before),
                }
            }
            prop_assert!(resolutions <= 1);
        }
    }
}
