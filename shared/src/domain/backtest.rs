//! Backtest: a wallet's past payments replayed, in time order, through its current policies
//! ("before") and through them with a draft policy added or standing in for one ("after"), so a
//! policy change shows what it would have done before it is made.
//!
//! Each scenario keeps its own history: the day's spend counts only what that scenario would
//! have executed, and the trailing hour's count what it would have executed or held (as intake
//! counts a held payment towards `maxPaymentsPerHour`, never a denied one). Pure: the service
//! reads the payments (`service::money::backtest`) and hands them here.
//!
//! What a replay cannot know (docs/api.md, "Backtest"):
//! - what people decided: a payment a scenario holds is counted as held and never spends
//!   (approved later, it would have spent when it was approved);
//! - requests denied when they were made: a denial stores no payment (only an audit entry), so
//!   they are not replayed;
//! - the decisions beside policies: "always allow" rules, a key's budgets, a frozen wallet, the
//!   balance. Both scenarios leave them out alike, so what changes between them is the draft's;
//! - velocity as intake estimates it (a sliding window over two hourly counters): the replay
//!   counts the trailing hour exactly.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, DurationRound, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use super::ids::{PaymentId, PolicyId, WalletId};
use super::input::InputError;
use super::money::Money;
use super::payment::Payment;
use super::policy::{evaluate, ActionKind, Decision, Outcome, PaymentFacts, Policy, PolicyMode};
use super::score::Score;

/// The most payments one backtest replays from its window.
pub const MAX_PAYMENTS: usize = 10_000;
/// The longest window, in days (a quarter).
pub const MAX_WINDOW_DAYS: i64 = 93;
/// The changed payments listed (`changedTotal` counts them all).
pub const MAX_CHANGED_LISTED: usize = 100;

/// The payments replayed: made at or after `since`, before `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl Window {
    pub fn new(since: DateTime<Utc>, until: DateTime<Utc>) -> Result<Self, InputError> {
        if since >= until {
            return Err(InputError::invalid("until", "must be later than since"));
        }
        if until - since > Duration::days(MAX_WINDOW_DAYS) {
            return Err(InputError::invalid("until", format!("the window may span at most {MAX_WINDOW_DAYS} days")));
        }
        Ok(Window { since, until })
    }

    /// Where the replay starts reading: the start of `since`'s UTC day when a daily limit is in
    /// play (the day's spend before the window), an hour before `since` when a velocity limit
    /// is (the trailing hour); else `since`. What is read before `since` is replayed, never
    /// counted.
    pub fn history_from(&self, daily: bool, hourly: bool) -> DateTime<Utc> {
        let mut from = self.since;
        if daily {
            from = from.min(self.since.duration_trunc(Duration::days(1)).unwrap_or(self.since));
        }
        if hourly {
            from = from.min(self.since - Duration::hours(1));
        }
        from
    }
}

/// Whether any of `policies` limits the day's spend, and any the hour's count, of payments.
pub fn limits_in_play(policies: &[Policy]) -> (bool, bool) {
    let live = || policies.iter().filter(|p| p.enabled && p.applies_to(ActionKind::Payment));
    (live().any(|p| p.daily_spending_limit.is_some()), live().any(|p| p.max_payments_per_hour.is_some()))
}

/// The policies a replay enforces: enabled, and not shadows (which never decide).
pub fn enforced(policies: &[Policy]) -> Vec<Policy> {
    policies.iter().filter(|p| p.enabled && p.mode == PolicyMode::Enforce).cloned().collect()
}

/// The current policies with `draft` standing in for `replace` (where it stood: the first
/// policy to produce the strictest outcome is the one reported), or added after them.
pub fn with_draft(current: &[Policy], draft: Policy, replace: Option<&PolicyId>) -> Vec<Policy> {
    let mut out = current.to_vec();
    match replace.and_then(|id| out.iter().position(|p| &p.id == id)) {
        Some(at) => out[at] = draft,
        None => out.push(draft),
    }
    out
}

/// A draft's field as the backtest body names it (`policy.` before the policy's own name).
pub fn draft_field(field: &'static str) -> &'static str {
    match field {
        "name" => "policy.name",
        "maxTransactionAmount" => "policy.maxTransactionAmount",
        "dailySpendingLimit" => "policy.dailySpendingLimit",
        "approvedRecipients" => "policy.approvedRecipients",
        "blockedRecipients" => "policy.blockedRecipients",
        "autoApproveBelow" => "policy.autoApproveBelow",
        "requireReviewAbove" => "policy.requireReviewAbove",
        "autoRejectAbove" => "policy.autoRejectAbove",
        "stepUpAbove" => "policy.stepUpAbove",
        "riskScoreThreshold" => "policy.riskScoreThreshold",
        "approvalTtlSeconds" => "policy.approvalTtlSeconds",
        "requiredApprovals" => "policy.requiredApprovals",
        "escalationChain" => "policy.escalationChain",
        "onTimeout" => "policy.onTimeout",
        "appliesTo" => "policy.appliesTo",
        "maxPaymentsPerHour" => "policy.maxPaymentsPerHour",
        _ => "policy",
    }
}

/// What a policy looks at in one past payment.
#[derive(Debug, Clone, PartialEq)]
pub struct PastPayment {
    pub id: PaymentId,
    pub at: DateTime<Utc>,
    /// What the agent asked for (a reviewer's lower amount is not what policies saw).
    pub amount: Money,
    pub to: WalletId,
    pub risk_score: Option<Score>,
}

impl PastPayment {
    pub fn of(payment: &Payment) -> Self {
        PastPayment {
            id: payment.id.clone(),
            at: payment.created_at,
            amount: payment.original_amount.unwrap_or(payment.amount),
            to: payment.to.clone(),
            risk_score: payment.risk_score,
        }
    }
}

/// A replayed payment's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    Executed,
    Held,
    Denied,
}

impl From<Outcome> for Fate {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Execute => Fate::Executed,
            Outcome::Hold => Fate::Held,
            Outcome::Deny => Fate::Denied,
        }
    }
}

/// How many payments a scenario executed, held and denied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Tally {
    pub executed: usize,
    pub held: usize,
    pub denied: usize,
}

impl Tally {
    fn count(&mut self, fate: Fate) {
        match fate {
            Fate::Executed => self.executed += 1,
            Fate::Held => self.held += 1,
            Fate::Denied => self.denied += 1,
        }
    }
}

/// A payment the draft would have treated otherwise, with the rule that tells why: the one that
/// decided the stricter side (the draft's new finding when it tightens, the finding it lifts
/// when it loosens).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Changed {
    pub payment_id: PaymentId,
    pub created_at: DateTime<Utc>,
    pub before: Fate,
    pub after: Fate,
    /// e.g. `maxTransactionAmount`.
    pub rule: String,
    pub reason: String,
    /// The stored policy whose rule it is; absent when it is the draft's.
    pub policy_id: Option<PolicyId>,
    /// The rule is the draft's.
    pub draft: bool,
}

/// What `POST /v1/wallets/{id}/policies/backtest` answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backtest {
    /// Payments replayed (made in the window).
    pub payments: usize,
    /// Under the current policies.
    pub before: Tally,
    /// With the draft.
    pub after: Tally,
    /// The first 100 payments whose fate changed, oldest first.
    pub changed: Vec<Changed>,
    /// Every payment whose fate changed.
    pub changed_total: usize,
}

/// One scenario's policies and what it has let through so far.
struct Scenario<'a> {
    policies: &'a [Policy],
    day: Option<chrono::NaiveDate>,
    spent: Decimal,
    /// When the payments it executed or held in the last hour were made, oldest first.
    recent: VecDeque<DateTime<Utc>>,
}

impl<'a> Scenario<'a> {
    fn new(policies: &'a [Policy]) -> Self {
        Scenario { policies, day: None, spent: Decimal::ZERO, recent: VecDeque::new() }
    }

    fn decide(&mut self, p: &PastPayment) -> Decision {
        if self.day != Some(p.at.date_naive()) {
            self.day = Some(p.at.date_naive());
            self.spent = Decimal::ZERO;
        }
        while self.recent.front().is_some_and(|t| *t <= p.at - Duration::hours(1)) {
            self.recent.pop_front();
        }
        let facts = PaymentFacts {
            spent_today: Money::from_decimal(self.spent, p.amount.currency()),
            payments_last_hour: u32::try_from(self.recent.len()).unwrap_or(u32::MAX),
            ..PaymentFacts::new(ActionKind::Payment, p.amount, &p.to, p.risk_score)
        };
        let decision = evaluate(self.policies, &facts);
        match decision.outcome {
            Outcome::Execute => {
                self.spent += p.amount.amount();
                self.recent.push_back(p.at);
            }
            Outcome::Hold => self.recent.push_back(p.at),
            Outcome::Deny => {}
        }
        decision
    }
}

/// Replays `payments` (any order; replayed oldest first) through `current` and `proposed`;
/// those made before `since` only build each scenario's history. `draft` is the draft's id.
pub fn replay(
    current: &[Policy],
    proposed: &[Policy],
    draft: &PolicyId,
    mut payments: Vec<PastPayment>,
    since: DateTime<Utc>,
) -> Backtest {
    payments.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
    let (mut before, mut after) = (Scenario::new(current), Scenario::new(proposed));
    let mut out = Backtest {
        payments: 0,
        before: Tally::default(),
        after: Tally::default(),
        changed: Vec::new(),
        changed_total: 0,
    };
    for p in &payments {
        let (was, would) = (before.decide(p), after.decide(p));
        if p.at < since {
            continue;
        }
        out.payments += 1;
        let (b, a) = (Fate::from(was.outcome), Fate::from(would.outcome));
        out.before.count(b);
        out.after.count(a);
        if b == a {
            continue;
        }
        out.changed_total += 1;
        if out.changed.len() < MAX_CHANGED_LISTED {
            let why = if would.outcome > was.outcome { would } else { was };
            let by_draft = why.policy_id.as_ref() == Some(draft);
            out.changed.push(Changed {
                payment_id: p.id.clone(),
                created_at: p.at,
                before: b,
                after: a,
                rule: why.rule,
                reason: why.reason,
                policy_id: why.policy_id.filter(|_| !by_draft),
                draft: by_draft,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::OrgId;
    use crate::domain::money::Currency;
    use chrono::TimeZone;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
    }

    fn policy() -> Policy {
        Policy::unrestricted(OrgId::generate(), WalletId::generate(), "p".into(), at(1, 0, 0))
    }

    fn paid(when: DateTime<Utc>, amount: &str, to: &WalletId) -> PastPayment {
        PastPayment {
            id: PaymentId::generate_at(when),
            at: when,
            amount: Money::from_decimal(d(amount), Currency::USD),
            to: to.clone(),
            risk_score: None,
        }
    }

    fn tally(executed: usize, held: usize, denied: usize) -> Tally {
        Tally { executed, held, denied }
    }

    #[test]
    fn a_tighter_maximum_denies_what_executed() {
        let to = WalletId::generate();
        let current = vec![Policy { require_review_above: Some(d("500")), ..policy() }];
        let draft = Policy { max_transaction_amount: Some(d("100")), ..policy() };
        let proposed = with_draft(&current, draft.clone(), None);
        let payments =
            vec![paid(at(2, 10, 0), "50", &to), paid(at(2, 11, 0), "150", &to), paid(at(2, 12, 0), "600", &to)];
        let out = replay(&current, &proposed, &draft.id, payments.clone(), at(2, 0, 0));
        assert_eq!(out.payments, 3);
        assert_eq!((out.before, out.after), (tally(2, 1, 0), tally(1, 0, 2)));
        assert_eq!(out.changed_total, 2);
        let rows: Vec<_> = out.changed.iter().map(|c| (&c.payment_id, c.before, c.after, c.rule.as_str())).collect();
        assert_eq!(
            rows,
            [
                (&payments[1].id, Fate::Executed, Fate::Denied, "maxTransactionAmount"),
                (&payments[2].id, Fate::Held, Fate::Denied, "maxTransactionAmount"),
            ]
        );
        assert!(out.changed.iter().all(|c| c.draft && c.policy_id.is_none()));
    }

    #[test]
    fn replacing_a_policy_loosens_and_names_the_lifted_rule() {
        let to = WalletId::generate();
        let strict = Policy { require_human_approval: true, ..policy() };
        let other = Policy { blocked_recipients: vec![WalletId::generate()], ..policy() };
        let current = vec![strict.clone(), other];
        let draft = Policy { auto_approve_below: Some(d("100")), require_human_approval: true, ..policy() };
        let proposed = with_draft(&current, draft.clone(), Some(&strict.id));
        assert_eq!((proposed.len(), &proposed[0].id), (2, &draft.id), "in the replaced one's place");
        let payments = vec![paid(at(2, 10, 0), "50", &to), paid(at(2, 11, 0), "150", &to)];
        let out = replay(&current, &proposed, &draft.id, payments.clone(), at(2, 0, 0));
        assert_eq!((out.before, out.after), (tally(0, 2, 0), tally(1, 1, 0)));
        let change = &out.changed[0];
        assert_eq!((&change.payment_id, change.before, change.after), (&payments[0].id, Fate::Held, Fate::Executed));
        assert_eq!(
            (change.rule.as_str(), change.policy_id.as_ref(), change.draft),
            ("requireHumanApproval", Some(&strict.id), false)
        );
    }

    #[test]
    fn each_scenario_spends_only_what_it_executed_and_days_start_afresh() {
        let to = WalletId::generate();
        let daily = Policy { daily_spending_limit: Some(d("100")), ..policy() };
        let current = vec![daily];
        let draft = Policy { max_transaction_amount: Some(d("50")), ..policy() };
        let proposed = with_draft(&current, draft.clone(), None);
        // Before: 60 + 30 = 90 executes, 20 more would make 110 (denied), 10 makes 100 (executes).
        // After: the 60 is denied by the draft, so 30 + 20 + 10 = 60 all execute.
        let payments = vec![
            paid(at(2, 9, 0), "60", &to),
            paid(at(2, 10, 0), "30", &to),
            paid(at(2, 11, 0), "20", &to),
            paid(at(2, 12, 0), "10", &to),
            // A new day: 40 fits again (100 + 40 would not, had the day not changed).
            paid(at(3, 9, 0), "40", &to),
        ];
        let out = replay(&current, &proposed, &draft.id, payments.clone(), at(2, 0, 0));
        assert_eq!((out.before, out.after), (tally(4, 0, 1), tally(4, 0, 1)));
        let rows: Vec<_> = out.changed.iter().map(|c| (&c.payment_id, c.before, c.after, c.rule.as_str())).collect();
        assert_eq!(
            rows,
            [
                (&payments[0].id, Fate::Executed, Fate::Denied, "maxTransactionAmount"),
                (&payments[2].id, Fate::Denied, Fate::Executed, "dailySpendingLimit"),
            ]
        );
        assert_eq!(out.changed[1].policy_id.as_ref(), Some(&current[0].id));
    }

    #[test]
    fn payments_before_since_build_history_but_are_not_counted() {
        let to = WalletId::generate();
        let current = vec![Policy { daily_spending_limit: Some(d("100")), ..policy() }];
        let draft = policy();
        let proposed = with_draft(&current, draft.clone(), None);
        let payments = vec![paid(at(2, 8, 0), "90", &to), paid(at(2, 10, 0), "20", &to)];
        let out = replay(&current, &proposed, &draft.id, payments, at(2, 9, 0));
        assert_eq!((out.payments, out.before, out.after), (1, tally(0, 0, 1), tally(0, 0, 1)));
    }

    #[test]
    fn the_trailing_hour_counts_what_executed_or_was_held_in_the_last_hour() {
        let to = WalletId::generate();
        let current = vec![Policy { max_payments_per_hour: Some(2), ..policy() }];
        let draft = Policy { max_transaction_amount: Some(d("5")), ..policy() };
        let proposed = with_draft(&current, draft.clone(), None);
        let payments = vec![
            paid(at(2, 10, 0), "10", &to),
            paid(at(2, 10, 10), "1", &to),
            paid(at(2, 10, 20), "1", &to),
            // An hour after the first: it has left the window.
            paid(at(2, 11, 0), "1", &to),
        ];
        let out = replay(&current, &proposed, &draft.id, payments, at(2, 0, 0));
        // Before: 10:00 and 10:10 execute, 10:20 is the third in the hour (denied), 11:00 sees
        // only 10:10 (executes). After: 10:00 is denied by the draft, so 10:20 executes, and
        // 11:00 then sees two in its hour (10:10, 10:20): denied.
        assert_eq!((out.before, out.after), (tally(3, 0, 1), tally(2, 0, 2)));
        let rows: Vec<_> = out.changed.iter().map(|c| (c.before, c.after, c.rule.as_str())).collect();
        assert_eq!(
            rows,
            [
                (Fate::Executed, Fate::Denied, "maxTransactionAmount"),
                (Fate::Denied, Fate::Executed, "maxPaymentsPerHour"),
                (Fate::Executed, Fate::Denied, "maxPaymentsPerHour"),
            ]
        );
    }

    #[test]
    fn only_the_first_hundred_changes_are_listed() {
        let to = WalletId::generate();
        let draft = Policy { blocked_recipients: vec![to.clone()], ..policy() };
        let proposed = vec![draft.clone()];
        let payments = (0..150).map(|i| paid(at(2, 10, 0) + Duration::seconds(i), "1", &to)).collect();
        let out = replay(&[], &proposed, &draft.id, payments, at(2, 0, 0));
        assert_eq!((out.changed.len(), out.changed_total, out.after), (100, 150, tally(0, 0, 150)));
        assert!(out.changed.windows(2).all(|w| w[0].created_at < w[1].created_at), "oldest first");
    }

    #[test]
    fn the_window_is_checked_and_history_reaches_back_as_far_as_limits_need() {
        assert!(Window::new(at(2, 0, 0), at(2, 0, 0)).is_err());
        assert!(Window::new(at(3, 0, 0), at(2, 0, 0)).is_err());
        let since = at(1, 0, 0);
        assert!(Window::new(since, since + Duration::days(MAX_WINDOW_DAYS)).is_ok());
        assert_eq!(
            Window::new(since, since + Duration::days(MAX_WINDOW_DAYS) + Duration::seconds(1)).unwrap_err().field(),
            "until"
        );
        let w = Window::new(at(2, 0, 30), at(3, 0, 0)).unwrap();
        assert_eq!(w.history_from(false, false), at(2, 0, 30));
        assert_eq!(w.history_from(true, false), at(2, 0, 0));
        assert_eq!(w.history_from(true, true), at(1, 23, 30));
        let later = Window::new(at(2, 15, 0), at(3, 0, 0)).unwrap();
        assert_eq!(later.history_from(true, true), at(2, 0, 0));
    }

    #[test]
    fn a_modified_payment_is_replayed_at_the_amount_asked_for() {
        let stored: Payment = serde_json::from_value(serde_json::json!({
            "id": "pay_01JEA5CZSN4RCA53RNF39CQ0M1", "orgId": "org_01JEA58F1WB7P5EH3MBV31GKTC",
            "from": "wal_01JEA54N6AVHB24CP7DGZ4B1H6", "to": "wal_01JEA5YDSP7B2FR2DDZR3TXGFE",
            "amount": "40.00", "currency": "USD", "originalAmount": {"amount": "90.00", "currency": "USD"},
            "description": null, "metadata": {}, "riskScore": 80, "confidenceScore": null, "agentReasoning": null,
            "urgency": null, "status": "REJECTED", "approvalId": null,
            "decision": {"outcome": "HOLD", "rule": "r", "reason": "r", "policyId": null, "requiredApprovals": 1},
            "createdBy": "key_01JEA5CZSN4RCA53RNF39CQ0M1", "transactionId": null, "failureReason": null,
            "createdAt": "2026-11-02T10:00:00Z", "updatedAt": "2026-11-02T10:00:00Z", "completedAt": null
        }))
        .unwrap();
        let past = PastPayment::of(&stored);
        assert_eq!((past.amount.to_wire(), past.at, past.risk_score.is_some()), ("90.00".into(), at(2, 10, 0), true));
    }
}
