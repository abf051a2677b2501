//! The application service: every use case, composed from the domain and the ports. Methods take
//! domain requests (parsed at the edge) and return domain outcomes; they never see HTTP.
//! Each state change is planned from a fresh read (`plan::Tx`) and committed as one conditional
//! transaction (`commit`); when a condition fails (someone else wrote first) the plan is made
//! again from a new read, so races have exactly one winner and the losers see the new state.

mod ahead;
mod approvals;
mod audit;
mod auth;
mod commit;
mod endpoints;
mod events;
mod fanout;
mod health;
mod inbox;
mod keys;
mod lanes;
mod links;
mod paging;
mod payments;
mod pending;
mod people;
mod plan;
mod policies;
pub mod records;
mod refunds;
mod reviews;
mod sessions;
mod settings;
mod sweep;
#[cfg(test)]
mod tests;
mod waits;
mod wallets;
mod webhooks;

use std::sync::Arc;

use crate::adapters::null::{NoBus, NoClient, NoMetrics, NoQueue};
use crate::domain::ids::OrgId;
use crate::domain::org::ApiKey;
use crate::domain::permission::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::ports::{Clock, Store};

pub use approvals::{ApprovalFilter, DecideRequest, Decided, EscalateRequest};
pub use audit::AuditFilter;
pub use auth::Caller;
pub use commit::Committed;
pub use events::DEFAULT_REPUBLISH_AFTER;
pub use inbox::{ApprovalDetail, ApprovalItem, Inbox, InboxFilter, InboxItem, InboxStatus, ReviewDetail, INBOX_LIMIT};
pub use keys::{ApiKeyPatch, IssuedKey, NewApiKey, NewOrganization, MAX_KEY_WALLETS};
pub use links::REVIEW_LINK_PATH;
pub use paging::{Page, PageRequest};
pub use payments::PaymentFilter;
pub use people::{NewMember, NewRoutingRule, NewTeam, RoutingRulePatch, TeamPatch};
pub use policies::{EvaluateRequest, MAX_POLICIES_PER_WALLET};
use records::{decode, Record, Stored};
pub use refunds::{RefundFilter, RefundOutcome};
pub use reviews::{ReviewDecide, ReviewEscalate, ReviewFilter, ReviewPage, MAX_REVIEW_WAIT_SECONDS, REVIEW_LIST_DEPTH};
pub use sessions::{SessionId, SignedIn, SESSION_HOURS};
pub use settings::SettingsPatch;
pub use sweep::{ExpirySummary, SweepSummary};
pub use waits::{WaitSlot, MAX_WAITS_PER_KEY, WAIT_RETRY_AFTER_SECONDS};
pub use wallets::{FundRequest, Funded};
pub use webhooks::{NewWebhook, TestResult, WebhookPatch};

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
        }
    }
}

/// The event and webhook machinery a service talks to.
#[derive(Clone)]
pub struct Wiring {
    pub bus: Arc<dyn crate::ports::EventBus>,
    pub queue: Arc<dyn crate::ports::DeliveryQueue>,
    pub client: Arc<dyn crate::ports::WebhookClient>,
    pub metrics: Arc<dyn crate::ports::Metrics>,
}

impl Default for Wiring {
    fn default() -> Self {
        Wiring {
            bus: Arc::new(NoBus),
            queue: Arc::new(NoQueue),
            client: Arc::new(NoClient),
            metrics: Arc::new(NoMetrics),
        }
    }
}

#[derive(Clone)]
pub struct Countersign {
    /// The store as plans see it (`pending::PlanStore` over `committed`).
    store: Arc<dyn Store>,
    /// The store itself: committed state only.
    committed: Arc<dyn Store>,
    /// Which organisation each API key seen belongs to, so a request can read its org's records
    /// in the same round trip as the key (`ahead`). A key never changes organisation.
    key_orgs: Arc<auth::KeyOrgs>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    wiring: Wiring,
    /// Plans that rewrite the same records take turns within this process (`None`: they race).
    lanes: Option<Arc<lanes::Lanes>>,
    /// Webhook sends in flight per endpoint, so a hanging one holds only its own slots.
    endpoints: Arc<endpoints::Endpoints>,
    /// Long-polls held per key in this process (`waits`): the cap itself on the embedded store;
    /// on a remote one the slots are items in the store, so the cap holds across instances.
    waits: Arc<waits::WaitSlots>,
}

impl Countersign {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: Settings) -> Self {
        // Plans in their lanes see the writes queued ahead of them; nothing else does.
        let committed = store.clone();
        let store = Arc::new(pending::PlanStore::new(store));
        Countersign {
            store,
            committed,
            key_orgs: Arc::default(),
            clock,
            settings,
            wiring: Wiring::default(),
            lanes: Some(Arc::default()),
            endpoints: Arc::default(),
            waits: Arc::default(),
        }
    }

    /// Plans race on their conditions alone, as separate processes do: benchmarks model many
    /// Lambda instances this way.
    pub fn without_lanes(mut self) -> Self {
        self.lanes = None;
        self
    }

    /// Connects the event bus, the webhook queue and the webhook HTTP client.
    pub fn with_wiring(mut self, wiring: Wiring) -> Self {
        self.wiring = wiring;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Reads a record by key.
    async fn read<R: Record>(&self, key: &crate::ports::Key) -> AppResult<Option<Stored<R>>> {
        self.store.get(key).await?.map(decode).transpose()
    }

    /// Reads a record that must belong to `org`; another org's record is reported as missing.
    async fn read_owned<R: Record + Owned>(&self, key: &crate::ports::Key, org: &OrgId) -> AppResult<Stored<R>> {
        match self.read::<R>(key).await? {
            Some(r) if r.value.org_id() == org => Ok(r),
            _ => Err(AppError::NotFound(R::NAME)),
        }
    }
}

/// Records that belong to one organisation.
pub trait Owned {
    fn org_id(&self) -> &OrgId;
}

macro_rules! owned {
    ($($t:ty),*) => {$(
        impl Owned for $t {
            fn org_id(&self) -> &OrgId { &self.org_id }
        }
    )*};
}
owned!(
    crate::domain::wallet::Wallet,
    crate::domain::payment::Payment,
    crate::domain::approval::Approval,
    crate::domain::policy::Policy,
    crate::domain::webhook::Webhook,
    crate::domain::delivery::Delivery,
    crate::domain::people::Member,
    crate::domain::people::Team,
    crate::domain::routing::RoutingRule,
    crate::domain::review::Review,
    crate::domain::refund::Refund,
    ApiKey
);

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
