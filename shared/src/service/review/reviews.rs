//! Reviews (docs/api.md, "Reviews"): any action an agent proposes, decided by a person. The same engine as
//! approvals: routing assigns a team at creation, separation of duties counts people, the sweep
//! expires them, and every change commits with its audit row and outbox event (`review.created`,
//! `review.decided`, `review.escalated`, `review.expired`). A payment held for approval shows here
//! too (`task_type: "payment"`, its approval's id): deciding or escalating it goes through the
//! approval, so it executes exactly as `/v1/approvals` would. Waiting for a decision (blocking
//! create, `?wait=`) reads the store at most once per `POLL_EVERY`.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::domain::approval::{Approval, ApprovalStatus, ApprovalSubject, VoteDecision};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ReviewDecisionId, ReviewId, TeamId};
use crate::domain::input::InputError;
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
use crate::engine::plan::{overtaken, Plan, Tx};
use crate::error::{AppError, AppResult};
use crate::layout::{
    api_key_key, approval_key, by_org_partition, by_status_partition, decode, member_key, payment_key, review_key,
    team_key, Record, Stored,
};
use crate::ports::{Index, Query};
use crate::service::money::approvals::{DecideRequest, EscalateRequest};
use crate::service::money::payments::listing_query;
use crate::service::review::waits::WaitSlot;
use crate::service::{ensure_wallet, require, Caller, Countersign, UseCases};

/// The longest wait for a decision: below API Gateway's 29 s integration timeout.
pub const MAX_REVIEW_WAIT_SECONDS: u64 = 28;
/// A waiting request reads the review at most this often.
const POLL_EVERY: Duration = Duration::from_millis(250);
/// Pages of `GET /reviews` reach this many entries (page × page_size): a page costs reads in
/// proportion to how deep it is, so the depth is bounded (docs/api.md, "Reviews").
pub const REVIEW_LIST_DEPTH: usize = 1_000;
/// How far past its page a listing reads to count `total`; beyond, `total` is a lower bound
/// (`total_is_capped`).
const TOTAL_AHEAD: usize = 20;
/// Items one source of a listing reads at most, those filtered out included.
const SCAN_CAP: usize = 2_000;
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
    /// Entries counted: all of them, unless `total_is_capped` (then at least this many).
    pub total: usize,
    pub total_is_capped: bool,
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

/// Reading a review: its reviewers (`approvals:read`) read every one; the agents that ask for
/// them (`reviews:write`) only those their person created. Another person's review is missing
/// to them (404, not 403: its existence is not theirs to learn).
fn ensure_readable(caller: &ApiKey, review: &Review) -> AppResult<()> {
    if permission::allows(&caller.permissions, Permission::ApprovalsRead) {
        return Ok(());
    }
    require(caller, Permission::ReviewsWrite)?;
    if review.created_by_person == caller.person() {
        Ok(())
    } else {
        Err(AppError::NotFound("review"))
    }
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

impl UseCases {
    /// `POST /reviews`: routed to a team, open for the default approval window.
    pub async fn create_review(&self, caller: &Caller, request: NewReview) -> AppResult<Review> {
        let caller = caller.key()?;
        require(caller, Permission::ReviewsWrite)?;
        let org = &caller.org_id;
        let rules = self.reader().org_rules(org).await?;
        let urgency = urgency_name(request.urgency);
        let subject = Subject {
            urgency: Some(urgency),
            confidence_score: request.confidence_score,
            ..Subject::new(org, &request.task_type, &request.metadata)
        };
        let team = route(&rules, &subject).map(|r| r.assign_to_team.clone());
        let team = self.reader().or_default_team(org, team).await?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
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
                if !permission::allows(&caller.permissions, Permission::ApprovalsRead) {
                    require(caller, Permission::ReviewsWrite)?;
                }
                let review = self.reader().read_owned::<Review>(&review_key(id), org).await?.value;
                ensure_readable(caller, &review)?;
                Ok(ReviewEntry::Review(review))
            }
            ReviewRef::Payment(id) => {
                // A held payment is a payment: reading it takes what reading approvals takes.
                require(caller, Permission::ApprovalsRead)?;
                let approval =
                    self.reader().read_owned::<Approval>(&approval_key(id), org).await.map_err(as_review)?.value;
                ensure_wallet(caller, &approval.wallet_id)?;
                let payment = self.reader().read_owned::<Payment>(&payment_key(&approval.payment_id), org).await?.value;
                Ok(ReviewEntry::Payment(Box::new(HeldPayment { approval, payment })))
            }
        }
    }

    /// `await_review` for a caller that took its wait slot already (`wait_slot`: a blocking
    /// create takes it before writing the review, so a refused wait writes nothing). Gives the
    /// slot back when the wait ends.
    pub async fn await_review_in(
        &self,
        slot: WaitSlot,
        caller: &Caller,
        target: &ReviewRef,
        wait: Duration,
    ) -> AppResult<ReviewEntry> {
        let entry = self.await_review_holding(caller, target, wait).await;
        slot.release().await;
        entry
    }

    async fn await_review_holding(
        &self,
        caller: &Caller,
        target: &ReviewRef,
        wait: Duration,
    ) -> AppResult<ReviewEntry> {
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

    /// `GET /reviews`: reviews and held payments, newest first, by status when asked (the
    /// byStatus index), `task_type` filtered as read. Reads only what the page needs: the first
    /// `page × page_size + TOTAL_AHEAD` entries of each source (no more than `SCAN_CAP` items
    /// each), so `total` is exact up to there and beyond it a lower bound with
    /// `total_is_capped`; pages reach the first `REVIEW_LIST_DEPTH` entries.
    pub async fn list_reviews(
        &self,
        caller: &Caller,
        filter: &ReviewFilter,
        page: usize,
        page_size: usize,
    ) -> AppResult<ReviewPage> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        let reach = page.saturating_mul(page_size);
        if reach > REVIEW_LIST_DEPTH {
            let why = format!(
                "page × page_size may reach the first {REVIEW_LIST_DEPTH} reviews; narrow the list with status or task_type"
            );
            return Err(InputError::invalid("page", why).into());
        }
        let want = reach + TOTAL_AHEAD;
        let org = &caller.org_id;
        let query = match filter.status {
            Some(s) => Query::new(Index::ByStatus, by_status_partition(org, "REVIEW", &s.as_str().to_uppercase()), 0),
            None => Query::new(Index::ByOrg, by_org_partition(org, "REVIEW"), 0),
        };
        let task_type = filter.task_type.as_deref();
        let (reviews, more_reviews) =
            self.read_first(query, want, |r: &Review| task_type.is_none_or(|t| t == r.task_type)).await?;
        let (mut held, mut more_held) = (Vec::new(), false);
        if task_type.is_none_or(|t| t == PAYMENT_TASK_TYPE || t == REFUND_TASK_TYPE) {
            let status = approval_status(filter.status).map(ApprovalStatus::as_str);
            let query = listing_query(org, "APPROVAL", None, status, 0);
            let modified_only = filter.status.map(|s| s == ReviewStatus::Modified);
            (held, more_held) = self
                .read_first(query, want, |a: &Approval| {
                    let kind = match a.subject() {
                        ApprovalSubject::Payment(_) => PAYMENT_TASK_TYPE,
                        ApprovalSubject::Refund { .. } => REFUND_TASK_TYPE,
                    };
                    caller.may_use(&a.wallet_id)
                        && task_type.is_none_or(|t| t == kind)
                        && modified_only.is_none_or(|m| m == a.original_amount.is_some())
                })
                .await?;
        }
        // Each source's first `want` hold the merged first `want`, which hold this page.
        let mut entries: Vec<Listed> =
            reviews.into_iter().map(Listed::Review).chain(held.into_iter().map(Listed::Held)).collect();
        let total = entries.len();
        entries.sort_by(|a, b| b.order().cmp(a.order()));
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let (mut shown, mut approvals) = (Vec::new(), Vec::new());
        for entry in entries.into_iter().skip(skip).take(page_size) {
            match entry {
                Listed::Review(r) => shown.push(Some(ReviewEntry::Review(r))),
                Listed::Held(a) => {
                    shown.push(None);
                    approvals.push(a);
                }
            }
        }
        // Held payments fill their places in order.
        let mut payments = self.held_payments(org, approvals).await?.into_iter();
        let reviews = shown
            .into_iter()
            .filter_map(|e| e.or_else(|| payments.next().map(|h| ReviewEntry::Payment(Box::new(h)))))
            .collect();
        let total_is_capped = more_reviews || more_held;
        Ok(ReviewPage { reviews, total, total_is_capped, page, page_size })
    }

    /// The first `want` records of `query`'s partition that `keep` wants, reading about as many
    /// (at most `SCAN_CAP`); and whether there may be more.
    async fn read_first<R: Record>(
        &self,
        mut query: Query,
        want: usize,
        keep: impl Fn(&R) -> bool,
    ) -> AppResult<(Vec<R>, bool)> {
        let mut kept = Vec::new();
        let mut scanned = 0;
        // One more than wanted tells whether there is more.
        while kept.len() <= want {
            if scanned >= SCAN_CAP {
                return Ok((kept, true));
            }
            query.limit = (want + 1 - kept.len()).min(SCAN_CAP - scanned);
            let items = self.store().query(query.clone()).await?;
            let n = items.len();
            scanned += n;
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
        let more = kept.len() > want;
        kept.truncate(want);
        Ok((kept, more))
    }

    /// Each approval with its payment, read `PAYMENT_READS_AT_ONCE` at a time.
    async fn held_payments(
        &self,
        org: &crate::domain::ids::OrgId,
        approvals: Vec<Approval>,
    ) -> AppResult<Vec<HeldPayment>> {
        futures::stream::iter(approvals)
            .map(|approval| async move {
                let payment = self.reader().read_owned::<Payment>(&payment_key(&approval.payment_id), org).await?.value;
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
            Person::Member(m) => {
                self.reader().read::<Member>(&member_key(&caller.org_id, m)).await?.map(|s| s.value.name)
            }
            Person::Key(k) if *k == caller.id => Some(caller.name.clone()),
            Person::Key(k) => self.reader().read::<ApiKey>(&api_key_key(k)).await?.map(|s| s.value.name),
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
                    // A passkey step-up happens on the dashboard, never through /reviews.
                    step_up: None,
                    always_allow: None,
                };
                let decided = self.decide_approval(caller, id, vote).await.map_err(|e| match e {
                    // The lower amount is `modified_amount` here.
                    AppError::Input(i) if i.field() == "amount" => AppError::Input(i.for_field("modified_amount")),
                    other => as_review(other),
                })?;
                let held = HeldPayment { approval: decided.approval, payment: decided.payment };
                let vote = held.approval.votes.iter().rev().find(|v| v.key_id == key.id).ok_or(AppError::Contention)?;
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
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut review: Stored<Review> = r.read_owned(&review_key(id), org).await?;
                r.ensure_team(caller, review.value.assigned_team.as_ref()).await?;
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

    /// `POST /reviews/{id}/escalate`, by the assigned team (or an admin key), never by the person
    /// who asked: a review goes to `to_team` (it has no chain, so only an admin names one); a
    /// held payment goes to its policy's next tier, or (admin) a named team.
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
        self.reader().read_owned::<Team>(&team_key(org, &to), org).await?;
        let ttl = self.settings.default_approval_ttl_seconds;
        let admin = key.is_org_admin();
        let r = self.reader();
        let review = self
            .engine
            .commit(&r, || async {
                let mut review: Stored<Review> = r.read_owned(&review_key(id), org).await?;
                r.ensure_team(key, review.value.assigned_team.as_ref()).await?;
                let mut tx = Tx::new(org, Actor::Key(key.id.clone()), self.now());
                let from = review.value.assigned_team.clone();
                let to = review.value.escalation_target(&key.person(), &key.id, &to, admin)?;
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
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let Some(mut review) = r.read::<Review>(&review_key(id)).await? else {
                    return Ok(Plan::nothing(false));
                };
                let org = review.value.org_id.clone();
                let mut tx = Tx::new(&org, Actor::System, self.now());
                if !review.value.is_open() || tx.now() < review.value.expires_at {
                    return Ok(Plan::nothing(false));
                }
                review.value.expire(tx.now()).map_err(overtaken)?;
                tx.update(&review)?;
                tx.event(Event::for_review(&review.value, kinds::REVIEW_EXPIRED, tx.now()))?;
                tx.audit("review.expired", "review", id.as_str(), json!({}))?;
                Ok(tx.done(true))
            })
            .await
    }
}

/// A listed entry before its page is chosen (a held payment's payment is read only once shown).
enum Listed {
    Review(Review),
    Held(Approval),
}

impl Listed {
    /// Where it sorts, newest first: the ULID of its id (creation time, then random), as both
    /// sources' indexes order them.
    fn order(&self) -> &str {
        let id = match self {
            Listed::Review(r) => r.id.as_str(),
            Listed::Held(a) => a.id.as_str(),
        };
        id.split_once('_').map_or(id, |(_, ulid)| ulid)
    }
}

/// A held payment reached through `/reviews` that is missing is a missing review.
fn as_review(e: AppError) -> AppError {
    match e {
        AppError::NotFound("approval") => AppError::NotFound("review"),
        other => other,
    }
}

impl Countersign {
    /// Reads the review until it is decided (or no longer open) or `wait` has passed, at most
    /// once per `POLL_EVERY`; returns it as last read. A wait (not a single read) holds one of
    /// the key's wait slots throughout (429 when it has none left).
    pub async fn await_review(&self, caller: &Caller, target: &ReviewRef, wait: Duration) -> AppResult<ReviewEntry> {
        if wait.is_zero() {
            return self.await_review_holding(caller, target, wait).await;
        }
        let slot = self.wait_slot(caller, wait).await?;
        self.await_review_in(slot, caller, target, wait).await
    }
}

impl Countersign {
    pub async fn get_review(&self, caller: &Caller, target: &ReviewRef) -> AppResult<ReviewEntry> {
        self.await_review(caller, target, Duration::ZERO).await
    }
}
