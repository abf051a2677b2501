//! `POST /integrations/slack/interactions`: a click on an Approve or Reject button in Slack.
//! The request's signature is checked before anything else (Slack's v0 scheme with the
//! organisation's signing secret, a 5-minute window, compared in constant time); then the click
//! is a vote by the member the clicking Slack user is linked to, through that member's own key,
//! so every rule of a vote holds (team, own request, quorum, payload binding, step-up). The
//! clicker hears a refusal privately (`chat.postEphemeral`); a decision updates the message.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use super::integration::SlackCredentials;
use super::plan::NOTIFY_CLAIM_LEASE;
use super::send::Failure;
use crate::domain::approval::{Approval, VoteDecision};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::{ApprovalId, NotificationId, OrgId};
use crate::domain::notification::{Notification, NotificationChannel, NotificationKind, SlackUserLink};
use crate::domain::notify_facts::NoticeKind;
use crate::domain::org::ApiKey;
use crate::domain::people::Person;
use crate::domain::permission::{self, Permission};
use crate::domain::slack::{
    outcome_message, parse_interaction, verify_signature, Interaction, APPROVE_ACTION, REJECT_ACTION,
};
use crate::error::{AppError, AppResult};
use crate::layout::{self, approval_key, by_org_partition, slack_user_key};
use crate::ports::{Index, Query};
use crate::service::{Caller, Countersign, DecideRequest};

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
    /// The approval was decided: its message shows how.
    Decided(Box<Approval>),
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
        let Some(id) = ApprovalId::parse(&click.value) else { return Ok(not_found()) };
        let Some(approval) = self.reader().read::<Approval>(&approval_key(&id)).await?.map(|s| s.value) else {
            return Ok(not_found());
        };
        if approval.org_id != *org {
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
        let Some(key) = self.voting_key(org, &link.value, &approval).await? else {
            return Ok(Reply::Private(
                "You hold no active Countersign key that may approve payments from this wallet, \
                 so your click was not counted."
                    .into(),
            ));
        };
        let request = DecideRequest::new(decision, Some("via Slack".into()));
        match self.decide_approval(&Caller::Key(key), &id, request).await {
            Ok(decided) if decided.approval.is_open() => {
                let votes = decided.approval.votes.iter().filter(|v| v.decision == VoteDecision::Approve).count();
                Ok(Reply::Private(format!(
                    "Your approval is recorded: {votes} of {} needed.",
                    decided.approval.required_approvals
                )))
            }
            Ok(decided) => Ok(Reply::Decided(Box::new(decided.approval))),
            Err(AppError::StepUpRequired { url, .. }) => Ok(Reply::Private(format!(
                "Approving this amount needs your passkey, which Slack cannot ask for. Approve it here: {url}"
            ))),
            Err(e) if is_refusal(&e) => Ok(Reply::Private(format!("Your click was not counted: {e}."))),
            Err(e) => Err(e),
        }
    }

    /// The member's key that votes for them: active, holding `approvals:write`, allowed the
    /// payer wallet; one bound to no wallet first, then by id (the same key every time).
    async fn voting_key(&self, org: &OrgId, link: &SlackUserLink, approval: &Approval) -> AppResult<Option<ApiKey>> {
        let query = Query::new(Index::ByOrg, by_org_partition(org, "APIKEY"), MAX_KEYS_READ);
        let keys: Vec<ApiKey> = self.reader().all_of(query).await?;
        let mut usable: Vec<ApiKey> = keys
            .into_iter()
            .filter(|k| k.person == Some(Person::Member(link.member_id.clone())))
            .filter(|k| k.revoked_at.is_none() && permission::allows(&k.permissions, Permission::ApprovalsWrite))
            .filter(|k| k.may_use(&approval.wallet_id))
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
        approval: &Approval,
        channel: &str,
        ts: &str,
    ) -> Result<(), Failure> {
        let facts = self.notify_facts(approval, NoticeKind::Created).await?;
        let outcome = self.outcome_facts(approval).await?;
        let message = outcome_message(&facts, &outcome);
        let body = json!({"channel": channel, "ts": ts, "text": message.text, "blocks": message.blocks});
        self.wiring.slack.call(&slack.bot_token, "chat.update", &body).await?;
        Ok(())
    }

    /// Claims the outcome's update of the clicked message (its record, created with its first
    /// attempt claimed); `None` when the outbox claimed it first.
    async fn claim_outcome_update(&self, approval: &Approval, channel: &str, ts: &str) -> Option<Notification> {
        let now = self.now();
        let record = Notification {
            id: NotificationId::for_outcome(&approval.id, &format!("{channel}:{ts}")),
            org_id: approval.org_id.clone(),
            approval_id: approval.id.clone(),
            event_id: String::new(),
            event_type: format!("approval.{}", approval.status.as_str().to_lowercase()),
            channel: NotificationChannel::Slack,
            kind: NotificationKind::Outcome,
            recipient: channel.to_string(),
            member_id: None,
            team_id: approval.assigned_team.clone(),
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
