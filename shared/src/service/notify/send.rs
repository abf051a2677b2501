//! Sending one notification: claim the attempt (a conditional write, so of several workers
//! holding the same message exactly one sends), send it as the approval now stands, record the
//! outcome, and schedule the next attempt with the webhook backoff (at least Slack's
//! `Retry-After`). A message whose moment has passed (the approval was decided, or moved to
//! another team) is discarded, not sent.

use std::time::Duration;

use chrono::Duration as ChronoDuration;
use futures::stream::{self, StreamExt};

use super::plan::{Due, Fresh, NOTIFY_CLAIM_LEASE};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::email::request_email;
use crate::domain::ids::NotificationId;
use crate::domain::metric::Metric;
use crate::domain::notification::{Notification, NotificationChannel, NotificationKind};
use crate::domain::notify_facts::NoticeKind;
use crate::domain::people::Team;
use crate::domain::slack::{outcome_message, request_message};
use crate::error::AppResult;
use crate::layout::{self, notification_key, team_key, Stored};
use crate::ports::notify::{MailError, SlackError};
use crate::ports::{QueueMessage, StoreError};
use crate::service::delivery::fanout::short;
use crate::service::Countersign;

/// Notifications sent at once by one worker.
const SEND_CONCURRENCY: usize = 8;

/// Why an attempt did not deliver.
pub(crate) enum Failure {
    /// Its moment has passed (or its channel is gone): discarded, not retried.
    Moot(String),
    /// Will not work however often it is tried (a refused address, an unknown channel).
    Permanent(String),
    /// Worth another attempt, not before `after` (Slack's `Retry-After`) when given.
    Transient { reason: String, after: Option<Duration> },
}

impl From<SlackError> for Failure {
    fn from(e: SlackError) -> Self {
        match e {
            SlackError::RateLimited { retry_after } => {
                Failure::Transient { reason: "Slack rate limit".into(), after: Some(retry_after) }
            }
            // The adapter sorts Slack's own trouble into the two above: what is left (an unknown
            // channel, a revoked token) fails however often it is tried.
            SlackError::Api(code) => Failure::Permanent(format!("Slack answered {code}")),
            SlackError::Unavailable(reason) => Failure::Transient { reason, after: None },
        }
    }
}

impl From<MailError> for Failure {
    fn from(e: MailError) -> Self {
        match e {
            MailError::Rejected(reason) => Failure::Permanent(reason),
            MailError::Unavailable(reason) => Failure::Transient { reason, after: None },
        }
    }
}

impl From<crate::error::AppError> for Failure {
    fn from(e: crate::error::AppError) -> Self {
        Failure::Transient { reason: e.to_string(), after: None }
    }
}

pub(crate) fn retry_message(n: &Notification) -> QueueMessage {
    QueueMessage::Notification {
        subject: n.subject_id().to_string(),
        notification_id: n.id.clone(),
        attempt: n.attempts,
    }
}

impl Countersign {
    /// Sends notifications that are due, a few at once.
    pub(crate) async fn send_notifications(&self, due: Vec<Due>) -> AppResult<()> {
        let results: Vec<AppResult<()>> = stream::iter(due)
            .map(|d| async move {
                match d {
                    Due::Claimed(stored, fresh) => {
                        self.send_claimed_notification(stored.value, stored.version, fresh.as_deref()).await
                    }
                    Due::Unclaimed(stored) => self.attempt_notification(stored).await,
                }
            })
            .buffer_unordered(SEND_CONCURRENCY)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Handles a queue message for a notification: sends it if its attempt is due and still
    /// this one; waits again if it is not due yet.
    pub(crate) async fn notification_due(&self, subject: &str, id: &NotificationId, attempt: u32) -> AppResult<()> {
        let Some(stored) = self.reader().read::<Notification>(&notification_key(subject, id)).await? else {
            return Ok(());
        };
        if stored.value.status != DeliveryStatus::Pending || stored.value.attempts != attempt {
            return Ok(()); // done, or a duplicate of a message another attempt answered
        }
        let wait = (stored.value.next_attempt_at - self.now()).to_std().unwrap_or_default();
        if wait > Duration::from_secs(1) {
            let delay = wait.min(self.wiring.queue.max_delay());
            self.wiring.queue.send(&retry_message(&stored.value), delay).await?;
            return Ok(());
        }
        self.attempt_notification(stored).await
    }

    /// One attempt, claimed first.
    async fn attempt_notification(&self, stored: Stored<Notification>) -> AppResult<()> {
        let mut n = stored.value;
        let now = self.now();
        n.attempts += 1;
        n.updated_at = now;
        n.next_attempt_at = now + NOTIFY_CLAIM_LEASE;
        match self.store().transact(vec![layout::update(&n, stored.version)?]).await {
            Ok(()) => {}
            Err(StoreError::ConditionFailed | StoreError::Conflict) => return Ok(()), // claimed elsewhere
            Err(e) => return Err(e.into()),
        }
        self.send_claimed_notification(n, stored.version + 1, None).await
    }

    /// Sends an attempt this worker claimed (stored at `version`) and records how it went.
    async fn send_claimed_notification(
        &self,
        mut n: Notification,
        version: u64,
        fresh: Option<&Fresh>,
    ) -> AppResult<()> {
        let outcome = self.send_notification(&mut n, fresh).await;
        self.record_attempt(n, version, outcome).await
    }

    /// Records how a claimed attempt (stored at `version`) went, and schedules the next one.
    pub(crate) async fn record_attempt(
        &self,
        mut n: Notification,
        version: u64,
        outcome: Result<(), Failure>,
    ) -> AppResult<()> {
        n.updated_at = self.now();
        match outcome {
            Ok(()) => {
                n.status = DeliveryStatus::Delivered;
                n.delivered_at = Some(n.updated_at);
                n.last_error = None;
            }
            Err(Failure::Moot(reason)) => {
                n.status = DeliveryStatus::Discarded;
                n.last_error = Some(short(&reason));
            }
            Err(Failure::Permanent(reason)) => {
                n.status = DeliveryStatus::Failed;
                n.last_error = Some(short(&reason));
                self.record(Metric::NotificationsFailed, 1.0);
            }
            Err(Failure::Transient { reason, after }) => {
                n.last_error = Some(short(&reason));
                match self.settings.retry.next_delay(n.attempts) {
                    Some(backoff) => {
                        let delay = after.map_or(backoff, |after| after.max(backoff));
                        n.next_attempt_at = n.updated_at + ChronoDuration::from_std(delay).unwrap_or_default();
                        // Enqueue before saving: a lost save leaves a harmless extra message, a
                        // lost enqueue is found by the sweep once the attempt is overdue.
                        let delay = delay.min(self.wiring.queue.max_delay());
                        self.wiring.queue.send(&retry_message(&n), delay).await?;
                    }
                    None => {
                        n.status = DeliveryStatus::Failed;
                        self.record(Metric::NotificationsFailed, 1.0);
                    }
                }
            }
        }
        // The claim is this worker's: a collision with another write (Conflict) is tried again,
        // or the attempt would be made twice once the lease ends; a failed condition means the
        // sweep's lease ran out and another worker has it now.
        for _ in 0..3 {
            match self.store().transact(vec![layout::update(&n, version)?]).await {
                Ok(()) | Err(StoreError::ConditionFailed) => return Ok(()),
                Err(StoreError::Conflict) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(crate::error::AppError::Contention)
    }

    /// Sends `n` as its approval (or review) now stands (`fresh`: as its planning just read it);
    /// records the Slack message it posted.
    async fn send_notification(&self, n: &mut Notification, fresh: Option<&Fresh>) -> Result<(), Failure> {
        let Some(subject) = n.subject() else { return Err(Failure::Moot("it names nothing".into())) };
        let held = match fresh {
            Some(f) => f.held.clone(),
            None => match self.load_held(&subject).await? {
                Some(held) => held,
                None => return Err(Failure::Moot("what it is about is gone".into())),
            },
        };
        if n.kind != NotificationKind::Outcome && fresh.is_none() {
            if !held.is_open() {
                return Err(Failure::Moot(format!("it was {} first", held.status())));
            }
            if held.assigned_team() != n.team_id.as_ref() {
                return Err(Failure::Moot("it moved to another team first".into()));
            }
            if let Some(member) = &n.member_id {
                if held.voted_by(member) {
                    return Err(Failure::Moot("the member voted already".into()));
                }
                if let Some(team) = held.assigned_team() {
                    let team = self.reader().read::<Team>(&team_key(&n.org_id, team)).await?;
                    if team.is_none_or(|t| !t.value.members.contains(member)) {
                        return Err(Failure::Moot("the member left the team".into()));
                    }
                }
            }
        }
        let notice = match n.kind {
            NotificationKind::Reminder => NoticeKind::Reminder,
            _ if n.event_type.ends_with(".escalated") => NoticeKind::Escalated,
            _ => NoticeKind::Created,
        };
        let facts = match fresh {
            Some(f) => f.facts.clone(),
            None => self.notify_facts(&held, notice).await?,
        };
        match n.channel {
            NotificationChannel::Email => {
                let Some(mailer) = &self.wiring.mailer else {
                    return Err(Failure::Moot("email is not configured (COUNTERSIGN_SMTP_URL)".into()));
                };
                mailer.send(&n.recipient, &request_email(&facts)).await?;
            }
            NotificationChannel::Slack => {
                let slack = match fresh {
                    Some(f) => f.slack.clone(),
                    None => self.slack_credentials(&n.org_id).await?,
                };
                let Some(slack) = slack else {
                    return Err(Failure::Moot("the Slack integration was removed".into()));
                };
                if n.kind == NotificationKind::Outcome {
                    let outcome = self.outcome_facts(&held).await?;
                    let ts = n.slack_ts.as_deref().unwrap_or_default();
                    let body = outcome_message(&facts, &outcome).update_body(&n.recipient, ts);
                    self.wiring.slack.call(&slack.bot_token, "chat.update", &body).await?;
                } else {
                    let body = request_message(&facts).post_body(&n.recipient);
                    let posted = self.wiring.slack.call(&slack.bot_token, "chat.postMessage", &body).await?;
                    n.slack_ts = posted.get("ts").and_then(|t| t.as_str()).map(str::to_string);
                    if let Some(channel) = posted.get("channel").and_then(|c| c.as_str()) {
                        // Slack answers with the channel's id even when posted by name.
                        n.recipient = channel.to_string();
                    }
                    // Decided while this was posted: the outcome's planning may not have seen
                    // this message yet, so it is updated now rather than left with live buttons.
                    if let (Some(ts), Ok(Some(now))) = (n.slack_ts.as_deref(), self.load_held(&subject).await) {
                        if !now.is_open() {
                            self.update_now(&slack, &now, &n.recipient, ts, Duration::from_secs(5)).await;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// How late a claimed or retried attempt may be before the sweep assumes its message was lost.
const REQUEUE_GRACE: ChronoDuration = ChronoDuration::minutes(5);

impl Countersign {
    /// The sweep's notification phase: queues every pending notification that is due and was
    /// never tried (a reminder whose time has come), and every attempt overdue by more than
    /// `REQUEUE_GRACE` (its queue message was lost, or its worker died). Duplicate messages are
    /// harmless: each carries its attempt number, and an attempt is claimed before it is sent.
    pub(crate) async fn notifications_phase(
        &self,
        page: usize,
        time_left: &(dyn Fn() -> bool + Sync),
    ) -> AppResult<(usize, bool)> {
        let now = self.now();
        let cutoff = format!("{}#~", layout::sort_time(now));
        let cutoff = &cutoff;
        self.each_due_page(layout::DUE_NOTIFICATIONS, page, time_left, move |partition, after| async move {
            let (due, read, last) = self.due_page(&partition, cutoff, page, after).await?;
            let mut queued = 0;
            for item in due {
                let Ok(n) = layout::decode::<Notification>(item) else { continue };
                let stalled = n.value.next_attempt_at < now - REQUEUE_GRACE;
                if n.value.attempts == 0 || stalled {
                    self.wiring.queue.send(&retry_message(&n.value), Duration::ZERO).await?;
                    queued += 1;
                }
            }
            Ok((queued, read, last))
        })
        .await
    }
}
