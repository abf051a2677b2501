//! Which notifications an event makes. A request (an approval or review created, or escalated to
//! a team) goes to the assigned team's Slack channel (else the organisation's default channel)
//! and to each of the team's members by email (else to every member holding a key that may
//! approve), each with a reminder at 80 % of the window; an outcome updates each Slack message
//! posted about it. Notification ids derive from (event, recipient), and an outcome's from the
//! message it updates, so planning twice (an at-least-once queue, a re-published event, two
//! events of one outcome, the click that already updated its message) creates each once.

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, Utc};

use super::facts::Held;
use super::integration::SlackCredentials;
use super::send::retry_message;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApprovalId, MemberId, NotificationId, ReviewId};
use crate::domain::metric::Metric;
use crate::domain::notification::{reminder_at, subject_ids, Notification, NotificationChannel, NotificationKind};
use crate::domain::notify_facts::{NoticeKind, NotifyFacts};
use crate::domain::payment_review::ReviewRef;
use crate::domain::people::{Member, Person, Team};
use crate::error::{AppError, AppResult};
use crate::layout::{self, notification_key, team_key, Stored};
use crate::ports::StoreError;
use crate::service::Countersign;

/// Notifications of one approval read to find its Slack messages.
const MAX_NOTIFICATIONS_PER_SUBJECT: usize = 5_000;

/// Notifications created in one transaction (DynamoDB takes up to 100 items in one).
const CREATES_PER_TRANSACTION: usize = 25;

/// A notification to send now: claimed when it was created (by this caller, with what its
/// planning read, shared by the event's messages), or to claim first.
pub(crate) enum Due {
    Claimed(Stored<Notification>, Option<Arc<Fresh>>),
    Unclaimed(Stored<Notification>),
}

impl Due {
    pub(crate) fn notification(&self) -> &Notification {
        match self {
            Due::Claimed(s, _) | Due::Unclaimed(s) => &s.value,
        }
    }
}

/// What an event's planning read, for the messages it sends at once: each would read it again.
pub(crate) struct Fresh {
    pub held: Held,
    pub slack: Option<SlackCredentials>,
    pub facts: NotifyFacts,
}

/// The claim on an attempt: how long a worker may take before the sweep hands it to another.
pub(crate) const NOTIFY_CLAIM_LEASE: ChronoDuration = ChronoDuration::seconds(60);

/// Whether events of `kind` may make notifications (the others cost nothing).
pub(crate) fn may_notify(kind: &str) -> bool {
    is_request(kind) || is_outcome(kind)
}

fn is_request(kind: &str) -> bool {
    [kinds::APPROVAL_CREATED, kinds::APPROVAL_ESCALATED, kinds::REVIEW_CREATED, kinds::REVIEW_ESCALATED].contains(&kind)
}

fn is_outcome(kind: &str) -> bool {
    [
        kinds::APPROVAL_APPROVED,
        kinds::APPROVAL_REJECTED,
        kinds::APPROVAL_EXPIRED,
        kinds::APPROVAL_MODIFIED,
        kinds::REVIEW_DECIDED,
        kinds::REVIEW_EXPIRED,
    ]
    .contains(&kind)
}

/// What the event is about.
fn subject_of(event: &Event) -> Option<ReviewRef> {
    let text = |name| event.data.get(name).and_then(|v| v.as_str());
    if event.kind.starts_with("review.") {
        text("reviewId").and_then(ReviewId::parse).map(ReviewRef::Review)
    } else {
        text("approvalId").and_then(ApprovalId::parse).map(ReviewRef::Payment)
    }
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
    /// Plans and commits the notifications of `event`, then queues one message for each due
    /// now (on Lambda each is sent by its own invocation, so a slow mail server holds up neither
    /// this event's other messages nor the webhook deliveries of its batch). An error means
    /// "handle the event again" (planning is idempotent).
    pub(crate) async fn notify(&self, event: &Event) -> AppResult<()> {
        for due in self.commit_notifications(event, false).await? {
            self.wiring.queue.send(&retry_message(due.notification()), std::time::Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Commits the notifications of `event`; returns those to send now. With `claim_due` (the
    /// caller sends them itself, right away) those are created with their first attempt claimed.
    pub(crate) async fn commit_notifications(&self, event: &Event, claim_due: bool) -> AppResult<Vec<Due>> {
        if !may_notify(&event.kind) {
            return Ok(Vec::new());
        }
        // One read decides for most organisations: with no Slack app and no SMTP, nothing to do.
        let slack = match self.slack_credentials(&event.org_id).await {
            Ok(slack) => slack,
            // Unreadable secrets (a rotated encryption key) stop Slack, not email or this event.
            Err(e @ (AppError::Corrupt(_) | AppError::EncryptionKeyMissing)) => {
                tracing::error!(org = %event.org_id, error = %e, "Slack secrets unreadable: nothing goes to Slack");
                self.record(Metric::NotificationsFailed, 1.0);
                None
            }
            Err(e) => return Err(e),
        };
        let wants_email = self.wiring.mailer.is_some() && is_request(&event.kind);
        if slack.is_none() && !wants_email {
            return Ok(Vec::new());
        }
        let Some(subject) = subject_of(event) else { return Ok(Vec::new()) };
        let Some(held) = self.load_held(&subject).await? else { return Ok(Vec::new()) };
        if *held.org_id() != event.org_id {
            return Ok(Vec::new());
        }
        let planned = if is_request(&event.kind) {
            self.plan_requests(event, &held, slack.as_ref()).await?
        } else if slack.is_some() {
            self.plan_outcomes(&subject).await?
        } else {
            Vec::new()
        };
        let now = self.now();
        let (approval_id, review_id) = subject_ids(&subject);
        let mut records = Vec::new();
        for plan in planned {
            let id = match (&plan.kind, &plan.slack_ts) {
                (NotificationKind::Outcome, Some(ts)) => {
                    NotificationId::for_outcome(&subject, &format!("{}:{ts}", plan.recipient))
                }
                _ => {
                    let key = format!("{}:{}:{}", plan.channel.as_str(), plan.kind.as_str(), plan.recipient);
                    NotificationId::for_event(&event.id, &key)
                }
            };
            // Sent right here: created with its first attempt claimed (one write fewer).
            let claimed = claim_due && plan.due <= now;
            records.push(Notification {
                id,
                org_id: event.org_id.clone(),
                approval_id: approval_id.clone(),
                review_id: review_id.clone(),
                event_id: event.id.to_string(),
                event_type: event.kind.clone(),
                channel: plan.channel,
                kind: plan.kind,
                recipient: plan.recipient,
                member_id: plan.member_id,
                team_id: held.assigned_team().cloned(),
                slack_ts: plan.slack_ts,
                status: DeliveryStatus::Pending,
                attempts: u32::from(claimed),
                last_error: None,
                next_attempt_at: if claimed { now + NOTIFY_CLAIM_LEASE } else { plan.due },
                created_at: now,
                updated_at: now,
                delivered_at: None,
            });
        }
        let fresh = match records.iter().any(|n| n.attempts == 1) && is_request(&event.kind) {
            true => {
                let notice =
                    if event.kind.ends_with(".escalated") { NoticeKind::Escalated } else { NoticeKind::Created };
                let facts = self.notify_facts(&held, notice).await?;
                Some(Arc::new(Fresh { held: held.clone(), slack: slack.clone(), facts }))
            }
            false => None,
        };
        let mut due = Vec::new();
        for batch in records.chunks(CREATES_PER_TRANSACTION) {
            let writes = batch.iter().map(layout::create).collect::<AppResult<Vec<_>>>()?;
            match self.store().transact(writes).await {
                Ok(()) => {
                    for n in batch {
                        let stored = Stored { value: n.clone(), version: 1 };
                        if n.attempts == 1 {
                            due.push(Due::Claimed(stored, fresh.clone()));
                        } else if n.next_attempt_at <= now {
                            due.push(Due::Unclaimed(stored));
                        }
                    }
                }
                // Some were planned before (the event is handled again): one by one.
                Err(StoreError::ConditionFailed) => {
                    for n in batch {
                        if let Some(d) = self.create_one(n, now).await? {
                            due.push(d);
                        }
                    }
                }
                Err(StoreError::Conflict) => return Err(AppError::Contention),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(due)
    }

    /// `n` alone (planned before, perhaps): created, or read as it is; to send if still due.
    async fn create_one(&self, n: &Notification, now: DateTime<Utc>) -> AppResult<Option<Due>> {
        match self.store().transact(vec![layout::create(n)?]).await {
            Ok(()) if n.attempts == 1 => Ok(Some(Due::Claimed(Stored { value: n.clone(), version: 1 }, None))),
            Ok(()) => Ok((n.next_attempt_at <= now).then(|| Due::Unclaimed(Stored { value: n.clone(), version: 1 }))),
            Err(StoreError::ConditionFailed) => {
                let existing = self.reader().read::<Notification>(&notification_key(n.subject_id(), &n.id)).await?;
                // Claimed by whoever made it, or waiting: a claim decides who sends it.
                Ok(existing
                    .filter(|e| e.value.status == DeliveryStatus::Pending && e.value.next_attempt_at <= now)
                    .map(Due::Unclaimed))
            }
            Err(StoreError::Conflict) => Err(AppError::Contention),
            Err(e) => Err(e.into()),
        }
    }

    /// A request and its reminder to the team's channel and to each of its members.
    async fn plan_requests(
        &self,
        event: &Event,
        held: &Held,
        slack: Option<&SlackCredentials>,
    ) -> AppResult<Vec<Planned>> {
        if !held.is_open() {
            return Ok(Vec::new());
        }
        let now = self.now();
        let team = match held.assigned_team() {
            Some(id) => self.reader().read::<Team>(&team_key(held.org_id(), id)).await?.map(|s| s.value),
            None => None,
        };
        let reminder = reminder_at(event.created_at, held.expires_at()).filter(|at| *at > now);
        let mut recipients: Vec<(NotificationChannel, String, Option<MemberId>)> = Vec::new();
        if let Some(slack) = slack {
            let channel = team.as_ref().and_then(|t| t.slack_channel.clone()).or(slack.default_channel.clone());
            if let Some(channel) = channel {
                recipients.push((NotificationChannel::Slack, channel, None));
            }
        }
        if self.wiring.mailer.is_some() {
            for member in self.email_recipients(held, team.as_ref()).await? {
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

    /// The team's members; with no team, every member holding an active key that may decide
    /// `held` (one allowed its wallet: a key bound to other wallets hears nothing of this one).
    async fn email_recipients(&self, held: &Held, team: Option<&Team>) -> AppResult<Vec<Member>> {
        let org = held.org_id();
        let members = self.reader().org_members(org).await?;
        let wanted: Vec<MemberId> = match team {
            Some(team) => team.members.clone(),
            None => self
                .deciding_keys(held)
                .await?
                .into_iter()
                .filter_map(|k| match k.person {
                    Some(Person::Member(m)) => Some(m),
                    _ => None,
                })
                .collect(),
        };
        Ok(members.into_iter().filter(|m| wanted.contains(&m.id)).collect())
    }

    /// An update of each Slack message posted about `subject`.
    async fn plan_outcomes(&self, subject: &ReviewRef) -> AppResult<Vec<Planned>> {
        let subject_id = match subject {
            ReviewRef::Payment(a) => a.to_string(),
            ReviewRef::Review(r) => r.to_string(),
        };
        let partition = notification_key(&subject_id, &NotificationId::generate()).pk;
        let query = layout::partition_query(partition, "NOTIFICATION#", MAX_NOTIFICATIONS_PER_SUBJECT);
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
