//! `POST /integrations/slack/interactions`: a click on an Approve or Reject button in Slack.
//! The request's signature is checked before anything else (Slack's v0 scheme with the
//! organisation's signing secret, a 5-minute window, compared in constant time); then the click
//! is a vote by the member the clicking Slack user is linked to, through that member's own key,
//! so every rule of a vote holds (team, own request, quorum, payload binding, step-up). The
//! clicker hears a refusal privately (`chat.postEphemeral`); a decision updates the message.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::facts::Held;
use super::integration::SlackCredentials;
use crate::domain::approval::VoteDecision;
use crate::domain::ids::OrgId;
use crate::domain::notification::SlackUserLink;
use crate::domain::org::ApiKey;
use crate::domain::payment_review::ReviewRef;
use crate::domain::people::Person;
use crate::domain::review::DecisionType;
use crate::domain::slack::{
    ephemeral_body, parse_interaction, verify_signature, Interaction, APPROVE_ACTION, REJECT_ACTION,
};
use crate::error::{AppError, AppResult};
use crate::layout::slack_user_key;
use crate::service::{Caller, Countersign, DecideRequest, ReviewDecide};

/// Slack wants the whole request answered within 3 s: the vote gets this long…
const VOTE_TIMEOUT: Duration = Duration::from_millis(2000);
/// …and everything, the answer to the clicker included, this long.
const ANSWER_WITHIN: Duration = Duration::from_millis(2700);

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
        AppError::Store(_)
            | AppError::Contention
            | AppError::Bus(_)
            | AppError::Queue(_)
            | AppError::Corrupt(_)
            | AppError::SigningKeyMissing
            | AppError::EncryptionKeyMissing
    )
}

impl Countersign {
    /// Verifies and acts on one click. `Unauthorized` for any signature problem (and for an
    /// organisation without Slack): nothing is read beyond the integration, nothing decided.
    pub async fn slack_interaction(&self, click: SlackClick<'_>) -> AppResult<()> {
        let deadline = Instant::now() + ANSWER_WITHIN;
        let org = click.org.and_then(OrgId::parse).ok_or(AppError::Unauthorized)?;
        let slack = match self.slack_credentials(&org).await {
            Ok(Some(slack)) => slack,
            Ok(None) => return Err(AppError::Unauthorized),
            // An unreadable secret (a rotated encryption key) says nothing to an unsigned caller.
            Err(e @ (AppError::Corrupt(_) | AppError::EncryptionKeyMissing)) => {
                tracing::error!(org = %org, error = %e, "the Slack signing secret cannot be read");
                return Err(AppError::Unauthorized);
            }
            Err(e) => return Err(e),
        };
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
        let reply = match tokio::time::timeout(VOTE_TIMEOUT, self.vote_from_slack(&org, &interaction, decision)).await {
            Ok(reply) => reply?,
            Err(_) => {
                // Too slow for Slack: answered without a word. Committed or not (a commit is
                // atomic), the outcome reaches the message through the outbox.
                tracing::warn!(org = %org, "a Slack click took too long to decide; answered without a reply");
                return Ok(());
            }
        };
        self.reply_in_slack(&slack, &interaction, reply, deadline).await;
        Ok(())
    }

    async fn vote_from_slack(&self, org: &OrgId, click: &Interaction, decision: VoteDecision) -> AppResult<Reply> {
        let not_found = || Reply::Private("This was not found in Countersign (NOT_FOUND).".into());
        let Some(subject) = ReviewRef::parse(&click.value) else { return Ok(not_found()) };
        let Some(held) = self.load_held(&subject).await? else { return Ok(not_found()) };
        if held.org_id() != org {
            return Ok(not_found());
        }
        let link = self.reader().read::<SlackUserLink>(&slack_user_key(org, &click.user_id)).await?;
        let Some(link) = link else {
            return Ok(Reply::Private(
                "Your Slack account is not linked to a Countersign member, so your click was not counted. \
                 An admin can link it (PATCH /v1/members/{id} with slackUserId) (SLACK_USER_NOT_LINKED)."
                    .into(),
            ));
        };
        let Some(key) = self.voting_key(&link.value, &held).await? else {
            return Ok(Reply::Private(
                "You hold no active Countersign key that may decide this, so your click was not counted \
                 (NO_VOTING_KEY)."
                    .into(),
            ));
        };
        if key.frozen_at.is_some() {
            let (_, code, message, _) = AppError::KeyFrozen.parts();
            return Ok(Reply::Private(format!("Your click was not counted: {message} ({code}).")));
        }
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
                "Approving this amount needs your passkey, which Slack cannot ask for. Approve it here: {url} \
                 (STEP_UP_REQUIRED)."
            ))),
            Err(e) if is_refusal(&e) => {
                // The message and code every door shows (the dashboard's pages end the same way).
                let (_, code, message, _) = e.parts();
                Ok(Reply::Private(format!("Your click was not counted: {message} ({code}).")))
            }
            Err(e) => Err(e),
        }
    }

    /// The member's key that votes for them: unrevoked, holding `approvals:write`, allowed the
    /// payer wallet (for a review: bound to no wallet); an unfrozen one first (a frozen one only
    /// when every such key is frozen: the click is then refused as frozen), one bound to no
    /// wallet first, then by id (the same key every time).
    async fn voting_key(&self, link: &SlackUserLink, held: &Held) -> AppResult<Option<ApiKey>> {
        let member = Some(Person::Member(link.member_id.clone()));
        let mut usable: Vec<ApiKey> =
            self.deciding_keys_even_frozen(held).await?.into_iter().filter(|k| k.person == member).collect();
        usable.sort_by(|a, b| {
            let rank = |k: &ApiKey| (k.frozen_at.is_some(), !k.wallet_ids.is_empty());
            (rank(a), &a.id).cmp(&(rank(b), &b.id))
        });
        Ok(usable.into_iter().next())
    }

    /// Tells the clicker, within `deadline`: privately, or by updating the clicked message with
    /// the outcome (the outcome's own update of it: see `outcome::update_now`).
    async fn reply_in_slack(&self, slack: &SlackCredentials, click: &Interaction, reply: Reply, deadline: Instant) {
        let Some(channel) = click.channel_id.as_deref() else { return };
        let left = deadline.saturating_duration_since(Instant::now());
        match reply {
            Reply::Private(text) => {
                let body = ephemeral_body(channel, &click.user_id, &text);
                let call = self.wiring.slack.call(&slack.bot_token, "chat.postEphemeral", &body);
                match tokio::time::timeout(left, call).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "Slack reply failed"),
                    Err(_) => tracing::warn!("Slack reply timed out"),
                }
            }
            Reply::Decided(held) => {
                let Some(ts) = click.message_ts.as_deref() else { return };
                self.update_now(slack, &held, channel, ts, left).await;
            }
        }
    }
}
