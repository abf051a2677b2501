//! `POST /integrations/slack/interactions`: a click on an Approve or Reject button in Slack.
//! The request's signature is checked before anything else (Slack's v0 scheme with the
//! organisation's signing secret, a 5-minute window, compared in constant time); then the click
//! is a vote by the member the clicking Slack user is linked to, through that member's own key,
//! so every rule of a vote holds (team, own request, quorum, payload binding, step-up). The
//! clicker hears a refusal privately (`chat.postEphemeral`); a decision updates the message.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::facts::Held;
use super::integration::SlackCredentials;
use super::plan::NOTIFY_CLAIM_LEASE;
use super::send::Failure;
use crate::domain::approval::VoteDecision;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::{NotificationId, OrgId};
use crate::domain::notification::{subject_ids, Notification, NotificationChannel, NotificationKind, SlackUserLink};
use crate::domain::notify_facts::NoticeKind;
use crate::domain::org::ApiKey;
use crate::domain::payment_review::ReviewRef;
use crate::domain::people::Person;
use crate::domain::permission::{self, Permission};
use crate::domain::review::DecisionType;
use crate::domain::slack::{
    outcome_message, parse_interaction, verify_signature, Interaction, APPROVE_ACTION, REJECT_ACTION,
};
use crate::error::{AppError, AppResult};
use crate::layout::{self, by_org_partition, slack_user_key};
use crate::ports::{Index, Query};
use crate::service::{Caller, Countersign, DecideRequest, ReviewDecide};

/// How long the answer to the clicker may take: Slack wants the whole request within 3 s.
const REPLY_TIMEOUT: Duration = Duration::from_millis(1500);
/// Keys read to find the clicking member's.
const MAX_KEYS_READ: usize = 1_000;

/// A click as it arrived: the organisation named in the request URL, Slack's headers, the body.
#[derive(Debug, Clone, Copy)]
pub struct SlackClick<'a> {
    pub org: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// What the clicker sees.
enum Reply {
    /// It was decided: its message shows how.
    Decided(Box<Held>),
    /// Said to the clicker alone.
    Private(String),
}

/// Refusals the clicker should hear; anything else (the store failing) is an error Slack shows.
fn is_refusal(e: &AppError) -> bool {
    !matches!(
        e,
        AppError::Store(_) | AppError::Contention | AppError::Bus(_) | AppError::Queue(_) | AppError::Corrupt(_)
    )
}

impl Countersign {
    /// Verifies and acts on one click. `Unauthorized` for any signature problem (and for an
    /// organisation without Slack): nothing is read beyond the integration, nothing decided.
    pub async fn slack_interaction(&self, click: SlackClick<'_>) -> AppResult<()> {
        let org = click.org.and_then(OrgId::parse).ok_or(AppError::Unauthorized)?;
        let slack = self.slack_credentials(&org).await?.ok_or(AppError::Unauthorized)?;
        // Slack signs with its own clock: checked against real time.
        verify_signature(&slack.signing_secret, click.timestamp, click.signature, click.body, Utc::now())
            .map_err(|_| AppError::Unauthorized)?;
        let interaction = parse_interaction(click.body)
            .map_err(|e| crate::domain::input::InputError::invalid("payload", e.to_string()))?;
        let decision = match interaction.action_id.as_str() {
            APPROVE_ACTION => VoteDecision::Approve,
            REJECT_ACTION => VoteDecision::Reject,
            _ => return Ok(()), // a link button: nothing to do
        };
        let reply = self.vote_from_slack(&org, &interaction, decision).await?;
        self.reply_in_slack(&slack, &interaction, reply).await;
        Ok(())
    }

    async fn vote_from_slack(&self, org: &OrgId, click: &Interaction, decision: VoteDecision) -> AppResult<Reply> {
        let not_found = || Reply::Private("This approval was not found in Countersign.".into());
        let Some(subject) = ReviewRef::parse(&click.value) else { return Ok(not_found()) };
        let Some(held) = self.load_held(&subject).await? else { return Ok(not_found()) };
        if held.org_id() != org {
            return Ok(not_found());
        }
        let link = self.reader().read::<SlackUserLink>(&slack_user_key(org, &click.user_id)).await?;
        let Some(link) = link else {
            return Ok(Reply::Private(
                "Your Slack account is not linked to a Countersign member, so your click was not counted. \
                 An admin can link it (PATCH /v1/members/{id} with slackUserId)."
                    .into(),
            ));
        };
        let Some(key) = self.voting_key(org, &link.value, &held).await? else {
            return Ok(Reply::Private(
                "You hold no active Countersign key that may decide this, so your click was not counted.".into(),
            ));
        };
        let caller = Caller::Key(key);
        let voted = match &subject {
            ReviewRef::Payment(id) => {
                let request = DecideRequest::new(decision, Some("via Slack".into()));
                self.decide_approval(&caller, id, request).await.map(|d| Held::Approval(Box::new(d.approval)))
            }
            ReviewRef::Review(_) => {
                let decision_type = match decision {
                    VoteDecision::Approve => DecisionType::Approve,
                    VoteDecision::Reject => DecisionType::Reject,
                };
                let request = ReviewDecide {
                    decision_type,
                    modified_action: None,
                    notes: Some("via Slack".into()),
                    modified_amount: None,
                };
                match self.decide_review(&caller, &subject, request).await {
                    Ok(_) => self.load_held(&subject).await.map(|h| h.unwrap_or(held)),
                    Err(e) => Err(e),
                }
            }
        };
        match voted {
            Ok(Held::Approval(approval)) if approval.is_open() => {
                let votes = approval.votes.iter().filter(|v| v.decision == VoteDecision::Approve).count();
                Ok(Reply::Private(format!(
                    "Your approval is recorded: {votes} of {} needed.",
                    approval.required_approvals
                )))
            }
            Ok(decided) => Ok(Reply::Decided(Box::new(decided))),
            Err(AppError::StepUpRequired { url, .. }) => Ok(Reply::Private(format!(
                "Approving this amount needs your passkey, which Slack cannot ask for. Approve it here: {url}"
            ))),
            Err(e) if is_refusal(&e) => Ok(Reply::Private(format!("Your click was not counted: {e}."))),
            Err(e) => Err(e),
        }
    }

    /// The member's key that votes for them: active, holding `approvals:write`, allowed the
    /// payer wallet (for a review: bound to no wallet); one bound to no wallet first, then by id
    /// (the same key every time).
    async fn voting_key(&self, org: &OrgId, link: &SlackUserLink, held: &Held) -> AppResult<Option<ApiKey>> {
        let query = Query::new(Index::ByOrg, by_org_partition(org, "APIKEY"), MAX_KEYS_READ);
        let keys: Vec<ApiKey> = self.reader().all_of(query).await?;
        let mut usable: Vec<ApiKey> = keys
            .into_iter()
            .filter(|k| k.person == Some(Person::Member(link.member_id.clone())))
            .filter(|k| k.revoked_at.is_none() && permission::allows(&k.permissions, Permission::ApprovalsWrite))
            .filter(|k| match held {
                Held::Approval(approval) => k.may_use(&approval.wallet_id),
                // Reviews are about no wallet: a key bound to wallets decides none of them.
                Held::Review(_) => k.wallet_ids.is_empty(),
            })
            .collect();
        usable.sort_by(|a, b| (!a.wallet_ids.is_empty(), &a.id).cmp(&(!b.wallet_ids.is_empty(), &b.id)));
        Ok(usable.into_iter().next())
    }

    /// Tells the clicker, within Slack's time: privately, or by updating the clicked message
    /// with the outcome. That update is the outcome's own (one record per message, claimed here
    /// or by the outbox, whichever is first), so the message is updated once and, should Slack
    /// fail now, retried like any notification.
    async fn reply_in_slack(&self, slack: &SlackCredentials, click: &Interaction, reply: Reply) {
        let Some(channel) = click.channel_id.as_deref() else { return };
        match reply {
            Reply::Private(text) => {
                let body = json!({"channel": channel, "user": click.user_id, "text": text});
                let call = self.wiring.slack.call(&slack.bot_token, "chat.postEphemeral", &body);
                match tokio::time::timeout(REPLY_TIMEOUT, call).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "Slack reply failed"),
                    Err(_) => tracing::warn!("Slack reply timed out"),
                }
            }
            Reply::Decided(approval) => {
                let Some(ts) = click.message_ts.as_deref() else { return };
                let Some(claimed) = self.claim_outcome_update(&approval, channel, ts).await else { return };
                let outcome =
                    match tokio::time::timeout(REPLY_TIMEOUT, self.update_message(slack, &approval, channel, ts)).await
                    {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            Err(Failure::Transient { reason: "Slack did not answer in time".into(), after: None })
                        }
                    };
                if let Err(e) = self.record_attempt(claimed, 1, outcome).await {
                    tracing::warn!(error = %e, "the message update's outcome was not recorded; the sweep retries it");
                }
            }
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
        let message = outcome_message(&facts, &outcome);
        let body = json!({"channel": channel, "ts": ts, "text": message.text, "blocks": message.blocks});
        self.wiring.slack.call(&slack.bot_token, "chat.update", &body).await?;
        Ok(())
    }

    /// Claims the outcome's update of the clicked message (its record, created with its first
    /// attempt claimed); `None` when the outbox claimed it first.
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
        let write = layout::create(&record).ok()?;
        match self.store().transact(vec![write]).await {
            Ok(()) => Some(record),
            Err(e) => {
                tracing::debug!(error = %e, "the outbox claimed the message's update first");
                None
            }
        }
    }
}
