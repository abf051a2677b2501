//! The application service: every use case, composed from the domain and the ports. Methods take
//! domain requests (parsed at the edge) and return domain outcomes; they never see HTTP.
//! Each state change is a plan made on a `Reader` and committed by the engine (`crate::engine`)
//! as one conditional transaction; when a condition fails (someone else wrote first) the engine
//! plans again from fresh reads, so races have exactly one winner and the losers see the new state.

mod audit;
mod delivery;
mod health;
mod metrics;
mod money;
mod notify;
mod org;
mod paging;
mod receipts;
mod review;
mod stats;
mod sweep;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::adapters::null::{NoBus, NoClient, NoMetrics, NoQueue};
use crate::domain::org::ApiKey;
use crate::domain::permission::{self, Permission};
pub(crate) use crate::engine::Owned;
use crate::engine::{Engine, Reader};
use crate::error::{AppError, AppResult};
use crate::ports::{Clock, Store};

pub use crate::engine::Committed;
pub use audit::seal::{SealSummary, MAX_CHECKPOINT_ENTRIES, SEAL_AFTER};
pub use audit::AuditFilter;
pub use delivery::events::DEFAULT_REPUBLISH_AFTER;
pub use delivery::webhooks::{NewWebhook, TestResult, WebhookPatch};
pub use money::approvals::{ApprovalFilter, DecideRequest, Decided, EscalateRequest};
pub use money::backtest::BacktestRequest;
pub use money::bulk::{BulkOutcome, MAX_BULK_IDS};
pub use money::comments::NewComment;
pub use money::payments::PaymentFilter;
pub use money::policies::{EvaluateRequest, MAX_POLICIES_PER_WALLET};
pub use money::refunds::{RefundFilter, RefundOutcome};
pub use money::shadow::PolicyShadowStats;
pub use money::wallets::{FundRequest, Funded};
pub use money::why::{WhyAnswer, WhyRequest};
pub use notify::integration::{SlackIntegrationView, SlackSetup, SLACK_INTERACTIONS_PATH};
pub use notify::interactions::SlackClick;
pub use notify::log::NotificationFilter;
pub(crate) use notify::plan::may_notify;
pub use org::passkeys::{NewPasskey, RegistrationOptions, StepUpStart};

pub use metrics::IntakeDecision;
pub use org::auth::Caller;
pub use org::keys::{ApiKeyPatch, IssuedKey, NewApiKey, NewOrganization, MAX_KEY_WALLETS};
pub use org::links::REVIEW_LINK_PATH;
pub use org::people::{MemberPatch, NewMember, NewRoutingRule, NewTeam, RoutingRulePatch, TeamPatch};
pub use org::policy_changes::{Applied, ChangeFilter, ChangeParser, ChangeRequest, Submitted};
pub use org::sessions::{SessionId, SignedIn, SESSION_HOURS};
pub use org::settings::SettingsPatch;
pub use paging::{Page, PageRequest};
pub use review::dashboard_queue::{
    ApprovalDetail, ApprovalItem, Inbox, InboxFilter, InboxItem, InboxStatus, ReviewDetail, INBOX_LIMIT,
};
pub use review::reviews::{
    ReviewDecide, ReviewEscalate, ReviewFilter, ReviewPage, MAX_REVIEW_WAIT_SECONDS, REVIEW_LIST_DEPTH,
};
pub use review::waits::{WaitSlot, MAX_WAITS_PER_KEY, WAIT_RETRY_AFTER_SECONDS};
pub use stats::ApprovalStats;
pub use sweep::{ExpirySummary, SweepSummary};

/// The longest approval window (30 days), for policies and the default alike.
pub const MAX_APPROVAL_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// Tunables read once at start-up.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Approval window when no holding policy sets `approvalTtlSeconds` (default 24 h).
    pub default_approval_ttl_seconds: u64,
    /// SHA-256 of the operator key (`COUNTERSIGN_ADMIN_KEY`), if one is configured.
    pub operator_key_hash: Option<String>,
    /// `COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS`: let webhooks target private and loopback addresses.
    pub allow_private_webhooks: bool,
    /// Webhook retry schedule.
    pub retry: crate::domain::delivery::RetryPolicy,
    /// Unpublished outbox events older than this are re-published by the sweep.
    pub republish_after: std::time::Duration,
    /// `COUNTERSIGN_REVIEW_WAIT_SECONDS`: how long `POST /reviews` with `blocking: true` waits
    /// for a decision (default 25, at most `MAX_REVIEW_WAIT_SECONDS`, below API Gateway's 29 s).
    pub review_wait: std::time::Duration,
    /// `COUNTERSIGN_SESSION_SECRET`: signs the dashboard's sessions, CSRF tokens and review links.
    /// Unset: the dashboard answers 503 and webhooks carry no `reviewUrl`.
    pub session_secret: Option<Arc<crate::domain::secret::ServerSecret>>,
    /// `COUNTERSIGN_PUBLIC_URL`: where reviewers reach the dashboard (`https://host[/prefix]`,
    /// no trailing slash), the base of `reviewUrl` links.
    pub public_url: Option<String>,
    /// `COUNTERSIGN_SIGNING_KEY` (generated into the data directory locally): signs audit
    /// checkpoints and receipts. Unset: nothing is sealed and receipts answer 503.
    pub audit_signer: Option<Arc<crate::proof::signing::AuditSigner>>,
    /// `COUNTERSIGN_RETIRED_SIGNING_KEYS`: public keys of earlier signing keys, still published so
    /// what they signed keeps verifying after a rotation.
    pub retired_keys: Vec<crate::proof::signing::Jwk>,
    /// `COUNTERSIGN_ENCRYPTION_KEY` (generated into the data directory locally): seals the
    /// secrets the service keeps (a Slack app's token and signing secret). Unset: they cannot
    /// be stored (503).
    pub encryption_key: Option<Arc<crate::domain::encryption::EncryptionKey>>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            default_approval_ttl_seconds: 24 * 3600,
            operator_key_hash: None,
            allow_private_webhooks: false,
            retry: Default::default(),
            republish_after: DEFAULT_REPUBLISH_AFTER,
            review_wait: std::time::Duration::from_secs(25),
            session_secret: None,
            public_url: None,
            audit_signer: None,
            retired_keys: Vec::new(),
            encryption_key: None,
        }
    }
}

impl Settings {
    /// The WebAuthn relying party: the public URL's host and origin. A loopback address becomes
    /// `localhost` (browsers take no IP address as a relying party id).
    pub fn relying_party(&self) -> Option<crate::passkey::RelyingParty> {
        let url = self.public_url.as_deref()?;
        crate::passkey::RelyingParty::from_public_url(&loopback_as_localhost(url)).ok()
    }

    /// The relying party, or the refusal every passkey use answers without one.
    pub(crate) fn passkey_relying_party(&self) -> AppResult<crate::passkey::RelyingParty> {
        self.relying_party().ok_or_else(|| {
            AppError::StepUpRefused(crate::domain::step_up::StepUpFault::Assertion(
                "passkeys need COUNTERSIGN_PUBLIC_URL with a host name".into(),
            ))
        })
    }
}

/// `http://127.0.0.1:8080/x` → `http://localhost:8080/x`; anything else unchanged.
pub fn loopback_as_localhost(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.host_str().is_some_and(|h| h == "127.0.0.1" || h == "[::1]") => {
            if parsed.set_host(Some("localhost")).is_ok() {
                parsed.as_str().trim_end_matches('/').to_string()
            } else {
                url.to_string()
            }
        }
        _ => url.to_string(),
    }
}

/// The event and webhook machinery a service talks to.
#[derive(Clone)]
pub struct Wiring {
    pub bus: Arc<dyn crate::ports::EventBus>,
    pub queue: Arc<dyn crate::ports::DeliveryQueue>,
    pub client: Arc<dyn crate::ports::WebhookClient>,
    pub metrics: Arc<dyn crate::ports::Metrics>,
    /// Slack's Web API (`COUNTERSIGN_SLACK_API_URL`), for organisations that connect an app.
    pub slack: Arc<dyn crate::ports::notify::SlackApi>,
    /// SMTP (`COUNTERSIGN_SMTP_URL`); unset: no email is sent.
    pub mailer: Option<Arc<dyn crate::ports::notify::Mailer>>,
}

impl Default for Wiring {
    fn default() -> Self {
        Wiring {
            bus: Arc::new(NoBus),
            queue: Arc::new(NoQueue),
            client: Arc::new(NoClient),
            metrics: Arc::new(NoMetrics),
            slack: Arc::new(crate::adapters::null::NoSlack),
            mailer: None,
        }
    }
}

/// What every use case is given: the engine its changes go through, and the settings. Use
/// cases (`money`, `org`, `reviews`, ...) are methods of this; the machinery around them
/// (authentication's key cache, the webhook wiring, endpoint slots, long-poll slots) lives on
/// `Countersign`, which derefs to it.
#[derive(Clone)]
pub struct UseCases {
    /// Every change goes through it: prefetch, plan, commit.
    engine: Engine,
    settings: Settings,
    /// Where metrics go (`Wiring::metrics`), recorded once what they measure has committed.
    metrics: Arc<dyn crate::ports::Metrics>,
}

#[derive(Clone)]
pub struct Countersign {
    cases: UseCases,
    /// Which organisation each API key seen belongs to, so a request can read its org's records
    /// in the same round trip as the key (prefetch). A key never changes organisation.
    key_orgs: Arc<org::auth::KeyOrgs>,
    wiring: Wiring,
    /// Webhook sends in flight per endpoint, so a hanging one holds only its own slots.
    endpoints: Arc<delivery::endpoints::Endpoints>,
    /// Long-polls held per key (`waits`): the cap itself on the embedded store; on a remote one
    /// the slots are items in the store, so the cap holds across instances.
    waits: Arc<review::waits::WaitSlots>,
}

impl std::ops::Deref for Countersign {
    type Target = UseCases;

    fn deref(&self) -> &UseCases {
        &self.cases
    }
}

impl Countersign {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        let waits = Arc::new(review::waits::WaitSlots::for_store(store.as_ref()));
        let service = Countersign {
            cases: UseCases { engine: Engine::new(store, clock), settings, metrics: Arc::new(NoMetrics) },
            key_orgs: Arc::default(),
            wiring: Wiring::default(),
            endpoints: Arc::default(),
            waits,
        };
        service.with_outbox()
    }

    /// Plans race on their conditions alone, as separate processes do: benchmarks model many
    /// Lambda instances this way.
    pub fn without_record_locks(mut self) -> Self {
        self.cases.engine = self.cases.engine.without_locks();
        self
    }

    /// Payments rewrite whole records conditional on their versions instead of moving counters
    /// in place (the behaviour before in-place counters, for benchmarks that compare).
    pub fn rewriting_counters(mut self) -> Self {
        self.cases.engine = self.cases.engine.rewriting_counters();
        self
    }

    /// Connects the event bus, the webhook queue and the webhook HTTP client.
    pub fn with_wiring(mut self, wiring: Wiring) -> Self {
        self.cases.metrics = wiring.metrics.clone();
        self.wiring = wiring;
        self.with_outbox()
    }

    /// Committed events go to this service's bus.
    fn with_outbox(mut self) -> Self {
        let outbox = delivery::events::Publisher::new(self.store().clone(), self.wiring.clone(), self.engine.clock());
        self.cases.engine = self.cases.engine.with_outbox(Arc::new(outbox));
        self
    }
}

impl UseCases {
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.engine.now()
    }

    /// The store itself (committed state), for what is not a planned change.
    fn store(&self) -> &Arc<dyn Store> {
        self.engine.store()
    }

    /// A reader of committed state, for reads outside a plan.
    pub(crate) fn reader(&self) -> Reader {
        self.engine.reader()
    }
}

/// Fails unless the caller's key may act on `wallet` (keys bound to wallets).
fn ensure_wallet(caller: &ApiKey, wallet: &crate::domain::ids::WalletId) -> AppResult<()> {
    if caller.may_use(wallet) {
        Ok(())
    } else {
        Err(AppError::WalletNotAllowed)
    }
}

/// Fails for keys bound to wallets: what is not about one wallet (org-wide lists, new wallets).
fn ensure_unbound(caller: &ApiKey) -> AppResult<()> {
    if caller.wallet_ids.is_empty() {
        Ok(())
    } else {
        Err(AppError::WalletNotAllowed)
    }
}

/// Fails unless the caller's key holds `needed`.
fn require(caller: &ApiKey, needed: Permission) -> AppResult<()> {
    if permission::allows(&caller.permissions, needed) {
        Ok(())
    } else {
        Err(AppError::PermissionDenied(needed))
    }
}
