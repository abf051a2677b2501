//! Notifications: the built-in subscribers of the outbox that reach reviewers where they work
//! (a Slack channel, a member's inbox). Each is a record delivered like a webhook delivery:
//! claimed before it is sent, retried with the webhook backoff, listed in a delivery log.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::delivery::DeliveryStatus;
use super::encryption::Sealed;
use super::ids::{ApprovalId, MemberId, NotificationId, OrgId, ReviewId, TeamId};
use super::payment_review::ReviewRef;

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationChannel {
    Slack,
    Email,
}

impl NotificationChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationChannel::Slack => "slack",
            NotificationChannel::Email => "email",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "slack" => Some(NotificationChannel::Slack),
            "email" => Some(NotificationChannel::Email),
            _ => None,
        }
    }
}

/// What it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotificationKind {
    /// A decision is needed (created, or escalated to this team).
    Request,
    /// Still needed at 80 % of the window.
    Reminder,
    /// The Slack message of a request, updated with how it ended (`chat.update`).
    Outcome,
}

impl NotificationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Request => "request",
            NotificationKind::Reminder => "reminder",
            NotificationKind::Outcome => "outcome",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [NotificationKind::Request, NotificationKind::Reminder, NotificationKind::Outcome]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

/// One message to one recipient about one approval (a held payment or refund) or review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub id: NotificationId,
    pub org_id: OrgId,
    /// What it is about: an approval…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<ApprovalId>,
    /// …or a review (`POST /reviews`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<ReviewId>,
    /// The event it answers (`approval.created`, `approval.escalated`, `approval.approved`, …).
    pub event_id: String,
    pub event_type: String,
    pub channel: NotificationChannel,
    pub kind: NotificationKind,
    /// A Slack channel id, or an email address.
    pub recipient: String,
    /// The member an email goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<MemberId>,
    /// The team the approval was with when this was planned: a reminder goes only if it still is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<TeamId>,
    /// The Slack message: set once a request or reminder is posted; what an outcome updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_ts: Option<String>,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// What it is about.
    pub fn subject(&self) -> Option<ReviewRef> {
        match (&self.approval_id, &self.review_id) {
            (Some(a), _) => Some(ReviewRef::Payment(a.clone())),
            (None, Some(r)) => Some(ReviewRef::Review(r.clone())),
            (None, None) => None,
        }
    }

    /// The id of what it is about (its partition).
    pub fn subject_id(&self) -> &str {
        match (&self.approval_id, &self.review_id) {
            (Some(a), _) => a.as_str(),
            (None, Some(r)) => r.as_str(),
            (None, None) => "",
        }
    }
}

/// The two fields a notification names its subject with.
pub fn subject_ids(subject: &ReviewRef) -> (Option<ApprovalId>, Option<ReviewId>) {
    match subject {
        ReviewRef::Payment(a) => (Some(a.clone()), None),
        ReviewRef::Review(r) => (None, Some(r.clone())),
    }
}

/// When the reminder of a window from `start` to `expires_at` is due: at 80 % of it.
pub fn reminder_at(start: DateTime<Utc>, expires_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let window = expires_at - start;
    (window > Duration::zero()).then(|| start + window * 4 / 5)
}

/// An organisation's Slack app: its bot token and signing secret sealed with the deployment's
/// encryption key, never returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackIntegration {
    pub org_id: OrgId,
    pub bot_token: Sealed,
    pub signing_secret: Sealed,
    /// Where requests go when the assigned team has no `slackChannel` (or none is assigned).
    pub default_channel: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SlackIntegration {
    /// What each sealed field is bound to: its organisation and name.
    pub fn owner(org: &OrgId, field: &str) -> String {
        format!("{org}/slack/{field}")
    }
}

/// A Slack user's member in an organisation: one member per Slack user, claimed with a
/// conditional create so two members never map to the same person in Slack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlackUserLink {
    pub org_id: OrgId,
    pub slack_user_id: String,
    pub member_id: MemberId,
}

/// A Slack id as the Web API takes it (`U012AB3CD`, `C0123`): 2–64 letters, digits, `_` or `-`.
/// Opaque to us; checked only so nothing else (markup, spaces) rides along.
pub fn is_slack_id(text: &str) -> bool {
    (2..=64).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reminders_fall_at_four_fifths_of_the_window() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(reminder_at(start, start + Duration::hours(10)), Some(start + Duration::hours(8)));
        assert_eq!(reminder_at(start, start + Duration::seconds(20)), Some(start + Duration::seconds(16)));
        assert_eq!(reminder_at(start, start), None);
        assert_eq!(reminder_at(start, start - Duration::seconds(1)), None);
    }

    #[test]
    fn slack_ids_are_checked() {
        assert!(is_slack_id("U012AB3CD"));
        assert!(is_slack_id("C_TEAM"));
        assert!(!is_slack_id("U"));
        assert!(!is_slack_id("U01 <x>"));
        assert!(!is_slack_id("<!channel>"));
    }
}
