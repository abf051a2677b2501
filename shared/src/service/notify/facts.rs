//! What a notification says, gathered from the approval as it stands when the message is sent
//! (so a retried or reminding message never shows stale state).

use crate::domain::approval::{Approval, ApprovalStatus, VoteDecision};
use crate::domain::ids::OrgId;
use crate::domain::notify_facts::{NoticeKind, NotifyFacts, OutcomeFacts};
use crate::domain::payment::Payment;
use crate::domain::people::{Member, Person, Team};
use crate::error::AppResult;
use crate::layout::{member_key, payment_key, team_key};
use crate::service::UseCases;

impl UseCases {
    /// The facts of `approval` for a message of `kind`.
    pub(crate) async fn notify_facts(&self, approval: &Approval, kind: NoticeKind) -> AppResult<NotifyFacts> {
        let r = self.reader();
        let payment = r.read::<Payment>(&payment_key(&approval.payment_id)).await?.map(|s| s.value);
        let team_name = match &approval.assigned_team {
            Some(team) => r.read::<Team>(&team_key(&approval.org_id, team)).await?.map(|s| s.value.name),
            None => None,
        };
        let details = &approval.transaction_details;
        let dashboard_url =
            self.settings.public_url.as_ref().map(|base| format!("{base}/dashboard/approvals/{}", approval.id));
        Ok(NotifyFacts {
            subject_id: approval.id.to_string(),
            kind,
            amount: Some(details.amount.to_wire()),
            currency: Some(details.amount.currency().code().to_string()),
            payer: approval.wallet_id.to_string(),
            payee: details.recipient.to_string(),
            description: details.description.clone(),
            agent_reasoning: payment.as_ref().and_then(|p| p.agent_reasoning.clone()),
            risk_score: payment.as_ref().and_then(|p| p.risk_score).map(|s| s.to_string()),
            reason: approval.reason.clone(),
            team_name,
            expires_at: approval.expires_at,
            now: self.now(),
            review_url: self.review_url(&approval.id, approval.expires_at),
            dashboard_url,
        })
    }

    /// How `approval` ended (or stands), and who decided it, by name when a member did.
    pub(crate) async fn outcome_facts(&self, approval: &Approval) -> AppResult<OutcomeFacts> {
        let outcome = match approval.status {
            ApprovalStatus::Approved if approval.original_amount.is_some() => "Approved (modified)",
            ApprovalStatus::Approved => "Approved",
            ApprovalStatus::Rejected => "Rejected",
            ApprovalStatus::Expired => "Expired",
            ApprovalStatus::Pending | ApprovalStatus::Escalated => "Waiting for more approvals",
        };
        let deciding = match approval.status {
            ApprovalStatus::Approved => approval.votes.iter().rev().find(|v| v.decision == VoteDecision::Approve),
            ApprovalStatus::Rejected => approval.votes.iter().rev().find(|v| v.decision == VoteDecision::Reject),
            _ => None,
        };
        let decided_by = match deciding {
            Some(vote) => {
                Some(self.person_name(&approval.org_id, vote.person.as_ref(), &vote.key_id.to_string()).await?)
            }
            None => None,
        };
        Ok(OutcomeFacts {
            outcome: outcome.to_string(),
            decided_by,
            at: approval.resolved_at.unwrap_or_else(|| self.now()),
            note: approval.resolution_note.clone(),
        })
    }

    /// A member's name, else the key id that acted.
    async fn person_name(&self, org: &OrgId, person: Option<&Person>, key: &str) -> AppResult<String> {
        if let Some(Person::Member(member)) = person {
            if let Some(found) = self.reader().read::<Member>(&member_key(org, member)).await? {
                return Ok(found.value.name);
            }
        }
        Ok(key.to_string())
    }
}
