//! The invariant checker: reads one organisation through the HTTP API only (base URL and an
//! admin key), so it serves any deployment shape (the router on DynamoDB in-process, the real
//! `countersign serve` binary). [`Snapshot::violations`] checks:
//!
//! **Money**
//! - every wallet's `balance` equals the sum of its ledger lines (`FUND` and `CREDIT` add,
//!   `DEBIT` subtracts; all pages of `GET /v1/wallets/{id}/transactions`), and is never negative;
//!   (lines carry no running balance: racing payments from one wallet commit in an order none of
//!   them sees, so conservation, not a chain of `balanceAfter`, is what proves no update lost);
//! - money is only created by funding: the sum of all balances equals the sum of `FUND` lines;
//! - every ledger transaction is either one `FUND` line (no payment) or exactly one `DEBIT` and
//!   one `CREDIT` line of the same payment and amount (no orphan or half transfer).
//!
//! **Payments and approvals**
//! - a `COMPLETED` payment has a `transactionId` and exactly one `DEBIT` line (on `from`) and one
//!   `CREDIT` line (on `to`) with that transaction id, its id and its amount: one debit per
//!   executed payment; a payment in any other status has no `transactionId` and no ledger line;
//! - a payment without `approvalId` was executed at intake (`decision.outcome` `EXECUTE`, status
//!   `COMPLETED`); one with an `approvalId` was held (`HOLD`) and its approval exists and points
//!   back at it; every approval's payment exists;
//! - approval and payment statuses agree: `APPROVED` ↔ `COMPLETED` or `FAILED`, `REJECTED` ↔
//!   `REJECTED`, `EXPIRED` ↔ `EXPIRED`, `PENDING` ↔ `PENDING_APPROVAL`.
//!
//! **Audit log** (all pages of `GET /v1/audit-logs`): exactly one entry per decision and none
//! for a decision that did not happen: `payment.completed` ↔ `COMPLETED`, `payment.failed` ↔
//! `FAILED`, `payment.held` ↔ payment with an approval, `approval.approved|rejected|expired` ↔
//! approval `APPROVED|REJECTED|EXPIRED`, `wallet.funded` (by `details.transactionId`) ↔ `FUND`
//! line.
//!
//! **Events** ([`Snapshot::event_violations`], given the events a test observed: outbox items in
//! the table, or deliveries at a webhook receiver): exactly one distinct event id for each
//! `approval.created` (every approval), `approval.approved|rejected|expired` (every decided
//! approval), `payment.completed` (every `COMPLETED` payment) and `payment.failed` (every
//! `FAILED` payment), and no such event for an object not in that state. Redeliveries of one
//! event id count once (delivery is at least once).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// A minimal client for the API at `base`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<String>,
    /// `Idempotent-Replayed: true`: the answer of an earlier request with the same key.
    pub replayed: bool,
}

/// At most this many pages per listing: a runaway cursor fails instead of looping.
const MAX_PAGES: usize = 1000;

impl Api {
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Self {
        Api { base: base.into(), http }
    }

    /// Sends a request; a connection-level failure (refused, reset, timed out) is the `Err`.
    pub async fn send(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> Result<Reply, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| format!("{e:?}"))?;
        let status = res.status().as_u16();
        let header = |name: &str| res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let retry_after = header("retry-after");
        let replayed = header("idempotent-replayed").as_deref() == Some("true");
        let text = res.text().await.map_err(|e| format!("{e:?}"))?;
        Ok(Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), retry_after, replayed })
    }

    /// Every item of a listing, following `nextCursor` (panics on anything but 200).
    pub async fn list_all(&self, path: &str, key: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page_path = match &cursor {
                None => path.to_string(),
                Some(c) => format!("{path}{sep}cursor={c}"),
            };
            let reply =
                self.send("GET", &page_path, key, None).await.unwrap_or_else(|e| panic!("GET {page_path}: {e}"));
            assert_eq!(reply.status, 200, "GET {page_path}: {}", reply.body);
            items.extend(reply.body["data"].as_array().cloned().unwrap_or_default());
            match (reply.body["hasMore"].as_bool(), reply.body["nextCursor"].as_str()) {
                (Some(true), Some(next)) => cursor = Some(next.to_string()),
                _ => return items,
            }
        }
        panic!("GET {path}: more than {MAX_PAGES} pages");
    }
}

/// An event as a test observed it: its id, type and the id of the payment or approval it is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObservedEvent {
    pub id: String,
    pub kind: String,
    pub object: String,
}

impl ObservedEvent {
    /// From an event body `{"id", "type", "data": {"approvalId" | "paymentId", ...}}` (a webhook
    /// delivery's body, or an outbox record's); `None` for events about neither.
    pub fn from_body(body: &Value) -> Option<Self> {
        let kind = body["type"].as_str()?.to_string();
        // Approval events carry the approval's `paymentId` too: pick the id the type is about.
        let field = if kind.starts_with("approval.") { "approvalId" } else { "paymentId" };
        let object = body["data"][field].as_str()?;
        Some(ObservedEvent { id: body["id"].as_str()?.to_string(), kind, object: object.to_string() })
    }
}

/// The event kinds the checker accounts for (others, e.g. `webhook.test`, are ignored).
pub const TRACKED_EVENTS: [&str; 6] = [
    "approval.created",
    "approval.approved",
    "approval.rejected",
    "approval.expired",
    "payment.completed",
    "payment.failed",
];

/// Everything the checker reads, as the API returned it.
pub struct Snapshot {
    pub wallets: Vec<Value>,
    /// Ledger lines by wallet id.
    pub ledgers: BTreeMap<String, Vec<Value>>,
    pub payments: Vec<Value>,
    pub approvals: Vec<Value>,
    pub audit: Vec<Value>,
}

/// Reads the organisation of `admin` and asserts every invariant; returns what it read.
pub async fn check(api: &Api, admin: &str) -> Snapshot {
    let snapshot = Snapshot::read(api, admin).await;
    let violations = snapshot.violations();
    assert!(
        violations.is_empty(),
        "{} invariant violation(s):\n  {}\n({})",
        violations.len(),
        violations.join("\n  "),
        snapshot.summary()
    );
    snapshot
}

/// An amount string in millionths (exact for every ISO 4217 exponent); `None` if malformed.
pub fn units(v: &Value) -> Option<i128> {
    let s = v.as_str()?;
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || frac.len() > 6 || !digits(int) || !digits(frac) {
        return None;
    }
    let frac: i128 = format!("{frac:0<6}").parse().ok()?;
    Some(int.parse::<i128>().ok()? * 1_000_000 + frac)
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_string()
}

impl Snapshot {
    /// Reads every wallet, ledger line, payment, approval and audit entry of `admin`'s org.
    pub async fn read(api: &Api, admin: &str) -> Self {
        let wallets = api.list_all("/v1/wallets?limit=100", admin).await;
        let mut ledgers = BTreeMap::new();
        for w in &wallets {
            let id = text(w, "id");
            let lines = api.list_all(&format!("/v1/wallets/{id}/transactions?limit=100"), admin).await;
            ledgers.insert(id, lines);
        }
        Snapshot {
            wallets,
            ledgers,
            payments: api.list_all("/v1/payments?limit=100", admin).await,
            approvals: api.list_all("/v1/approvals?limit=100", admin).await,
            audit: api.list_all("/v1/audit-logs?limit=100", admin).await,
        }
    }

    /// Counts by kind and status, for reports.
    pub fn summary(&self) -> String {
        let count = |items: &[Value], field: &str| {
            let mut by: BTreeMap<String, usize> = BTreeMap::new();
            for i in items {
                *by.entry(text(i, field)).or_default() += 1;
            }
            by
        };
        let lines: Vec<Value> = self.ledgers.values().flatten().cloned().collect();
        format!(
            "{} wallets; ledger lines {:?}; payments {:?}; approvals {:?}; {} audit entries",
            self.wallets.len(),
            count(&lines, "kind"),
            count(&self.payments, "status"),
            count(&self.approvals, "status"),
            self.audit.len()
        )
    }

    /// Every broken invariant, one line each (empty when all hold).
    pub fn violations(&self) -> Vec<String> {
        let mut v = Vec::new();
        self.check_money(&mut v);
        self.check_payments(&mut v);
        self.check_audit(&mut v);
        v
    }

    fn check_money(&self, v: &mut Vec<String>) {
        let mut total_balance = 0i128;
        let mut total_funded = 0i128;
        // transaction id → lines
        let mut by_txn: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for w in &self.wallets {
            let id = text(w, "id");
            let Some(balance) = units(&w["balance"]) else {
                v.push(format!("wallet {id}: unreadable balance {}", w["balance"]));
                continue;
            };
            total_balance += balance;
            let mut sum = 0i128;
            for line in self.ledgers.get(&id).map(Vec::as_slice).unwrap_or_default() {
                let Some(amount) = units(&line["amount"]).filter(|a| *a > 0) else {
                    v.push(format!("wallet {id}: line with a bad amount: {line}"));
                    continue;
                };
                let delta = match line["kind"].as_str() {
                    Some("FUND") => {
                        total_funded += amount;
                        amount
                    }
                    Some("CREDIT") => amount,
                    Some("DEBIT") => -amount,
                    _ => {
                        v.push(format!("wallet {id}: line of unknown kind: {line}"));
                        continue;
                    }
                };
                if line["walletId"] != w["id"] || line["currency"] != w["currency"] {
                    v.push(format!("wallet {id}: foreign line: {line}"));
                }
                sum += delta;
                by_txn.entry(text(line, "transactionId")).or_default().push(line);
            }
            if sum != balance {
                v.push(format!("wallet {id}: balance {} but its ledger lines sum to {sum} (millionths)", w["balance"]));
            }
        }
        if total_balance != total_funded {
            v.push(format!("all balances sum to {total_balance} but funding totals {total_funded} (millionths)"));
        }
        for (txn, lines) in &by_txn {
            let mut kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
            kinds.sort_unstable();
            let ok = match kinds.as_slice() {
                ["FUND"] => lines[0]["paymentId"].is_null(),
                ["CREDIT", "DEBIT"] => {
                    lines[0]["paymentId"].is_string()
                        && lines[0]["paymentId"] == lines[1]["paymentId"]
                        && units(&lines[0]["amount"]) == units(&lines[1]["amount"])
                }
                _ => false,
            };
            if !ok {
                v.push(format!("transaction {txn:?}: not one FUND line nor one DEBIT + one CREDIT: {lines:?}"));
            }
        }
    }

    fn check_payments(&self, v: &mut Vec<String>) {
        let approvals: BTreeMap<String, &Value> = self.approvals.iter().map(|a| (text(a, "id"), a)).collect();
        let payments: BTreeMap<String, &Value> = self.payments.iter().map(|p| (text(p, "id"), p)).collect();
        if payments.len() != self.payments.len() || approvals.len() != self.approvals.len() {
            v.push("a payment or approval is listed twice".into());
        }
        // payment id → its ledger lines
        let mut lines_of: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
        for line in self.ledgers.values().flatten() {
            if let Some(p) = line["paymentId"].as_str() {
                lines_of.entry(p.to_string()).or_default().push(line);
            }
        }
        for p in lines_of.keys().filter(|p| !payments.contains_key(*p)) {
            v.push(format!("ledger lines for payment {p}, which does not exist"));
        }
        for (id, p) in &payments {
            let status = p["status"].as_str().unwrap_or_default();
            let lines = lines_of.get(id).map(Vec::as_slice).unwrap_or_default();
            if status == "COMPLETED" {
                let one = |kind: &str, wallet: &Value| {
                    lines
                        .iter()
                        .filter(|l| {
                            l["kind"] == kind
                                && l["walletId"] == *wallet
                                && l["transactionId"] == p["transactionId"]
                                && units(&l["amount"]) == units(&p["amount"])
                        })
                        .count()
                        == 1
                };
                if !p["transactionId"].is_string()
                    || lines.len() != 2
                    || !one("DEBIT", &p["from"])
                    || !one("CREDIT", &p["to"])
                {
                    v.push(format!("payment {id} COMPLETED without exactly one debit and one credit: {lines:?}"));
                }
            } else if !lines.is_empty() || !p["transactionId"].is_null() {
                v.push(format!("payment {id} is {status} yet has ledger lines or a transaction: {lines:?}"));
            }
            match p["approvalId"].as_str() {
                None => {
                    if p["decision"]["outcome"] != "EXECUTE" || status != "COMPLETED" {
                        v.push(format!("payment {id} without approval is {status} ({})", p["decision"]["outcome"]));
                    }
                }
                Some(aid) => match approvals.get(aid) {
                    None => v.push(format!("payment {id}: its approval {aid} does not exist")),
                    Some(a) => {
                        let astatus = a["status"].as_str().unwrap_or_default();
                        let agree = matches!(
                            (astatus, status),
                            ("APPROVED", "COMPLETED" | "FAILED")
                                | ("REJECTED", "REJECTED")
                                | ("EXPIRED", "EXPIRED")
                                | ("PENDING", "PENDING_APPROVAL")
                        );
                        if !agree || a["paymentId"] != p["id"] || p["decision"]["outcome"] != "HOLD" {
                            v.push(format!("payment {id} is {status} but its approval {aid} is {astatus}"));
                        }
                    }
                },
            }
        }
        for (aid, a) in &approvals {
            let pid = text(a, "paymentId");
            if payments.get(&pid).is_none_or(|p| p["approvalId"].as_str() != Some(aid)) {
                v.push(format!("approval {aid}: its payment {pid} does not exist or does not point back"));
            }
        }
    }

    fn check_audit(&self, v: &mut Vec<String>) {
        // (action, subject) → entries
        let mut entries: BTreeMap<(String, String), usize> = BTreeMap::new();
        for e in &self.audit {
            let action = text(e, "action");
            let subject =
                if action == "wallet.funded" { text(&e["details"], "transactionId") } else { text(e, "resourceId") };
            *entries.entry((action, subject)).or_default() += 1;
        }
        let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
        for p in &self.payments {
            let id = text(p, "id");
            match p["status"].as_str() {
                Some("COMPLETED") => expected.insert(("payment.completed".into(), id.clone())),
                Some("FAILED") => expected.insert(("payment.failed".into(), id.clone())),
                _ => false,
            };
            if p["approvalId"].is_string() {
                expected.insert(("payment.held".into(), id));
            }
        }
        for a in &self.approvals {
            if let Some(action) = decided_action(a) {
                expected.insert((action.into(), text(a, "id")));
            }
        }
        for line in self.ledgers.values().flatten().filter(|l| l["kind"] == "FUND") {
            expected.insert(("wallet.funded".into(), text(line, "transactionId")));
        }
        const CHECKED: [&str; 7] = [
            "payment.completed",
            "payment.failed",
            "payment.held",
            "approval.approved",
            "approval.rejected",
            "approval.expired",
            "wallet.funded",
        ];
        for key in &expected {
            let n = entries.get(key).copied().unwrap_or(0);
            if n != 1 {
                v.push(format!("audit: {n} `{}` entries for {} (expected exactly 1)", key.0, key.1));
            }
        }
        for (key, n) in &entries {
            if CHECKED.contains(&key.0.as_str()) && !expected.contains(key) {
                v.push(format!("audit: {n} `{}` entries for {}, which is not in that state", key.0, key.1));
            }
        }
    }

    /// The events the final state implies: (type, payment or approval id).
    pub fn expected_events(&self) -> BTreeSet<(String, String)> {
        let mut expected = BTreeSet::new();
        for a in &self.approvals {
            let id = text(a, "id");
            expected.insert(("approval.created".to_string(), id.clone()));
            if let Some(action) = decided_action(a) {
                expected.insert((action.to_string(), id));
            }
        }
        for p in &self.payments {
            match p["status"].as_str() {
                Some("COMPLETED") => expected.insert(("payment.completed".into(), text(p, "id"))),
                Some("FAILED") => expected.insert(("payment.failed".into(), text(p, "id"))),
                _ => false,
            };
        }
        expected
    }

    /// How the observed events fall short of, or go beyond, [`Self::expected_events`]: missing
    /// events, several distinct events for one decision, events for decisions not taken.
    pub fn event_violations(&self, observed: &[ObservedEvent]) -> Vec<String> {
        let mut ids: BTreeMap<(String, String), BTreeSet<&str>> = BTreeMap::new();
        for e in observed.iter().filter(|e| TRACKED_EVENTS.contains(&e.kind.as_str())) {
            ids.entry((e.kind.clone(), e.object.clone())).or_default().insert(&e.id);
        }
        let expected = self.expected_events();
        let mut v = Vec::new();
        for key in &expected {
            match ids.get(key).map(BTreeSet::len).unwrap_or(0) {
                1 => {}
                0 => v.push(format!("event lost: no `{}` for {}", key.0, key.1)),
                n => v.push(format!("{n} distinct `{}` events for {}", key.0, key.1)),
            }
        }
        for key in ids.keys().filter(|k| !expected.contains(*k)) {
            v.push(format!("event `{}` for {}, which is not in that state", key.0, key.1));
        }
        v
    }
}

/// The audit action and event type of a decided approval.
fn decided_action(approval: &Value) -> Option<&'static str> {
    match approval["status"].as_str() {
        Some("APPROVED") => Some("approval.approved"),
        Some("REJECTED") => Some("approval.rejected"),
        Some("EXPIRED") => Some("approval.expired"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_parse_exactly() {
        assert_eq!(units(&json!("12.34")), Some(12_340_000));
        assert_eq!(units(&json!("1500")), Some(1_500_000_000));
        assert_eq!(units(&json!("1.234")), Some(1_234_000));
        assert_eq!(units(&json!("-1.00")), None);
        assert_eq!(units(&json!(1.5)), None);
    }

    /// One fund of 100 into A, one executed payment of 30 from A to B, one held payment of 2000
    /// still pending: consistent and fully audited.
    fn consistent() -> Snapshot {
        let line = |id: &str, txn: &str, wallet: &str, kind: &str, amount: &str, payment: Value| {
            json!({"id": id, "transactionId": txn, "walletId": wallet, "kind": kind, "amount": amount,
                   "currency": "USD", "paymentId": payment})
        };
        let audit = |action: &str, resource: &str, details: Value| json!({"action": action, "resourceId": resource, "details": details});
        Snapshot {
            wallets: vec![
                json!({"id": "wal_a", "balance": "70.00", "currency": "USD"}),
                json!({"id": "wal_b", "balance": "30.00", "currency": "USD"}),
            ],
            ledgers: BTreeMap::from([
                (
                    "wal_a".to_string(),
                    vec![
                        line("ent_2", "txn_p", "wal_a", "DEBIT", "30.00", json!("pay_1")),
                        line("ent_1", "txn_f", "wal_a", "FUND", "100.00", Value::Null),
                    ],
                ),
                ("wal_b".to_string(), vec![line("ent_3", "txn_p", "wal_b", "CREDIT", "30.00", json!("pay_1"))]),
            ]),
            payments: vec![
                json!({"id": "pay_1", "from": "wal_a", "to": "wal_b", "amount": "30.00", "status": "COMPLETED",
                       "transactionId": "txn_p", "approvalId": null, "decision": {"outcome": "EXECUTE"}}),
                json!({"id": "pay_2", "from": "wal_a", "to": "wal_b", "amount": "2000.00", "status": "PENDING_APPROVAL",
                       "transactionId": null, "approvalId": "apr_1", "decision": {"outcome": "HOLD"}}),
            ],
            approvals: vec![json!({"id": "apr_1", "paymentId": "pay_2", "status": "PENDING"})],
            audit: vec![
                audit("wallet.funded", "wal_a", json!({"transactionId": "txn_f"})),
                audit("payment.completed", "pay_1", json!({})),
                audit("payment.held", "pay_2", json!({})),
            ],
        }
    }

    fn event(id: &str, kind: &str, object: &str) -> ObservedEvent {
        ObservedEvent { id: id.into(), kind: kind.into(), object: object.into() }
    }

    #[test]
    fn the_checker_accepts_a_consistent_state_and_catches_each_break() {
        assert_eq!(consistent().violations(), Vec::<String>::new());

        let mut double_debit = consistent();
        let debit = double_debit.ledgers["wal_a"][0].clone();
        double_debit.ledgers.get_mut("wal_a").unwrap().push(debit);
        assert!(!double_debit.violations().is_empty());

        let mut balance_off = consistent();
        balance_off.wallets[1]["balance"] = json!("31.00");
        assert!(!balance_off.violations().is_empty());

        let mut half_transfer = consistent();
        half_transfer.ledgers.get_mut("wal_b").unwrap().clear();
        half_transfer.wallets[1]["balance"] = json!("0.00");
        assert!(!half_transfer.violations().is_empty());

        let mut unaudited = consistent();
        unaudited.audit.remove(1);
        assert!(!unaudited.violations().is_empty());

        let mut status_mismatch = consistent();
        status_mismatch.approvals[0]["status"] = json!("REJECTED");
        assert!(!status_mismatch.violations().is_empty());
    }

    #[test]
    fn events_are_counted_by_distinct_id() {
        let s = consistent();
        let all = vec![
            event("evt_1", "payment.completed", "pay_1"),
            event("evt_2", "approval.created", "apr_1"),
            event("evt_2", "approval.created", "apr_1"), // a redelivery
            event("evt_9", "webhook.test", "pay_1"),     // not tracked
        ];
        assert_eq!(s.event_violations(&all), Vec::<String>::new());
        assert_eq!(s.event_violations(&all[1..]).len(), 1, "payment.completed lost");
        let mut twice = all.clone();
        twice.push(event("evt_3", "payment.completed", "pay_1"));
        assert_eq!(s.event_violations(&twice).len(), 1, "two distinct events for one decision");
        let mut undecided = all;
        undecided.push(event("evt_4", "approval.approved", "apr_1"));
        assert_eq!(s.event_violations(&undecided).len(), 1, "an event for a decision not taken");
    }
}
