//! The dashboard's queue (its reads; docs/api.md, "Dashboard pages"): approvals with their payments and
//! reviews in one queue, open ones first; and one item with its history. Reads only, each
//! through the caller's permissions: approvals as `list_approvals`/`get_approval` show them
//! (wallet-bound keys see their wallets' only), reviews to keys that may read approvals.

use std::collections::{BTreeSet, HashMap};

use futures::future::join_all;
use sha2::{Digest, Sha256};

use crate::domain::approval::{Approval, ApprovalStatus};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{ApprovalId, OrgId, ReviewId, TeamId, WalletId};
use crate::domain::payment::{Payment, Urgency};
use crate::domain::people::{Member, Team};
use crate::domain::permission::Permission;
use crate::domain::review::{Review, ReviewStatus};
use crate::domain::wallet::Wallet;
use crate::error::AppResult;
use crate::layout::{
    audit_resource_partition, by_org_partition, by_status_partition, decode, payment_key, review_key, wallet_key,
};
use crate::ports::{Index, Query};
use crate::service::money::approvals::ApprovalFilter;
use crate::service::paging::PageRequest;
use crate::service::{require, Caller, UseCases};

/// At most this many items of each status are read for one queue.
pub const INBOX_LIMIT: usize = 100;
/// At most this many history entries are shown for one item.
const HISTORY_LIMIT: usize = 100;
const PEOPLE_LIMIT: usize = 1_000;

/// Which statuses a queue shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboxStatus {
    /// Pending or escalated: what waits for a decision.
    #[default]
    Open,
    Pending,
    Escalated,
    Approved,
    Rejected,
    /// Reviews decided with a modified action; approvals approved at a lower amount.
    Modified,
    Expired,
    All,
}

impl InboxStatus {
    pub const ALL: [InboxStatus; 8] = [
        InboxStatus::Open,
        InboxStatus::Pending,
        InboxStatus::Escalated,
        InboxStatus::Approved,
        InboxStatus::Rejected,
        InboxStatus::Modified,
        InboxStatus::Expired,
        InboxStatus::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InboxStatus::Open => "open",
            InboxStatus::Pending => "pending",
            InboxStatus::Escalated => "escalated",
            InboxStatus::Approved => "approved",
            InboxStatus::Rejected => "rejected",
            InboxStatus::Modified => "modified",
            InboxStatus::Expired => "expired",
            InboxStatus::All => "all",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The approval statuses to read (`None`: all of them, newest first).
    fn approval_statuses(self) -> Option<Vec<ApprovalStatus>> {
        use ApprovalStatus as A;
        Some(match self {
            InboxStatus::Open => vec![A::Pending, A::Escalated],
            InboxStatus::Pending => vec![A::Pending],
            InboxStatus::Escalated => vec![A::Escalated],
            InboxStatus::Approved | InboxStatus::Modified => vec![A::Approved],
            InboxStatus::Rejected => vec![A::Rejected],
            InboxStatus::Expired => vec![A::Expired],
            InboxStatus::All => return None,
        })
    }

    fn review_statuses(self) -> Option<Vec<ReviewStatus>> {
        use ReviewStatus as R;
        Some(match self {
            InboxStatus::Open => vec![R::Pending, R::Escalated],
            InboxStatus::Pending => vec![R::Pending],
            InboxStatus::Escalated => vec![R::Escalated],
            InboxStatus::Approved => vec![R::Approved],
            InboxStatus::Rejected => vec![R::Rejected],
            InboxStatus::Modified => vec![R::Modified],
            InboxStatus::Expired => vec![R::Expired],
            InboxStatus::All => return None,
        })
    }
}

/// A queue's filters; unset ones do not filter.
#[derive(Debug, Clone, Default)]
pub struct InboxFilter {
    pub status: InboxStatus,
    pub team: Option<TeamId>,
    /// Only approvals of this wallet (reviews are about no wallet).
    pub wallet: Option<WalletId>,
    pub urgency: Option<Urgency>,
}

/// A held payment as the queue shows it.
#[derive(Debug, Clone)]
pub struct ApprovalItem {
    pub approval: Approval,
    /// The payment (unset only if it could not be read).
    pub payment: Option<Payment>,
}

#[derive(Debug, Clone)]
pub enum InboxItem {
    Approval(Box<ApprovalItem>),
    Review(Box<Review>),
}

impl InboxItem {
    pub fn is_open(&self) -> bool {
        match self {
            InboxItem::Approval(a) => a.approval.is_open(),
            InboxItem::Review(r) => r.is_open(),
        }
    }

    pub fn urgency(&self) -> Option<Urgency> {
        match self {
            InboxItem::Approval(a) => a.payment.as_ref().and_then(|p| p.urgency),
            InboxItem::Review(r) => Some(r.urgency),
        }
    }

    pub fn expires_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            InboxItem::Approval(a) => a.approval.expires_at,
            InboxItem::Review(r) => r.expires_at,
        }
    }

    pub fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        match self {
            InboxItem::Approval(a) => a.approval.created_at,
            InboxItem::Review(r) => r.created_at,
        }
    }

    pub fn team(&self) -> Option<&TeamId> {
        match self {
            InboxItem::Approval(a) => a.approval.assigned_team.as_ref(),
            InboxItem::Review(r) => r.assigned_team.as_ref(),
        }
    }
}

fn urgency_rank(u: Option<Urgency>) -> u8 {
    match u {
        Some(Urgency::Critical) => 0,
        Some(Urgency::High) => 1,
        Some(Urgency::Medium) => 2,
        Some(Urgency::Low) => 3,
        None => 4,
    }
}

/// A queue: its items, open first (most urgent, then soonest due), then the rest newest first.
#[derive(Debug, Clone)]
pub struct Inbox {
    pub items: Vec<InboxItem>,
    /// Some status had more than `INBOX_LIMIT` items: not all are shown.
    pub truncated: bool,
    /// Changes whenever what the queue shows may have changed (live refresh compares it).
    pub stamp: String,
    /// The wallets of the approvals read, for the wallet filter.
    pub wallets: Vec<WalletId>,
    /// The organisation's teams, for names and the team filter.
    pub teams: Vec<Team>,
    /// Names of the wallets the items pay from and to.
    pub wallet_names: HashMap<WalletId, String>,
}

/// One approval with what the detail page shows besides.
#[derive(Debug, Clone)]
pub struct ApprovalDetail {
    pub approval: Approval,
    pub payment: Payment,
    /// The approval's and the payment's audit entries, oldest first.
    pub history: Vec<AuditEntry>,
    pub teams: Vec<Team>,
    pub members: Vec<Member>,
    pub wallet_names: HashMap<WalletId, String>,
    /// The payer's policies' `stepUpAbove`: approving or modifying above it needs a passkey.
    pub step_up_above: Option<rust_decimal::Decimal>,
    /// The first 100 comments, oldest first; `comments_truncated` when there are more.
    pub comments: Vec<crate::domain::comment::Comment>,
    pub comments_truncated: bool,
}

#[derive(Debug, Clone)]
pub struct ReviewDetail {
    pub review: Review,
    pub history: Vec<AuditEntry>,
    pub teams: Vec<Team>,
    pub members: Vec<Member>,
}

/// What the stamp is made of, before any filter that needs the payments.
struct Listed {
    approvals: Vec<Approval>,
    reviews: Vec<Review>,
    truncated: bool,
}

impl Listed {
    fn stamp(&self) -> String {
        let mut hash = Sha256::new();
        for a in &self.approvals {
            hash.update(format!("{}:{}:{}:{};", a.id, a.status.as_str(), a.votes.len(), a.expires_at.timestamp()));
        }
        for r in &self.reviews {
            hash.update(format!("{}:{};", r.id, r.status.as_str()));
        }
        hex::encode(&hash.finalize()[..12])
    }
}

impl UseCases {
    /// The queue for `filter`.
    pub async fn inbox(&self, caller: &Caller, filter: &InboxFilter) -> AppResult<Inbox> {
        let key = caller.key()?;
        let listed = self.inbox_listing(caller, filter).await?;
        let stamp = listed.stamp();
        let wallets: BTreeSet<WalletId> = listed.approvals.iter().map(|a| a.wallet_id.clone()).collect();
        let team_ok = |t: Option<&TeamId>| filter.team.as_ref().is_none_or(|f| t == Some(f));
        let approvals: Vec<Approval> = listed
            .approvals
            .into_iter()
            .filter(|a| filter.wallet.as_ref().is_none_or(|w| *w == a.wallet_id))
            .filter(|a| team_ok(a.assigned_team.as_ref()))
            .filter(|a| filter.status != InboxStatus::Modified || a.original_amount.is_some())
            .collect();
        let keys: Vec<_> = approvals.iter().map(|a| payment_key(&a.payment_id)).collect();
        let reader = self.reader();
        let payments = join_all(keys.iter().map(|k| reader.read::<Payment>(k))).await;
        let mut items: Vec<InboxItem> = Vec::with_capacity(approvals.len() + listed.reviews.len());
        for (approval, payment) in approvals.into_iter().zip(payments) {
            let payment = payment?.map(|p| p.value).filter(|p| p.org_id == key.org_id);
            items.push(InboxItem::Approval(Box::new(ApprovalItem { approval, payment })));
        }
        if filter.wallet.is_none() {
            let reviews = listed.reviews.into_iter().filter(|r| team_ok(r.assigned_team.as_ref()));
            items.extend(reviews.map(|r| InboxItem::Review(Box::new(r))));
        }
        items.retain(|i| filter.urgency.is_none_or(|u| i.urgency() == Some(u)));
        items.sort_by(|a, b| {
            b.is_open().cmp(&a.is_open()).then_with(|| {
                if a.is_open() {
                    (urgency_rank(a.urgency()), a.expires_at()).cmp(&(urgency_rank(b.urgency()), b.expires_at()))
                } else {
                    b.created_at().cmp(&a.created_at())
                }
            })
        });
        let teams = self.reader().org_teams(&key.org_id).await?;
        let mut named: BTreeSet<WalletId> = wallets.clone();
        for item in &items {
            if let InboxItem::Approval(a) = item {
                named.insert(a.approval.transaction_details.recipient.clone());
            }
        }
        let wallet_names = self.wallet_names(&key.org_id, named).await?;
        Ok(Inbox {
            items,
            truncated: listed.truncated,
            stamp,
            wallets: wallets.into_iter().collect(),
            teams,
            wallet_names,
        })
    }

    /// The queue's stamp alone (cheap: no payment reads), for live refresh.
    pub async fn inbox_stamp(&self, caller: &Caller, filter: &InboxFilter) -> AppResult<String> {
        Ok(self.inbox_listing(caller, filter).await?.stamp())
    }

    async fn inbox_listing(&self, caller: &Caller, filter: &InboxFilter) -> AppResult<Listed> {
        let key = caller.key()?;
        require(key, Permission::ApprovalsRead)?;
        let page = PageRequest { limit: INBOX_LIMIT, after: None };
        let mut truncated = false;
        let mut approvals = Vec::new();
        let statuses: Vec<Option<ApprovalStatus>> = match filter.status.approval_statuses() {
            Some(list) => list.into_iter().map(Some).collect(),
            None => vec![None],
        };
        for status in statuses {
            let listing = ApprovalFilter { status, ..ApprovalFilter::default() };
            let page = self.list_approvals(caller, &listing, &page).await?;
            truncated |= page.has_more;
            approvals.extend(page.data);
        }
        let mut reviews = Vec::new();
        if filter.wallet.is_none() {
            let partitions: Vec<(Index, String)> = match filter.status.review_statuses() {
                Some(list) => list
                    .into_iter()
                    .map(|s| (Index::ByStatus, by_status_partition(&key.org_id, "REVIEW", &s.as_str().to_uppercase())))
                    .collect(),
                None => vec![(Index::ByOrg, by_org_partition(&key.org_id, "REVIEW"))],
            };
            for (index, partition) in partitions {
                let items = self.store().query(Query::new(index, partition, INBOX_LIMIT + 1)).await?;
                truncated |= items.len() > INBOX_LIMIT;
                for item in items.into_iter().take(INBOX_LIMIT) {
                    reviews.push(decode::<Review>(item)?.value);
                }
            }
        }
        Ok(Listed { approvals, reviews, truncated })
    }

    /// One approval for its detail page: with its payment, history, and the names of teams and
    /// people.
    pub async fn approval_detail(&self, caller: &Caller, id: &ApprovalId) -> AppResult<ApprovalDetail> {
        let approval = self.get_approval(caller, id).await?;
        let key = caller.key()?;
        let org = &key.org_id;
        let payment = self.reader().read_owned::<Payment>(&payment_key(&approval.payment_id), org).await?.value;
        let mut history = self.history(org, approval.id.as_str()).await?;
        history.extend(self.history(org, payment.id.as_str()).await?);
        history.sort_by(|a, b| a.id.cmp(&b.id));
        let (teams, members) = (self.reader().org_teams(org).await?, self.org_people(org).await?);
        let wallet_names = self.wallet_names(org, [payment.from.clone(), payment.to.clone()].into()).await?;
        let kind = match approval.subject() {
            crate::domain::approval::ApprovalSubject::Payment(_) => crate::domain::policy::ActionKind::Payment,
            crate::domain::approval::ApprovalSubject::Refund { .. } => crate::domain::policy::ActionKind::Refund,
        };
        let step_up_above = match approval.pinned_step_up() {
            Some(pinned) => pinned,
            None => {
                let policies = self.reader().wallet_policies(&approval.wallet_id).await?;
                crate::service::money::step_up::step_up_threshold(&policies, kind)
            }
        };
        let comments = self.first_comments(&approval.id).await?;
        Ok(ApprovalDetail {
            approval,
            payment,
            history,
            teams,
            members,
            wallet_names,
            step_up_above,
            comments: comments.data,
            comments_truncated: comments.has_more,
        })
    }

    /// One review for its detail page.
    pub async fn review_detail(&self, caller: &Caller, id: &ReviewId) -> AppResult<ReviewDetail> {
        let key = caller.key()?;
        require(key, Permission::ApprovalsRead)?;
        let org = &key.org_id;
        let review = self.reader().read_owned::<Review>(&review_key(id), org).await?.value;
        let history = self.history(org, review.id.as_str()).await?;
        let (teams, members) = (self.reader().org_teams(org).await?, self.org_people(org).await?);
        Ok(ReviewDetail { review, history, teams, members })
    }

    /// A resource's audit entries, oldest first (entries written before the per-resource index
    /// existed are not found).
    pub(crate) async fn history(&self, org: &OrgId, resource_id: &str) -> AppResult<Vec<AuditEntry>> {
        let mut query = Query::new(Index::ByWallet, audit_resource_partition(org, resource_id), HISTORY_LIMIT);
        query.newest_first = false;
        self.store().query(query).await?.into_iter().map(|i| decode::<AuditEntry>(i).map(|s| s.value)).collect()
    }

    /// The names of `wallets` (those of the organisation), read at once.
    async fn wallet_names(&self, org: &OrgId, wallets: BTreeSet<WalletId>) -> AppResult<HashMap<WalletId, String>> {
        let keys: Vec<_> = wallets.iter().map(wallet_key).collect();
        let reader = self.reader();
        let read = join_all(keys.iter().map(|k| reader.read::<Wallet>(k))).await;
        let mut names = HashMap::new();
        for wallet in read {
            if let Some(w) = wallet?.map(|w| w.value).filter(|w| w.org_id == *org) {
                names.insert(w.id, w.name);
            }
        }
        Ok(names)
    }

    /// The organisation's members, for names.
    async fn org_people(&self, org: &OrgId) -> AppResult<Vec<Member>> {
        let mut query = Query::new(Index::Primary, format!("ORG#{org}#MEMBER"), PEOPLE_LIMIT);
        query.sk_prefix = Some("MEMBER#".into());
        query.newest_first = false;
        self.store().query(query).await?.into_iter().map(|i| decode::<Member>(i).map(|s| s.value)).collect()
    }
}
