//! The audit log: listed, sealed into signed checkpoints by the sweep (`seal`), exported with
//! its checkpoints for offline verification (`export`).

pub mod export;
pub mod seal;

use super::paging::{Page, PageRequest};
use super::{ensure_unbound, require, Caller, UseCases};
use crate::domain::audit::AuditEntry;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::layout::audit_partition;
use crate::ports::{Index, Query};

#[derive(Debug, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub resource_type: Option<String>,
}

impl UseCases {
    /// `GET /v1/audit-logs`, newest first, optionally filtered by action and resource type.
    pub async fn list_audit_logs(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> AppResult<Page<AuditEntry>> {
        let caller = caller.key()?;
        require(caller, Permission::AuditRead)?;
        // The audit log is the organisation's; a key bound to wallets does not read it.
        ensure_unbound(caller)?;
        let query = Query::new(Index::Primary, audit_partition(&caller.org_id), page.limit);
        self.page(query, page, |e: &AuditEntry| {
            filter.action.as_ref().is_none_or(|a| *a == e.action)
                && filter.resource_type.as_ref().is_none_or(|r| *r == e.resource_type)
        })
        .await
    }
}
