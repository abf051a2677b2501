//! Which notifications an event makes. A request (created, or escalated to a team) goes to the
//! assigned team's Slack channel (else the organisation's default channel) and to each of the
//! team's members by email (else to every member holding a key that may approve), each with a
//! reminder at 80 % of the window; an outcome updates each Slack message posted about the
//! approval. Notification ids derive from (event, recipient), so planning twice (an at-least-once
//! queue, a re-published event) creates each once.

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::integration::SlackCredentials;
use crate::domain::approval::Approval;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApprovalId, MemberId, NotificationId, OrgId};
use crate::domain::notification::{reminder_at, Notification, NotificationChannel, NotificationKind};
use crate::domain::org::ApiKey;
use crate::domain::people::{Member, Person, Team};
use crate::domain::permission::{self, Permission};
use crate::error::{AppError, AppResult};
use crate::layout::{self, approval_key, by_org_partition, notification_key, team_key, Stored};
use crate::ports::{Index, Query, StoreError};
use crate::service::Countersign;

/// Keys read to find who may approve when no team is assigned.
const MAX_KEYS_READ: usize = 1_000;
/// Notifications of one approval read to find its Slack messages.
const MAX_NOTIFICATIONS_PER_APPROVAL: usize = 200;

/// Whether events of `kind` may make notifications (the others cost nothing).
pub(crate) fn may_notify(kind: &str) -> bool {
    is_request(kind) || is_outcome(kind)
}

fn is_request(kind: &str) -> bool {
    kind == kinds::APPROVAL_CREATED || kind == kinds::APPROVAL_ESCALATED
}

fn is_outcome(kind: &str) -> bool {
    [kinds::APPROVAL_APPROVED, kinds::APPROVAL_REJECTED, kinds::APPROVAL_EXPIRED, kinds::APPROVAL_MODIFIED]
        .contains(&kind)
}

/// A notification to make: where, what, and when.
struct Planned {
    channel: NotificationChannel,
    kind: NotificationKind,
    recipient: String,
    member_id: Option<MemberId>,
    slack_ts: Option<String>,
    due: DateTime<Utc>,
}

impl Countersign {
    /// Plans and commits the notifications of `event`, then sends those due now. An error means
    /// "handle the event again" (planning is idempotent).
    pub(crate) async fn notify(&self, event: &Event) -> AppResult<()> {
        let due = self.commit_notifications(event).await?;
        self.send_notifications(due).await
    }

    /// Commits the notifications of `event`; returns those to send now.
    pub(crate) async fn commit_notifications(&self, event: &Event) -> AppResult<Vec<Stored<Notification>>> {
        if !may_notify(&event.kind) {
            return Ok(Vec::new());
        }
        // One read decides for most organisations: with no Slack app and no SMTP, nothing to do.
        let slack = self.slack_credentials(&event.org_id).await?;
        let wants_email = self.wiring.mailer.is_some() && is_request(&event.kind);
        if slack.is_none() && !wants_email {
            return Ok(Vec::new());
        }
        let Some(id) = event.data.get("approvalId").and_then(|v| v.as_str()).and_then(ApprovalId::parse) else {
            return Ok(Vec::new());
        };
        let Some(approval) = self.reader().read::<Approval>(&approval_key(&id)).await?.map(|s| s.value) else {
            return Ok(Vec::new());
        };
        if approval.org_id != event.org_id {
            return Ok(Vec::new());
        }
        let planned = if is_request(&event.kind) {
            self.plan_requests(event, &approval, slack.as_ref()).await?
        } else if slack.is_some() {
            self.plan_outcomes(&approval).await?
        } else {
            Vec::new()
        };
        let now = self.now();
        let mut due = Vec::new();
        for plan in planned {
            let id = match (&plan.kind, &plan.slack_ts) {
                (NotificationKind::Outcome, Some(ts)) => {
                    NotificationId::for_outcome(&approval.id, &format!("{}:{ts}", plan.recipient))
                }
                _ => {
                    let key = format!("{}:{}:{}", plan.channel.as_str(), plan.kind.as_str(), plan.recipient);
                    NotificationId::for_event(&event.id, &key)
                }
            };
            let notification = Notification {
                id,
                org_id: approval.org_id.clone(),
                approval_id: approval.id.clone(),
                event_id: event.id.to_string(),
                event_type: event.kind.clone(),
                channel: plan.channel,
                kind: plan.kind,
                recipient: plan.recipient,
                member_id: plan.member_id,
                team_id: approval.assigned_team.clone(),
                slack_ts: plan.slack_ts,
                status: DeliveryStatus::Pending,
                attempts: 0,
                last_error: None,
                next_attempt_at: plan.due,
                created_at: now,
                updated_at: now,
                delivered_at: None,
            };
            let stored = match self.store().transact(vec![layout::create(&notification)?]).await {
                Ok(()) => Stored { value: notification, version: 1 },
                // Planned before (the event is handled again): send it if it is still waiting.
                Err(StoreError::ConditionFailed) => {
                    let key = notification_key(&notification.approval_id, &notification.id);
                    match self.reader().read::<Notification>(&key).await? {
                        Some(existing) => existing,
                        None => continue,
                    }
                }
                Err(StoreError::Conflict) => return Err(AppError::Contention),
                Err(e) => return Err(e.into()),
            };
            if stored.value.status == DeliveryStatus::Pending && stored.value.next_attempt_at <= now {
                due.push(stored);
            }
        }
        Ok(due)
    }

    /// A request and its reminder to the team's channel and to each of its members.
    async fn plan_requests(
        &self,
        event: &Event,
        approval: &Approval,
        slack: Option<&SlackCredentials>,
    ) -> AppResult<Vec<Planned>> {
        if !approval.is_open() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let team = match &approval.assigned_team {
            Some(id) => self.reader().read::<Team>(&team_key(&approval.org_id, id)).await?.map(|s| s.value),
            None => None,
        };
        let reminder = reminder_at(event.created_at, approval.expires_at).filter(|at| *at > now);
        let mut recipients: Vec<(NotificationChannel, String, Option<MemberId>)> = Vec::new();
        if let Some(slack) = slack {
            if let Some(channel) = team.as_ref().and_then(|t| t.slack_channel.clone()).or(slack.default_channel.clone())
            {
                recipients.push((NotificationChannel::Slack, channel, None));
            }
        }
        if self.wiring.mailer.is_some() {
            for member in self.email_recipients(&approval.org_id, team.as_ref()).await? {
                recipients.push((NotificationChannel::Email, member.email, Some(member.id)));
            }
        }
        let mut planned = Vec::new();
        for (channel, recipient, member_id) in recipients {
            let plan = |kind, due| Planned {
                channel,
                kind,
                recipient: recipient.clone(),
                member_id: member_id.clone(),
                slack_ts: None,
                due,
            };
            planned.push(plan(NotificationKind::Request, now));
            if let Some(at) = reminder {
                planned.push(plan(NotificationKind::Reminder, at));
            }
        }
        Ok(planned)
    }

    /// The team's members; with no team, every member holding an active key that may approve.
    async fn email_recipients(&self, org: &OrgId, team: Option<&Team>) -> AppResult<Vec<Member>> {
        let members = self.reader().org_members(org).await?;
        let wanted: Vec<MemberId> = match team {
            Some(team) => team.members.clone(),
            None => {
                let query = Query::new(Index::ByOrg, by_org_partition(org, "APIKEY"), MAX_KEYS_READ);
                let keys: Vec<ApiKey> = self.reader().all_of(query).await?;
                keys.into_iter()
                    .filter(|k| {
                        k.revoked_at.is_none() && permission::allows(&k.permissions, Permission::ApprovalsWrite)
                    })
                    .filter_map(|k| match k.person {
                        Some(Person::Member(m)) => Some(m),
                        _ => None,
                    })
                    .collect()
            }
        };
        Ok(members.into_iter().filter(|m| wanted.contains(&m.id)).collect())
    }

    /// An update of each Slack message posted about the approval.
    async fn plan_outcomes(&self, approval: &Approval) -> AppResult<Vec<Planned>> {
        let partition = notification_key(&approval.id, &NotificationId::generate()).pk;
        let query = layout::partition_query(partition, "NOTIFICATION#", MAX_NOTIFICATIONS_PER_APPROVAL);
        let sent: Vec<Notification> = self.reader().all_of(query).await?;
        let now = self.now();
        Ok(sent
            .into_iter()
            .filter(|n| n.channel == NotificationChannel::Slack && n.kind != NotificationKind::Outcome)
            .filter_map(|n| {
                let ts = n.slack_ts?;
                Some(Planned {
                    channel: NotificationChannel::Slack,
                    kind: NotificationKind::Outcome,
                    recipient: n.recipient,
                    member_id: None,
                    slack_ts: Some(ts),
                    due: now,
                })
            })
            .collect())
    }
}

/// The claim on an attempt: how long a worker may take before the sweep hands it to another.
pub(crate) const NOTIFY_CLAIM_LEASE: ChronoDuration = ChronoDuration::seconds(60);
