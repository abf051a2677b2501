//! A payment held for approval, seen through `/reviews` (docs/api.md, "Reviews"): `task_type: "payment"`, the
//! approval's id as the review id, the approval's state as the review's status. A projection, not
//! a second record: the approval stays the one source of truth, so the two can never disagree.

use chrono::{DateTime, Utc};

use super::approval::{Approval, ApprovalStatus, ApprovalSubject, Vote, VoteDecision};
use super::ids::{ApprovalId, ReviewDecisionId, ReviewId};
use super::payment::Payment;
use super::people::Person;
use super::review::{DecisionType, Review, ReviewDecision, ReviewStatus};

pub use super::routing::{PAYMENT_TASK_TYPE, REFUND_TASK_TYPE};

/// What a `/reviews/{id}` path names: a review, or a held payment by its approval's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewRef {
    Review(ReviewId),
    Payment(ApprovalId),
}

impl ReviewRef {
    pub fn parse(text: &str) -> Option<Self> {
        ReviewId::parse(text).map(ReviewRef::Review).or_else(|| ApprovalId::parse(text).map(ReviewRef::Payment))
    }
}

/// One entry of `/reviews`.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a page holds at most 100; boxing buys nothing here
pub enum ReviewEntry {
    Review(Review),
    Payment(Box<HeldPayment>),
}

impl ReviewEntry {
    pub fn created_at(&self) -> DateTime<Utc> {
        match self {
            ReviewEntry::Review(r) => r.created_at,
            ReviewEntry::Payment(p) => p.approval.created_at,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            ReviewEntry::Review(r) => r.id.as_str(),
            ReviewEntry::Payment(p) => p.approval.id.as_str(),
        }
    }

    pub fn status(&self) -> ReviewStatus {
        match self {
            ReviewEntry::Review(r) => r.status,
            ReviewEntry::Payment(p) => p.status(),
        }
    }

    /// Whether it still waits for a decision.
    pub fn is_open(&self) -> bool {
        matches!(self.status(), ReviewStatus::Pending | ReviewStatus::Escalated)
    }

    /// The decision that closed it, if a person made one.
    pub fn decision(&self) -> Option<DecisionSummary> {
        match self {
            ReviewEntry::Review(r) => r.decision.as_ref().map(DecisionSummary::from),
            ReviewEntry::Payment(p) => p.decision(),
        }
    }
}

impl From<&ReviewDecision> for DecisionSummary {
    fn from(d: &ReviewDecision) -> Self {
        DecisionSummary {
            id: d.id.clone(),
            review_id: d.review_id.to_string(),
            decision_type: d.decision_type,
            modified_action: d.modified_action.clone(),
            notes: d.notes.clone(),
            reviewer: d.reviewer.clone(),
            reviewer_name: d.reviewer_name.clone(),
            timestamp: d.timestamp,
        }
    }
}

/// A decision as `/reviews` shows it, on a review or on a held payment.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionSummary {
    pub id: ReviewDecisionId,
    /// The review's id (for a held payment: its approval's).
    pub review_id: String,
    pub decision_type: DecisionType,
    pub modified_action: Option<String>,
    pub notes: Option<String>,
    pub reviewer: Person,
    /// The reviewer's name when the vote came through `/reviews`; else the person's id.
    pub reviewer_name: String,
    pub timestamp: DateTime<Utc>,
}

/// A held payment with its approval.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldPayment {
    pub approval: Approval,
    pub payment: Payment,
}

impl HeldPayment {
    /// Approved at a lower amount than asked shows as `modified`.
    pub fn status(&self) -> ReviewStatus {
        match self.approval.status {
            ApprovalStatus::Pending => ReviewStatus::Pending,
            ApprovalStatus::Escalated => ReviewStatus::Escalated,
            ApprovalStatus::Approved if self.approval.original_amount.is_some() => ReviewStatus::Modified,
            ApprovalStatus::Approved => ReviewStatus::Approved,
            ApprovalStatus::Rejected => ReviewStatus::Rejected,
            ApprovalStatus::Expired => ReviewStatus::Expired,
        }
    }

    /// `payment`, or `refund` for the approval of a refund of this payment.
    pub fn task_type(&self) -> &'static str {
        match self.approval.subject() {
            ApprovalSubject::Payment(_) => PAYMENT_TASK_TYPE,
            ApprovalSubject::Refund { .. } => REFUND_TASK_TYPE,
        }
    }

    /// The action a reviewer is asked to allow, in words (the structured fields sit beside it).
    pub fn proposed_action(&self) -> String {
        let details = &self.approval.transaction_details;
        let amount = self.approval.original_amount.unwrap_or(details.amount);
        let (verb, of_payment) = match self.approval.subject() {
            ApprovalSubject::Payment(_) => ("Pay", None),
            ApprovalSubject::Refund { payment, .. } => ("Refund", Some(payment)),
        };
        let (from, to) = (&self.approval.wallet_id, &details.recipient);
        let mut action = format!("{verb} {} {} from {from} to {to}", amount.to_wire(), amount.currency().code());
        if let Some(payment) = of_payment {
            action.push_str(&format!(" (payment {payment})"));
        }
        if let Some(description) = &details.description {
            action.push_str(": ");
            action.push_str(description);
        }
        action
    }

    /// The decision that closed the approval (`None` while open, after an expiry, or for a
    /// timeout rejection by the sweep, which no person made).
    pub fn decision(&self) -> Option<DecisionSummary> {
        let closing = match self.approval.status {
            ApprovalStatus::Approved => VoteDecision::Approve,
            ApprovalStatus::Rejected => VoteDecision::Reject,
            _ => return None,
        };
        let vote = self.approval.votes.iter().rev().find(|v| v.decision == closing)?;
        Some(self.decision_of(vote))
    }

    /// `vote`, in the shape of a review decision.
    pub fn decision_of(&self, vote: &Vote) -> DecisionSummary {
        let modified = vote.decision == VoteDecision::Approve && vote.modified_action.is_some();
        let decision_type = match vote.decision {
            VoteDecision::Reject => DecisionType::Reject,
            VoteDecision::Approve if modified => DecisionType::Modify,
            VoteDecision::Approve => DecisionType::Approve,
        };
        let reviewer = vote.voter();
        DecisionSummary {
            id: ReviewDecisionId::for_vote(&self.approval.id, &vote.key_id),
            review_id: self.approval.id.to_string(),
            decision_type,
            modified_action: vote.modified_action.clone(),
            notes: vote.note.clone(),
            reviewer_name: vote.reviewer_name.clone().unwrap_or_else(|| reviewer.to_string()),
            reviewer,
            timestamp: vote.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{ApiKeyId, OrgId, WalletId};
    use crate::domain::money::{Amount, Currency};
    use crate::domain::payment::NewPayment;
    use crate::domain::policy::{Decision, Outcome};

    fn held() -> HeldPayment {
        let request = NewPayment {
            description: Some("ACME invoice".into()),
            ..NewPayment::new(WalletId::generate(), WalletId::generate(), Amount::parse("150.00").unwrap())
        };
        let decision = Decision {
            outcome: Outcome::Hold,
            rule: "r".into(),
            reason: "held".into(),
            policy_id: None,
            approval_ttl_seconds: None,
            required_approvals: 1,
            escalation_chain: vec![],
            on_timeout: Default::default(),
        };
        let amount = request.amount.in_currency(Currency::USD).unwrap();
        let mut payment = Payment::new(OrgId::generate(), &request, amount, decision, ApiKeyId::generate(), Utc::now());
        let approval = payment.hold(3600, Utc::now()).unwrap();
        HeldPayment { approval, payment }
    }

    fn vote(decision: VoteDecision, action: Option<&str>) -> Vote {
        Vote {
            passkey: None,
            key_id: ApiKeyId::generate(),
            person: None,
            decision,
            note: Some("ok".into()),
            modified_action: action.map(str::to_string),
            reviewer_name: None,
            at: Utc::now(),
        }
    }

    #[test]
    fn ids_name_a_review_or_a_held_payment() {
        let review = ReviewId::generate();
        let approval = ApprovalId::generate();
        assert_eq!(ReviewRef::parse(review.as_str()), Some(ReviewRef::Review(review)));
        assert_eq!(ReviewRef::parse(approval.as_str()), Some(ReviewRef::Payment(approval)));
        assert_eq!(ReviewRef::parse("pay_01ARZ3NDEKTSV4RRFFQ69G5FAV"), None);
        assert_eq!(ReviewRef::parse("rev_nope"), None);
    }

    #[test]
    fn status_and_decision_follow_the_approval() {
        let mut h = held();
        assert_eq!(h.status(), ReviewStatus::Pending);
        assert_eq!(h.decision(), None);
        assert_eq!(
            h.proposed_action(),
            format!(
                "Pay 150.00 USD from {} to {}: ACME invoice",
                h.approval.wallet_id, h.approval.transaction_details.recipient
            )
        );

        let now = Utc::now();
        h.approval.cast(vote(VoteDecision::Approve, Some("pay 100")), now).unwrap();
        h.approval.original_amount = Some(h.approval.transaction_details.amount);
        assert_eq!(h.status(), ReviewStatus::Modified);
        let decision = h.decision().unwrap();
        assert_eq!(decision.decision_type, DecisionType::Modify);
        assert_eq!(decision.modified_action.as_deref(), Some("pay 100"));
        assert_eq!(decision.notes.as_deref(), Some("ok"));
        assert_eq!(decision.id, ReviewDecisionId::for_vote(&h.approval.id, &h.approval.votes[0].key_id));
    }

    #[test]
    fn a_rejection_is_the_closing_decision() {
        let mut h = held();
        h.approval.cast(vote(VoteDecision::Reject, None), Utc::now()).unwrap();
        assert_eq!(h.status(), ReviewStatus::Rejected);
        assert_eq!(h.decision().map(|d| d.decision_type), Some(DecisionType::Reject));
    }
}
