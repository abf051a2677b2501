//! Reviews (DESIGN §2.2): any action an agent proposes, decided by a person. The same engine as
//! approvals: routing assigns a team at creation, separation of duties counts people, the sweep
//! expires them, and every change commits with its audit row and outbox event (`review.created`,
//! `review.decided`, `review.escalated`, `review.expired`). A payment held for approval shows here
//! too (`task_type: "payment"`, its approval's id): deciding or escalating it goes through the
//! approval, so it executes exactly as `/v1/approvals` would. Waiting for a decision (blocking
//! create, `?wait=`) reads the store at most once per `POLL_EVERY`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use super::approvals::{DecideRequest, EscalateRequest};
use super::payments::listing_query;
use super::plan::{Plan, Tx};
use super::records::{
    api_key_key, approval_key, by_org_partition, by_status_partition, decode, member_key, payment_key, review_key,
    team_key, Record, Stored,
};
use super::{ensure_wallet, require, Caller, Countersign};
use crate::domain::approval::{Approval, ApprovalStatus, VoteDecision};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ReviewDecisionId, ReviewId, TeamId};
use crate::domain::money::Amount;
use crate::domain::org::ApiKey;
use crate::domain::payment::Payment;
use crate::domain::payment_review::{
    DecisionSummary, HeldPayment, ReviewEntry, ReviewRef, PAYMENT_TASK_TYPE, REFUND_TASK_TYPE,
};
use crate::domain::people::{Member, Person, Team};
use crate::domain::permission::{self, Permission};
use crate::domain::review::{DecisionType, NewReview, Review, ReviewDecision, ReviewStatus};
use crate::domain::routing::{route, urgency_name, Subject};
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Query};

/// The longest wait for a decision: below API Gateway's 29 s integration timeout.
pub const MAX_REVIEW_WAIT_SECONDS: u64 = 28;
/// A waiting request reads the review at most this often.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// A listing reads at most this many reviews, and this many held payments, to count `total`
/// and find its page: beyond it, `total` stops at the cap and later pages are empty (README,
/// reviews).
pub const REVIEW_COUNT_CAP: usize = 10_000;
/// Store page size while counting.
const COUNT_PAGE: usize = 1_000;
/// Payments read at once to show a page of held payments.
const PAYMENT_READS_AT_ONCE: usize = 16;

/// Which reviews a listing shows.
#[derive(Debug, Default)]
pub struct ReviewFilter {
    pub status: Option<ReviewStatus>,
    pub task_type: Option<String>,
}

/// A page of reviews (Humancheck's paging: page numbers, not cursors), held payments among them.
#[derive(Debug, Clone)]
pub struct ReviewPage {
    pub reviews: Vec<ReviewEntry>,
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
}

/// A reviewer's decision as asked for (`modified_action` is checked present for modify).
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewDecide {
    pub decision_type: DecisionType,
    pub modified_action: Option<String>,
    pub notes: Option<String>,
    /// A held payment's lower amount (modify); only for held payments, where modify needs it.
    pub modified_amount: Option<Amount>,
}

/// Handing a review to another team.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewEscalate {
    /// This team; a held payment without one goes to its policy's next tier.
    pub to_team: Option<TeamId>,
    pub notes: Option<String>,
}

/// Reading a review: its reviewers (`approvals:read`) or the agents that ask for them.
fn require_read(caller: &ApiKey) -> AppResult<()> {
    if permission::allows(&caller.permissions, Permission::ReviewsWrite) {
        return Ok(());
    }
    require(caller, Permission::ApprovalsRead)
}

/// The approval status a review status filter reads (approved and modified share APPROVED).
fn approval_status(status: Option<ReviewStatus>) -> Option<ApprovalStatus> {
    Some(match status? {
        ReviewStatus::Pending => ApprovalStatus::Pending,
        ReviewStatus::Escalated => ApprovalStatus::Escalated,
        ReviewStatus::Approved | ReviewStatus::Modified => ApprovalStatus::Approved,
        ReviewStatus::Rejected => ApprovalStatus::Rejected,
        ReviewStatus::Expired => ApprovalStatus::Expired,
    })
}

impl Countersign {
    /// `POST /reviews`: routed to a team, open for the default approval window.
    pub async fn create_review(&self, caller: &Caller, request: NewReview) -> AppResult<Review> {
        let caller = caller.key()?;
        require(caller, Permission::ReviewsWrite)?;
        let org = &caller.org_id;
        let rules = self.org_rules(org).await?;
        let urgency = urgency_name(request.urgency);
        let subject = Subject {
            urgency: Some(urgency),
            confidence_score: request.confidence_score,
            ..Subject::new(org, &request.task_type, &request.metadata)
        };
        let team = route(&rules, &subject).map(|r| r.assign_to_team.clone());
        let team = self.or_default_team(org, team).await?;
        self.commit(|| async {
            let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
            let review = Review::new(
                org.clone(),
                request.clone(),
                caller.id.clone(),
                caller.person(),
                team.clone(),
                self.settings.default_approval_ttl_seconds,
                tx.now(),
            );
            tx.create(&review)?;
            tx.event(Event::for_review(&review, kinds::REVIEW_CREATED, tx.now()))?;
            let details = json!({"taskType": review.task_type, "assignedTeam": review.assigned_team});
            tx.audit("review.created", "review", review.id.as_str(), details)?;
            Ok(tx.done(review))
        })
        .await
    }

    /// A review, or a held payment with its approval, as the caller may see it.
    async fn review_entry(&self, caller: &ApiKey, target: &ReviewRef) -> AppResult<ReviewEntry> {
        let org = &caller.org_id;
        match target {
            ReviewRef::Review(id) => {
                require_read(caller)?;
                Ok(ReviewEntry::Review(self.read_owned::<Review>(&review_key(id), org).await?.value))
            }
            ReviewRef::Payment(id) => {
                // A held payment is a payment: reading it takes what reading approvals takes.
                require(caller, Permission::ApprovalsRead)?;
                let approval = self.read_owned::<Approval>(&approval_key(id), org).await.map_err(as_review)?.value;
                ensure_wallet(caller, &approval.wallet_id)?;
                let payment = self.read_owned::<Payment>(&payment_key(&approval.payment_id), org).await?.value;
                Ok(ReviewEntry::Payment(Box::new(HeldPayment { approval, payment })))
            }
        }
    }

    /// Reads the review until it is decided (or no longer open) or `wait` has passed, at most
    /// once per `POLL_EVERY`; returns it as last read.
    pub async fn await_review(&self, caller: &Caller, target: &ReviewRef, wait: Duration) -> AppResult<ReviewEntry> {
        let key = caller.key()?;
        let wait = wait.min(Duration::from_secs(MAX_REVIEW_WAIT_SECONDS));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let entry = self.review_entry(key, target).await?;
            let now = tokio::time::Instant::now();
            if !entry.is_open() || now >= deadline {
                return Ok(entry);
            }
            tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
        }
    }

    pub async fn get_review(&self, caller: &Caller, target: &ReviewRef) -> AppResult<ReviewEntry> {
        self.await_review(caller, target, Duration::ZERO).await
    }

    /// `GET /reviews`: reviews and held payments, newest first, by status when asked (the
    /// byStatus index), `task_type` filtered as read; `total` counts at most `REVIEW_COUNT_CAP`
    /// of each.
    pub async fn list_reviews(
        &self,
        caller: &Caller,
        filter: &ReviewFilter,
        page: usize,
        page_size: usize,
    ) -> AppResult<ReviewPage> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        let org = &caller.org_id;
        let query = match filter.status {
            Some(s) => Query::new(Index::ByStatus, by_status_partition(org, "REVIEW", &s.as_str().to_uppercase()), 0),
            None => Query::new(Index::ByOrg, by_org_partition(org, "REVIEW"), 0),
        };
        let task_type = filter.task_type.as_deref();
        let mut reviews: Vec<Review> =
            self.read_capped(query, |r: &Review| task_type.is_none_or(|t| t == r.task_type)).await?;
        let mut held: Vec<Approval> = Vec::new();
        if task_type.is_none_or(|t| t == PAYMENT_TASK_TYPE || t == REFUND_TASK_TYPE) {
            let status = approval_status(filter.status).map(ApprovalStatus::as_str);
            let query = listing_query(org, "APPROVAL", None, status, 0);
            let modified_only = filter.status.map(|s| s == ReviewStatus::Modified);
            held = self
                .read_capped(query, |a: &Approval| {
                    let kind = if a.refund_id.is_some() { REFUND_TASK_TYPE } else { PAYMENT_TASK_TYPE };
                    caller.may_use(&a.wallet_id)
                        && task_type.is_none_or(|t| t == kind)
                        && modified_only.is_none_or(|m| m == a.original_amount.is_some())
                })
                .await?;
        }
        // Newest first across both; ids (ULIDs) break ties.
        let mut order: Vec<(chrono::DateTime<chrono::Utc>, String, bool)> = reviews
            .iter()
            .map(|r| (r.created_at, r.id.to_string(), false))
            .chain(held.iter().map(|a| (a.created_at, a.id.to_string(), true)))
            .collect();
        order.sort_by(|a, b| b.cmp(a));
        let total = order.len();
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let shown: Vec<(String, bool)> =
            order.into_iter().skip(skip).take(page_size).map(|(_, id, p)| (id, p)).collect();
        let approvals: Vec<Approval> = shown
            .iter()
            .filter(|(_, is_payment)| *is_payment)
            .filter_map(|(id, _)| held.iter().position(|a| a.id.as_str() == id).map(|i| held.swap_remove(i)))
            .collect();
        let mut payments = self.held_payments(org, approvals).await?;
        let entries = shown
            .iter()
            .filter_map(|(id, is_payment)| {
                if *is_payment {
                    let i = payments.iter().position(|h| h.approval.id.as_str() == id)?;
                    Some(ReviewEntry::Payment(Box::new(payments.swap_remove(i))))
                } else {
                    let i = reviews.iter().position(|r| r.id.as_str() == id)?;
                    Some(ReviewEntry::Review(reviews.swap_remove(i)))
                }
            })
            .collect();
        Ok(ReviewPage { reviews: entries, total, page, page_size })
    }

    /// Reads up to `REVIEW_COUNT_CAP` records of `query`'s partition, keeping those `keep` wants.
    async fn read_capped<R: Record>(&self, mut query: Query, keep: impl Fn(&R) -> bool) -> AppResult<Vec<R>> {
        let mut kept = Vec::new();
        let mut read = 0;
        while read < REVIEW_COUNT_CAP {
            query.limit = COUNT_PAGE.min(REVIEW_COUNT_CAP - read);
            let items = self.store.query(query.clone()).await?;
            let n = items.len();
            read += n;
            query.after = items.last().map(|i| i.position(query.index));
            for item in items {
                let record = decode::<R>(item)?.value;
                if keep(&record) {
                    kept.push(record);
                }
            }
            if n < query.limit {
                break;
            }
        }
        Ok(kept)
    }

    /// Each approval with its payment, read `PAYMENT_READS_AT_ONCE` at a time.
    async fn held_payments(
        &self,
        org: &crate::domain::ids::OrgId,
        approvals: Vec<Approval>,
    ) -> AppResult<Vec<HeldPayment>> {
        futures::stream::iter(approvals)
            .map(|approval| async move {
                let payment = self.read_owned::<Payment>(&payment_key(&approval.payment_id), org).await?.value;
                Ok::<_, AppError>(HeldPayment { approval, payment })
            })
            .buffered(PAYMENT_READS_AT_ONCE)
            .try_collect()
            .await
    }

    /// The deciding key's person, with a name: a member's name, or the key's own name.
    async fn reviewer(&self, caller: &ApiKey) -> AppResult<(Person, String)> {
        let person = caller.person();
        let name = match &person {
            Person::Member(m) => self.read::<Member>(&member_key(&caller.org_id, m)).await?.map(|s| s.value.name),
            Person::Key(k) if *k == caller.id => Some(caller.name.clone()),
            Person::Key(k) => self.read::<ApiKey>(&api_key_key(k)).await?.map(|s| s.value.name),
        };
        let name = name.unwrap_or_else(|| person.to_string());
        Ok((person, name))
    }

    /// `POST /reviews/{id}/decide`: once; by the assigned team (or an admin key); never an
    /// approve or modify by the person who asked. On a held payment it is a vote on its approval.
    pub async fn decide_review(
        &self,
        caller: &Caller,
        target: &ReviewRef,
        request: ReviewDecide,
    ) -> AppResult<DecisionSummary> {
        let key = caller.key()?;
        require(key, Permission::ApprovalsWrite)?;
        let (person, name) = self.reviewer(key).await?;
        match target {
            ReviewRef::Review(id) => self.decide_plain_review(key, id, request, person, name).await,
            ReviewRef::Payment(id) => {
                let vote = DecideRequest {
                    decision: match request.decision_type {
                        DecisionType::Reject => VoteDecision::Reject,
                        DecisionType::Approve | DecisionType::Modify => VoteDecision::Approve,
                    },
                    note: request.notes,
                    modify_to: request.modified_amount,
                    modified_action: request.modified_action,
                    reviewer_name: Some(name),
                };
                let decided = self.decide_approval(caller, id, vote).await.map_err(|e| match e {
                    // The lower amount is `modified_amount` here.
                    AppError::Input(i) if i.field() == "amount" => AppError::Input(i.for_field("modified_amount")),
                    other => as_review(other),
                })?;
                let held = HeldPayment { approval: decided.approval, payment: decided.payment };
                let vote = held.approval.votes.iter().rev().find(|v| v.key_id == key.id).ok_or(AppError::Stale)?;
                Ok(held.decision_of(vote))
            }
        }
    }

    async fn decide_plain_review(
        &self,
        caller: &ApiKey,
        id: &ReviewId,
        request: ReviewDecide,
        person: Person,
        name: String,
    ) -> AppResult<DecisionSummary> {
        let org = &caller.org_id;
        self.commit(|| async {
            let mut review: Stored<Review> = self.read_owned(&review_key(id), org).await?;
            self.ensure_team(caller, review.value.assigned_team.as_ref()).await?;
            let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
            let decision = ReviewDecision {
                id: ReviewDecisionId::generate(),
                review_id: id.clone(),
                decision_type: request.decision_type,
                modified_action: request.modified_action.clone(),
                notes: request.notes.clone(),
                reviewer: person.clone(),
                reviewer_name: name.clone(),
                key_id: caller.id.clone(),
                timestamp: tx.now(),
            };
            review.value.decide(decision.clone(), tx.now())?;
            tx.update(&review)?;
            tx.event(Event::for_review(&review.value, kinds::REVIEW_DECIDED, tx.now()))?;
            let details = json!({
                "decisionType": decision.decision_type,
                "modifiedAction": decision.modified_action,
                "notes": decision.notes,
                "reviewer": decision.reviewer,
            });
            tx.audit("review.decided", "review", id.as_str(), details)?;
            Ok(tx.done(DecisionSummary::from(&decision)))
        })
        .await
    }

    /// `POST /reviews/{id}/escalate`, by the assigned team (or an admin key): a review goes to
    /// `to_team` (it has no chain); a held payment goes there or to its policy's next tier.
    pub async fn escalate_review(
        &self,
        caller: &Caller,
        target: &ReviewRef,
        request: ReviewEscalate,
    ) -> AppResult<ReviewEntry> {
        let key = caller.key()?;
        require(key, Permission::ApprovalsWrite)?;
        let id = match target {
            ReviewRef::Payment(id) => {
                let escalation = EscalateRequest { note: request.notes, to_team: request.to_team };
                self.escalate_approval(caller, id, escalation).await.map_err(as_review)?;
                return self.review_entry(key, target).await;
            }
            ReviewRef::Review(id) => id,
        };
        let org = &key.org_id;
        let to = request.to_team.ok_or(AppError::NoEscalationTarget)?;
        self.read_owned::<Team>(&team_key(org, &to), org).await?;
        let ttl = self.settings.default_approval_ttl_seconds;
        let review = self
            .commit(|| async {
                let mut review: Stored<Review> = self.read_owned(&review_key(id), org).await?;
                self.ensure_team(key, review.value.assigned_team.as_ref()).await?;
                let mut tx = Tx::new(org, Actor::Key(key.id.clone()), self.now());
                let from = review.value.assigned_team.clone();
                review.value.escalate(to.clone(), ttl, tx.now())?;
                tx.update(&review)?;
                tx.event(Event::for_review(&review.value, kinds::REVIEW_ESCALATED, tx.now()))?;
                let details = json!({"fromTeam": from, "toTeam": to, "notes": request.notes});
                tx.audit("review.escalated", "review", id.as_str(), details)?;
                Ok(tx.done(review.value))
            })
            .await?;
        Ok(ReviewEntry::Review(review))
    }

    /// Expires one review whose window has closed; `false` when it is no longer due.
    pub(crate) async fn expire_review(&self, id: &ReviewId) -> AppResult<bool> {
        self.commit(|| async {
            let Some(mut review) = self.read::<Review>(&review_key(id)).await? else {
                return Ok(Plan::nothing(false));
            };
            let org = review.value.org_id.clone();
            let mut tx = Tx::new(&org, Actor::System, self.now());
            if !review.value.is_open() || tx.now() < review.value.expires_at {
                return Ok(Plan::nothing(false));
            }
            review.value.expire(tx.now()).map_err(|_| AppError::Stale)?;
            tx.update(&review)?;
            tx.event(Event::for_review(&review.value, kinds::REVIEW_EXPIRED, tx.now()))?;
            tx.audit("review.expired", "review", id.as_str(), json!({}))?;
            Ok(tx.done(true))
        })
        .await
    }
}

/// A held payment reached through `/reviews` that is missing is a missing review.
fn as_review(e: AppError) -> AppError {
    match e {
        AppError::NotFound("approval") => AppError::NotFound("review"),
        other => other,
    }
}
