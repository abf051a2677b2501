//! The core's error type. Every variant is specific; `api::error` maps each to an HTTP status and
//! an error code in one place, and never shows internal text to clients.

use crate::domain::approval::{ApprovalError, ApprovalStatus};
use crate::domain::input::InputError;
use crate::domain::money::MoneyError;
use crate::domain::payment::{PaymentError, PaymentStatus};
use crate::domain::permission::Permission;
use crate::domain::review::{ReviewError, ReviewStatus};
use crate::domain::wallet::BalanceError;
use crate::ports::{BusError, QueueError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid request: {0}")]
    Input(#[from] InputError),
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// The body does not fit its shape at `field` (a dotted path).
    #[error("malformed request body: {message}")]
    BodyField { field: String, message: String },
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("API key has been revoked")]
    ApiKeyRevoked,
    #[error("this API key is frozen; an admin can unfreeze it")]
    KeyFrozen,
    #[error("wallet {wallet} is frozen; no money moves from or to it until it is unfrozen")]
    WalletFrozen { wallet: String, at_execution: bool },
    #[error("{}", .0.reason)]
    BudgetExceeded(Box<crate::domain::budget::BudgetRefusal>),
    /// A key changing its own controls (budgets, freeze), or a budgeted key minting keys.
    #[error("{0}")]
    OwnControls(&'static str),
    #[error("alwaysAllow refused: {0}")]
    AlwaysAllowRefused(&'static str),
    #[error("this key lacks the {0:?} permission")]
    PermissionDenied(Permission),
    #[error("this key is bound to other wallets")]
    WalletNotAllowed,
    #[error("the payment no longer matches what the approval showed")]
    PayloadMismatch,
    #[error("the escalation chain has no further team; name one with toTeam")]
    NoEscalationTarget,
    /// An escalation that would not move forward, or by the person who asked.
    #[error("{0}")]
    Escalation(crate::domain::escalation::EscalationError),
    #[error("the approval is assigned to a team this key's person is not in")]
    NotAssigned,
    #[error("only the operator key may do this")]
    OperatorOnly,
    #[error("cannot grant permissions the calling key does not hold")]
    PermissionEscalation,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("route not found")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("payment denied by policy: {reason}")]
    PolicyDenied { reason: String, rule: String, policy_id: Option<String> },
    #[error("insufficient funds: balance {balance} {currency}, requested {requested}")]
    InsufficientFunds { balance: String, requested: String, currency: String },
    #[error("idempotency key was already used with a different request")]
    IdempotencyKeyReuse,
    #[error("approval is {0:?}, not PENDING")]
    ApprovalNotPending(ApprovalStatus),
    #[error("approval window has closed")]
    ApprovalExpired,
    #[error("review is {}, not pending", .0.as_str())]
    ReviewNotPending(ReviewStatus),
    #[error("review window has closed")]
    ReviewExpired,
    #[error("the key that submitted a payment cannot approve it")]
    SelfApprovalForbidden,
    #[error("policy change is {}, not pending", .0.as_str())]
    PolicyChangeNotPending(crate::domain::policy_change::ChangeStatus),
    #[error("the person who requested a policy change cannot approve it; another person must")]
    PolicyChangeSelfApproval,
    #[error("what this policy change was requested against has changed since; request it again")]
    PolicyChangeStale,
    #[error("policy change expired: it was not approved within its window")]
    PolicyChangeExpired,
    #[error("this key has already voted on the approval")]
    AlreadyVoted,
    #[error("currency {payment} does not match the wallet's currency {wallet}")]
    CurrencyMismatch { payment: String, wallet: String },
    #[error("this key already holds {limit} waits for a decision; retry after {retry_after_seconds} s")]
    TooManyWaits { limit: usize, retry_after_seconds: u64 },
    #[error("too much contention on this resource; retry")]
    Contention,
    #[error("payment is {}, not PENDING_APPROVAL", .0.as_str())]
    PaymentNotPending(PaymentStatus),
    #[error("only a COMPLETED payment can be refunded; this one is {}", .0.as_str())]
    PaymentNotRefundable(PaymentStatus),
    #[error("the refund is more than is left to refund ({remaining} {currency})")]
    RefundExceedsPayment { remaining: String, currency: String },
    #[error("refund is {}, not pending", .0.as_str())]
    RefundNotPending(crate::domain::refund::RefundStatus),
    #[error("a refund cannot be modified; approve or reject it")]
    RefundNotModifiable,
    #[error("storage unavailable: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Bus(#[from] BusError),
    #[error("{0}")]
    Queue(#[from] QueueError),
    #[error("webhook url refused: {0}")]
    WebhookTarget(#[from] crate::domain::ssrf::TargetError),
    #[error("approving this amount needs a passkey: open {url} to approve with it")]
    StepUpRequired { url: String, step_up_above: String },
    #[error("the passkey step-up was refused: {0}")]
    StepUpRefused(crate::domain::step_up::StepUpFault),
    #[error("no audit signing key is configured (COUNTERSIGN_SIGNING_KEY)")]
    SigningKeyMissing,
    #[error("no encryption key is configured (COUNTERSIGN_ENCRYPTION_KEY): secrets cannot be stored")]
    EncryptionKeyMissing,
    #[error("this Slack user is already linked to another member")]
    SlackUserTaken,
    #[error("internal data error: {0}")]
    Corrupt(String),
}

impl From<MoneyError> for AppError {
    fn from(source: MoneyError) -> Self {
        AppError::Input(InputError::Amount { field: "amount", source })
    }
}

impl From<ApprovalError> for AppError {
    fn from(e: ApprovalError) -> Self {
        match e {
            ApprovalError::NotPending(s) => AppError::ApprovalNotPending(s),
            ApprovalError::Expired => AppError::ApprovalExpired,
            ApprovalError::SelfApproval => AppError::SelfApprovalForbidden,
            ApprovalError::AlreadyVoted => AppError::AlreadyVoted,
            ApprovalError::Escalation(e) => AppError::Escalation(e),
        }
    }
}

impl From<crate::domain::policy_change::ChangeError> for AppError {
    fn from(e: crate::domain::policy_change::ChangeError) -> Self {
        use crate::domain::policy_change::ChangeError;
        match e {
            ChangeError::NotPending(status) => AppError::PolicyChangeNotPending(status),
            ChangeError::SelfApproval => AppError::PolicyChangeSelfApproval,
            ChangeError::Stale => AppError::PolicyChangeStale,
            ChangeError::Expired => AppError::PolicyChangeExpired,
        }
    }
}

impl From<ReviewError> for AppError {
    fn from(e: ReviewError) -> Self {
        match e {
            ReviewError::NotPending(s) => AppError::ReviewNotPending(s),
            ReviewError::Expired => AppError::ReviewExpired,
            ReviewError::SelfApproval => AppError::SelfApprovalForbidden,
            ReviewError::Escalation(e) => AppError::Escalation(e),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            // A cursor is client input: the store only tells us it did not issue it.
            StoreError::InvalidCursor => {
                AppError::Input(InputError::invalid("cursor", "is not a cursor this API returned"))
            }
            other => AppError::Store(other),
        }
    }
}

impl From<crate::domain::refund::RefundError> for AppError {
    fn from(e: crate::domain::refund::RefundError) -> Self {
        use crate::domain::refund::RefundError;
        match e {
            RefundError::NotRefundable(status) => AppError::PaymentNotRefundable(status),
            RefundError::Exceeds(left) => {
                AppError::RefundExceedsPayment { remaining: left.to_wire(), currency: left.currency().code().into() }
            }
            RefundError::NotPending(status) => AppError::RefundNotPending(status),
        }
    }
}

impl From<PaymentError> for AppError {
    fn from(e: PaymentError) -> Self {
        match e {
            PaymentError::NotPending(status) => AppError::PaymentNotPending(status),
            PaymentError::NotLower => AppError::Input(InputError::invalid(
                "amount",
                "must be more than zero and at most the amount asked for",
            )),
        }
    }
}

impl From<BalanceError> for AppError {
    fn from(e: BalanceError) -> Self {
        match e {
            BalanceError::Insufficient { balance, requested } => AppError::InsufficientFunds {
                balance: balance.to_wire(),
                requested: requested.to_wire(),
                currency: balance.currency().code().to_string(),
            },
            BalanceError::Overflow => InputError::invalid("amount", "balance would overflow").into(),
            BalanceError::CurrencyMismatch => {
                AppError::Input(InputError::invalid("currency", "does not match the wallet's currency"))
            }
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
