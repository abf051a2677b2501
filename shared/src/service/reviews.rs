//! Reviews (DESIGN §2.2): any action an agent proposes, decided by a person. The same engine as
//! approvals: routing assigns a team at creation, separation of duties counts people, the sweep
//! expires them, and every change commits with its audit row and outbox event (`review.created`,
//! `review.decided`, `review.expired`). Waiting for a decision (blocking create, `?wait=`) reads the store at most
//! once per `POLL_EVERY`.

use std::time::Duration;

use serde_json::json;

use super::plan::{Plan, Tx};
use super::records::{api_key_key, by_org_partition, by_status_partition, member_key, review_key, Stored};
use super::{require, Caller, Countersign};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ReviewDecisionId, ReviewId};
use crate::domain::org::ApiKey;
use crate::domain::people::{Member, Person};
use crate::domain::permission::{self, Permission};
use crate::domain::review::{DecisionType, NewReview, Review, ReviewDecision, ReviewStatus};
use crate::domain::routing::{route, urgency_name, Subject};
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Query};

/// The longest wait for a decision: below API Gateway's 29 s integration timeout.
pub const MAX_REVIEW_WAIT_SECONDS: u64 = 28;
/// A waiting request reads the review at most this often.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// A listing reads at most this many reviews of its partition to count `total` and find its
/// page: beyond it, `total` stops at the cap and later pages are empty (README, reviews).
pub const REVIEW_COUNT_CAP: usize = 10_000;
/// Store page size while counting.
const COUNT_PAGE: usize = 1_000;

/// Which reviews a listing shows.
#[derive(Debug, Default)]
pub struct ReviewFilter {
    pub status: Option<ReviewStatus>,
    pub task_type: Option<String>,
}

/// A page of reviews (Humancheck's paging: page numbers, not cursors).
#[derive(Debug, Clone)]
pub struct ReviewPage {
    pub reviews: Vec<Review>,
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
}

/// Reading a review: its reviewers (`approvals:read`) or the agents that ask for them.
fn require_read(caller: &ApiKey) -> AppResult<()> {
    if permission::allows(&caller.permissions, Permission::ReviewsWrite) {
        return Ok(());
    }
    require(caller, Permission::ApprovalsRead)
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

    /// Reads the review until it is decided (or no longer open) or `wait` has passed, at most
    /// once per `POLL_EVERY`; returns it as last read.
    pub async fn await_review(&self, caller: &Caller, id: &ReviewId, wait: Duration) -> AppResult<Review> {
        let key = caller.key()?;
        require_read(key)?;
        let wait = wait.min(Duration::from_secs(MAX_REVIEW_WAIT_SECONDS));
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let review = self.read_owned::<Review>(&review_key(id), &key.org_id).await?.value;
            let now = tokio::time::Instant::now();
            if !review.is_open() || now >= deadline {
                return Ok(review);
            }
            tokio::time::sleep(POLL_EVERY.min(deadline - now)).await;
        }
    }

    pub async fn get_review(&self, caller: &Caller, id: &ReviewId) -> AppResult<Review> {
        self.await_review(caller, id, Duration::ZERO).await
    }

    /// `GET /reviews`: newest first, by status when asked (the byStatus index), `task_type`
    /// filtered as read; `total` counts at most `REVIEW_COUNT_CAP` reviews.
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
        let mut query = match filter.status {
            Some(s) => Query::new(Index::ByStatus, by_status_partition(org, "REVIEW", &s.as_str().to_uppercase()), 0),
            None => Query::new(Index::ByOrg, by_org_partition(org, "REVIEW"), 0),
        };
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let mut total = 0;
        let mut reviews = Vec::new();
        let mut read = 0;
        while read < REVIEW_COUNT_CAP {
            query.limit = COUNT_PAGE.min(REVIEW_COUNT_CAP - read);
            let items = self.store.query(query.clone()).await?;
            let n = items.len();
            read += n;
            query.after = items.last().map(|i| i.position(query.index));
            for item in items {
                let review = super::records::decode::<Review>(item)?.value;
                if filter.task_type.as_ref().is_some_and(|t| *t != review.task_type) {
                    continue;
                }
                if total >= skip && reviews.len() < page_size {
                    reviews.push(review);
                }
                total += 1;
            }
            if n < query.limit {
                break;
            }
        }
        Ok(ReviewPage { reviews, total, page, page_size })
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
    /// approve or modify by the person who asked.
    pub async fn decide_review(
        &self,
        caller: &Caller,
        id: &ReviewId,
        request: ReviewDecide,
    ) -> AppResult<ReviewDecision> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsWrite)?;
        let org = &caller.org_id;
        let (person, name) = self.reviewer(caller).await?;
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
            Ok(tx.done(decision))
        })
        .await
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
