//! Approvals: list, read, approve, reject, and expire. Approving executes the payment exactly
//! once: the approval's status change, the payment, both wallets, the ledger lines, the audit row
//! and the events commit in one conditional transaction.

use chrono::DateTime;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::parse;
use super::commit::{Plan, Reply, ReplyStatus};
use super::paging::{Page, PageRequest};
use super::payments::{approval_event, listing_query, payment_event, transfer};
use super::records::{self, approval_key, payment_key, wallet_key, Stored, DUE_APPROVALS};
use super::{require, Caller, Countersign};
use crate::domain::approval::{Approval, ApprovalStatus, Resolution, Vote, VoteDecision};
use crate::domain::audit::AuditEntry;
use crate::domain::event::kinds;
use crate::domain::ids::ApprovalId;
use crate::domain::input::{self, InputError, MAX_NOTE_CHARS};
use crate::domain::money::Money;
use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::permission::Permission;
use crate::domain::wallet::Wallet;
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Position, Query, Write};

#[derive(Debug, Default)]
pub struct ApprovalFilter {
    pub wallet_id: Option<String>,
    pub status: Option<String>,
}

/// Body of approve (`note`) and reject (`reason`); both optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    pub note: Option<String>,
    pub reason: Option<String>,
}

/// What approve and reject return: the approval, with the payment as it now stands.
#[derive(Debug, Serialize)]
struct Decided<'a> {
    #[serde(flatten)]
    approval: &'a Approval,
    payment: &'a Payment,
}

fn parse_approval_id(id: &str) -> AppResult<ApprovalId> {
    ApprovalId::parse(id).ok_or(AppError::NotFound("approval"))
}

impl Countersign {
    pub async fn list_approvals(
        &self,
        caller: &Caller,
        filter: &ApprovalFilter,
        page: &PageRequest,
    ) -> AppResult<Page<Approval>> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        let status = filter
            .status
            .as_deref()
            .map(|s| {
                ApprovalStatus::parse(s)
                    .ok_or_else(|| InputError::invalid("status", "must be one of PENDING, APPROVED, REJECTED, EXPIRED"))
            })
            .transpose()?;
        let query = listing_query(
            &caller.org_id,
            "APPROVAL",
            filter.wallet_id.as_deref(),
            status.map(|s| s.as_str()),
            page.limit,
        )?;
        self.page(query, page, |_| true).await
    }

    pub async fn get_approval(&self, caller: &Caller, id: &str) -> AppResult<Approval> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        let id = parse_approval_id(id)?;
        Ok(self.read_owned::<Approval>(&approval_key(&id), &caller.org_id).await?.value)
    }

    /// `POST /v1/approvals/{id}/approve` and `/reject`.
    pub async fn decide_approval(
        &self,
        caller: &Caller,
        id: &str,
        decision: VoteDecision,
        body: &serde_json::Value,
    ) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsWrite)?;
        let id = parse_approval_id(id)?;
        let request: DecideRequest = parse(body)?;
        let note = request
            .note
            .as_deref()
            .or(request.reason.as_deref())
            .map(|n| input::bounded_text(if request.note.is_some() { "note" } else { "reason" }, n, MAX_NOTE_CHARS))
            .transpose()?;
        let org = caller.org_id.clone();
        self.commit(&org, None, || async {
            let stored = self.read_owned::<Approval>(&approval_key(&id), &org).await?;
            let payment: Stored<Payment> = self.read_owned(&payment_key(&stored.value.payment_id), &org).await?;
            let now = self.now();
            let mut approval = stored.value.clone();
            let vote = Vote { key_id: caller.id.clone(), decision, note: note.clone(), at: now };
            let resolution = approval.cast(vote, now)?;
            let mut writes = vec![records::update(&approval, stored.version)?];
            let mut payment_now = payment.value.clone();
            let actor = caller.id.as_str();
            match resolution {
                Resolution::AwaitingMoreApprovals => {
                    writes.push(records::create(&AuditEntry::new(
                        &org,
                        "approval.voted",
                        "approval",
                        approval.id.as_str(),
                        actor,
                        json!({"note": note}),
                        now,
                    ))?);
                }
                Resolution::Rejected => {
                    payment_now.status = PaymentStatus::Rejected;
                    payment_now.updated_at = now;
                    writes.push(records::update(&payment_now, payment.version)?);
                    writes.push(records::create(&approval_event(&approval, kinds::APPROVAL_REJECTED, now)?)?);
                    writes.push(records::create(&AuditEntry::new(
                        &org,
                        "approval.rejected",
                        "approval",
                        approval.id.as_str(),
                        actor,
                        json!({"reason": note, "paymentId": payment_now.id}),
                        now,
                    ))?);
                }
                Resolution::Approved => {
                    writes.push(records::create(&approval_event(&approval, kinds::APPROVAL_APPROVED, now)?)?);
                    writes.push(records::create(&AuditEntry::new(
                        &org,
                        "approval.approved",
                        "approval",
                        approval.id.as_str(),
                        actor,
                        json!({"note": note, "paymentId": payment_now.id}),
                        now,
                    ))?);
                    writes.extend(self.execute_held(&mut payment_now, payment.version, actor, now).await?);
                }
            }
            Ok(Plan {
                writes,
                reply: Reply::new(ReplyStatus::Ok, &Decided { approval: &approval, payment: &payment_now })?,
            })
        })
        .await
    }

    /// Writes that execute an approved payment: the transfer, or FAILED when funds are short.
    async fn execute_held(
        &self,
        payment: &mut Payment,
        payment_version: u64,
        actor: &str,
        now: DateTime<Utc>,
    ) -> AppResult<Vec<Write>> {
        let from: Stored<Wallet> = self.read_owned(&wallet_key(&payment.from), &payment.org_id).await?;
        let to: Stored<Wallet> = self.read_owned(&wallet_key(&payment.to), &payment.org_id).await?;
        let amount = Money::from_decimal(payment.amount, payment.currency);
        let (mut source, mut target) = (from.value.clone(), to.value.clone());
        let mut writes = Vec::new();
        payment.updated_at = now;
        match transfer(&mut source, &mut target, amount, &payment.id, now) {
            Some((txn, lines)) => {
                payment.status = PaymentStatus::Completed;
                payment.transaction_id = Some(txn);
                payment.completed_at = Some(now);
                writes.push(records::update(&source, from.version)?);
                writes.push(records::update(&target, to.version)?);
                for line in &lines {
                    writes.push(records::create(line)?);
                }
                writes.push(records::create(&payment_event(payment, kinds::PAYMENT_COMPLETED, now)?)?);
                writes.push(records::create(&AuditEntry::new(
                    &payment.org_id,
                    "payment.completed",
                    "payment",
                    payment.id.as_str(),
                    actor,
                    json!({"amount": amount.to_wire()}),
                    now,
                ))?);
            }
            None => {
                payment.status = PaymentStatus::Failed;
                payment.failure_reason = Some(format!(
                    "insufficient funds: balance {} {}",
                    from.value.balance().to_wire(),
                    payment.currency
                ));
                // The failure is decided on this balance; a concurrent fund must make us re-plan.
                writes.push(Write::Check {
                    key: wallet_key(&from.value.id),
                    expect: crate::ports::Expect::Version(from.version),
                });
                writes.push(records::create(&payment_event(payment, kinds::PAYMENT_FAILED, now)?)?);
                writes.push(records::create(&AuditEntry::new(
                    &payment.org_id,
                    "payment.failed",
                    "payment",
                    payment.id.as_str(),
                    actor,
                    json!({"reason": payment.failure_reason}),
                    now,
                ))?);
            }
        }
        writes.push(records::update(payment, payment_version)?);
        Ok(writes)
    }

    /// Expires up to `limit` pending approvals whose window has passed, oldest first. Reads only
    /// due items (sparse index). Safe to run concurrently: each transition is conditional, and a
    /// lost race (approved meanwhile, or expired by another sweep) is skipped.
    pub async fn expire_due(&self, limit: usize) -> AppResult<ExpirySummary> {
        Ok(self.expire_due_after(limit, None).await?.0)
    }

    /// One page of the due index after `after`; returns what it did and where it stopped, so a
    /// sweep moves past records it had to skip instead of reading them again.
    pub(crate) async fn expire_due_after(
        &self,
        limit: usize,
        after: Option<Position>,
    ) -> AppResult<(ExpirySummary, Option<Position>)> {
        let now = self.now();
        let mut query = Query::new(Index::Due, DUE_APPROVALS, limit.max(1));
        query.newest_first = false;
        query.sk_at_most = Some(format!("{}#~", records::sort_time(now)));
        query.after = after;
        let due = self.store.query(query).await?;
        let mut summary = ExpirySummary { read: due.len(), ..Default::default() };
        let last = due.last().map(|item| item.position(Index::Due));
        for item in due {
            let key = item.key.clone();
            let outcome = match records::decode::<Approval>(item) {
                Ok(approval) => self.expire_one(&approval.value.id).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(true) => summary.expired += 1,
                Ok(false) | Err(AppError::Contention) => summary.skipped += 1,
                // The store being down ends the sweep (the next run retries); a bad record is
                // logged and skipped so it cannot block every approval behind it.
                Err(e @ AppError::Store(_)) => return Err(e),
                Err(e) => {
                    tracing::error!(item = %key.pk, error = %e, "cannot expire approval; skipped");
                    summary.skipped += 1;
                }
            }
        }
        Ok((summary, last))
    }

    async fn expire_one(&self, id: &ApprovalId) -> AppResult<bool> {
        self.commit_system(|| async {
            let Some(stored) = self.read::<Approval>(&approval_key(id)).await? else {
                return Ok(None);
            };
            let now = self.now();
            let mut approval = stored.value.clone();
            if approval.expire(now).is_err() {
                return Ok(None);
            }
            let payment: Stored<Payment> =
                self.read_owned(&payment_key(&approval.payment_id), &approval.org_id).await?;
            let mut p = payment.value.clone();
            p.status = PaymentStatus::Expired;
            p.updated_at = now;
            Ok(Some(vec![
                records::update(&approval, stored.version)?,
                records::update(&p, payment.version)?,
                records::create(&approval_event(&approval, kinds::APPROVAL_EXPIRED, now)?)?,
                records::create(&AuditEntry::new(
                    &approval.org_id,
                    "approval.expired",
                    "approval",
                    approval.id.as_str(),
                    "system",
                    json!({"paymentId": p.id}),
                    now,
                ))?,
            ]))
        })
        .await
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirySummary {
    /// Items read from the due index.
    pub read: usize,
    pub expired: usize,
    pub skipped: usize,
}
