//! `why_denied` (MCP): a denied payment writes no payment, so the agent asks with what it sent.
//! The answer is intake's own verdict (freezes, policies, an allow rule, the key's budgets, the
//! balance), written nowhere, with the rule that decided, its limit, and the largest amount
//! that would execute at once (found by bisection over the currency's minor units: every rule
//! with a limit only ever refuses larger amounts).

use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::budget::BudgetStanding;
use crate::domain::ids::WalletId;
use crate::domain::money::{Amount, Currency, Money};
use crate::domain::policy::{evaluate, ActionKind, Decision, Outcome, PaymentFacts, Policy};
use crate::domain::wallet::Wallet;
use crate::error::{AppError, AppResult};
use crate::layout::wallet_key;
use crate::service::money::payments::{verdict, Verdict};
use crate::service::{ensure_wallet, require, Caller, UseCases};

/// What the agent sent.
#[derive(Debug, Clone)]
pub struct WhyRequest {
    pub from: WalletId,
    pub to: WalletId,
    pub amount: Amount,
    pub currency: Option<Currency>,
}

/// Intake's verdict on that payment now, and what would pass.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WhyAnswer {
    /// `EXECUTE`, `HOLD` or `DENY`.
    pub outcome: Outcome,
    /// The deciding rule: a policy rule (`maxTransactionAmount` ...), `budget`, `alwaysAllow`,
    /// `walletFrozen`, `insufficientFunds`, or `default`.
    pub rule: String,
    pub reason: String,
    pub policy_id: Option<String>,
    /// The deciding rule's limit, when it has one (a decimal string in the wallet's currency).
    pub limit: Option<String>,
    /// The largest amount that would execute at once now (`null`: none would).
    pub executes_up_to: Option<String>,
    /// When denied: the largest amount that would at least be held for a person (`null`: none).
    pub not_denied_up_to: Option<String>,
    /// In words, e.g. "at most 1000.00 USD executes at once".
    pub would_pass: String,
    pub currency: Currency,
    /// The calling key's budgets in this currency as they stand.
    pub budgets: Vec<BudgetStanding>,
}

impl UseCases {
    /// `why_denied`: needs `payments:write` and the `from` wallet, like paying.
    pub async fn why_denied(&self, caller: &Caller, request: WhyRequest) -> AppResult<WhyAnswer> {
        let caller = caller.key()?;
        require(caller, crate::domain::permission::Permission::PaymentsWrite)?;
        ensure_wallet(caller, &request.from)?;
        let r = self.reader();
        let org = &caller.org_id;
        let (from_key, to_key) = (wallet_key(&request.from), wallet_key(&request.to));
        let (from, to, policies) = tokio::try_join!(
            r.read_owned::<Wallet>(&from_key, org),
            r.read_owned::<Wallet>(&to_key, org),
            r.wallet_policies(&request.from),
        )?;
        let (from, to) = (from.value, to.value);
        let currency = from.currency();
        if let Some(asked) = request.currency.filter(|c| *c != currency) {
            return Err(AppError::CurrencyMismatch { payment: asked.code().into(), wallet: currency.code().into() });
        }
        if to.currency() != currency {
            return Err(AppError::CurrencyMismatch {
                payment: currency.code().into(),
                wallet: to.currency().code().into(),
            });
        }
        let amount = request.amount.in_currency(currency)?;
        let now = self.now();
        let (velocity, budgets, allow_rule) = tokio::try_join!(
            r.velocity(&from, &policies, ActionKind::Payment),
            r.key_budgets(caller, currency, now),
            r.allow_rule(&from.id, &to.id),
        )?;
        let allow_rule = allow_rule.map(|s| s.value);
        let payments_last_hour = velocity.as_ref().map_or(0, |v| v.trailing_hour(now));
        let judge = |amount: Money| -> Judged {
            if let Some(frozen) = [&from, &to].into_iter().find(|w| w.is_frozen()) {
                let reason =
                    format!("wallet {} is frozen; nothing moves from or to it until it is unfrozen", frozen.id);
                return Judged::new(Outcome::Deny, "walletFrozen", reason, None);
            }
            let facts = PaymentFacts {
                spent_today: from.spent_today(now),
                payments_last_hour,
                ..PaymentFacts::new(ActionKind::Payment, amount, &to.id, None)
            };
            match verdict(evaluate(&policies, &facts), &policies, &facts, allow_rule.as_ref(), &budgets) {
                Verdict::OverBudget(refusal) => {
                    let limit = Some(refusal.budget.limit.clone());
                    Judged::new(Outcome::Deny, "budget", refusal.reason, limit)
                }
                Verdict::Decided { decision, .. } if decision.outcome != Outcome::Deny && amount > from.balance() => {
                    let balance = from.balance();
                    let reason = format!("insufficient funds: balance {} {}", balance.to_wire(), balance.currency());
                    Judged::new(Outcome::Deny, "insufficientFunds", reason, Some(balance.to_wire()))
                }
                Verdict::Decided { decision, .. } => {
                    let limit = rule_limit(&policies, &decision, &facts, &budgets);
                    Judged::from_decision(decision, limit)
                }
            }
        };
        let judged = judge(amount);
        let executes_up_to = largest_passing(amount, |a| judge(a).outcome == Outcome::Execute);
        let not_denied_up_to = (judged.outcome == Outcome::Deny)
            .then(|| largest_passing(amount, |a| judge(a).outcome != Outcome::Deny))
            .flatten();
        let code = currency.code();
        let would_pass = match (judged.outcome, executes_up_to, not_denied_up_to) {
            (Outcome::Execute, _, _) => format!("{} {code} executes at once", amount.to_wire()),
            (_, Some(up_to), _) => format!("at most {} {code} executes at once", up_to.to_wire()),
            (Outcome::Hold, None, _) => "no amount executes at once; it would be held for a person".into(),
            (_, None, Some(held)) => {
                format!("no amount executes at once; at most {} {code} would be held for a person", held.to_wire())
            }
            (_, None, None) => "no amount would pass now".into(),
        };
        Ok(WhyAnswer {
            outcome: judged.outcome,
            rule: judged.rule,
            reason: judged.reason,
            policy_id: judged.policy_id,
            limit: judged.limit,
            executes_up_to: executes_up_to.map(|m| m.to_wire()),
            not_denied_up_to: not_denied_up_to.map(|m| m.to_wire()),
            would_pass,
            currency,
            budgets: budgets.standings(),
        })
    }
}

/// One amount judged.
struct Judged {
    outcome: Outcome,
    rule: String,
    reason: String,
    policy_id: Option<String>,
    limit: Option<String>,
}

impl Judged {
    /// A refusal no policy made (a freeze, a budget, the balance).
    fn new(outcome: Outcome, rule: &str, reason: String, limit: Option<String>) -> Self {
        Judged { outcome, rule: rule.into(), reason, policy_id: None, limit }
    }

    fn from_decision(d: Decision, limit: Option<String>) -> Self {
        Judged {
            outcome: d.outcome,
            rule: d.rule,
            reason: d.reason,
            policy_id: d.policy_id.map(|p| p.to_string()),
            limit,
        }
    }
}

/// The deciding rule's limit, for the rules that have one (a `hold` budget's included).
fn rule_limit(
    policies: &[Policy],
    decision: &Decision,
    facts: &PaymentFacts<'_>,
    budgets: &super::budgets::KeyBudgets,
) -> Option<String> {
    if decision.rule == "budget" {
        return budgets.exceeded_by(facts.amount).map(|u| u.budget.limit().to_wire());
    }
    let policy = policies.iter().find(|p| Some(&p.id) == decision.policy_id.as_ref())?;
    let currency = facts.amount.currency();
    let wire = |d: Decimal| Money::from_decimal(d, currency).to_wire();
    match decision.rule.as_str() {
        "maxTransactionAmount" => policy.max_transaction_amount.map(wire),
        "autoRejectAbove" => policy.auto_reject_above.map(wire),
        "requireReviewAbove" => policy.require_review_above.map(wire),
        "autoApproveBelow" => policy.auto_approve_below.map(wire),
        "dailySpendingLimit" => policy.daily_spending_limit.map(wire),
        "maxPaymentsPerHour" => policy.max_payments_per_hour.map(|n| n.to_string()),
        "riskScoreThreshold" => policy.risk_score_threshold.map(|s| s.to_string()),
        _ => None,
    }
}

/// The largest amount up to `asked`, in the currency's minor units, for which `passes` holds,
/// given that it holds for every amount below one that passes.
fn largest_passing(asked: Money, passes: impl Fn(Money) -> bool) -> Option<Money> {
    let currency = asked.currency();
    let unit = Decimal::new(1, currency.minor_units());
    let money = |units: u128| Money::from_decimal(Decimal::from(units) * unit, currency);
    let top = rust_decimal::prelude::ToPrimitive::to_u128(&(asked.amount() / unit).trunc())?;
    if top == 0 || !passes(money(1)) {
        return None;
    }
    let (mut lo, mut hi) = (1u128, top);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if passes(money(mid)) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(money(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_finds_the_largest_passing_amount_in_minor_units() {
        let usd = |t: &str| Money::parse(t, Currency::USD).unwrap();
        let cap = usd("1000.00");
        assert_eq!(largest_passing(usd("2500.00"), |a| a <= cap), Some(cap));
        assert_eq!(largest_passing(usd("0.05"), |a| a < usd("0.03")), Some(usd("0.02")));
        assert_eq!(largest_passing(usd("10.00"), |_| false), None);
        let jpy = Currency::parse("JPY").unwrap();
        let yen = |t: &str| Money::parse(t, jpy).unwrap();
        assert_eq!(largest_passing(yen("500"), |a| a <= yen("120")), Some(yen("120")));
    }
}
