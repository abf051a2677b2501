//! Updating a Slack message with how its approval (or review) ended, at once: when a click
//! decided it (the clicker sees the message change), and when a request is posted after it was
//! decided (the post raced the outcome). The update is the outcome's own record for that message
//! (`NotificationId::for_outcome`), claimed here or by the outbox's planning, whichever is first,
//! so the message is updated once and, should Slack fail now, retried like any notification.

use std::time::Duration;

use super::facts::Held;
use super::integration::SlackCredentials;
use super::plan::NOTIFY_CLAIM_LEASE;
use super::send::Failure;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::NotificationId;
use crate::domain::notification::{subject_ids, Notification, NotificationChannel, NotificationKind};
use crate::domain::notify_facts::NoticeKind;
use crate::domain::slack::outcome_message;
use crate::layout;
use crate::ports::StoreError;
use crate::service::Countersign;

impl Countersign {
    /// Updates the message `channel`/`ts` about `held` (decided) within `within`, unless the
    /// outbox claimed that update first.
    pub(crate) async fn update_now(
        &self,
        slack: &SlackCredentials,
        held: &Held,
        channel: &str,
        ts: &str,
        within: Duration,
    ) {
        let Some(claimed) = self.claim_outcome_update(held, channel, ts).await else { return };
        let outcome = match tokio::time::timeout(within, self.update_message(slack, held, channel, ts)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(Failure::Transient { reason: "Slack did not answer in time".into(), after: None }),
        };
        if let Err(e) = self.record_attempt(claimed, 1, outcome).await {
            tracing::warn!(error = %e, "the message update's outcome was not recorded; the sweep retries it");
        }
    }

    async fn update_message(
        &self,
        slack: &SlackCredentials,
        held: &Held,
        channel: &str,
        ts: &str,
    ) -> Result<(), Failure> {
        let facts = self.notify_facts(held, NoticeKind::Created).await?;
        let outcome = self.outcome_facts(held).await?;
        let body = outcome_message(&facts, &outcome).update_body(channel, ts);
        self.wiring.slack.call(&slack.bot_token, "chat.update", &body).await?;
        Ok(())
    }

    /// Claims the outcome's update of a message (its record, created with its first attempt
    /// claimed); `None` when it exists already (the outbox, or another click, has it).
    async fn claim_outcome_update(&self, held: &Held, channel: &str, ts: &str) -> Option<Notification> {
        let now = self.now();
        let subject = held.subject();
        let (approval_id, review_id) = subject_ids(&subject);
        let kind = if approval_id.is_some() { "approval" } else { "review" };
        let record = Notification {
            id: NotificationId::for_outcome(&subject, &format!("{channel}:{ts}")),
            org_id: held.org_id().clone(),
            approval_id,
            review_id,
            event_id: String::new(),
            event_type: format!("{kind}.{}", held.status()),
            channel: NotificationChannel::Slack,
            kind: NotificationKind::Outcome,
            recipient: channel.to_string(),
            member_id: None,
            team_id: held.assigned_team().cloned(),
            slack_ts: Some(ts.to_string()),
            status: DeliveryStatus::Pending,
            attempts: 1,
            last_error: None,
            next_attempt_at: now + NOTIFY_CLAIM_LEASE,
            created_at: now,
            updated_at: now,
            delivered_at: None,
        };
        let write = match layout::create(&record) {
            Ok(write) => write,
            Err(e) => {
                tracing::error!(error = %e, "the message update could not be encoded");
                return None;
            }
        };
        match self.store().transact(vec![write]).await {
            Ok(()) => Some(record),
            Err(StoreError::ConditionFailed) => None,
            Err(e) => {
                // The outbox's planning makes it (and retries) once this store answers again.
                tracing::warn!(error = %e, "the message update could not be claimed now");
                None
            }
        }
    }
}
