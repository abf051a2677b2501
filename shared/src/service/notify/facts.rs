//! What a notification is about (an approval of a held payment or refund, or a review) and what
//! it says, gathered as it stands when the message is sent (so a retried or reminding message
//! never shows stale state).

use chrono::{DateTime, Utc};

use crate::domain::approval::{Approval, ApprovalStatus, VoteDecision};
use crate::domain::ids::{OrgId, TeamId};
use crate::domain::notify_facts::{NoticeKind, NotifyFacts, OutcomeFacts};
use crate::domain::org::ApiKey;
use crate::domain::payment::Payment;
use crate::domain::payment_review::ReviewRef;
use crate::domain::people::{Member, Person, Team};
use crate::domain::permission::{self, Permission};
use crate::domain::review::{DecisionType, Review, ReviewStatus};
use crate::error::AppResult;
use crate::layout::{approval_key, by_org_partition, member_key, payment_key, review_key, team_key};
use crate::ports::{Index, Query};
use crate::service::UseCases;

/// Something waiting for a person's decision.
#[derive(Debug, Clone)]
pub(crate) enum Held {
    Approval(Box<Approval>),
    Review(Box<Review>),
}

impl Held {
    pub fn org_id(&self) -> &OrgId {
        match self {
            Held::Approval(a) => &a.org_id,
            Held::Review(r) => &r.org_id,
        }
    }

    pub fn subject(&self) -> ReviewRef {
        match self {
            Held::Approval(a) => ReviewRef::Payment(a.id.clone()),
            Held::Review(r) => ReviewRef::Review(r.id.clone()),
        }
    }

    pub fn is_open(&self) -> bool {
        match self {
            Held::Approval(a) => a.is_open(),
            Held::Review(r) => r.is_open(),
        }
    }

    pub fn assigned_team(&self) -> Option<&TeamId> {
        match self {
            Held::Approval(a) => a.assigned_team.as_ref(),
            Held::Review(r) => r.assigned_team.as_ref(),
        }
    }

    pub fn expires_at(&self) -> DateTime<Utc> {
        match self {
            Held::Approval(a) => a.expires_at,
            Held::Review(r) => r.expires_at,
        }
    }

    /// Whether `key` may decide it as far as wallets go (a review is about none: only a key
    /// bound to no wallet).
    pub fn may_be_decided_by(&self, key: &ApiKey) -> bool {
        match self {
            Held::Approval(a) => key.may_use(&a.wallet_id),
            Held::Review(_) => key.wallet_ids.is_empty(),
        }
    }

    /// Whether `member` has decided or voted on it already.
    pub fn voted_by(&self, member: &crate::domain::ids::MemberId) -> bool {
        let person = Some(Person::Member(member.clone()));
        match self {
            Held::Approval(a) => a.votes.iter().any(|v| v.person == person),
            Held::Review(r) => r.decision.as_ref().is_some_and(|d| Some(&d.reviewer) == person.as_ref()),
        }
    }

    /// Its status in words (`approved`, `expired`, …).
    pub fn status(&self) -> String {
        match self {
            Held::Approval(a) => a.status.as_str().to_lowercase(),
            Held::Review(r) => r.status.as_str().to_string(),
        }
    }
}

/// Keys read to find who may decide something (an organisation's keys).
const MAX_KEYS_READ: usize = 1_000;

impl UseCases {
    /// The organisation's active keys that may decide `held`: holding `approvals:write` and
    /// allowed its wallet (a review: bound to no wallet).
    pub(crate) async fn deciding_keys(&self, held: &Held) -> AppResult<Vec<ApiKey>> {
        Ok(self.deciding_keys_even_frozen(held).await?.into_iter().filter(|k| k.frozen_at.is_none()).collect())
    }

    /// `deciding_keys` with the frozen ones too (a click by a frozen key's member is told so).
    pub(crate) async fn deciding_keys_even_frozen(&self, held: &Held) -> AppResult<Vec<ApiKey>> {
        let query = Query::new(Index::ByOrg, by_org_partition(held.org_id(), "APIKEY"), MAX_KEYS_READ);
        let keys: Vec<ApiKey> = self.reader().all_of(query).await?;
        Ok(keys
            .into_iter()
            .filter(|k| k.revoked_at.is_none() && permission::allows(&k.permissions, Permission::ApprovalsWrite))
            .filter(|k| held.may_be_decided_by(k))
            .collect())
    }

    /// The approval or review `subject` names, as stored now.
    pub(crate) async fn load_held(&self, subject: &ReviewRef) -> AppResult<Option<Held>> {
        let r = self.reader();
        Ok(match subject {
            ReviewRef::Payment(id) => {
                r.read::<Approval>(&approval_key(id)).await?.map(|s| Held::Approval(Box::new(s.value)))
            }
            ReviewRef::Review(id) => r.read::<Review>(&review_key(id)).await?.map(|s| Held::Review(Box::new(s.value))),
        })
    }

    /// The facts of `held` for a message of `kind`.
    pub(crate) async fn notify_facts(&self, held: &Held, kind: NoticeKind) -> AppResult<NotifyFacts> {
        let r = self.reader();
        let team_name = match held.assigned_team() {
            Some(team) => r.read::<Team>(&team_key(held.org_id(), team)).await?.map(|s| s.value.name),
            None => None,
        };
        let base = self.settings.public_url.as_deref();
        Ok(match held {
            Held::Approval(approval) => {
                // A refund's approval names the payment refunded: its agent's reasoning and risk
                // were for that payment, not for this refund.
                let refund = approval.refund_id.as_ref();
                let payment = match refund {
                    Some(_) => None,
                    None => r.read::<Payment>(&payment_key(&approval.payment_id)).await?.map(|s| s.value),
                };
                let details = &approval.transaction_details;
                let description = match refund {
                    Some(id) => Some(match &details.description {
                        Some(d) => format!("Refund {id} of payment {}: {d}", approval.payment_id),
                        None => format!("Refund {id} of payment {}", approval.payment_id),
                    }),
                    None => details.description.clone(),
                };
                NotifyFacts {
                    subject_id: approval.id.to_string(),
                    kind,
                    amount: Some(details.amount.to_wire()),
                    currency: Some(details.amount.currency().code().to_string()),
                    payer: approval.wallet_id.to_string(),
                    payee: details.recipient.to_string(),
                    description,
                    agent_reasoning: payment.as_ref().and_then(|p| p.agent_reasoning.clone()),
                    risk_score: payment.as_ref().and_then(|p| p.risk_score).map(|s| s.to_string()),
                    reason: approval.reason.clone(),
                    team_name,
                    expires_at: approval.expires_at,
                    now: self.now(),
                    review_url: self.review_url(&approval.id, approval.expires_at),
                    dashboard_url: base.map(|b| format!("{b}/dashboard/approvals/{}", approval.id)),
                }
            }
            Held::Review(review) => {
                // Its page is scanner-safe as a review link is: a GET shows it, deciding needs
                // the signed-in reviewer's POST.
                let page = base.map(|b| format!("{b}/dashboard/reviews/{}", review.id));
                NotifyFacts {
                    subject_id: review.id.to_string(),
                    kind,
                    amount: None,
                    currency: None,
                    payer: review.task_type.clone(),
                    payee: review.proposed_action.clone(),
                    description: None,
                    agent_reasoning: review.agent_reasoning.clone(),
                    risk_score: None,
                    reason: format!(
                        "A {} review ({} urgency)",
                        review.task_type,
                        format!("{:?}", review.urgency).to_lowercase()
                    ),
                    team_name,
                    expires_at: review.expires_at,
                    now: self.now(),
                    review_url: page.clone(),
                    dashboard_url: page,
                }
            }
        })
    }

    /// How `held` ended (or stands), and who decided it, by name when a member did.
    pub(crate) async fn outcome_facts(&self, held: &Held) -> AppResult<OutcomeFacts> {
        let now = self.now();
        match held {
            Held::Approval(approval) => {
                let outcome = match approval.status {
                    ApprovalStatus::Approved if approval.original_amount.is_some() => "Approved (modified)",
                    ApprovalStatus::Approved => "Approved",
                    ApprovalStatus::Rejected => "Rejected",
                    ApprovalStatus::Expired => "Expired",
                    ApprovalStatus::Pending | ApprovalStatus::Escalated => "Waiting for more approvals",
                };
                let wanted = match approval.status {
                    ApprovalStatus::Approved => Some(VoteDecision::Approve),
                    ApprovalStatus::Rejected => Some(VoteDecision::Reject),
                    _ => None,
                };
                let deciding = approval.votes.iter().rev().find(|v| Some(v.decision) == wanted);
                let decided_by = match deciding {
                    Some(vote) => {
                        Some(self.person_name(&approval.org_id, vote.person.as_ref(), vote.key_id.as_str()).await?)
                    }
                    None => None,
                };
                Ok(OutcomeFacts {
                    outcome: outcome.to_string(),
                    decided_by,
                    at: approval.resolved_at.unwrap_or(now),
                    note: approval.resolution_note.clone(),
                })
            }
            Held::Review(review) => {
                let outcome = match (review.status, review.decision.as_ref().map(|d| d.decision_type)) {
                    (ReviewStatus::Modified, _) | (_, Some(DecisionType::Modify)) => "Approved (modified)",
                    (ReviewStatus::Approved, _) => "Approved",
                    (ReviewStatus::Rejected, _) => "Rejected",
                    (ReviewStatus::Expired, _) => "Expired",
                    (ReviewStatus::Pending | ReviewStatus::Escalated, _) => "Waiting for a decision",
                };
                Ok(OutcomeFacts {
                    outcome: outcome.to_string(),
                    decided_by: review.decision.as_ref().map(|d| d.reviewer_name.clone()),
                    at: review.decision.as_ref().map_or(now, |d| d.timestamp),
                    note: review.decision.as_ref().and_then(|d| d.notes.clone()),
                })
            }
        }
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
