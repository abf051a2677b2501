//! Payment intake: decide by policy, then execute at once or hold for approval.

use serde_json::json;

use crate::domain::allow_rule::AllowRule;
use crate::domain::audit::Actor;
use crate::domain::budget::{BudgetRefusal, Charge, OnExceed, Reservation};
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApiKeyId, OrgId, PaymentId, TeamId, WalletId};
use crate::domain::org::key_id_of_secret;
use crate::domain::payment::{NewPayment, Payment, PaymentOutcome, PaymentStatus};
use crate::domain::permission::Permission;
use crate::domain::policy::{
    commit_limits, evaluate, ActionKind, Decision, Outcome, PaymentFacts, Policy, ShadowDecision,
};
use crate::domain::policy_version::applied_versions;
use crate::domain::routing::Subject;
use crate::domain::velocity::PaymentRate;
use crate::domain::wallet::Wallet;
use crate::engine::plan::{Planned, Tx};
use crate::engine::reader::Reads;
use crate::engine::Reader;
use crate::engine::{Change, Committed, IdempotencyScope};
use crate::error::{AppError, AppResult};
use crate::layout::{
    self, by_org_partition, by_status_partition, by_wallet_partition, payment_key, rate_key, wallet_key, Record, Stored,
};
use crate::ports::{Index, Key, Query};
use crate::service::money::budgets::KeyBudgets;
use crate::service::money::execution::plan_execution;
use crate::service::money::freeze::ensure_not_frozen;
use crate::service::money::in_place;
use crate::service::money::step_up::step_up_threshold;
use crate::service::paging::{Page, PageRequest};
use crate::service::{ensure_wallet, require, Caller, Countersign, Owned, UseCases};

/// What intake reads first, all by key in one BatchGetItem: both wallets, the payer's policy
/// set and payment counter, and (when the caller's organisation is known) its settings (the
/// default team) and the caller's idempotency record. The routing rules (a query) are read only
/// when a payment is held: a payment executed at once is one read and one transaction.
fn intake_reads(org: Option<&OrgId>, caller: Option<&ApiKeyId>, request: &NewPayment) -> Reads {
    let mut reads = Reads {
        // The allow rule rides along (read only if policies hold): no extra round trip.
        keys: vec![
            wallet_key(&request.from),
            wallet_key(&request.to),
            rate_key(&request.from),
            layout::allow_rule_key(&request.from, &request.to),
            layout::policy_set_key(&request.from),
        ],
        queries: Vec::new(),
    };
    if let Some(org) = org {
        reads.keys.push(layout::settings_key(org));
        if let (Some(key), Some(caller)) = (&request.idempotency, caller) {
            reads.keys.push(layout::idempotency_key(org, caller, PAYMENTS_SCOPE, key.key()));
        }
    }
    reads
}

/// The idempotency scope of payment intake.
const PAYMENTS_SCOPE: &str = "payments";

/// Which payments a listing shows.
#[derive(Debug, Default)]
pub struct PaymentFilter {
    pub wallet_id: Option<WalletId>,
    pub status: Option<PaymentStatus>,
}

type Intake = super::intake::Intake<PaymentOutcome>;

impl UseCases {
    /// `POST /v1/payments`.
    pub async fn create_payment(&self, caller: &Caller, request: NewPayment) -> AppResult<Committed<PaymentOutcome>> {
        self.intake(caller, request, self.reader()).await
    }

    async fn intake(&self, caller: &Caller, request: NewPayment, r: Reader) -> AppResult<Committed<PaymentOutcome>> {
        let caller = caller.key()?;
        require(caller, Permission::PaymentsWrite)?;
        ensure_wallet(caller, &request.from)?;
        let org = caller.org_id.clone();
        let scope = request.idempotency.as_ref().map(|key| IdempotencyScope {
            org: &org,
            caller: &caller.id,
            operation: PAYMENTS_SCOPE.into(),
            key,
        });
        let change = Change::default() // What every intake reads; the organisation's routing rules and settings only when it holds
            // (prefetched with the key when the key's organisation was known already).
            .reads(intake_reads(None, None, &request))
            .idempotent(scope);
        let committed = self
            .engine
            .run(&r, change, || async {
                // Independent reads go out together: one round trip, not three.
                let (from_key, to_key) = (wallet_key(&request.from), wallet_key(&request.to));
                let (from, to, policies) = tokio::try_join!(
                    r.read_owned::<Wallet>(&from_key, &org),
                    r.read_owned::<Wallet>(&to_key, &org),
                    r.wallet_policies(&request.from),
                )?;
                let currency = from.value.currency();
                if let Some(asked) = request.currency.filter(|c| *c != currency) {
                    return Err(AppError::CurrencyMismatch {
                        payment: asked.code().into(),
                        wallet: currency.code().into(),
                    }
                    .into());
                }
                if to.value.currency() != currency {
                    return Err(AppError::CurrencyMismatch {
                        payment: currency.code().into(),
                        wallet: to.value.currency().code().into(),
                    }
                    .into());
                }
                let amount = request.amount.in_currency(currency)?;
                ensure_not_frozen([&from.value, &to.value], false)?;
                let mut tx = Tx::new(&org, Actor::Key(caller.id.clone()), self.now());
                let (velocity, budgets, shadows) = tokio::try_join!(
                    r.velocity(&from.value, &policies, ActionKind::Payment),
                    r.key_budgets(caller, currency, tx.now()),
                    r.shadows(&org, &from.value.id, &policies, ActionKind::Payment),
                )?;
                let facts = PaymentFacts {
                    spent_today: from.value.spent_today(tx.now()),
                    payments_last_hour: velocity.as_ref().map_or(0, |v| v.trailing_hour(tx.now())),
                    ..PaymentFacts::new(ActionKind::Payment, amount, &to.value.id, request.risk_score)
                };
                let decided = evaluate(&policies, &facts);
                let allow_rule = match decided.outcome {
                    // Only a hold can be lifted: the rule is looked at only then.
                    Outcome::Hold => r.allow_rule(&from.value.id, &to.value.id).await?,
                    _ => None,
                };
                let rule = allow_rule.as_ref().map(|s| &s.value);
                let (decision, allowed_by) = match verdict(decided, &policies, &facts, rule, &budgets) {
                    Verdict::Decided { decision, allowed } => (decision, allowed.then_some(allow_rule).flatten()),
                    Verdict::OverBudget(refusal) => {
                        let shadow = shadows.record(&mut tx, &facts, Outcome::Deny)?;
                        let details = with_shadow(
                            json!({
                                "rule": "budget", "budget": refusal.budget, "reason": refusal.reason,
                                "from": from.value.id, "to": to.value.id, "amount": amount.to_wire()
                            }),
                            &shadow,
                        );
                        tx.audit("payment.denied", "wallet", from.value.id.as_str(), details)?;
                        return Ok(tx.refused(Intake::OverBudget(refusal)));
                    }
                };
                // Shadow policies see what the real decision saw (an allow rule's lift included).
                let seen = PaymentFacts { allow_listed: allowed_by.is_some(), ..facts.clone() };
                let shadow = shadows.record(&mut tx, &seen, decision.outcome)?;
                if decision.outcome == Outcome::Deny {
                    // A denial is a decision: it is audited although nothing else is written.
                    let details = with_shadow(
                        json!({
                            "decision": decision, "from": from.value.id, "to": to.value.id, "amount": amount.to_wire()
                        }),
                        &shadow,
                    );
                    tx.audit("payment.denied", "wallet", from.value.id.as_str(), details)?;
                    return Ok(tx.refused(Intake::Denied(decision)));
                }
                if amount > from.value.balance() {
                    return Err(ledger_refusal(&from.value, amount).into());
                }
                let mut payment = Payment::new(org.clone(), &request, amount, decision, caller.id.clone(), tx.now());
                payment.submitted_by = Some(caller.person());
                payment.shadow_decisions = shadow;
                payment.policy_versions = Some(applied_versions(&policies, ActionKind::Payment));
                // What a payment let through rests on must still hold when it commits: the
                // policies as read and the counters' room under their limits. A hold rests on
                // nothing that can move under it: its approval keeps the policies it was made
                // under, execution checks the deny rules and the freeze again.
                let executes = payment.decision.outcome == Outcome::Execute;
                if executes {
                    policies.check(&mut tx);
                }
                let (daily_limit, hourly_limit) = match executes {
                    true => commit_limits(&policies, ActionKind::Payment),
                    false => (None, None),
                };
                if let Some(velocity) = velocity {
                    velocity.count_one(&mut tx, hourly_limit)?;
                }
                let plan = if executes {
                    budgets.charge(&mut tx, amount, Charge::Spend)?;
                    if let Some(mut rule) = allowed_by {
                        rule.value.hit(tx.now());
                        tx.update(&rule)?;
                    }
                    plan_immediate(tx, payment, from, to, daily_limit)?
                } else {
                    let reservation = budgets.charge(&mut tx, amount, Charge::Reserve)?;
                    let team = r.team_for(&org, &Subject::for_payment(&payment), &payment.decision).await?;
                    let step_up_above = step_up_threshold(&policies, ActionKind::Payment);
                    self.plan_hold(tx, payment, team, reservation, step_up_above)?
                };
                Ok(plan)
            })
            .await?;
        Intake::answer(committed)
    }
}

impl UseCases {
    /// Holds the payment: a pending approval, which keeps the step-up threshold of the policies
    /// it is held under (`step_up_above`), as it keeps their quorum and chain.
    fn plan_hold(
        &self,
        mut tx: Tx,
        mut payment: Payment,
        team: Option<TeamId>,
        reservation: Option<Reservation>,
        step_up_above: Option<rust_decimal::Decimal>,
    ) -> Planned<Intake> {
        let ttl = payment.decision.approval_ttl_seconds.unwrap_or(self.settings.default_approval_ttl_seconds);
        let mut approval = payment.hold(ttl, tx.now())?;
        approval.assigned_team = team;
        approval.reservation = reservation;
        approval.step_up_above = step_up_above;
        tx.create(&approval)?;
        tx.event(Event::for_approval(&approval, kinds::APPROVAL_CREATED, tx.now()))?;
        let details = json!({"decision": payment.decision, "approvalId": approval.id});
        tx.audit("payment.held", "payment", payment.id.as_str(), details)?;
        tx.create(&payment)?;
        Ok(tx.done(Intake::Decided(PaymentOutcome::Held { payment, approval })))
    }

    pub async fn get_payment(&self, caller: &Caller, id: &PaymentId) -> AppResult<Payment> {
        self.read_between(caller, &payment_key(id)).await
    }

    pub async fn list_payments(
        &self,
        caller: &Caller,
        filter: &PaymentFilter,
        page: &PageRequest,
    ) -> AppResult<Page<Payment>> {
        // By wallet (± status, the index's sort key prefix), else all of the organisation's,
        // newest first, keeping the status asked for (payments are not in byStatus).
        let by_wallet = filter.wallet_id.is_some();
        let listing = Listing {
            kind: "PAYMENT",
            wallet: filter.wallet_id.as_ref(),
            status: filter.status.filter(|_| by_wallet).map(PaymentStatus::as_str),
        };
        let wanted = filter.status;
        self.list_between(caller, listing, page, |p: &Payment| wanted.is_none_or(|s| p.status() == s)).await
    }

    /// A payment or refund the caller may see: its org's, and to or from one of its wallets.
    pub(crate) async fn read_between<R: Record + Owned + BetweenWallets>(
        &self,
        caller: &Caller,
        key: &Key,
    ) -> AppResult<R> {
        let caller = caller.key()?;
        require(caller, Permission::PaymentsRead)?;
        let record = self.reader().read_owned::<R>(key, &caller.org_id).await?.value;
        if !record.wallets().iter().any(|w| caller.may_use(w)) {
            return Err(AppError::WalletNotAllowed);
        }
        Ok(record)
    }

    /// A page of payments or refunds the caller may see, that `keep` wants.
    pub(crate) async fn list_between<R: Record + BetweenWallets>(
        &self,
        caller: &Caller,
        listing: Listing<'_>,
        page: &PageRequest,
        keep: impl Fn(&R) -> bool,
    ) -> AppResult<Page<R>> {
        let caller = caller.key()?;
        require(caller, Permission::PaymentsRead)?;
        if let Some(wallet) = listing.wallet {
            ensure_wallet(caller, wallet)?;
        }
        let query = listing_query(&caller.org_id, listing.kind, listing.wallet, listing.status, page.limit);
        self.page(query, page, |r: &R| r.wallets().iter().any(|w| caller.may_use(w)) && keep(r)).await
    }
}

/// Which of a kind's records a listing reads: by wallet (± status), by status, or all.
pub(crate) struct Listing<'a> {
    pub kind: &'static str,
    pub wallet: Option<&'a WalletId>,
    pub status: Option<&'a str>,
}

/// Money between two wallets (payments, refunds): a key bound to wallets sees those touching one.
pub(crate) trait BetweenWallets {
    fn wallets(&self) -> [&WalletId; 2];
}

impl BetweenWallets for Payment {
    fn wallets(&self) -> [&WalletId; 2] {
        [&self.from, &self.to]
    }
}

impl BetweenWallets for crate::domain::refund::Refund {
    fn wallets(&self) -> [&WalletId; 2] {
        [&self.from, &self.to]
    }
}

/// A wallet's payment counter as read (absent until its first counted payment).
pub(crate) struct Velocity {
    stored: Option<Stored<PaymentRate>>,
    org: OrgId,
    wallet: WalletId,
}

impl Velocity {
    /// Payments in the trailing hour at `now`.
    pub fn trailing_hour(&self, now: chrono::DateTime<chrono::Utc>) -> u32 {
        self.stored.as_ref().map_or(0, |s| s.value.trailing_hour(now))
    }

    /// Counts this payment in the same transaction, in place (`in_place::count_payment`);
    /// `max_per_hour` when it was let through under that limit.
    pub fn count_one(self, tx: &mut Tx, max_per_hour: Option<u32>) -> AppResult<()> {
        let now = tx.now();
        match self.stored {
            Some(mut stored) => {
                let change = in_place::count_payment(&stored.value, now, max_per_hour);
                stored.value.record(now);
                tx.adjust(&stored, change)
            }
            None => {
                let mut rate = PaymentRate::new(self.org, self.wallet, now);
                rate.record(now);
                tx.create(&rate)
            }
        }
    }
}

/// Executes a payment policies let through: the transfer, the payment created COMPLETED.
fn plan_immediate(
    mut tx: Tx,
    payment: Payment,
    from: Stored<Wallet>,
    to: Stored<Wallet>,
    daily_limit: Option<rust_decimal::Decimal>,
) -> Planned<Intake> {
    let details = json!({"decision": payment.decision, "amount": payment.amount.to_wire()});
    let (wallet, amount) = (from.value.clone(), payment.amount);
    let (payment, executed) = plan_execution(&mut tx, payment, from, to, "payment.completed", details, daily_limit)?;
    if !executed {
        return Err(ledger_refusal(&wallet, amount).into());
    }
    tx.create(&payment)?;
    Ok(tx.done(Intake::Decided(PaymentOutcome::Executed { payment })))
}

/// What intake decides about a payment before its balance is checked.
pub(crate) enum Verdict {
    /// Policies' decision (an allow rule's or a budget's, when one changed it); `allowed` when
    /// the allow rule let it through.
    Decided { decision: Decision, allowed: bool },
    /// Over a `deny` budget.
    OverBudget(BudgetRefusal),
}

/// Policies' `decision` first (a deny stands), then an "always allow" rule covering a hold (the
/// policies evaluated again with it), then the key's budgets (a `deny` budget refuses, a `hold`
/// one holds what would execute).
pub(crate) fn verdict(
    mut decision: Decision,
    policies: &[Policy],
    facts: &PaymentFacts<'_>,
    allow_rule: Option<&AllowRule>,
    budgets: &KeyBudgets,
) -> Verdict {
    let mut allowed = false;
    if decision.outcome == Outcome::Deny {
        return Verdict::Decided { decision, allowed };
    }
    if let Some(rule) = allow_rule.filter(|_| decision.outcome == Outcome::Hold) {
        if rule.covers(facts.amount, budgets.now())
            && evaluate(policies, &PaymentFacts { allow_listed: true, ..facts.clone() }).outcome == Outcome::Execute
        {
            decision = allowed_decision(rule);
            allowed = true;
        }
    }
    if let Some(over) = budgets.exceeded_by(facts.amount) {
        if over.budget.on_exceed == OnExceed::Deny {
            return Verdict::OverBudget(over.refusal(facts.amount));
        }
        if decision.outcome == Outcome::Execute {
            decision = budget_hold(over.explain(facts.amount));
            allowed = false;
        }
    }
    Verdict::Decided { decision, allowed }
}

/// A denial's audit details with the shadow decisions beside them (when the wallet has any).
pub(crate) fn with_shadow(mut details: serde_json::Value, decisions: &[ShadowDecision]) -> serde_json::Value {
    if let (Some(fields), false) = (details.as_object_mut(), decisions.is_empty()) {
        fields.insert("shadowDecisions".into(), json!(decisions));
    }
    details
}

/// The decision of a payment an "always allow" rule let through.
fn allowed_decision(rule: &AllowRule) -> Decision {
    let cap = rule.max();
    Decision {
        outcome: Outcome::Execute,
        rule: "alwaysAllow".into(),
        reason: format!("payee allowed by {} up to {} {}", rule.id, cap.to_wire(), cap.currency()),
        ..Decision::executed()
    }
}

/// The decision of a payment policies let through but a `hold` budget of its key stops.
fn budget_hold(reason: String) -> Decision {
    Decision { outcome: Outcome::Hold, rule: "budget".into(), reason, ..Decision::executed() }
}

fn ledger_refusal(wallet: &Wallet, amount: crate::domain::money::Money) -> AppError {
    crate::domain::wallet::BalanceError::Insufficient { balance: wallet.balance(), requested: amount }.into()
}

/// Picks the index for a payment or approval listing: by wallet (± status), by status, or all.
pub(crate) fn listing_query(
    org: &OrgId,
    kind: &str,
    wallet: Option<&WalletId>,
    status: Option<&str>,
    limit: usize,
) -> Query {
    match (wallet, status) {
        (Some(wallet), status) => {
            let mut q = Query::new(Index::ByWallet, by_wallet_partition(org, wallet, kind), limit);
            q.sk_prefix = status.map(|s| format!("{s}#"));
            q
        }
        (None, Some(status)) => Query::new(Index::ByStatus, by_status_partition(org, kind, status), limit),
        (None, None) => Query::new(Index::ByOrg, by_org_partition(org, kind), limit),
    }
}

impl Reader {
    /// The wallet's payment counter, when one of its enabled `kind` policies limits velocity
    /// (a shadow policy's limit included: it sees the same count the real decision would).
    pub(crate) async fn velocity(
        &self,
        wallet: &Wallet,
        policies: &[Policy],
        kind: ActionKind,
    ) -> AppResult<Option<Velocity>> {
        let limited = policies
            .iter()
            .any(|p| (p.enabled && p.applies_to(kind) || p.shadows(kind)) && p.max_payments_per_hour.is_some());
        if !limited {
            return Ok(None);
        }
        let stored = self.read::<PaymentRate>(&rate_key(&wallet.id)).await?;
        Ok(Some(Velocity { stored, org: wallet.org_id.clone(), wallet: wallet.id.clone() }))
    }
}

impl Countersign {
    /// `POST /v1/payments` as the door sees it: a bearer token and the parsed body (or why it
    /// did not parse, answered once the caller may know). On a remote store the key is read in
    /// one round trip with everything intake reads first, so an intake is two round trips:
    /// that read, then its transaction.
    pub async fn create_payment_from(
        &self,
        bearer: Option<&str>,
        request: AppResult<NewPayment>,
    ) -> AppResult<Committed<PaymentOutcome>> {
        let key_id = bearer.and_then(key_id_of_secret);
        let ahead =
            |org: Option<&OrgId>| request.as_ref().map(|r| intake_reads(org, key_id.as_ref(), r)).unwrap_or_default();
        let (caller, reader) = self.authenticate_prefetching(bearer, Permission::PaymentsWrite, ahead).await?;
        self.intake(&caller, request?, reader).await
    }
}
