//! `GET /v1/notifications/deliveries`: the organisation's notifications, newest first, with
//! their attempts and errors (the delivery log of the built-in subscribers).

use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::{ApprovalId, ReviewId};
use crate::domain::notification::{Notification, NotificationChannel, NotificationKind};
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::layout::{by_status_partition, notifications_partition};
use crate::ports::{Index, Query};
use crate::service::{Caller, Page, PageRequest, UseCases};

/// Filters of the log; each unset one lets everything through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotificationFilter {
    pub channel: Option<NotificationChannel>,
    pub kind: Option<NotificationKind>,
    pub status: Option<DeliveryStatus>,
    pub approval_id: Option<ApprovalId>,
    pub review_id: Option<ReviewId>,
}

impl UseCases {
    /// Admin keys bound to no wallet: the log names members' addresses and channels.
    pub async fn list_notifications(
        &self,
        caller: &Caller,
        filter: &NotificationFilter,
        page: &PageRequest,
    ) -> AppResult<Page<Notification>> {
        let caller = caller.organiser(Permission::Admin)?;
        let org = &caller.org_id;
        let query = match filter.status {
            Some(status) => {
                Query::new(Index::ByStatus, by_status_partition(org, "NOTIFICATION", status.as_str()), page.limit)
            }
            None => Query::new(Index::ByOrg, notifications_partition(org), page.limit),
        };
        let shown = |n: &Notification| {
            n.org_id == *org
                && filter.channel.is_none_or(|c| c == n.channel)
                && filter.kind.is_none_or(|k| k == n.kind)
                && filter.approval_id.as_ref().is_none_or(|a| n.approval_id.as_ref() == Some(a))
                && filter.review_id.as_ref().is_none_or(|r| n.review_id.as_ref() == Some(r))
        };
        self.page(query, page, shown).await
    }
}
