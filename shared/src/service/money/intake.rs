//! What payment and refund intake share: the outcome as committed, and the team a held one goes to.

use serde::{Deserialize, Serialize};

use crate::domain::ids::{OrgId, TeamId};
use crate::domain::policy::Decision;
use crate::domain::routing::{route, Subject};
use crate::engine::{Committed, Reader};
use crate::error::{AppError, AppResult};

/// An intake's outcome as it is committed (and remembered under an idempotency key): decided, or
/// denied, which writes only its audit row and reaches the caller as `POLICY_DENIED`.
#[allow(clippy::large_enum_variant)] // one per request, moved once
#[derive(Serialize, Deserialize)]
pub(crate) enum Intake<T> {
    Decided(T),
    Denied(Decision),
    /// Over a `deny` budget of the paying key.
    OverBudget(crate::domain::budget::BudgetRefusal),
}

impl<T> Intake<T> {
    /// The caller's answer.
    pub fn answer(committed: Committed<Intake<T>>) -> AppResult<Committed<T>> {
        match committed.outcome {
            Intake::Decided(outcome) => Ok(Committed { outcome, replayed: committed.replayed }),
            Intake::Denied(d) => Err(AppError::PolicyDenied {
                reason: d.reason,
                rule: d.rule,
                policy_id: d.policy_id.map(|p| p.to_string()),
            }),
            Intake::OverBudget(refusal) => Err(AppError::BudgetExceeded(Box::new(refusal))),
        }
    }
}

impl Reader {
    /// The team a held payment or refund goes to: the highest-priority matching routing rule's,
    /// else the holding policy's first escalation tier, else the organisation's default team.
    pub(crate) async fn team_for(
        &self,
        org: &OrgId,
        subject: &Subject<'_>,
        decision: &Decision,
    ) -> AppResult<Option<TeamId>> {
        let rules = self.org_rules(org).await?;
        let team = route(&rules, subject)
            .map(|rule| rule.assign_to_team.clone())
            .or_else(|| decision.escalation_chain.first().cloned());
        self.or_default_team(org, team).await
    }
}
