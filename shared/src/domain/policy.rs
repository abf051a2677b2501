//! Spending policies and the engine that decides: execute, hold for a human, or deny.
//!
//! Per policy, rules are checked in this order and the strictest finding wins (deny > hold >
//! execute); across a wallet's enabled policies the strictest policy outcome wins.
//! - deny: blocked recipient; amount above `autoRejectAbove`; without `requireHumanApproval`:
//!   amount above `maxTransactionAmount`, recipient outside `approvedRecipients`, day total above
//!   `dailySpendingLimit`.
//! - hold whatever else says: amount above `requireReviewAbove`; `riskScore` at or above
//!   `riskScoreThreshold`.
//! - velocity: `maxPaymentsPerHour` or more already made from the wallet in the trailing hour:
//!   hold with `requireHumanApproval`, else deny.
//!
//! A policy applies to payments, refunds or both (`appliesTo`); refund rules sit on the payee's
//! wallet (the one money leaves when refunding).
//! - hold: with `requireHumanApproval`, amount above `maxTransactionAmount` (every payment when no
//!   maximum is set, except those below `autoApproveBelow`), recipient outside
//!   `approvedRecipients`, day total above `dailySpendingLimit`; amount at or above `autoApproveBelow`.
//! - otherwise execute.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::ids::{OrgId, PolicyId, TeamId, WalletId};
use super::input::InputError;
use super::money::{opt_decimal_string, Amount, Currency, Money};
use super::score::Score;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub id: PolicyId,
    pub org_id: OrgId,
    pub wallet_id: WalletId,
    pub name: String,
    /// 1 at creation, one more for every change (`GET …/policies/{pid}/versions`; a policy
    /// stored before versions is version 1).
    #[serde(default = "super::policy_version::first_version")]
    #[schema(minimum = 1)]
    pub version: u32,
    pub enabled: bool,
    #[serde(with = "opt_decimal_string")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub max_transaction_amount: Option<Decimal>,
    #[serde(with = "opt_decimal_string")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub daily_spending_limit: Option<Decimal>,
    pub approved_recipients: Vec<WalletId>,
    pub blocked_recipients: Vec<WalletId>,
    pub require_human_approval: bool,
    #[serde(with = "opt_decimal_string")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub auto_approve_below: Option<Decimal>,
    #[serde(with = "opt_decimal_string")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub require_review_above: Option<Decimal>,
    #[serde(with = "opt_decimal_string")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub auto_reject_above: Option<Decimal>,
    /// Approving or modifying above this amount needs a passkey assertion by the deciding person.
    #[serde(default, with = "opt_decimal_string")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]+(\.[0-9]+)?$")]
    pub step_up_above: Option<Decimal>,
    pub risk_score_threshold: Option<Score>,
    pub approval_ttl_seconds: Option<u64>,
    pub required_approvals: u32,
    #[serde(default)]
    pub escalation_chain: Vec<TeamId>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// What the policy governs: payments (the default), refunds, or both.
    #[serde(default = "payments_only")]
    pub applies_to: Vec<ActionKind>,
    /// Velocity: at most this many payments from the wallet in the trailing hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payments_per_hour: Option<u32>,
    /// `enforce` (the default) or `shadow`: evaluated and recorded on each payment, never enforced.
    #[serde(default)]
    pub mode: PolicyMode,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What moves money out of a wallet: a payment from it, or a refund of a payment to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Payment,
    Refund,
}

impl ActionKind {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// Whether a policy decides (`enforce`) or only watches (`shadow`: evaluated on every payment
/// and refund it applies to and recorded beside the real decision, never enforced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    #[default]
    Enforce,
    Shadow,
}

impl PolicyMode {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

fn payments_only() -> Vec<ActionKind> {
    vec![ActionKind::Payment]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Outcome {
    Execute,
    Hold,
    Deny,
}

/// What the engine decided and which rule decided it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub outcome: Outcome,
    /// Machine-readable rule name, e.g. `maxTransactionAmount`.
    pub rule: String,
    /// Human-readable explanation.
    pub reason: String,
    pub policy_id: Option<PolicyId>,
    /// Shortest approval window among the policies that held the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_ttl_seconds: Option<u64>,
    /// Most approvers required among the policies that held the payment.
    pub required_approvals: u32,
    /// The deciding hold policy's escalation tiers (teams), first tier first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalation_chain: Vec<TeamId>,
    /// What the sweep does when the approval's window closes (the deciding hold policy's).
    #[serde(default)]
    pub on_timeout: OnTimeout,
}

impl Decision {
    /// Execute, no policy restricting it: what `evaluate` starts from.
    pub fn executed() -> Self {
        Decision {
            outcome: Outcome::Execute,
            rule: "default".into(),
            reason: "no policy restricts this payment".into(),
            policy_id: None,
            approval_ttl_seconds: None,
            required_approvals: 1,
            escalation_chain: vec![],
            on_timeout: OnTimeout::Expire,
        }
    }
}

/// What happens to an approval nobody decided in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    #[default]
    Expire,
    Reject,
    /// To the next team of the escalation chain; expire once the chain has ended.
    Escalate,
}

impl OnTimeout {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.to_string())).ok()
    }
}

/// The facts about one payment (or refund) that policies look at.
#[derive(Debug, Clone)]
pub struct PaymentFacts<'a> {
    pub kind: ActionKind,
    pub amount: Money,
    /// Who receives the money (for a refund: the original payer); unknown when only evaluating,
    /// and then the recipient rules do not apply.
    pub recipient: Option<&'a WalletId>,
    pub risk_score: Option<Score>,
    /// Already spent from the wallet today (UTC), before this payment.
    pub spent_today: Money,
    /// Payments made from the wallet in the trailing hour, before this one (velocity).
    pub payments_last_hour: u32,
    /// An "always allow" rule covers this payee and amount: the holds that only ask for a
    /// person's look are lifted (in policies wanting one approver; see `domain::allow_rule`).
    pub allow_listed: bool,
}

impl<'a> PaymentFacts<'a> {
    /// A payment's facts with no history (no spend today, no recent payments).
    pub fn new(kind: ActionKind, amount: Money, recipient: &'a WalletId, risk_score: Option<Score>) -> Self {
        PaymentFacts {
            kind,
            amount,
            recipient: Some(recipient),
            risk_score,
            spent_today: Money::zero(amount.currency()),
            payments_last_hour: 0,
            allow_listed: false,
        }
    }
}

impl Policy {
    /// An enabled policy that restricts nothing until its fields are set.
    pub fn unrestricted(org_id: OrgId, wallet_id: WalletId, name: String, now: DateTime<Utc>) -> Self {
        Policy {
            id: PolicyId::generate(),
            org_id,
            wallet_id,
            name,
            version: super::policy_version::FIRST_VERSION,
            enabled: true,
            max_transaction_amount: None,
            daily_spending_limit: None,
            approved_recipients: vec![],
            blocked_recipients: vec![],
            require_human_approval: false,
            auto_approve_below: None,
            require_review_above: None,
            auto_reject_above: None,
            step_up_above: None,
            risk_score_threshold: None,
            approval_ttl_seconds: None,
            required_approvals: 1,
            escalation_chain: vec![],
            on_timeout: OnTimeout::Expire,
            applies_to: payments_only(),
            max_payments_per_hour: None,
            mode: PolicyMode::Enforce,
            created_at: now,
            updated_at: now,
        }
    }

    /// Whether it governs `kind`: never for a shadow policy, which only watches (every limit,
    /// hold, step-up and velocity check that asks this skips it; see `shadows`).
    pub fn applies_to(&self, kind: ActionKind) -> bool {
        self.mode == PolicyMode::Enforce && self.applies_to.contains(&kind)
    }

    /// Whether it is an enabled shadow policy watching `kind`.
    pub fn shadows(&self, kind: ActionKind) -> bool {
        self.enabled && self.mode == PolicyMode::Shadow && self.applies_to.contains(&kind)
    }
}

/// A change to a policy, every input check already passed but the limits' minor units (which
/// need the wallet's currency). `Some(None)` clears an optional limit; `None` leaves a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyPatch {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub max_transaction_amount: Option<Option<Amount>>,
    pub daily_spending_limit: Option<Option<Amount>>,
    pub approved_recipients: Option<Vec<WalletId>>,
    pub blocked_recipients: Option<Vec<WalletId>>,
    pub require_human_approval: Option<bool>,
    pub auto_approve_below: Option<Option<Amount>>,
    pub require_review_above: Option<Option<Amount>>,
    pub auto_reject_above: Option<Option<Amount>>,
    pub step_up_above: Option<Option<Amount>>,
    pub risk_score_threshold: Option<Option<Score>>,
    pub approval_ttl_seconds: Option<Option<u64>>,
    pub required_approvals: Option<u32>,
    pub escalation_chain: Option<Vec<TeamId>>,
    pub on_timeout: Option<OnTimeout>,
    pub applies_to: Option<Vec<ActionKind>>,
    pub max_payments_per_hour: Option<Option<u32>>,
    pub mode: Option<PolicyMode>,
}

impl Policy {
    /// Applies `patch`; limits must fit `currency`'s minor units (the wallet's currency).
    pub fn apply(&mut self, patch: &PolicyPatch, currency: Currency, now: DateTime<Utc>) -> Result<(), InputError> {
        let limits = [
            ("maxTransactionAmount", &patch.max_transaction_amount, &mut self.max_transaction_amount),
            ("dailySpendingLimit", &patch.daily_spending_limit, &mut self.daily_spending_limit),
            ("autoApproveBelow", &patch.auto_approve_below, &mut self.auto_approve_below),
            ("requireReviewAbove", &patch.require_review_above, &mut self.require_review_above),
            ("autoRejectAbove", &patch.auto_reject_above, &mut self.auto_reject_above),
            ("stepUpAbove", &patch.step_up_above, &mut self.step_up_above),
        ];
        for (field, change, target) in limits {
            if let Some(limit) = change {
                *target = limit
                    .map(|a| a.in_currency(currency).map(|m| m.amount()))
                    .transpose()
                    .map_err(|source| InputError::Amount { field, source })?;
            }
        }
        if let Some(name) = &patch.name {
            self.name = name.clone();
        }
        if let Some(enabled) = patch.enabled {
            self.enabled = enabled;
        }
        if let Some(ids) = &patch.approved_recipients {
            self.approved_recipients = ids.clone();
        }
        if let Some(ids) = &patch.blocked_recipients {
            self.blocked_recipients = ids.clone();
        }
        if let Some(flag) = patch.require_human_approval {
            self.require_human_approval = flag;
        }
        if let Some(threshold) = patch.risk_score_threshold {
            self.risk_score_threshold = threshold;
        }
        if let Some(ttl) = patch.approval_ttl_seconds {
            self.approval_ttl_seconds = ttl;
        }
        if let Some(n) = patch.required_approvals {
            self.required_approvals = n;
        }
        if let Some(chain) = &patch.escalation_chain {
            self.escalation_chain = chain.clone();
        }
        if let Some(on_timeout) = patch.on_timeout {
            self.on_timeout = on_timeout;
        }
        if let Some(kinds) = &patch.applies_to {
            self.applies_to = kinds.clone();
        }
        if let Some(max) = patch.max_payments_per_hour {
            self.max_payments_per_hour = max;
        }
        if let Some(mode) = patch.mode {
            self.mode = mode;
        }
        self.updated_at = now;
        Ok(())
    }
}

/// The hold rules an "always allow" rule lifts.
pub const LIFTED_BY_ALLOW_RULES: [&str; 6] = [
    "requireReviewAbove",
    "riskScoreThreshold",
    "maxTransactionAmount",
    "requireHumanApproval",
    "approvedRecipients",
    "autoApproveBelow",
];

struct Finding {
    outcome: Outcome,
    rule: &'static str,
    reason: String,
}

impl Policy {
    fn findings(&self, p: &PaymentFacts<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        // An allow rule lifts the holds that ask for a look at this payment, never a policy's
        // wish for more than one approver, nor its limits (daily spend, velocity).
        let lifted = p.allow_listed && self.required_approvals <= 1;
        let mut push = |outcome: Outcome, rule: &'static str, reason: String| {
            if !(lifted && outcome == Outcome::Hold && LIFTED_BY_ALLOW_RULES.contains(&rule)) {
                out.push(Finding { outcome, rule, reason })
            }
        };
        let human = self.require_human_approval;
        let soft = if human { Outcome::Hold } else { Outcome::Deny };
        let amount = p.amount.amount();
        let cur = p.amount.currency().code();

        if let Some(to) = p.recipient.filter(|to| self.blocked_recipients.contains(to)) {
            push(Outcome::Deny, "blockedRecipients", format!("recipient {to} is blocked"));
        }
        if let Some(limit) = self.auto_reject_above.filter(|l| amount > *l) {
            push(Outcome::Deny, "autoRejectAbove", format!("amount {amount} {cur} is above autoRejectAbove {limit}"));
        }
        if let Some(limit) = self.require_review_above.filter(|l| amount > *l) {
            push(
                Outcome::Hold,
                "requireReviewAbove",
                format!("amount {amount} {cur} is above requireReviewAbove {limit}"),
            );
        }
        if let (Some(threshold), Some(score)) = (self.risk_score_threshold, p.risk_score) {
            if score >= threshold {
                push(
                    Outcome::Hold,
                    "riskScoreThreshold",
                    format!("Risk score exceeds threshold: {score} is at or above {threshold}"),
                );
            }
        }
        match self.max_transaction_amount {
            Some(max) if amount > max => {
                push(
                    soft,
                    "maxTransactionAmount",
                    format!("amount {amount} {cur} is above maxTransactionAmount {max}"),
                );
            }
            None if human && self.auto_approve_below.is_none_or(|below| amount >= below) => {
                push(Outcome::Hold, "requireHumanApproval", "policy requires human approval for every payment".into());
            }
            _ => {}
        }
        if let Some(to) =
            p.recipient.filter(|to| !self.approved_recipients.is_empty() && !self.approved_recipients.contains(to))
        {
            push(soft, "approvedRecipients", format!("recipient {to} is not an approved recipient"));
        }
        if let Some(limit) = self.daily_spending_limit {
            let total = p.spent_today.amount() + amount;
            if total > limit {
                push(
                    soft,
                    "dailySpendingLimit",
                    format!("today's total {total} {cur} would exceed dailySpendingLimit {limit}"),
                );
            }
        }
        if let Some(max) = self.max_payments_per_hour.filter(|m| p.payments_last_hour >= *m) {
            push(
                soft,
                "maxPaymentsPerHour",
                format!(
                    "{} payments from this wallet in the last hour; maxPaymentsPerHour is {max}",
                    p.payments_last_hour
                ),
            );
        }
        if let Some(below) = self.auto_approve_below.filter(|b| amount >= *b) {
            push(
                Outcome::Hold,
                "autoApproveBelow",
                format!("amount {amount} {cur} is not below autoApproveBelow {below}"),
            );
        }
        out
    }
}

/// The tightest `dailySpendingLimit` and `maxPaymentsPerHour` of the enabled policies for
/// `kind`: what a payment they let through must still be within when it commits (its
/// transaction guards the counters it was decided on with them).
pub fn commit_limits(policies: &[Policy], kind: ActionKind) -> (Option<Decimal>, Option<u32>) {
    let enabled = || policies.iter().filter(|p| p.enabled && p.applies_to(kind));
    (enabled().filter_map(|p| p.daily_spending_limit).min(), enabled().filter_map(|p| p.max_payments_per_hour).min())
}

/// Evaluates every enabled policy that applies to the facts' kind; the strictest outcome wins,
/// and the first rule that produced it is reported.
pub fn evaluate(policies: &[Policy], facts: &PaymentFacts<'_>) -> Decision {
    let mut decision = Decision::executed();
    let mut holding_policies = Vec::new();
    for policy in policies.iter().filter(|p| p.enabled && p.applies_to(facts.kind)) {
        let findings = policy.findings(facts);
        let Some(worst) = findings.iter().max_by_key(|f| f.outcome) else {
            if decision.outcome == Outcome::Execute && decision.policy_id.is_none() {
                decision.rule = "policy".into();
                decision.reason = format!("payment satisfies policy {:?}", policy.name);
                decision.policy_id = Some(policy.id.clone());
            }
            continue;
        };
        // First finding of the worst outcome, in rule order.
        let first = findings.iter().find(|f| f.outcome == worst.outcome).unwrap_or(worst);
        if first.outcome == Outcome::Hold {
            holding_policies.push(policy);
        }
        if first.outcome > decision.outcome {
            decision.outcome = first.outcome;
            decision.rule = first.rule.into();
            decision.reason = first.reason.clone();
            decision.policy_id = Some(policy.id.clone());
        }
    }
    if decision.outcome == Outcome::Hold {
        decision.approval_ttl_seconds = holding_policies.iter().filter_map(|p| p.approval_ttl_seconds).min();
        decision.required_approvals = holding_policies.iter().map(|p| p.required_approvals).max().unwrap_or(1).max(1);
        if let Some(decider) = holding_policies.iter().find(|p| Some(&p.id) == decision.policy_id.as_ref()) {
            decision.escalation_chain = decider.escalation_chain.clone();
            decision.on_timeout = decider.on_timeout;
        }
    }
    decision
}

/// What one shadow policy would have decided, alone, on a payment's or refund's facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShadowDecision {
    pub policy_id: PolicyId,
    pub outcome: Outcome,
    /// Machine-readable rule name (`policy` when it would have let it through).
    pub rule: String,
    pub reason: String,
}

/// Every enabled shadow policy for the facts' kind, each evaluated alone as if enforced.
pub fn shadow_decisions(policies: &[Policy], facts: &PaymentFacts<'_>) -> Vec<ShadowDecision> {
    policies
        .iter()
        .filter(|p| p.shadows(facts.kind))
        .map(|p| {
            let enforced = Policy { mode: PolicyMode::Enforce, ..p.clone() };
            let d = evaluate(std::slice::from_ref(&enforced), facts);
            ShadowDecision { policy_id: p.id.clone(), outcome: d.outcome, rule: d.rule, reason: d.reason }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn usd(s: &str) -> Money {
        Money::from_decimal(d(s), Currency::USD)
    }

    fn policy() -> Policy {
        Policy::unrestricted(OrgId::generate(), WalletId::generate(), "p".into(), Utc::now())
    }

    fn decide(policies: &[Policy], amount: &str, risk: Option<i64>, to: &WalletId) -> Decision {
        evaluate(
            policies,
            &PaymentFacts::new(ActionKind::Payment, usd(amount), to, risk.map(|r| Score::new(Decimal::from(r)))),
        )
    }

    #[test]
    fn no_policy_executes() {
        let to = WalletId::generate();
        assert_eq!(decide(&[], "5000.00", None, &to).outcome, Outcome::Execute);
    }

    #[test]
    fn wallgent_max_with_human_approval_holds_above_max_only() {
        let to = WalletId::generate();
        let p = Policy { max_transaction_amount: Some(d("1000")), require_human_approval: true, ..policy() };
        assert_eq!(decide(std::slice::from_ref(&p), "1000.00", None, &to).outcome, Outcome::Execute);
        let held = decide(&[p], "1000.01", None, &to);
        assert_eq!((held.outcome, held.rule.as_str()), (Outcome::Hold, "maxTransactionAmount"));
    }

    #[test]
    fn max_without_human_approval_denies() {
        let to = WalletId::generate();
        let p = Policy { max_transaction_amount: Some(d("100")), ..policy() };
        assert_eq!(decide(&[p], "100.01", None, &to).outcome, Outcome::Deny);
    }

    #[test]
    fn human_approval_without_max_holds_everything_but_auto_approve_below() {
        let to = WalletId::generate();
        let p = Policy { require_human_approval: true, ..policy() };
        assert_eq!(decide(std::slice::from_ref(&p), "0.01", None, &to).outcome, Outcome::Hold);
        let q = Policy { auto_approve_below: Some(d("50")), ..p };
        assert_eq!(decide(std::slice::from_ref(&q), "49.99", None, &to).outcome, Outcome::Execute);
        assert_eq!(decide(&[q], "50.00", None, &to).outcome, Outcome::Hold);
    }

    #[test]
    fn refundkit_thresholds_and_risk_override() {
        let to = WalletId::generate();
        let p = Policy {
            auto_approve_below: Some(d("50")),
            require_review_above: Some(d("200")),
            risk_score_threshold: Some(Score::new(Decimal::from(70))),
            ..policy()
        };
        assert_eq!(decide(std::slice::from_ref(&p), "30.00", Some(30), &to).outcome, Outcome::Execute);
        let risky = decide(std::slice::from_ref(&p), "30.00", Some(80), &to);
        assert_eq!((risky.outcome, risky.rule.as_str()), (Outcome::Hold, "riskScoreThreshold"));
        assert_eq!(decide(&[p], "250.00", Some(0), &to).rule, "requireReviewAbove");
    }

    #[test]
    fn deny_rules_beat_holds_and_strictest_policy_wins() {
        let to = WalletId::generate();
        let blocker = Policy { blocked_recipients: vec![to.clone()], ..policy() };
        let holder = Policy { require_human_approval: true, ..policy() };
        let out = decide(&[holder, blocker.clone()], "1.00", None, &to);
        assert_eq!((out.outcome, out.policy_id), (Outcome::Deny, Some(blocker.id)));
        let reject = Policy { auto_reject_above: Some(d("10")), require_review_above: Some(d("5")), ..policy() };
        assert_eq!(decide(&[reject], "11.00", None, &to).rule, "autoRejectAbove");
    }

    #[test]
    fn refundkit_examples_as_refund_rules() {
        let to = WalletId::generate();
        let p = Policy {
            applies_to: vec![ActionKind::Refund],
            auto_approve_below: Some(d("50")),
            require_review_above: Some(d("200")),
            risk_score_threshold: Some(Score::new(Decimal::from(70))),
            ..policy()
        };
        let refund = |amount: &str, risk: i64| {
            let facts = PaymentFacts::new(ActionKind::Refund, usd(amount), &to, Some(Score::new(Decimal::from(risk))));
            evaluate(std::slice::from_ref(&p), &facts)
        };
        assert_eq!(refund("30.00", 30).outcome, Outcome::Execute);
        // The middle band (at or above autoApproveBelow, not above requireReviewAbove) is reviewed.
        assert_eq!(
            (refund("150.00", 30).outcome, refund("150.00", 30).rule.as_str()),
            (Outcome::Hold, "autoApproveBelow")
        );
        assert_eq!(refund("250.00", 30).rule, "requireReviewAbove");
        let risky = refund("30.00", 80);
        assert_eq!((risky.outcome, risky.rule.as_str()), (Outcome::Hold, "riskScoreThreshold"));
        assert!(risky.reason.starts_with("Risk score exceeds threshold"), "{}", risky.reason);
        // A refund rule never decides a payment, nor a payment rule a refund.
        let facts = PaymentFacts::new(ActionKind::Payment, usd("250.00"), &to, None);
        assert_eq!(evaluate(std::slice::from_ref(&p), &facts).outcome, Outcome::Execute);
        let payments = Policy { require_human_approval: true, ..policy() };
        let facts = PaymentFacts::new(ActionKind::Refund, usd("250.00"), &to, None);
        assert_eq!(evaluate(&[payments], &facts).outcome, Outcome::Execute);
    }

    #[test]
    fn velocity_holds_or_denies_a_runaway_loop() {
        let to = WalletId::generate();
        let deny = Policy { max_payments_per_hour: Some(3), ..policy() };
        let facts = |n| PaymentFacts {
            payments_last_hour: n,
            ..PaymentFacts::new(ActionKind::Payment, usd("1.00"), &to, None)
        };
        assert_eq!(evaluate(std::slice::from_ref(&deny), &facts(2)).outcome, Outcome::Execute);
        let out = evaluate(std::slice::from_ref(&deny), &facts(3));
        assert_eq!((out.outcome, out.rule.as_str()), (Outcome::Deny, "maxPaymentsPerHour"));
        let hold = Policy { require_human_approval: true, max_transaction_amount: Some(d("1000")), ..deny };
        assert_eq!(evaluate(std::slice::from_ref(&hold), &facts(2)).outcome, Outcome::Execute);
        assert_eq!(evaluate(&[hold], &facts(3)).outcome, Outcome::Hold);
    }

    #[test]
    fn an_allow_rule_lifts_review_holds_but_not_limits_quorums_or_denials() {
        let to = WalletId::generate();
        let allowed = |amount: &str, spent: &str| PaymentFacts {
            allow_listed: true,
            spent_today: usd(spent),
            ..PaymentFacts::new(ActionKind::Payment, usd(amount), &to, Some(Score::new(Decimal::from(90))))
        };
        let review = Policy {
            require_review_above: Some(d("10")),
            risk_score_threshold: Some(Score::new(Decimal::from(70))),
            require_human_approval: true,
            ..policy()
        };
        assert_eq!(evaluate(std::slice::from_ref(&review), &allowed("20", "0")).outcome, Outcome::Execute);
        let daily = Policy { daily_spending_limit: Some(d("25")), ..review.clone() };
        let out = evaluate(std::slice::from_ref(&daily), &allowed("20", "10"));
        assert_eq!((out.outcome, out.rule.as_str()), (Outcome::Hold, "dailySpendingLimit"));
        let two = Policy { required_approvals: 2, ..review.clone() };
        assert_eq!(evaluate(&[two], &allowed("20", "0")).outcome, Outcome::Hold);
        let deny = Policy { auto_reject_above: Some(d("15")), ..review };
        assert_eq!(evaluate(&[deny], &allowed("20", "0")).outcome, Outcome::Deny);
    }

    #[test]
    fn disabled_policies_are_ignored() {
        let to = WalletId::generate();
        let p = Policy { enabled: false, require_human_approval: true, ..policy() };
        assert_eq!(decide(&[p], "1.00", None, &to).outcome, Outcome::Execute);
    }

    #[test]
    fn daily_limit_counts_what_was_already_spent() {
        let to = WalletId::generate();
        let p = Policy { daily_spending_limit: Some(d("100")), require_human_approval: false, ..policy() };
        let facts =
            PaymentFacts { spent_today: usd("80"), ..PaymentFacts::new(ActionKind::Payment, usd("30"), &to, None) };
        assert_eq!(evaluate(&[p], &facts).outcome, Outcome::Deny);
    }

    #[test]
    fn hold_takes_shortest_ttl_and_largest_quorum() {
        let to = WalletId::generate();
        let a =
            Policy { require_human_approval: true, approval_ttl_seconds: Some(600), required_approvals: 2, ..policy() };
        let b = Policy { require_human_approval: true, approval_ttl_seconds: Some(60), ..policy() };
        let out = decide(&[a, b], "1.00", None, &to);
        assert_eq!((out.approval_ttl_seconds, out.required_approvals), (Some(60), 2));
    }

    #[test]
    fn a_shadow_policy_is_never_enforced_but_says_what_it_would_do() {
        let to = WalletId::generate();
        let deny = Policy { blocked_recipients: vec![to.clone()], mode: PolicyMode::Shadow, ..policy() };
        let hold = Policy {
            require_human_approval: true,
            daily_spending_limit: Some(d("1")),
            max_payments_per_hour: Some(1),
            applies_to: vec![ActionKind::Payment, ActionKind::Refund],
            mode: PolicyMode::Shadow,
            ..policy()
        };
        let policies = [deny.clone(), hold.clone()];
        let out = decide(&policies, "5.00", None, &to);
        assert_eq!((out.outcome, out.rule.as_str()), (Outcome::Execute, "default"));
        assert_eq!(commit_limits(&policies, ActionKind::Payment), (None, None));
        let facts = PaymentFacts::new(ActionKind::Payment, usd("5.00"), &to, None);
        let seen = shadow_decisions(&policies, &facts);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (&seen[0].policy_id, seen[0].outcome, seen[0].rule.as_str()),
            (&deny.id, Outcome::Deny, "blockedRecipients")
        );
        assert_eq!((&seen[1].policy_id, seen[1].outcome), (&hold.id, Outcome::Hold));
        // A refund: only the policy that applies to refunds watches it; a disabled one none.
        let refund = PaymentFacts::new(ActionKind::Refund, usd("5.00"), &to, None);
        assert_eq!(shadow_decisions(&policies, &refund).len(), 1);
        let off = Policy { enabled: false, ..hold.clone() };
        assert!(shadow_decisions(&[off], &refund).is_empty());
        // Switched to enforce, it decides.
        let enforced = Policy { mode: PolicyMode::Enforce, ..deny };
        assert_eq!(decide(&[enforced], "5.00", None, &to).outcome, Outcome::Deny);
        // A policy stored before modes existed enforces.
        let mut stored = serde_json::to_value(policy()).unwrap();
        stored.as_object_mut().unwrap().remove("mode");
        assert_eq!(serde_json::from_value::<Policy>(stored).unwrap().mode, PolicyMode::Enforce);
        let ok = shadow_decisions(&[Policy { mode: PolicyMode::Shadow, ..policy() }], &facts);
        assert_eq!((ok[0].outcome, ok[0].rule.as_str()), (Outcome::Execute, "policy"));
    }
}
