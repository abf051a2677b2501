//! Slack, pure: the request signatures Slack sends to the interactivity URL, the button clicks it
//! reports there, and the Block Kit messages Countersign posts (typed, so nothing user-supplied is
//! ever spliced into JSON by hand).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::notify_facts::{NotifyFacts, OutcomeFacts};

/// The approve button's `action_id`.
pub const APPROVE_ACTION: &str = "countersign_approve";
/// The reject button's `action_id`.
pub const REJECT_ACTION: &str = "countersign_reject";
/// The "Open in Countersign" link button's `action_id`: Slack reports its clicks too, and they
/// decide nothing.
pub const OPEN_ACTION: &str = "countersign_open";

/// The headers Slack signs its requests with.
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";
pub const SIGNATURE_HEADER: &str = "x-slack-signature";

/// How far a request's timestamp may be from now, either way (Slack's advice: 5 minutes), so a
/// captured request cannot be replayed later.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The largest interaction body accepted. A real one carries the clicked message (our blocks are
/// a few kilobytes) and is well under this.
pub const MAX_INTERACTION_BYTES: usize = 256 * 1024;

/// Slack's limits, in characters.
const SECTION_TEXT_LIMIT: usize = 3000;
const SECTION_FIELD_LIMIT: usize = 2000;
const HEADER_TEXT_LIMIT: usize = 150;
const BUTTON_TEXT_LIMIT: usize = 75;
const BUTTON_VALUE_LIMIT: usize = 2000;
const BUTTON_URL_LIMIT: usize = 3000;
/// The fallback `text` (notifications, screen readers); Slack truncates past 40 000.
const FALLBACK_TEXT_LIMIT: usize = 3000;

const SIGNATURE_VERSION: &str = "v0";
/// Longer timestamps are not Unix seconds of this era.
const MAX_TIMESTAMP_DIGITS: usize = 12;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Slack signature or timestamp header is missing")]
    Missing,
    #[error("the Slack request timestamp is too far from now")]
    Stale,
    #[error("the Slack signature or timestamp header is malformed")]
    Malformed,
    #[error("the Slack signature does not match")]
    Mismatch,
}

/// The `v0=<hex>` signature Slack would send for `body` at `timestamp` (for tests and tools that
/// play Slack's part).
pub fn signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    format!("{SIGNATURE_VERSION}={}", hex::encode(signing_mac(signing_secret, timestamp, body).finalize().into_bytes()))
}

/// Checks a request to the interactivity URL: `signature` (`X-Slack-Signature`, `v0=<hex>`) must
/// be the HMAC-SHA256 of `v0:{timestamp}:{body}` under the signing secret, and `timestamp`
/// (`X-Slack-Request-Timestamp`, Unix seconds) within `MAX_CLOCK_SKEW_SECS` of `now`.
pub fn verify_signature(
    signing_secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    if timestamp.is_empty() || signature.is_empty() {
        return Err(SignatureError::Missing);
    }
    let sent_at = parse_timestamp(timestamp).ok_or(SignatureError::Malformed)?;
    let expected = signature
        .strip_prefix("v0=")
        .filter(|hex| hex.len() == 64)
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or(SignatureError::Malformed)?;
    if now.timestamp().saturating_sub(sent_at).unsigned_abs() > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    // Anyone can compute an HMAC under an empty key: an integration without a secret verifies nothing.
    if signing_secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    signing_mac(signing_secret, timestamp, body).verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

fn signing_mac(signing_secret: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(signing_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key"));
    mac.update(SIGNATURE_VERSION.as_bytes());
    mac.update(b":");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

/// Unix seconds, digits only (no sign, no spaces), as Slack sends them.
fn parse_timestamp(timestamp: &str) -> Option<i64> {
    if timestamp.len() > MAX_TIMESTAMP_DIGITS || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    timestamp.parse().ok()
}

/// One button click, as Slack reports it to the interactivity URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    pub user_id: String,
    pub team_id: Option<String>,
    pub action_id: String,
    /// The button's value (the subject id); empty for a link button.
    pub value: String,
    pub channel_id: Option<String>,
    pub message_ts: Option<String>,
    pub response_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {
    #[error("the interaction body is larger than {MAX_INTERACTION_BYTES} bytes")]
    TooLarge,
    #[error("the interaction body is not a form with a payload field")]
    MissingPayload,
    #[error("the interaction payload is malformed: {0}")]
    Malformed(String),
    #[error("interactions of type {0:?} are not handled")]
    UnsupportedType(String),
    #[error("the interaction has no action")]
    NoAction,
}

/// The parts of a `block_actions` payload Countersign reads; everything else is ignored.
#[derive(Deserialize)]
struct RawInteraction {
    #[serde(rename = "type")]
    kind: String,
    user: Option<RawId>,
    team: Option<RawId>,
    #[serde(default)]
    actions: Vec<RawAction>,
    channel: Option<RawId>,
    container: Option<RawContainer>,
    message: Option<RawMessage>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct RawId {
    id: Option<String>,
}

#[derive(Deserialize)]
struct RawAction {
    action_id: String,
    value: Option<String>,
}

#[derive(Deserialize)]
struct RawContainer {
    channel_id: Option<String>,
    message_ts: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    ts: Option<String>,
}

/// Reads a click from the interactivity request's body: a form with `payload=<json>`, of type
/// `block_actions`; its first action is the click.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, InteractionError> {
    if body.len() > MAX_INTERACTION_BYTES {
        return Err(InteractionError::TooLarge);
    }
    let payload = url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, value)| value)
        .ok_or(InteractionError::MissingPayload)?;
    let raw: RawInteraction = serde_json::from_str(&payload).map_err(|e| InteractionError::Malformed(e.to_string()))?;
    if raw.kind != "block_actions" {
        return Err(InteractionError::UnsupportedType(raw.kind.chars().take(64).collect()));
    }
    let user_id = raw
        .user
        .and_then(|u| u.id)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| InteractionError::Malformed("user.id is missing".into()))?;
    let action = raw.actions.into_iter().next().ok_or(InteractionError::NoAction)?;
    let container = raw.container;
    let channel_id = raw.channel.and_then(|c| c.id).or_else(|| container.as_ref().and_then(|c| c.channel_id.clone()));
    let message_ts = raw.message.and_then(|m| m.ts).or_else(|| container.and_then(|c| c.message_ts));
    Ok(Interaction {
        user_id,
        team_id: raw.team.and_then(|t| t.id),
        action_id: action.action_id,
        value: action.value.unwrap_or_default(),
        channel_id,
        message_ts,
        response_url: raw.response_url,
    })
}

/// A message for `chat.postMessage` / `chat.update`: `text` is the fallback shown in
/// notifications; `blocks` what the channel shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlackMessage {
    pub text: String,
    pub blocks: Vec<Block>,
}

impl SlackMessage {
    /// The body of `chat.postMessage` to `channel`.
    pub fn post_body(&self, channel: &str) -> serde_json::Value {
        self.body_with(&[("channel", channel)])
    }

    /// The body of `chat.update` of the message at `channel` + `ts`.
    pub fn update_body(&self, channel: &str, ts: &str) -> serde_json::Value {
        self.body_with(&[("channel", channel), ("ts", ts)])
    }

    fn body_with(&self, targets: &[(&str, &str)]) -> serde_json::Value {
        // Serializing these types cannot fail; were it to, the fallback text alone still says it.
        let mut body = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(body)) => body,
            _ => serde_json::Map::from_iter([("text".to_string(), serde_json::Value::from(self.text.as_str()))]),
        };
        for (name, value) in targets {
            body.insert((*name).to_string(), serde_json::Value::from(*value));
        }
        serde_json::Value::Object(body)
    }
}

/// The body of `chat.postEphemeral`: `text` (raw; escaped here) shown to `user` alone in `channel`.
pub fn ephemeral_body(channel: &str, user: &str, text: &str) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("channel".into(), channel.into());
    body.insert("user".into(), user.into());
    body.insert("text".into(), escape_truncated(text, FALLBACK_TEXT_LIMIT).into());
    serde_json::Value::Object(body)
}

/// The Block Kit blocks Countersign uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Header {
        text: Text,
    },
    Section {
        #[serde(skip_serializing_if = "Option::is_none")]
        text: Option<Text>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        fields: Vec<Text>,
    },
    Context {
        elements: Vec<Text>,
    },
    Actions {
        elements: Vec<Element>,
    },
    Divider,
}

/// A text object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Text {
    PlainText {
        text: String,
        emoji: bool,
    },
    /// Always `verbatim`: Slack then turns no bare URL, `#channel` or `@here` in it into a link
    /// or a mention (escaping handles the `<…>` forms).
    Mrkdwn {
        text: String,
        verbatim: bool,
    },
}

/// An interactive element of an actions block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Element {
    Button {
        text: Text,
        action_id: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        style: Option<ButtonStyle>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ButtonStyle {
    Primary,
    Danger,
}

impl Text {
    /// Plain text (never parsed), cut to `limit` characters.
    fn plain(text: &str, limit: usize) -> Text {
        Text::PlainText { text: truncate(text, limit), emoji: true }
    }

    /// Mrkdwn already escaped and cut by the caller.
    fn mrkdwn(text: String) -> Text {
        Text::Mrkdwn { text, verbatim: true }
    }
}

/// The message asking for a decision: the facts, then Approve / Reject (and a link to the
/// dashboard when there is one).
pub fn request_message(f: &NotifyFacts) -> SlackMessage {
    let mut blocks = vec![Block::Header { text: Text::plain(f.kind.headline(), HEADER_TEXT_LIMIT) }];
    blocks.extend(fact_blocks(f, true));
    blocks.push(Block::Actions { elements: buttons(f) });
    SlackMessage { text: fallback_text(f.kind.headline(), f), blocks }
}

/// The same message once decided: the facts without buttons, and how it ended.
pub fn outcome_message(f: &NotifyFacts, o: &OutcomeFacts) -> SlackMessage {
    let outcome = outcome_line(o);
    let mut blocks = vec![Block::Header { text: Text::plain(&outcome, HEADER_TEXT_LIMIT) }];
    blocks.extend(fact_blocks(f, false));
    let mut line = format!("*{}* · {}", escape_truncated(&outcome, SECTION_TEXT_LIMIT / 2), when(o.at));
    if let Some(note) = o.note.as_deref().filter(|n| !n.trim().is_empty()) {
        line.push_str("\n*Note:* ");
        let room = SECTION_TEXT_LIMIT.saturating_sub(line.chars().count());
        line.push_str(&escape_truncated(note, room));
    }
    blocks.push(Block::Section { text: Some(Text::mrkdwn(line)), fields: Vec::new() });
    SlackMessage { text: fallback_text(&outcome, f), blocks }
}

/// "✅ Approved by Alice", "❌ Rejected by Bob", "⌛ Expired", "Modified by Carol". Raw: escaped
/// where it is placed.
fn outcome_line(o: &OutcomeFacts) -> String {
    let icon = match o.outcome.to_ascii_lowercase().as_str() {
        "approved" => "✅ ",
        "rejected" => "❌ ",
        "expired" => "⌛ ",
        _ => "",
    };
    match o.decided_by.as_deref().filter(|who| !who.trim().is_empty()) {
        Some(who) => format!("{icon}{} by {who}", o.outcome),
        None => format!("{icon}{}", o.outcome),
    }
}

/// "Approval needed: 1250.00 USD to wal_…", escaped (the fallback text is mrkdwn too).
fn fallback_text(headline: &str, f: &NotifyFacts) -> String {
    escape_truncated(&format!("{headline}: {}", f.summary()), FALLBACK_TEXT_LIMIT)
}

fn fact_blocks(f: &NotifyFacts, with_time_left: bool) -> Vec<Block> {
    let mut blocks = Vec::new();
    let headline = match f.amount_text() {
        Some(amount) => format!("*{}*\n", escape_truncated(&amount, 200)),
        None => String::new(),
    };
    let parties = format!("{} → {}", escape_truncated(&f.payer, 500), escape_truncated(&f.payee, 500));
    blocks.push(Block::Section { text: Some(Text::mrkdwn(format!("{headline}{parties}"))), fields: Vec::new() });
    for (label, value) in [("Description", f.description.as_deref()), ("Agent reasoning", f.agent_reasoning.as_deref())]
    {
        if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
            blocks.push(labelled_section(label, value));
        }
    }
    blocks.push(labelled_section("Why it was held", &f.reason));
    let mut fields = Vec::new();
    if let Some(risk) = f.risk_score.as_deref() {
        fields.push(field("Risk score", risk));
    }
    if let Some(team) = f.team_name.as_deref() {
        fields.push(field("Team", team));
    }
    if with_time_left {
        fields.push(field("Time left", &f.time_left()));
    }
    if !fields.is_empty() {
        blocks.push(Block::Section { text: None, fields });
    }
    blocks.push(Block::Context { elements: vec![Text::mrkdwn(escape_truncated(&f.subject_id, SECTION_TEXT_LIMIT))] });
    blocks
}

/// "*Label*\n<value>", escaped and cut to a section's limit.
fn labelled_section(label: &str, value: &str) -> Block {
    let head = format!("*{label}*\n");
    let room = SECTION_TEXT_LIMIT.saturating_sub(head.chars().count());
    Block::Section { text: Some(Text::mrkdwn(format!("{head}{}", escape_truncated(value, room)))), fields: Vec::new() }
}

fn field(label: &str, value: &str) -> Text {
    let head = format!("*{label}*\n");
    let room = SECTION_FIELD_LIMIT.saturating_sub(head.chars().count());
    Text::mrkdwn(format!("{head}{}", escape_truncated(value, room)))
}

fn buttons(f: &NotifyFacts) -> Vec<Element> {
    let value = truncate(&f.subject_id, BUTTON_VALUE_LIMIT);
    let mut elements = vec![
        Element::Button {
            text: Text::plain("Approve", BUTTON_TEXT_LIMIT),
            action_id: APPROVE_ACTION.into(),
            value: Some(value.clone()),
            url: None,
            style: Some(ButtonStyle::Primary),
        },
        Element::Button {
            text: Text::plain("Reject", BUTTON_TEXT_LIMIT),
            action_id: REJECT_ACTION.into(),
            value: Some(value),
            url: None,
            style: Some(ButtonStyle::Danger),
        },
    ];
    // A cut URL would lead nowhere: a link too long for Slack is left out instead.
    if let Some(url) = f.dashboard_url.as_deref().filter(|u| u.chars().count() <= BUTTON_URL_LIMIT) {
        elements.push(Element::Button {
            text: Text::plain("Open in Countersign", BUTTON_TEXT_LIMIT),
            action_id: OPEN_ACTION.into(),
            value: None,
            url: Some(url.into()),
            style: None,
        });
    }
    elements
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Escapes `text` for mrkdwn (`&`, `<`, `>`: what Slack parses links and mentions from), keeping
/// at most `limit` characters of the escaped result, an entity never cut in half; "…" marks a cut.
pub fn escape_truncated(text: &str, limit: usize) -> String {
    if limit == 0 {
        return String::new();
    }
    let escaped_len = |c: char| match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    };
    let total: usize = text.chars().map(escaped_len).sum();
    let budget = if total <= limit { limit } else { limit.saturating_sub(1) };
    let mut out = String::with_capacity(text.len().min(limit * 4));
    let mut used = 0;
    for c in text.chars() {
        let len = escaped_len(c);
        if used + len > budget {
            out.push('…');
            return out;
        }
        used += len;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// At most `limit` characters; "…" marks a cut.
fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notify_facts::{sample_facts, NoticeKind};
    use proptest::prelude::*;

    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TIMESTAMP: &str = "1531420618";
    const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SLACK_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    fn verify_at(
        now: i64,
        secret: &str,
        ts: Option<&str>,
        sig: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        verify_signature(secret, ts, sig, body, at(now))
    }

    #[test]
    fn slacks_documented_example_signs_and_verifies() {
        assert_eq!(signature(SLACK_SECRET, SLACK_TIMESTAMP, SLACK_BODY.as_bytes()), SLACK_SIGNATURE);
        let sent = 1_531_420_618;
        let ok =
            verify_at(sent + 10, SLACK_SECRET, Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE), SLACK_BODY.as_bytes());
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn signatures_are_refused_for_each_reason() {
        let sent = 1_531_420_618;
        let body = SLACK_BODY.as_bytes();
        let check = |now: i64, secret: &str, ts: Option<&str>, sig: Option<&str>, body: &[u8]| {
            verify_at(now, secret, ts, sig, body)
        };
        let good = (Some(SLACK_TIMESTAMP), Some(SLACK_SIGNATURE));
        assert_eq!(check(sent, "another-secret", good.0, good.1, body), Err(SignatureError::Mismatch));
        assert_eq!(check(sent, "", good.0, good.1, body), Err(SignatureError::Mismatch));
        let mut tampered = body.to_vec();
        tampered[0] = b'T';
        assert_eq!(check(sent, SLACK_SECRET, good.0, good.1, &tampered), Err(SignatureError::Mismatch));
        // Five minutes either way is the window; a second more is stale.
        assert_eq!(check(sent + 300, SLACK_SECRET, good.0, good.1, body), Ok(()));
        assert_eq!(check(sent - 300, SLACK_SECRET, good.0, good.1, body), Ok(()));
        assert_eq!(check(sent + 301, SLACK_SECRET, good.0, good.1, body), Err(SignatureError::Stale));
        assert_eq!(check(sent - 301, SLACK_SECRET, good.0, good.1, body), Err(SignatureError::Stale));
        assert_eq!(check(sent, SLACK_SECRET, None, good.1, body), Err(SignatureError::Missing));
        assert_eq!(check(sent, SLACK_SECRET, good.0, None, body), Err(SignatureError::Missing));
        assert_eq!(check(sent, SLACK_SECRET, Some(""), good.1, body), Err(SignatureError::Missing));
        for bad_ts in ["-1531420618", " 1531420618", "1531420618.5", "abc", "99999999999999999999"] {
            assert_eq!(
                check(sent, SLACK_SECRET, Some(bad_ts), good.1, body),
                Err(SignatureError::Malformed),
                "{bad_ts}"
            );
        }
        let hex = &SLACK_SIGNATURE[3..];
        for bad_sig in [
            hex.to_string(),
            format!("v1={hex}"),
            format!("v0={}", &hex[..62]),
            format!("v0={hex}00"),
            format!("v0={}zz", &hex[..62]),
            "v0=".to_string(),
        ] {
            assert_eq!(
                check(sent, SLACK_SECRET, good.0, Some(&bad_sig), body),
                Err(SignatureError::Malformed),
                "{bad_sig}"
            );
        }
        // A signature of another body, well formed, is a mismatch.
        let other = signature(SLACK_SECRET, SLACK_TIMESTAMP, b"payload=%7B%7D");
        assert_eq!(check(sent, SLACK_SECRET, good.0, Some(&other), body), Err(SignatureError::Mismatch));
        // Upper-case hex is the same bytes.
        let upper = format!("v0={}", hex.to_uppercase());
        assert_eq!(check(sent, SLACK_SECRET, good.0, Some(&upper), body), Ok(()));
    }

    fn form(payload: &serde_json::Value) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    fn click() -> serde_json::Value {
        serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U123", "username": "alice", "team_id": "T9"},
            "team": {"id": "T9", "domain": "acme"},
            "api_app_id": "A1",
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C42", "is_ephemeral": false},
            "channel": {"id": "C42", "name": "approvals"},
            "message": {"type": "message", "ts": "1700000000.000100", "text": "Approval needed"},
            "response_url": "https://hooks.slack.com/actions/T9/1/abc",
            "actions": [{"action_id": "countersign_approve", "block_id": "b1", "value": "apr_01JZ", "type": "button", "action_ts": "1700000001.1"}]
        })
    }

    #[test]
    fn a_button_click_is_read() {
        let interaction = parse_interaction(&form(&click())).unwrap();
        assert_eq!(
            interaction,
            Interaction {
                user_id: "U123".into(),
                team_id: Some("T9".into()),
                action_id: APPROVE_ACTION.into(),
                value: "apr_01JZ".into(),
                channel_id: Some("C42".into()),
                message_ts: Some("1700000000.000100".into()),
                response_url: Some("https://hooks.slack.com/actions/T9/1/abc".into()),
            }
        );
    }

    #[test]
    fn channel_and_ts_come_from_the_container_when_the_message_is_absent() {
        let mut payload = click();
        let object = payload.as_object_mut().unwrap();
        object.remove("channel");
        object.remove("message");
        object.remove("team");
        let interaction = parse_interaction(&form(&payload)).unwrap();
        assert_eq!(interaction.channel_id.as_deref(), Some("C42"));
        assert_eq!(interaction.message_ts.as_deref(), Some("1700000000.000100"));
        assert_eq!(interaction.team_id, None);
    }

    #[test]
    fn a_link_button_click_has_an_empty_value() {
        let mut payload = click();
        payload["actions"] = serde_json::json!([{"action_id": OPEN_ACTION, "type": "button", "url": "https://x"}]);
        let interaction = parse_interaction(&form(&payload)).unwrap();
        assert_eq!((interaction.action_id.as_str(), interaction.value.as_str()), (OPEN_ACTION, ""));
    }

    #[test]
    fn bad_interactions_are_refused() {
        let mut no_actions = click();
        no_actions.as_object_mut().unwrap().remove("actions");
        assert_eq!(parse_interaction(&form(&no_actions)), Err(InteractionError::NoAction));
        let mut empty_actions = click();
        empty_actions["actions"] = serde_json::json!([]);
        assert_eq!(parse_interaction(&form(&empty_actions)), Err(InteractionError::NoAction));

        let mut submission = click();
        submission["type"] = "view_submission".into();
        assert_eq!(
            parse_interaction(&form(&submission)),
            Err(InteractionError::UnsupportedType("view_submission".into()))
        );

        let mut no_user = click();
        no_user.as_object_mut().unwrap().remove("user");
        assert!(matches!(parse_interaction(&form(&no_user)), Err(InteractionError::Malformed(_))));

        // JSON posted as is, or a form without `payload`: not what Slack sends.
        assert_eq!(parse_interaction(click().to_string().as_bytes()), Err(InteractionError::MissingPayload));
        assert_eq!(parse_interaction(b"token=abc&text="), Err(InteractionError::MissingPayload));
        assert_eq!(parse_interaction(b""), Err(InteractionError::MissingPayload));
        assert!(matches!(parse_interaction(b"payload=%7Bnot%20json"), Err(InteractionError::Malformed(_))));
        assert!(matches!(parse_interaction(b"payload=%5B1%2C2%5D"), Err(InteractionError::Malformed(_))));

        let huge = vec![b'a'; MAX_INTERACTION_BYTES + 1];
        assert_eq!(parse_interaction(&huge), Err(InteractionError::TooLarge));
        // Deep nesting is refused by the JSON parser's own limit, never by a stack overflow.
        let deep = format!("payload={}", "%5B".repeat(50_000));
        assert!(matches!(parse_interaction(deep.as_bytes()), Err(InteractionError::Malformed(_))));
    }

    fn json(message: &SlackMessage) -> serde_json::Value {
        serde_json::to_value(message).unwrap()
    }

    fn texts(value: &serde_json::Value) -> Vec<String> {
        let mut out = Vec::new();
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match v {
                        serde_json::Value::String(s) if key == "text" => out.push(s.clone()),
                        other => out.extend(texts(other)),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| out.extend(texts(v))),
            _ => {}
        }
        out
    }

    #[test]
    fn the_request_message_has_the_facts_and_the_buttons() {
        let message = request_message(&sample_facts());
        let value = json(&message);
        assert_eq!(value["text"], "Approval needed: 1250.00 USD to wal_payee");
        assert_eq!(
            value["blocks"][0],
            serde_json::json!({"type": "header", "text": {"type": "plain_text", "text": "Approval needed", "emoji": true}})
        );
        let all = texts(&value).join("\n");
        for expected in [
            "*1250.00 USD*",
            "wal_payer → wal_payee",
            "Invoice 42",
            "Monthly hosting bill",
            "0.82",
            "Amount above 1000.00 USD",
            "Finance",
            "2 h 5 min",
        ] {
            assert!(all.contains(expected), "{expected} missing from {all}");
        }
        let actions = value["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(
            actions["elements"],
            serde_json::json!([
                {"type": "button", "text": {"type": "plain_text", "text": "Approve", "emoji": true}, "action_id": "countersign_approve", "value": "apr_01JZ0000000000000000000000", "style": "primary"},
                {"type": "button", "text": {"type": "plain_text", "text": "Reject", "emoji": true}, "action_id": "countersign_reject", "value": "apr_01JZ0000000000000000000000", "style": "danger"},
                {"type": "button", "text": {"type": "plain_text", "text": "Open in Countersign", "emoji": true}, "action_id": "countersign_open", "url": "https://countersign.example/dashboard/approvals/apr_01JZ"}
            ])
        );
        let escalated =
            request_message(&NotifyFacts { kind: NoticeKind::Escalated, dashboard_url: None, ..sample_facts() });
        let value = json(&escalated);
        assert_eq!(value["blocks"][0]["text"]["text"], "Escalated: approval needed");
        let actions = value["blocks"].as_array().unwrap().iter().find(|b| b["type"] == "actions").unwrap();
        assert_eq!(actions["elements"].as_array().unwrap().len(), 2, "no link button without a dashboard URL");
        let reminder = request_message(&NotifyFacts { kind: NoticeKind::Reminder, ..sample_facts() });
        assert_eq!(json(&reminder)["blocks"][0]["text"]["text"], "Reminder: approval needed");
    }

    #[test]
    fn user_text_cannot_mention_link_or_inject() {
        let facts = NotifyFacts {
            description: Some("<!channel> pay now <script>alert(1)</script> & <https://evil.example|your bank>".into()),
            agent_reasoning: Some("<@U0ADMIN> approved this already".into()),
            payee: "wal_<!here>".into(),
            team_name: Some("<#C1|general>".into()),
            ..sample_facts()
        };
        let value = json(&request_message(&facts));
        let all = texts(&value).join("\n");
        assert!(all.contains("&lt;!channel&gt; pay now &lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;https://evil.example|your bank&gt;"), "{all}");
        assert!(
            all.contains("&lt;@U0ADMIN&gt;")
                && all.contains("wal_&lt;!here&gt;")
                && all.contains("&lt;#C1|general&gt;"),
            "{all}"
        );
        for raw in ["<!", "<@", "<#", "<script", "<http"] {
            assert!(!all.contains(raw), "{raw} got through: {all}");
        }
        assert_eq!(value["text"], "Approval needed: 1250.00 USD to wal_&lt;!here&gt;");
        // Every mrkdwn text is verbatim: no auto-linked URLs or channel names.
        let serialized = value.to_string();
        assert_eq!(serialized.matches("\"mrkdwn\"").count(), serialized.matches("\"verbatim\":true").count());
    }

    #[test]
    fn long_text_is_cut_to_slacks_limits() {
        let facts = NotifyFacts {
            description: Some("<".repeat(5000)),
            agent_reasoning: Some("é".repeat(10_000)),
            reason: "r".repeat(4000),
            team_name: Some("t".repeat(3000)),
            dashboard_url: Some(format!("https://countersign.example/{}", "a".repeat(3000))),
            ..sample_facts()
        };
        let message = request_message(&facts);
        for block in &message.blocks {
            match block {
                Block::Section { text, fields } => {
                    if let Some(Text::Mrkdwn { text, .. }) = text {
                        assert!(text.chars().count() <= SECTION_TEXT_LIMIT, "{}", text.chars().count());
                        assert!(
                            !text.ends_with("&l…") && !text.contains("&…"),
                            "entity cut: {}",
                            &text[text.len() - 10..]
                        );
                    }
                    for f in fields {
                        if let Text::Mrkdwn { text, .. } = f {
                            assert!(text.chars().count() <= SECTION_FIELD_LIMIT);
                        }
                    }
                }
                Block::Actions { elements } => assert_eq!(elements.len(), 2, "an over-long link is left out"),
                _ => {}
            }
        }
        assert!(texts(&json(&message)).iter().any(|t| t.ends_with('…')));
        let long_outcome =
            OutcomeFacts { outcome: "Approved".into(), decided_by: Some("A".repeat(400)), at: facts.now, note: None };
        let outcome = outcome_message(&facts, &long_outcome);
        let Block::Header { text: Text::PlainText { text, .. } } = &outcome.blocks[0] else { panic!("header first") };
        assert_eq!(text.chars().count(), HEADER_TEXT_LIMIT);
    }

    #[test]
    fn escaping_and_cutting_keep_entities_whole() {
        assert_eq!(escape_truncated("a<b>&c", 100), "a&lt;b&gt;&amp;c");
        assert_eq!(escape_truncated("abc", 3), "abc");
        assert_eq!(escape_truncated("abcd", 3), "ab…");
        assert_eq!(escape_truncated("a<b", 4), "a…");
        assert_eq!(escape_truncated("a<b", 6), "a&lt;b");
        assert_eq!(escape_truncated("a<bc", 6), "a&lt;…");
        assert_eq!(escape_truncated("", 0), "");
        assert_eq!(truncate("héllo", 3), "hé…");
        assert_eq!(truncate("hé", 3), "hé");
    }

    #[test]
    fn api_bodies_carry_the_target_and_the_message() {
        let message = request_message(&sample_facts());
        let post = message.post_body("C42");
        assert_eq!(post["channel"], "C42");
        assert_eq!(post["text"], serde_json::Value::from(message.text.as_str()));
        assert_eq!(post["blocks"], serde_json::to_value(&message.blocks).unwrap());
        let update = message.update_body("C42", "1700000000.000100");
        assert_eq!((update["channel"].as_str(), update["ts"].as_str()), (Some("C42"), Some("1700000000.000100")));
        assert_eq!(
            ephemeral_body("C42", "U1", "You cannot approve <your own> request"),
            serde_json::json!({"channel": "C42", "user": "U1", "text": "You cannot approve &lt;your own&gt; request"})
        );
    }

    #[test]
    fn the_outcome_message_says_how_it_ended_without_buttons() {
        let facts = sample_facts();
        let approved = OutcomeFacts {
            outcome: "Approved".into(),
            decided_by: Some("Alice".into()),
            at: facts.now,
            note: Some("ok <!here>".into()),
        };
        let value = json(&outcome_message(&facts, &approved));
        assert!(!value.to_string().contains("\"actions\""), "{value}");
        assert_eq!(value["blocks"][0]["text"]["text"], "✅ Approved by Alice");
        assert_eq!(value["text"], "✅ Approved by Alice: 1250.00 USD to wal_payee");
        let all = texts(&value).join("\n");
        assert!(
            all.contains("*✅ Approved by Alice* · 2025-06-15 15:06 UTC") && all.contains("ok &lt;!here&gt;"),
            "{all}"
        );
        assert!(!all.contains("Time left"), "{all}");
        let rejected =
            OutcomeFacts { outcome: "Rejected".into(), decided_by: Some("Bob".into()), at: facts.now, note: None };
        assert_eq!(json(&outcome_message(&facts, &rejected))["blocks"][0]["text"]["text"], "❌ Rejected by Bob");
        let expired = OutcomeFacts { outcome: "Expired".into(), decided_by: None, at: facts.now, note: None };
        assert_eq!(json(&outcome_message(&facts, &expired))["blocks"][0]["text"]["text"], "⌛ Expired");
        let modified =
            OutcomeFacts { outcome: "Modified".into(), decided_by: Some("<@U1>".into()), at: facts.now, note: None };
        let value = json(&outcome_message(&facts, &modified));
        assert_eq!(value["text"], "Modified by &lt;@U1&gt;: 1250.00 USD to wal_payee");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..2048),
            ts in proptest::option::of(".{0,20}"),
            sig in proptest::option::of(".{0,80}"),
            now in any::<i64>(),
        ) {
            let _ = parse_interaction(&body);
            let mut prefixed = b"payload=".to_vec();
            prefixed.extend_from_slice(&body);
            let _ = parse_interaction(&prefixed);
            let now = DateTime::from_timestamp(now % 100_000_000_000, 0).unwrap_or_default();
            let _ = verify_signature(SLACK_SECRET, ts.as_deref(), sig.as_deref(), &body, now);
        }

        #[test]
        fn escaped_text_stays_within_the_limit(text in ".{0,300}", limit in 0usize..400) {
            let out = escape_truncated(&text, limit);
            prop_assert!(out.chars().count() <= limit);
            prop_assert!(!out.contains('<') && !out.contains('>'));
        }
    }
}
