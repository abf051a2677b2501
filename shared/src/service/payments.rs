//! Payment intake: validate, decide by policy, then execute at once or hold for approval.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;

use super::auth::parse;
use super::commit::{Idempotency, Plan, Reply, ReplyStatus};
use super::paging::{Page, PageRequest};
use super::records::{
    self, by_org_partition, by_status_partition, by_wallet_partition, payment_key, wallet_key, Stored,
};
use super::{require, Caller, Countersign};
use crate::domain::approval::{Approval, ApprovalStatus, TransactionDetails};
use crate::domain::audit::AuditEntry;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApprovalId, OrgId, PaymentId, TransactionId, WalletId};
use crate::domain::input::{self, InputError, MAX_DESCRIPTION_CHARS};
use crate::domain::money::{Currency, Money};
use crate::domain::payment::{Payment, PaymentStatus, Score};
use crate::domain::permission::Permission;
use crate::domain::policy::{evaluate, Outcome, PaymentFacts};
use crate::domain::wallet::{EntryKind, LedgerEntry, Wallet};
use crate::error::{AppError, AppResult};
use crate::ports::{Index, Query, Write};

const URGENCIES: [&str; 4] = ["low", "medium", "high", "critical"];
const MAX_REASONING_CHARS: usize = 4_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewPayment {
    from: String,
    to: String,
    amount: serde_json::Value,
    currency: Option<String>,
    description: Option<String>,
    idempotency_key: Option<String>,
    metadata: Option<serde_json::Value>,
    risk_score: Option<serde_json::Value>,
    agent_reasoning: Option<String>,
    confidence_score: Option<serde_json::Value>,
    urgency: Option<String>,
}

/// A payment request that passed every check that needs no stored state.
struct ValidPayment {
    from: WalletId,
    to: WalletId,
    currency: Option<Currency>,
    description: Option<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
    risk_score: Option<Score>,
    confidence_score: Option<Score>,
    agent_reasoning: Option<String>,
    urgency: Option<String>,
}

fn wallet_field(field: &'static str, id: &str) -> AppResult<WalletId> {
    WalletId::parse(id).ok_or_else(|| {
        InputError::invalid(field, format!("{:?} is not a wallet id", id.chars().take(64).collect::<String>())).into()
    })
}

impl NewPayment {
    fn validate(&self) -> AppResult<ValidPayment> {
        let from = wallet_field("from", &self.from)?;
        let to = wallet_field("to", &self.to)?;
        if from == to {
            return Err(InputError::invalid("to", "must differ from `from`").into());
        }
        let currency = self
            .currency
            .as_deref()
            .map(Currency::parse)
            .transpose()
            .map_err(|e| InputError::invalid("currency", e.to_string()))?;
        // Amount syntax is checked now; minor units once the wallet's currency is known.
        match currency {
            Some(c) => Money::parse_json(&self.amount, c).map(|_| ())?,
            None => Money::check_format(&self.amount)?,
        }
        let hundred = Decimal::ONE_HUNDRED;
        let risk_score = self
            .risk_score
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| {
                Score::from_json(v, Decimal::ZERO, hundred)
                    .ok_or_else(|| InputError::invalid("riskScore", "must be a number from 0 to 100"))
            })
            .transpose()?;
        let confidence_score = self
            .confidence_score
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| {
                Score::from_json(v, Decimal::ZERO, Decimal::ONE)
                    .ok_or_else(|| InputError::invalid("confidenceScore", "must be a number from 0 to 1"))
            })
            .transpose()?;
        let urgency = match &self.urgency {
            Some(u) if !URGENCIES.contains(&u.as_str()) => {
                return Err(InputError::invalid("urgency", "must be one of low, medium, high, critical").into())
            }
            other => other.clone(),
        };
        Ok(ValidPayment {
            from,
            to,
            currency,
            description: self
                .description
                .as_deref()
                .map(|d| input::bounded_text("description", d, MAX_DESCRIPTION_CHARS))
                .transpose()?,
            metadata: input::metadata(self.metadata.as_ref())?,
            risk_score,
            confidence_score,
            agent_reasoning: self
                .agent_reasoning
                .as_deref()
                .map(|r| input::bounded_text("agentReasoning", r, MAX_REASONING_CHARS))
                .transpose()?,
            urgency,
        })
    }
}

/// Moves `amount` between two wallets: the debit and credit lines of one ledger transaction.
/// `None` when the source balance is short.
pub(crate) fn transfer(
    from: &mut Wallet,
    to: &mut Wallet,
    amount: Money,
    payment: &PaymentId,
    now: DateTime<Utc>,
) -> Option<(TransactionId, [LedgerEntry; 2])> {
    from.debit(amount, now)?;
    to.credit(amount, now)?;
    let txn = TransactionId::generate();
    let line = |wallet: &Wallet, kind, counterparty: &WalletId| LedgerEntry {
        id: format!("ent_{}", ulid::Ulid::new()),
        transaction_id: txn.clone(),
        wallet_id: wallet.id.clone(),
        kind,
        amount: amount.amount(),
        currency: amount.currency(),
        balance_after: wallet.balance,
        counterparty: counterparty.to_string(),
        payment_id: Some(payment.clone()),
        created_at: now,
    };
    let lines = [line(from, EntryKind::Debit, &to.id), line(to, EntryKind::Credit, &from.id)];
    Some((txn, lines))
}

/// Event payload for a payment: the payment plus `paymentId` for simple consumers.
pub(crate) fn payment_event(payment: &Payment, kind: &str, now: DateTime<Utc>) -> AppResult<Event> {
    let mut data = serde_json::to_value(payment).map_err(|e| AppError::Corrupt(e.to_string()))?;
    data["paymentId"] = json!(payment.id);
    Ok(Event::new(&payment.org_id, kind, data, now))
}

/// Event payload for an approval: the approval plus `approvalId` (what wallgent handlers read).
pub(crate) fn approval_event(approval: &Approval, kind: &str, now: DateTime<Utc>) -> AppResult<Event> {
    let mut data = serde_json::to_value(approval).map_err(|e| AppError::Corrupt(e.to_string()))?;
    data["approvalId"] = json!(approval.id);
    Ok(Event::new(&approval.org_id, kind, data, now))
}

pub(crate) fn insufficient(wallet: &Wallet, amount: Money) -> AppError {
    AppError::InsufficientFunds {
        balance: wallet.balance().to_wire(),
        requested: amount.to_wire(),
        currency: wallet.currency.code().to_string(),
    }
}

#[derive(Debug, Default)]
pub struct PaymentFilter {
    pub wallet_id: Option<String>,
    pub status: Option<String>,
}

impl Countersign {
    /// `POST /v1/payments`.
    pub async fn create_payment(
        &self,
        caller: &Caller,
        body: &serde_json::Value,
        idempotency_header: Option<&str>,
    ) -> AppResult<Reply> {
        let caller = caller.key()?;
        require(caller, Permission::PaymentsWrite)?;
        let request: NewPayment = parse(body)?;
        let valid = request.validate()?;
        let idem_key = request.idempotency_key.as_deref().or(idempotency_header);
        let idempotency = idem_key.map(|k| Idempotency::new("payments", k, body)).transpose()?;
        let org = caller.org_id.clone();
        self.commit(&org, idempotency.as_ref(), || async {
            let from: Stored<Wallet> = self.read_owned(&wallet_key(&valid.from), &org).await?;
            let to: Stored<Wallet> = self.read_owned(&wallet_key(&valid.to), &org).await?;
            let currency = from.value.currency;
            if let Some(asked) = valid.currency.filter(|c| *c != currency) {
                return Err(AppError::CurrencyMismatch {
                    payment: asked.code().into(),
                    wallet: currency.code().into(),
                });
            }
            if to.value.currency != currency {
                return Err(AppError::CurrencyMismatch {
                    payment: currency.code().into(),
                    wallet: to.value.currency.code().into(),
                });
            }
            let amount = Money::parse_json(&request.amount, currency)?;
            let now = self.now();
            let policies = self.wallet_policies(&from.value.id).await?;
            let decision = evaluate(
                &policies,
                &PaymentFacts {
                    amount: amount.amount(),
                    currency: currency.code(),
                    recipient: &to.value.id,
                    risk_score: valid.risk_score,
                    spent_today: from.value.spent_today(now),
                },
            );
            if decision.outcome == Outcome::Deny {
                // A denial is a decision: it is audited although nothing else is written.
                let details =
                    json!({"decision": decision, "from": from.value.id, "to": to.value.id, "amount": amount.to_wire()});
                let audit = AuditEntry::new(
                    &org,
                    "payment.denied",
                    "wallet",
                    from.value.id.as_str(),
                    caller.id.as_str(),
                    details,
                    now,
                );
                self.store.transact(vec![records::create(&audit)?]).await?;
                return Err(AppError::PolicyDenied {
                    reason: decision.reason,
                    rule: decision.rule,
                    policy_id: decision.policy_id.map(|p| p.to_string()),
                });
            }
            if amount.amount() > from.value.balance {
                return Err(insufficient(&from.value, amount));
            }
            let mut payment = Payment {
                id: PaymentId::generate(),
                org_id: org.clone(),
                from: from.value.id.clone(),
                to: to.value.id.clone(),
                amount: amount.amount(),
                currency,
                description: valid.description.clone(),
                metadata: valid.metadata.clone(),
                risk_score: valid.risk_score,
                confidence_score: valid.confidence_score,
                agent_reasoning: valid.agent_reasoning.clone(),
                urgency: valid.urgency.clone(),
                status: PaymentStatus::Completed,
                approval_id: None,
                decision: decision.clone(),
                created_by: caller.id.clone(),
                transaction_id: None,
                failure_reason: None,
                created_at: now,
                updated_at: now,
                completed_at: None,
            };
            let actor = caller.id.as_str();
            let mut writes: Vec<Write> = Vec::with_capacity(8);
            let status = if decision.outcome == Outcome::Execute {
                let (mut source, mut target) = (from.value.clone(), to.value.clone());
                let (txn, lines) = transfer(&mut source, &mut target, amount, &payment.id, now)
                    .ok_or_else(|| insufficient(&from.value, amount))?;
                payment.transaction_id = Some(txn);
                payment.completed_at = Some(now);
                writes.push(records::update(&source, from.version)?);
                writes.push(records::update(&target, to.version)?);
                for line in &lines {
                    writes.push(records::create(line)?);
                }
                writes.push(records::create(&payment_event(&payment, kinds::PAYMENT_COMPLETED, now)?)?);
                writes.push(records::create(&AuditEntry::new(
                    &org,
                    "payment.completed",
                    "payment",
                    payment.id.as_str(),
                    actor,
                    json!({"decision": decision, "amount": amount.to_wire()}),
                    now,
                ))?);
                ReplyStatus::Created
            } else {
                let ttl = decision.approval_ttl_seconds.unwrap_or(self.settings.default_approval_ttl_seconds);
                let approval = Approval {
                    id: ApprovalId::generate(),
                    org_id: org.clone(),
                    wallet_id: from.value.id.clone(),
                    payment_id: payment.id.clone(),
                    policy_id: decision.policy_id.clone(),
                    transaction_details: TransactionDetails {
                        amount: amount.amount(),
                        currency,
                        recipient: to.value.id.clone(),
                        description: payment.description.clone(),
                    },
                    status: ApprovalStatus::Pending,
                    reason: decision.reason.clone(),
                    required_approvals: decision.required_approvals,
                    votes: vec![],
                    expires_at: now + Duration::seconds(ttl as i64),
                    resolved_at: None,
                    resolved_by: None,
                    resolution_note: None,
                    created_by: caller.id.clone(),
                    created_at: now,
                };
                payment.status = PaymentStatus::PendingApproval;
                payment.approval_id = Some(approval.id.clone());
                // The source wallet's version is checked so a hold is decided on current state.
                writes.push(Write::Check {
                    key: wallet_key(&from.value.id),
                    expect: crate::ports::Expect::Version(from.version),
                });
                writes.push(records::create(&approval)?);
                writes.push(records::create(&approval_event(&approval, kinds::APPROVAL_CREATED, now)?)?);
                writes.push(records::create(&AuditEntry::new(
                    &org,
                    "payment.held",
                    "payment",
                    payment.id.as_str(),
                    actor,
                    json!({"decision": decision, "approvalId": approval.id}),
                    now,
                ))?);
                ReplyStatus::Accepted
            };
            writes.push(records::create(&payment)?);
            Ok(Plan { writes, reply: Reply::new(status, &payment)? })
        })
        .await
    }

    pub async fn get_payment(&self, caller: &Caller, id: &str) -> AppResult<Payment> {
        let caller = caller.key()?;
        require(caller, Permission::PaymentsRead)?;
        let id = PaymentId::parse(id).ok_or(AppError::NotFound("payment"))?;
        Ok(self.read_owned::<Payment>(&payment_key(&id), &caller.org_id).await?.value)
    }

    pub async fn list_payments(
        &self,
        caller: &Caller,
        filter: &PaymentFilter,
        page: &PageRequest,
    ) -> AppResult<Page<Payment>> {
        let caller = caller.key()?;
        require(caller, Permission::PaymentsRead)?;
        let status = filter
            .status
            .as_deref()
            .map(|s| {
                PaymentStatus::parse(s).ok_or_else(|| {
                    InputError::invalid(
                        "status",
                        "must be one of COMPLETED, PENDING_APPROVAL, REJECTED, EXPIRED, FAILED",
                    )
                })
            })
            .transpose()?;
        let query = listing_query(
            &caller.org_id,
            "PAYMENT",
            filter.wallet_id.as_deref(),
            status.map(|s| s.as_str()),
            page.limit,
        )?;
        self.page(query, page, |_| true).await
    }
}

/// Picks the index for a payment or approval listing: by wallet (± status), by status, or all.
pub(crate) fn listing_query(
    org: &OrgId,
    kind: &str,
    wallet: Option<&str>,
    status: Option<&str>,
    limit: usize,
) -> AppResult<Query> {
    Ok(match (wallet, status) {
        (Some(w), status) => {
            let wallet = WalletId::parse(w).ok_or_else(|| InputError::invalid("walletId", "is not a wallet id"))?;
            let mut q = Query::new(Index::ByWallet, by_wallet_partition(org, &wallet, kind), limit);
            q.sk_prefix = status.map(|s| format!("{s}#"));
            q
        }
        (None, Some(status)) => Query::new(Index::ByStatus, by_status_partition(org, kind, status), limit),
        (None, None) => Query::new(Index::ByOrg, by_org_partition(org, kind), limit),
    })
}
