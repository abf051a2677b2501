//! Each tool's arguments as an agent sends them (snake_case), with the JSON schema `tools/list`
//! shows. Types stay loose where the REST body is loose (an amount is any JSON value here, so a
//! number gets INVALID_AMOUNT from the same check as on REST, not a schema error); each
//! converts to the REST body, whose `try_into_domain` does the checking.

use rmcp::schemars::{self, JsonSchema};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `low`, `medium`, `high` or `critical` (the schema's enum; parsed as on REST).
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // schema only
enum UrgencyName {
    Low,
    Medium,
    High,
    Critical,
}

/// `approve` or `reject`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)] // schema only
enum DecisionName {
    Approve,
    Reject,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestPayment {
    /// Wallet id to pay from (`wal_...`); the key must be allowed to use it.
    pub from: String,
    /// Wallet id to pay to (`wal_...`), in the same organisation.
    pub to: String,
    /// Amount as a decimal string, e.g. "125.50"; at most the currency's minor units
    /// ("10.005" USD is refused). Never a JSON number.
    #[schemars(with = "String")]
    pub amount: Value,
    /// ISO 4217 code, e.g. "USD"; must match the wallet's currency. Defaults to it.
    pub currency: Option<String>,
    /// What the payment is for, shown to the human reviewer (up to 1000 characters).
    pub description: Option<String>,
    /// Why the agent wants to make this payment, shown to the reviewer (up to 4000 characters).
    pub agent_reasoning: Option<String>,
    /// The agent's confidence that the payment is right, a number from 0 to 1.
    #[schemars(with = "Option<f64>", range(min = 0, max = 1))]
    pub confidence_score: Option<Value>,
    /// Risk score from 0 to 100; policies may hold or deny payments above a threshold.
    #[schemars(with = "Option<f64>", range(min = 0, max = 100))]
    pub risk_score: Option<Value>,
    #[schemars(with = "Option<UrgencyName>")]
    /// How urgent the payment is for the reviewer: low, medium, high or critical.
    pub urgency: Option<String>,
    /// Any string unique to this payment: a retry with the same key and the same arguments
    /// returns the first result (`replayed: true`) instead of paying twice; the same key with
    /// different arguments is IDEMPOTENCY_KEY_REUSE.
    pub idempotency_key: Option<String>,
    /// Free-form JSON object stored with the payment.
    #[schemars(with = "Option<Map<String, Value>>")]
    pub metadata: Option<Value>,
}

impl RequestPayment {
    /// The `POST /v1/payments` body these arguments stand for.
    pub fn into_rest_body(self) -> Value {
        let mut body = Map::new();
        body.insert("from".into(), self.from.into());
        body.insert("to".into(), self.to.into());
        body.insert("amount".into(), self.amount);
        let optional = [
            ("currency", self.currency.map(Value::from)),
            ("description", self.description.map(Value::from)),
            ("agentReasoning", self.agent_reasoning.map(Value::from)),
            ("confidenceScore", self.confidence_score),
            ("riskScore", self.risk_score),
            ("urgency", self.urgency.map(Value::from)),
            ("idempotencyKey", self.idempotency_key.map(Value::from)),
            ("metadata", self.metadata),
        ];
        body.extend(optional.into_iter().filter_map(|(name, value)| Some((name.to_string(), value?))));
        Value::Object(body)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestReview {
    /// Kind of action, a short name routing rules match on, e.g. "email", "deploy", "refund".
    pub task_type: String,
    /// The action the agent proposes, in words the reviewer can judge (up to 4000 characters).
    pub proposed_action: String,
    /// Why the agent proposes it (up to 4000 characters).
    pub agent_reasoning: Option<String>,
    /// The agent's confidence, a number from 0 to 1.
    #[schemars(with = "Option<f64>", range(min = 0, max = 1))]
    pub confidence_score: Option<Value>,
    /// low, medium (the default), high or critical.
    #[schemars(with = "Option<UrgencyName>")]
    pub urgency: Option<String>,
    /// The agent framework asking, e.g. "langchain" (informational).
    pub framework: Option<String>,
    /// Free-form JSON object stored with the review; routing rules may match on it.
    #[schemars(with = "Option<Map<String, Value>>")]
    pub metadata: Option<Value>,
}

impl RequestReview {
    /// The `POST /reviews` body these arguments stand for (never blocking: wait_for_decision
    /// is the bounded wait).
    pub fn into_rest_body(self) -> Value {
        let mut body = Map::new();
        body.insert("task_type".into(), self.task_type.into());
        body.insert("proposed_action".into(), self.proposed_action.into());
        let optional = [
            ("agent_reasoning", self.agent_reasoning.map(Value::from)),
            ("confidence_score", self.confidence_score),
            ("urgency", self.urgency.map(Value::from)),
            ("framework", self.framework.map(Value::from)),
            ("metadata", self.metadata),
        ];
        body.extend(optional.into_iter().filter_map(|(name, value)| Some((name.to_string(), value?))));
        Value::Object(body)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetApproval {
    /// The approval's id (`apr_...`), as `approvalId` of a held payment.
    pub approval_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForDecision {
    /// A held payment's approval id (`apr_...`), or a review id from request_review.
    pub approval_id: String,
    /// Seconds to wait at most, 0 to 25 (default 25). 0 reads the current state at once.
    #[schemars(range(min = 0, max = 25))]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPendingApprovals {
    /// Only approvals of payments from this wallet (`wal_...`).
    pub wallet_id: Option<String>,
    /// How many to return, 1 to 100 (default 20), newest first.
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideApproval {
    /// The approval's id (`apr_...`).
    pub approval_id: String,
    /// approve (the payment executes once enough approvers agree) or reject (it never does).
    #[schemars(with = "DecisionName")]
    pub decision: String,
    /// Why, recorded in the audit log and sent with webhooks (up to 1000 characters).
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EscalateApproval {
    /// The approval's id (`apr_...`).
    pub approval_id: String,
    /// Why it is escalated (up to 1000 characters).
    pub note: Option<String>,
    /// Hand it to this team (`team_...`; admin keys only, a team it never had); without it, the
    /// next tier of the holding policy's escalation chain.
    pub to_team_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddComment {
    /// The approval's id (`apr_...`), pending or decided.
    pub approval_id: String,
    /// What to say, shown to reviewers and the requesting agent (1 to 4000 characters).
    pub body: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListComments {
    /// The approval's id (`apr_...`).
    pub approval_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestRefund {
    /// The COMPLETED payment to refund (`pay_...`); the money goes back from its payee to its
    /// payer.
    pub payment_id: String,
    /// Amount as a decimal string, at most what is left to refund; without it, all that is left.
    #[schemars(with = "Option<String>")]
    pub amount: Option<Value>,
    /// Why the refund is asked for, shown to the reviewer (up to 1000 characters).
    pub reason: Option<String>,
    /// Risk score from 0 to 100; refund policies may hold a refund at or above a threshold.
    #[schemars(with = "Option<f64>", range(min = 0, max = 100))]
    pub risk_score: Option<Value>,
    /// Any string unique to this refund: a retry with the same key and arguments returns the
    /// first result (`replayed: true`) instead of refunding twice.
    pub idempotency_key: Option<String>,
}

impl RequestRefund {
    /// The `POST /v1/refunds` body these arguments stand for.
    pub fn into_rest_body(self) -> Value {
        let mut body = Map::new();
        body.insert("paymentId".into(), self.payment_id.into());
        let optional = [
            ("amount", self.amount),
            ("reason", self.reason.map(Value::from)),
            ("riskScore", self.risk_score),
            ("idempotencyKey", self.idempotency_key.map(Value::from)),
        ];
        body.extend(optional.into_iter().filter_map(|(name, value)| Some((name.to_string(), value?))));
        Value::Object(body)
    }
}

/// `get_budget` takes nothing: it reads the calling key's own budgets.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetBudget {}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhyDenied {
    /// The wallet the payment was from (`wal_...`), as sent to request_payment.
    pub from: String,
    /// The wallet it was to (`wal_...`).
    pub to: String,
    /// The amount as sent, a decimal string such as "125.50".
    #[schemars(with = "String")]
    pub amount: Value,
    /// ISO 4217 code, if one was sent.
    pub currency: Option<String>,
}
