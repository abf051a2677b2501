//! Approvals: list, read, approve and reject. Approving executes the payment exactly once: the
//! approval's vote, the payment, both wallets, the ledger lines, the audit rows and the events
//! commit in one conditional transaction.

use crate::engine::Reader;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::approval::{Approval, ApprovalStatus, VoteDecision};
use crate::domain::audit::Actor;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApprovalId, TeamId, WalletId};
use crate::domain::metric::{Metric, Outcome};
use crate::domain::money::Amount;
use crate::domain::org::ApiKey;
use crate::domain::payment::Payment;
use crate::domain::people::Team;
use crate::domain::permission::Permission;
use crate::domain::refund::Refund;
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::{approval_key, team_key};
use crate::service::money::payments::listing_query;
use crate::service::money::refunds::plan_refund_escalation;
use crate::service::paging::{Page, PageRequest};
use crate::service::stats::record_escalation;
use crate::service::{ensure_wallet, require, Caller, UseCases};

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
    /// The passkey assertion for a step-up (only the dashboard's ceremony makes one).
    pub step_up: Option<crate::domain::step_up::StepUpProof>,
    /// Approve, and let later payments from this wallet to this payee up to a cap through
    /// without review (only with `Approve`, on a payment's approval needing one approver).
    pub always_allow: Option<crate::domain::allow_rule::AlwaysAllow>,
}

impl DecideRequest {
    /// A plain approve or reject with an optional note.
    pub fn new(decision: VoteDecision, note: Option<String>) -> Self {
        DecideRequest {
            decision,
            note,
            modify_to: None,
            modified_action: None,
            reviewer_name: None,
            step_up: None,
            always_allow: None,
        }
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
    /// The "always allow" rule the approval made or renewed, when it asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_rule: Option<crate::domain::allow_rule::AllowRule>,
}

/// A request to hand an approval to another team.
#[derive(Debug, Clone, PartialEq)]
pub struct EscalateRequest {
    pub note: Option<String>,
    /// This team, else the chain's next tier.
    pub to_team: Option<TeamId>,
}

impl UseCases {
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
            self.reader().read_owned::<Team>(&team_key(org, team), org).await?;
        }
        let r = self.reader();
        let escalated = self
            .engine
            .commit(&r, || async {
                let mut approval = r.read_owned::<Approval>(&approval_key(id), org).await?;
                ensure_wallet(caller, &approval.value.wallet_id)?;
                r.ensure_assigned(caller, &approval.value).await?;
                let mut tx = Tx::new(org, Actor::Key(caller.id.clone()), self.now());
                let now = tx.now();
                approval.value.ensure_open(now)?;
                let from = approval.value.assigned_team.clone();
                let by = caller.person();
                let admin = caller.is_org_admin();
                let to = approval.value.escalation_target(Some((&by, &caller.id)), request.to_team.as_ref(), admin)?;
                approval.value.escalate(to.clone(), now)?;
                record_escalation(&mut tx, &approval, from.clone(), Some(by))?;
                tx.update(&approval)?;
                plan_refund_escalation(&r, &mut tx, &approval.value).await?;
                tx.event(Event::for_approval(&approval.value, kinds::APPROVAL_ESCALATED, now))?;
                let details = json!({"fromTeam": from, "toTeam": to, "note": request.note});
                tx.audit("approval.escalated", "approval", id.as_str(), details)?;
                Ok(tx.done(approval.value))
            })
            .await?;
        self.record(Metric::Decisions(Outcome::Escalated), 1.0);
        Ok(escalated)
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
            let teams = self.reader().org_teams(&caller.org_id).await?;
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
        let approval = self.reader().read_owned::<Approval>(&approval_key(id), &caller.org_id).await?.value;
        ensure_wallet(caller, &approval.wallet_id)?;
        Ok(approval)
    }
}

impl Reader {
    /// An approval assigned to a team is decided only by that team's members, or an admin key.
    pub(crate) async fn ensure_assigned(&self, caller: &ApiKey, approval: &Approval) -> AppResult<()> {
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
}
