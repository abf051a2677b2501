//! The tool list an agent sees (names, descriptions, input schemas) and the dispatch to `calls`
//! with the caller the HTTP door authenticated.

use axum::http::request::Parts;
use rmcp::handler::server::common::schema_for_input;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::Extension;
use rmcp::model::{CallToolResult, Implementation, JsonObject, ServerCapabilities, ServerConfig};
use rmcp::schemars::JsonSchema;
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use std::sync::Arc;

use super::outcome::tool_result;
use super::{args, calls};
use crate::api::AppState;
use crate::error::{AppError, AppResult};
use crate::service::Caller;

const INSTRUCTIONS: &str = "Countersign puts a human between an AI agent and money. Pay with \
request_payment: it executes at once when the wallet's policies allow it, or is held \
(held: true, payment status PENDING_APPROVAL) until a person approves or rejects it. While \
held, call wait_for_decision with the approval id (each call waits at most 25 seconds; call \
again while pending is true). Ask a human about any other action with request_review and wait \
the same way. Amounts are decimal strings such as \"12.50\", never numbers. A failed call is a \
tool error whose text starts with the API error code (e.g. INSUFFICIENT_FUNDS, POLICY_DENIED, \
PERMISSION_DENIED, SELF_APPROVAL_FORBIDDEN): do not retry those unchanged. SERVICE_UNAVAILABLE \
is safe to retry, with the same idempotency_key for payments.";

const REQUEST_PAYMENT: &str = "Ask to pay `amount` from one wallet to another. The wallet's \
policies decide: the payment executes at once (held: false, payment.status COMPLETED), is held \
for a human (held: true, payment.status PENDING_APPROVAL, the REST API's 202 Accepted: no money \
has moved; approval.id is the approval to wait on with wait_for_decision; approval.expiresAt is \
when it lapses), or is refused with a tool error (POLICY_DENIED, INSUFFICIENT_FUNDS, \
WALLET_NOT_ALLOWED, INVALID_AMOUNT, VALIDATION_ERROR). Pass an idempotency_key to retry \
safely. Needs the payments:write permission.";

const REQUEST_REVIEW: &str = "Ask a human to review an action that is not a payment (send an \
email, deploy, delete data...). Returns the review (status pending, id rev_...); routing rules \
may assign it to a team. Then call wait_for_decision with the review's id: the decision is \
approve, reject or modify (with modified_action, the action the reviewer wants instead). Needs \
the reviews:write permission.";

const GET_APPROVAL: &str = "Read one approval: its status (PENDING, ESCALATED, APPROVED, \
REJECTED, EXPIRED), the payment details it shows (transactionDetails), why it was held \
(reason), the votes so far and when it expires (expiresAt). Does not wait; see \
wait_for_decision. Needs approvals:read.";

const WAIT_FOR_DECISION: &str = "Wait until a held payment's approval (apr_...) or a review \
(rev_...) is decided, for at most timeout_seconds (0 to 25, default 25), then return it as it \
stands: pending true means no decision yet (call again); otherwise status says how it ended \
(APPROVED, REJECTED or EXPIRED for an approval; approved, modified, rejected or expired for a \
review) and decision says who decided and their notes. For a payment, payment.status is the \
outcome: COMPLETED (paid), REJECTED, EXPIRED, or FAILED (approved but it could not execute; \
see failureReason). Needs approvals:read (for a review, reviews:write also does).";

const LIST_PENDING_APPROVALS: &str = "List approvals waiting for a human decision (status \
PENDING or ESCALATED), newest first, optionally for one wallet; has_more is true when there \
are more than limit. Needs approvals:read.";

const DECIDE_APPROVAL: &str = "Approve or reject a held payment (or refund) as a reviewer. On \
approve it executes once enough approvers have voted (approval.requiredApprovals); the result \
shows the approval and the payment (and the refund) as they now stand. A key can never decide \
what it (or its person) requested: SELF_APPROVAL_FORBIDDEN. Other refusals: \
APPROVAL_NOT_PENDING, APPROVAL_EXPIRED, ALREADY_VOTED, NOT_ASSIGNED (assigned to a team this \
key's person is not in). Needs approvals:write.";

const ESCALATE_APPROVAL: &str = "Hand a pending approval forward: to the next tier of the \
holding policy's escalation chain, or (admin keys only; PERMISSION_DENIED otherwise) to a named \
to_team_id it has never been assigned. Never back, never to its current team, never when the \
chain has ended (NO_ESCALATION_TARGET); never by the person who requested it \
(SELF_APPROVAL_FORBIDDEN). The approval becomes ESCALATED with a fresh window, within \
createdAt + (chain tiers + 1) x the policy's window. Needs approvals:write.";

const REQUEST_REFUND: &str = "Ask to refund a COMPLETED payment, wholly (no amount: all that \
is left) or in part (amount as a decimal string): the money goes back from the payee's wallet \
to the payer's. The payee wallet's refund policies decide, as for a payment: executed at once \
(held: false, refund.status approved), held for a human (held: true, refund.status pending, \
the REST API's 202: nothing has moved; approval.id is what to wait on with wait_for_decision, \
which then also shows the refund), or refused with a tool error (POLICY_DENIED, \
PAYMENT_NOT_REFUNDABLE, REFUND_EXCEEDS_PAYMENT with details.remaining, INVALID_AMOUNT). \
Refunds of one payment never add up to more than it. Pass an idempotency_key to retry \
safely. Needs refunds:write.";

const GET_BUDGET: &str = "Read this key's own budgets: per window (day, week from Monday, month; \
UTC) and currency, the limit, what was spent, what held payments reserve, what remains and when \
it resets (resetsAt). A payment over a budget is held for a person (onExceed hold) or refused \
with BUDGET_EXCEEDED (onExceed deny). Takes no arguments.";

const WHY_DENIED: &str = "Ask why a payment was (or would be) refused or held, with the \
arguments you sent to request_payment (from, to, amount, currency). Nothing is written. The \
answer is the decision now (outcome EXECUTE, HOLD or DENY), the deciding rule (a policy rule \
such as maxTransactionAmount, budget, walletFrozen, insufficientFunds), its limit, the key's \
budgets, and what would pass: executesUpTo is the largest amount that would execute at once \
(wouldPass says it in words, e.g. \"at most 1000.00 USD executes at once\"). Needs \
payments:write and the from wallet.";

const ADD_COMMENT: &str = "Comment on an approval (apr_...), pending or decided: a note to the \
reviewers, or (as a reviewer) a question to the agent that asked. Allowed to the key that \
requested the approval and to reviewers (approvals:write on its wallet); anyone else gets \
APPROVAL_NOT_FOUND. Returns the comment {id, approvalId, body, author, createdAt}. A comment \
decides nothing.";

const LIST_COMMENTS: &str = "Read an approval's comments, oldest first (the first 100; has_more \
says whether there are more): what reviewers and the requesting agent said about it. Allowed to \
the key that requested the approval and to reviewers (approvals:read on its wallet); anyone else \
gets APPROVAL_NOT_FOUND.";

/// The input schema of a tool whose arguments are `T`.
fn input<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    // The argument types are fixed structs with object roots; a failure is a programming error
    // that the tool-list test catches.
    schema_for_input::<T>().unwrap_or_else(|e| panic!("tool input schema: {e}"))
}

/// Who is calling: the HTTP door put the authenticated caller on the request.
fn caller(parts: &Parts) -> AppResult<&Caller> {
    parts.extensions.get::<Caller>().ok_or(AppError::Unauthorized)
}

/// The MCP server: one per request (stateless), sharing the service and the tool list.
#[derive(Clone)]
pub struct Tools {
    service: AppState,
    tool_router: ToolRouter<Self>,
}

impl Tools {
    pub fn new(service: AppState) -> Self {
        Tools { service, tool_router: Self::tool_router() }
    }

    /// With a tool list built once (building one per request would redo every schema).
    pub fn with_router(service: AppState, tool_router: ToolRouter<Self>) -> Self {
        Tools { service, tool_router }
    }

    pub fn router(&self) -> ToolRouter<Self> {
        self.tool_router.clone()
    }
}

/// Runs `call` as the request's caller.
macro_rules! dispatch {
    ($self:ident, $parts:ident, $arguments:ident, $call:path) => {
        tool_result(match caller(&$parts) {
            Ok(c) => $call(&$self.service, c, $arguments).await,
            Err(e) => Err(e),
        })
    };
}

#[tool_router]
impl Tools {
    #[tool(description = REQUEST_PAYMENT, input_schema = input::<args::RequestPayment>())]
    async fn request_payment(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::request_payment)
    }

    #[tool(description = REQUEST_REVIEW, input_schema = input::<args::RequestReview>())]
    async fn request_review(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::request_review)
    }

    #[tool(description = GET_APPROVAL, input_schema = input::<args::GetApproval>())]
    async fn get_approval(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::get_approval)
    }

    #[tool(description = WAIT_FOR_DECISION, input_schema = input::<args::WaitForDecision>())]
    async fn wait_for_decision(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::wait_for_decision)
    }

    #[tool(description = LIST_PENDING_APPROVALS, input_schema = input::<args::ListPendingApprovals>())]
    async fn list_pending_approvals(
        &self,
        Extension(parts): Extension<Parts>,
        arguments: JsonObject,
    ) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::list_pending_approvals)
    }

    #[tool(description = DECIDE_APPROVAL, input_schema = input::<args::DecideApproval>())]
    async fn decide_approval(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::decide_approval)
    }

    #[tool(description = ESCALATE_APPROVAL, input_schema = input::<args::EscalateApproval>())]
    async fn escalate_approval(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::escalate_approval)
    }

    #[tool(description = ADD_COMMENT, input_schema = input::<args::AddComment>())]
    async fn add_comment(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::add_comment)
    }

    #[tool(description = LIST_COMMENTS, input_schema = input::<args::ListComments>())]
    async fn list_comments(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::list_comments)
    }

    #[tool(description = REQUEST_REFUND, input_schema = input::<args::RequestRefund>())]
    async fn request_refund(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::request_refund)
    }

    #[tool(description = GET_BUDGET, input_schema = input::<args::GetBudget>())]
    async fn get_budget(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::get_budget)
    }

    #[tool(description = WHY_DENIED, input_schema = input::<args::WhyDenied>())]
    async fn why_denied(&self, Extension(parts): Extension<Parts>, arguments: JsonObject) -> CallToolResult {
        dispatch!(self, parts, arguments, calls::why_denied)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("countersign", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}
