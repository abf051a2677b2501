//! Example bodies for the main operations (the README's walkthrough: organisation, keys, wallets,
//! funding, a policy, an executed and a held payment, the approval), as the server sends them. A
//! test in `tests/api` validates each against its schema.

use serde_json::{json, Value};

const ORG: &str = "org_01JEA58F1WB7P5EH3MBV31GKTC";
const ADMIN_KEY: &str = "key_01JEA5B73MNGBSK9HHBV3N2TGJ";
const REVIEWER_KEY: &str = "key_01JEA5S06XCA1RPBNPCW248C63";
const AGENT_KEY: &str = "key_01JEA5TSBKQS1KVV55WP6VS3CF";
const MEMBER: &str = "mem_01JEA5CT79X27Z8JYY4P7G71BP";
const FROM: &str = "wal_01JEA54N6AVHB24CP7DGZ4B1H6";
const TO: &str = "wal_01JEA5YDSP7B2FR2DDZR3TXGFE";
const POLICY: &str = "pol_01JEA5V8PNG0R6BQHGCGHAPZZ8";
const CHANGE: &str = "chg_01JEA5V8PNG0R6BQHGCGHAPZZ9";
const PAY_SMALL: &str = "pay_01JEA5CZSN4RCA53RNF39CQ0M1";
const PAY_HELD: &str = "pay_01JEA57MK1M76WNBAYJTSP8SKF";
const APPROVAL: &str = "apr_01JEA5EQ2XHD58FK8W3GF97YMA";
const HELD_REASON: &str = "amount 5000.00 USD is above maxTransactionAmount 1000.00";

/// The example request body of an operation, if it has one.
pub(super) fn request(method: &str, path: &str) -> Option<Value> {
    Some(match (method, path) {
        ("post", "/v1/organizations") => json!({"name": "Acme"}),
        ("post", "/v1/api-keys") => json!({
            "name": "reviewer (Fiona)",
            "permissions": ["approvals:read", "approvals:write"],
            "memberId": MEMBER,
        }),
        ("post", "/v1/wallets") => json!({
            "name": "Procurement agent",
            "agentName": "procurement-bot",
            "currency": "USD",
            "metadata": {"costCenter": "CC-4410"},
        }),
        ("post", "/v1/wallets/{id}/fund") => json!({"amount": "10000.00", "idempotencyKey": "fund-2026-12"}),
        ("post", "/v1/wallets/{id}/policies") => json!({
            "name": "Large payment review",
            "maxTransactionAmount": "1000.00",
            "requireHumanApproval": true,
        }),
        ("post", "/v1/payments") => json!({
            "from": FROM,
            "to": TO,
            "amount": "5000.00",
            "description": "Annual license, invoice 1042",
            "idempotencyKey": "invoice-1042",
            "metadata": {"invoice": "INV-1042"},
        }),
        ("post", "/v1/approvals/{id}/approve") => json!({"note": "vendor verified"}),
        _ => return None,
    })
}

/// The example body of an operation's success response with `status`, if it has one.
pub(super) fn response(method: &str, path: &str, status: u16) -> Option<Value> {
    Some(match (method, path, status) {
        ("post", "/v1/organizations", 201) => json!({
            "id": ORG,
            "name": "Acme",
            "createdAt": "2026-12-06T09:00:00Z",
            "adminKey": key(ADMIN_KEY, "admin", json!(["admin"]), Value::Null, true),
        }),
        ("post", "/v1/api-keys", 201) => {
            key(REVIEWER_KEY, "reviewer (Fiona)", json!(["approvals:read", "approvals:write"]), json!(MEMBER), true)
        }
        ("post", "/v1/wallets", 201) => json!({
            "id": FROM,
            "orgId": ORG,
            "name": "Procurement agent",
            "agentName": "procurement-bot",
            "currency": "USD",
            "balance": "0.00",
            "metadata": {"costCenter": "CC-4410"},
            "spendDay": null,
            "spentOnDay": "0.00",
            "frozenAt": null,
            "createdAt": "2026-12-06T09:01:00Z",
            "updatedAt": "2026-12-06T09:01:00Z",
        }),
        ("post", "/v1/wallets/{id}/fund", 201) => json!({
            "transactionId": "txn_01JEA57H4ABM31ZAH2Z1H0DWEW",
            "walletId": FROM,
            "amount": "10000.00",
            "newBalance": "10000.00",
            "currency": "USD",
        }),
        ("post", "/v1/wallets/{id}/policies", 201) => json!({
            "id": POLICY,
            "orgId": ORG,
            "walletId": FROM,
            "name": "Large payment review",
            "version": 1,
            "enabled": true,
            "maxTransactionAmount": "1000.00",
            "dailySpendingLimit": null,
            "approvedRecipients": [],
            "blockedRecipients": [],
            "requireHumanApproval": true,
            "autoApproveBelow": null,
            "requireReviewAbove": null,
            "autoRejectAbove": null,
            "riskScoreThreshold": null,
            "approvalTtlSeconds": null,
            "requiredApprovals": 1,
            "escalationChain": [],
            "onTimeout": "expire",
            "appliesTo": ["payment"],
            "createdAt": "2026-12-06T09:02:00Z",
            "updatedAt": "2026-12-06T09:02:00Z",
        }),
        ("post", "/v1/wallets/{id}/policies", 202) => json!({
            "id": CHANGE,
            "changeId": CHANGE,
            "kind": "policy.create",
            "status": "pending",
            "target": {"walletId": FROM},
            "request": {"name": "Large payment review", "maxTransactionAmount": "1000.00", "requireHumanApproval": true},
            "diff": [
                {"field": "maxTransactionAmount", "before": null, "after": "1000.00"},
                {"field": "name", "before": null, "after": "Large payment review"},
                {"field": "requireHumanApproval", "before": null, "after": true},
            ],
            "requestedBy": {"keyId": ADMIN_KEY, "person": ADMIN_KEY},
            "requestedAt": "2026-12-06T09:02:00Z",
            "decidedBy": null,
            "decidedAt": null,
            "reason": null,
            "result": null,
        }),
        ("post", "/v1/payments", 201) => executed_payment(),
        ("post", "/v1/payments", 202) => held_payment(),
        ("post", "/v1/approvals/{id}/approve", 200) => approved(),
        _ => return None,
    })
}

/// An API key as sent; `secret` only when it was just minted.
fn key(id: &str, name: &str, permissions: Value, member: Value, with_secret: bool) -> Value {
    let mut key = json!({
        "id": id,
        "name": name,
        "permissions": permissions,
        "walletIds": [],
        "memberId": member,
        "createdAt": "2026-12-06T09:00:00Z",
        "lastUsedAt": null,
        "revokedAt": null,
        "frozenAt": null,
        "budgets": [],
    });
    if with_secret {
        key["secret"] = json!(format!("csk_{id}_5f2d8c1e9a7b4e3f8d6c2b1a0e9f8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0"));
    }
    key
}

fn decision(outcome: &str, rule: &str, reason: &str) -> Value {
    json!({
        "outcome": outcome,
        "rule": rule,
        "reason": reason,
        "policyId": POLICY,
        "requiredApprovals": 1,
        "onTimeout": "expire",
    })
}

fn executed_payment() -> Value {
    json!({
        "id": PAY_SMALL,
        "orgId": ORG,
        "from": FROM,
        "to": TO,
        "amount": "10.00",
        "currency": "USD",
        "description": "API credits",
        "metadata": {},
        "riskScore": null,
        "confidenceScore": null,
        "agentReasoning": null,
        "urgency": null,
        "status": "COMPLETED",
        "approvalId": null,
        "decision": decision("EXECUTE", "policy", "payment satisfies policy \"Large payment review\""),
        "policyVersions": [{"policyId": POLICY, "version": 1}],
        "createdBy": AGENT_KEY,
        "submittedBy": AGENT_KEY,
        "transactionId": "txn_01JEA573464BGKMTNM3EMJ0FF3",
        "failureReason": null,
        "createdAt": "2026-12-06T09:03:00Z",
        "updatedAt": "2026-12-06T09:03:00Z",
        "completedAt": "2026-12-06T09:03:00Z",
    })
}

fn held_payment() -> Value {
    json!({
        "id": PAY_HELD,
        "orgId": ORG,
        "from": FROM,
        "to": TO,
        "amount": "5000.00",
        "currency": "USD",
        "description": "Annual license, invoice 1042",
        "metadata": {"invoice": "INV-1042"},
        "riskScore": null,
        "confidenceScore": null,
        "agentReasoning": null,
        "urgency": null,
        "status": "PENDING_APPROVAL",
        "approvalId": APPROVAL,
        "decision": decision("HOLD", "maxTransactionAmount", HELD_REASON),
        "policyVersions": [{"policyId": POLICY, "version": 1}],
        "createdBy": AGENT_KEY,
        "submittedBy": AGENT_KEY,
        "transactionId": null,
        "failureReason": null,
        "createdAt": "2026-12-06T09:04:00Z",
        "updatedAt": "2026-12-06T09:04:00Z",
        "completedAt": null,
    })
}

/// The approval once the reviewer approved, with the payment it executed.
fn approved() -> Value {
    let mut payment = held_payment();
    payment["status"] = json!("COMPLETED");
    payment["transactionId"] = json!("txn_01JEA5R4NDR8XV3SXWQDJ0579X");
    payment["updatedAt"] = json!("2026-12-06T09:10:00Z");
    payment["completedAt"] = json!("2026-12-06T09:10:00Z");
    json!({
        "id": APPROVAL,
        "orgId": ORG,
        "walletId": FROM,
        "paymentId": PAY_HELD,
        "policyId": POLICY,
        "transactionDetails": {
            "amount": "5000.00",
            "currency": "USD",
            "recipient": TO,
            "description": "Annual license, invoice 1042",
        },
        "status": "APPROVED",
        "reason": HELD_REASON,
        "requiredApprovals": 1,
        "votes": [{
            "keyId": REVIEWER_KEY,
            "person": MEMBER,
            "decision": "approve",
            "note": "vendor verified",
            "at": "2026-12-06T09:10:00Z",
        }],
        "expiresAt": "2026-12-07T09:04:00Z",
        "resolvedAt": "2026-12-06T09:10:00Z",
        "resolvedBy": REVIEWER_KEY,
        "resolutionNote": "vendor verified",
        "createdBy": AGENT_KEY,
        "createdByPerson": AGENT_KEY,
        "assignedTeam": null,
        "detailsHash": "6ec2aa0524af451fdbec76a1fb85c87e0554d74eb6ba4e0b7a0665ba892f7da2",
        "onTimeout": "expire",
        "windowSeconds": 86400,
        "policyVersions": [{"policyId": POLICY, "version": 1}],
        "createdAt": "2026-12-06T09:04:00Z",
        "payment": payment,
    })
}
