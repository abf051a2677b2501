//! Approvals: list, read, approve and reject. Approving executes the payment exactly once: the
//! approval's vote, the payment, both wallets, the ledger lines, the audit rows and the events
//! commit in one conditional transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ahead::Reads;
use super::paging::{Page, PageRequest};
use super::payments::{listing_query, plan_denied_execution, plan_execution};
use super::plan::{stale, Tx};
use super::policies::policies_query;
use super::records::{approval_key, payment_key, refund_key, settings_key, team_key, wallet_key};
use super::refunds::{plan_refund_escalation, plan_refund_vote};
use super::{ensure_wallet, require, Caller, Countersign};
use crate::domain::approval::{Approval, ApprovalStatus, Resolution, Vote, VoteDecision};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApprovalId, OrgId, TeamId, WalletId};
use crate::domain::money::Amount;
use crate::domain::org::ApiKey;
use crate::domain::payment::{Payment, PaymentError};
use crate::domain::people::Team;
use crate::domain::permission::Permission;
use crate::domain::policy::{evaluate, ActionKind, Outcome, PaymentFacts};
use crate::domain::refund::Refund;
use crate::domain::wallet::Wallet;
use crate::error::{AppError, AppResult};
use crate::ports::Key;

/// Which approvals a listing shows.
#[derive(Debug, Default)]
pub struct ApprovalFilter {
    pub wallet_id: Option<WalletId>,
    pub status: Option<ApprovalStatus>,
    /// Only those assigned to this team.
    pub team: Option<TeamId>,
    /// Only those assigned to a team the caller's person belongs to.
    pub assigned_to_me: bool,
}

/// A reviewer's vote on an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct DecideRequest {
    pub decision: VoteDecision,
    pub note: Option<String>,
    /// Approve this lower amount instead (modify); only with `Approve`.
    pub modify_to: Option<Amount>,
    /// Through `/reviews`: the modified action in words, and the reviewer's name.
    pub modified_action: Option<String>,
    pub reviewer_name: Option<String>,
}

impl DecideRequest {
    /// A plain approve or reject with an optional note.
    pub fn new(decision: VoteDecision, note: Option<String>) -> Self {
        DecideRequest { decision, note, modify_to: None, modified_action: None, reviewer_name: None }
    }
}

/// What a vote left behind: the approval, with the payment as it now stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decided {
    pub approval: Approval,
    pub payment: Payment,
    /// The refund the approval decided, when it decided one (`payment` is then the refunded one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<Refund>,
}

/// A request to hand an approval to another team.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalateRequest {
    pub note: Option<String>,
    /// This team, else the chain's next tier.
    pub to_team: Option<TeamId>,
}

impl Countersign {
    /// `POST /v1/approvals/{id}/escalate`, by a member of the assigned team (or an admin key),
    /// never by the submitter's person: forward only, to the chain's next tier or (admin) a
    /// named team it never had, within the chain's time bound (`Approval::escalation_target`).
    pub async fn escalate_approval(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        request: EscalateRequest,
    ) -> AppResult<Approval> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsWrite)?;
        let org = &caller.org_id;
        if let Some(team) = &request.to_team {
            self.read_owned::<Team>(&team_key(org, team), org).await?;
        }
        self.commit(|| async {
            let mut approval = self.read_owned::<Approval>(&approval_key(id), org).await?;
            ensure_wallet(caller, &approval.value.wallet_id)?;
            self.ensure_assigned(caller, &approval.value).await?;
            let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
            let now = tx.now();
            approval.value.ensure_open(now)?;
            let from = approval.value.assigned_team.clone();
            let by = caller.person();
            let admin = caller.is_org_admin();
            let to = approval.value.escalation_target(Some((&by, &caller.id)), request.to_team.as_ref(), admin)?;
            approval.value.escalate(to.clone(), now)?;
            tx.update(&approval)?;
            plan_refund_escalation(self, &mut tx, &approval.value).await?;
            tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_ESCALATED, now))?;
            let details = json!({"fromTeam": from, "toTeam": to, "note": request.note});
            tx.audit("approval.escalated", "approval", id.as_str(), details)?;
            Ok(tx.done(approval.value))
        })
        .await
    }

    /// An approval assigned to a team is decided only by that team's members, or an admin key.
    async fn ensure_assigned(&self, caller: &ApiKey, approval: &Approval) -> AppResult<()> {
        self.ensure_team(caller, approval.assigned_team.as_ref()).await
    }

    /// Something assigned to a team (an approval, a review) is decided only by that team's
    /// members, or an admin key. Something unassigned (made before the organisation set a
    /// default team) goes to the default team now; with none, anyone who may decide does.
    pub(crate) async fn ensure_team(&self, caller: &ApiKey, assigned: Option<&TeamId>) -> AppResult<()> {
        if caller.is_org_admin() {
            return Ok(());
        }
        let team_id = match assigned {
            Some(team) => team.clone(),
            None => match self.org_settings(&caller.org_id).await?.default_team {
                Some(team) => team,
                None => return Ok(()),
            },
        };
        let team = self.read::<Team>(&team_key(&caller.org_id, &team_id)).await?.map(|t| t.value);
        let person = caller.person();
        match (team, person.member()) {
            (Some(team), Some(member)) if team.members.contains(member) => Ok(()),
            _ => Err(AppError::NotAssigned),
        }
    }

    pub async fn list_approvals(
        &self,
        caller: &Caller,
        filter: &ApprovalFilter,
        page: &PageRequest,
    ) -> AppResult<Page<Approval>> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        if let Some(wallet) = &filter.wallet_id {
            ensure_wallet(caller, wallet)?;
        }
        let status = filter.status.map(ApprovalStatus::as_str);
        let query = listing_query(&caller.org_id, "APPROVAL", filter.wallet_id.as_ref(), status, page.limit);
        let my_teams: Vec<TeamId> = if filter.assigned_to_me {
            let person = caller.person();
            let teams = self.org_teams(&caller.org_id).await?;
            teams.into_iter().filter(|t| person.member().is_some_and(|m| t.members.contains(m))).map(|t| t.id).collect()
        } else {
            Vec::new()
        };
        let shown = |a: &Approval| {
            caller.may_use(&a.wallet_id)
                && filter.team.as_ref().is_none_or(|t| a.assigned_team.as_ref() == Some(t))
                && (!filter.assigned_to_me || a.assigned_team.as_ref().is_some_and(|t| my_teams.contains(t)))
        };
        self.page(query, page, shown).await
    }

    pub async fn get_approval(&self, caller: &Caller, id: &ApprovalId) -> AppResult<Approval> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsRead)?;
        let approval = self.read_owned::<Approval>(&approval_key(id), &caller.org_id).await?.value;
        ensure_wallet(caller, &approval.wallet_id)?;
        Ok(approval)
    }

    /// `POST /v1/approvals/{id}/approve` and `/reject` as the door sees them: a bearer token
    /// and the parsed body (or why it did not parse, answered once the caller may know). On a
    /// remote store the key and the approval are read in one round trip, what the decision
    /// needs in a second, and the transaction is the third.
    pub async fn decide_approval_from(
        &self,
        bearer: Option<&str>,
        id: &ApprovalId,
        request: AppResult<DecideRequest>,
    ) -> AppResult<Decided> {
        self.reading_ahead(async {
            let ahead = |_: Option<&OrgId>| Reads { keys: vec![approval_key(id)], queries: Vec::new() };
            let caller = self.authenticate_reading(bearer, Permission::ApprovalsWrite, ahead).await?;
            self.decide_approval(&caller, id, request?).await
        })
        .await
    }

    /// `POST /v1/approvals/{id}/approve` and `/reject`.
    pub async fn decide_approval(
        &self,
        caller: &Caller,
        id: &ApprovalId,
        request: DecideRequest,
    ) -> AppResult<Decided> {
        let caller = caller.key()?;
        require(caller, Permission::ApprovalsWrite)?;
        let org = &caller.org_id;
        let expected = self.decision_lanes(caller, id, request.decision).await;
        self.reading_ahead(self.commit_in_turn(&expected, || async {
            let mut approval = self.read_owned::<Approval>(&approval_key(id), org).await?;
            ensure_wallet(caller, &approval.value.wallet_id)?;
            // What a decision may need, read together in one round trip: the team check, the
            // payment, and (for a payment's approval) both wallets and the payer's policies.
            let a = &approval.value;
            let executes = request.decision == VoteDecision::Approve && a.refund_id.is_none();
            let payment_at = payment_key(&a.payment_id);
            self.read_ahead(decision_reads(caller, a, request.decision == VoteDecision::Approve)).await;
            let (_, mut payment, wallets) = tokio::try_join!(
                self.ensure_assigned(caller, a),
                self.read_owned::<Payment>(&payment_at, org),
                async {
                    if !executes {
                        return Ok(None);
                    }
                    let (from_key, to_key) = (wallet_key(&a.wallet_id), wallet_key(&a.transaction_details.recipient));
                    let (from, to, policies) = tokio::try_join!(
                        self.read_owned::<Wallet>(&from_key, org),
                        self.read_owned::<Wallet>(&to_key, org),
                        self.wallet_policies(&a.wallet_id),
                    )?;
                    Ok::<_, AppError>(Some((from, to, policies)))
                },
            )?;
            let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
            let now = tx.now();
            let modified = request.decision == VoteDecision::Approve && request.modify_to.is_some();
            if modified && approval.value.refund_id.is_some() {
                return Err(AppError::RefundNotModifiable);
            }
            let mut modified_action = None;
            if let (VoteDecision::Approve, Some(asked)) = (request.decision, request.modify_to) {
                let amount = asked.in_currency(payment.value.amount.currency())?;
                let before = payment.value.modify(&mut approval.value, amount).map_err(|e| match e {
                    PaymentError::NotPending(_) => AppError::Stale,
                    other => other.into(),
                })?;
                tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_MODIFIED, now))?;
                let details = json!({"from": before.to_wire(), "to": amount.to_wire(), "note": request.note});
                tx.audit("approval.modified", "approval", approval.value.id.as_str(), details)?;
                let said = request.modified_action.clone();
                modified_action = Some(said.unwrap_or_else(|| {
                    let code = amount.currency().code();
                    format!("Pay {} {code} instead of {} {code}", amount.to_wire(), before.to_wire())
                }));
            }
            let vote = Vote {
                key_id: caller.id.clone(),
                person: Some(caller.person()),
                decision: request.decision,
                note: request.note.clone(),
                modified_action,
                reviewer_name: request.reviewer_name.clone(),
                at: now,
            };
            let resolution = approval.value.cast(vote, now)?;
            tx.update(&approval)?;
            if approval.value.refund_id.is_some() {
                // A refund's approval: the refund executes or is released; the payment stays.
                let refund =
                    plan_refund_vote(self, &mut tx, &approval.value, &mut payment, resolution, &request.note).await?;
                return Ok(tx.done(Decided { approval: approval.value, payment: payment.value, refund }));
            }
            let (approval_id, payment_id) = (approval.value.id.as_str(), payment.value.id.clone());
            match resolution {
                Resolution::AwaitingMoreApprovals => {
                    if modified {
                        tx.update(&payment)?;
                    }
                    tx.audit("approval.voted", "approval", approval_id, json!({"note": request.note}))?;
                }
                Resolution::Rejected => {
                    payment.value.reject(now).map_err(stale)?;
                    tx.update(&payment)?;
                    tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_REJECTED, now))?;
                    let details = json!({"reason": request.note, "paymentId": payment_id});
                    tx.audit("approval.rejected", "approval", approval_id, details)?;
                }
                Resolution::Approved => {
                    // Bound to what the approvers were shown: nothing else executes.
                    if !payment.value.matches(&approval.value) {
                        return Err(AppError::PayloadMismatch);
                    }
                    tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_APPROVED, now))?;
                    let details = json!({"note": request.note, "paymentId": payment_id});
                    tx.audit("approval.approved", "approval", approval_id, details)?;
                    let Some((from, to, policies)) = wallets else {
                        return Err(AppError::Stale);
                    };
                    if (&from.value.id, &to.value.id) != (&payment.value.from, &payment.value.to) {
                        return Err(AppError::PayloadMismatch);
                    }
                    let facts = PaymentFacts {
                        spent_today: from.value.spent_today(now),
                        ..PaymentFacts::new(
                            ActionKind::Payment,
                            payment.value.amount,
                            &payment.value.to,
                            payment.value.risk_score,
                        )
                    };
                    let recheck = evaluate(&policies, &facts);
                    payment.value = if recheck.outcome == Outcome::Deny {
                        plan_denied_execution(&mut tx, payment.value.clone(), &from, &recheck)?
                    } else {
                        let details = json!({"amount": payment.value.amount.to_wire()});
                        plan_execution(&mut tx, payment.value.clone(), from, to, details)?.0
                    };
                    tx.update(&payment)?;
                }
            }
            Ok(tx.done(Decided { approval: approval.value, payment: payment.value, refund: None }))
        }))
        .await
    }
}

impl Countersign {
    /// The records a decision expects to rewrite (the approval, its payment, and both wallets
    /// when this approval can complete it and so execute the payment), so its plan is made in
    /// their lanes from the start: approvals from one wallet then take turns once each instead
    /// of planning, finding the wallet overtaken and planning again. On the embedded store only,
    /// where this read costs microseconds; where every read is a round trip, conditions alone
    /// decide. Nothing for a caller the plan will refuse (it reports why).
    async fn decision_lanes(&self, caller: &ApiKey, id: &ApprovalId, decision: VoteDecision) -> Vec<Key> {
        if self.committed.reads_are_round_trips() {
            return Vec::new();
        }
        let Ok(approval) = self.read_owned::<Approval>(&approval_key(id), &caller.org_id).await else {
            return Vec::new();
        };
        let a = approval.value;
        if ensure_wallet(caller, &a.wallet_id).is_err() {
            return Vec::new();
        }
        let mut keys = vec![approval_key(id), payment_key(&a.payment_id)];
        let approvals = a.votes.iter().filter(|v| v.decision == VoteDecision::Approve).count();
        let completes = approvals + 1 >= a.required_approvals.max(1) as usize;
        if decision == VoteDecision::Approve && completes && a.refund_id.is_none() {
            keys.extend([wallet_key(&a.wallet_id), wallet_key(&a.transaction_details.recipient)]);
        }
        keys
    }
}

/// What deciding `approval` reads once it has read the approval: the assigned team (or, when it
/// has none, the settings that name the default team; neither for an admin), the payment (and a
/// refund's refund), and when the decision may execute it, both wallets and the policies of the
/// wallet the money leaves (the payer's; a refund's payee), which execution checks again.
fn decision_reads(caller: &ApiKey, approval: &Approval, executes: bool) -> Reads {
    let mut reads = Reads { keys: vec![payment_key(&approval.payment_id)], queries: Vec::new() };
    if let Some(refund) = &approval.refund_id {
        reads.keys.push(refund_key(refund));
    }
    if !caller.is_org_admin() {
        reads.keys.push(match &approval.assigned_team {
            Some(team) => team_key(&caller.org_id, team),
            None => settings_key(&caller.org_id),
        });
    }
    if executes {
        reads.keys.push(wallet_key(&approval.wallet_id));
        reads.keys.push(wallet_key(&approval.transaction_details.recipient));
        reads.queries.push(policies_query(&approval.wallet_id));
    }
    reads
}
