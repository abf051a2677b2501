//! What the pages show, as plain strings: domain objects in, view models out. Templates only
//! place these values, and askama escapes every one of them (no `|safe` anywhere).

use std::collections::HashMap;
use std::sync::LazyLock;

use askama::Template;
use chrono::{DateTime, Utc};

use super::assets;
use crate::domain::approval::{Approval, Vote, VoteDecision};
use crate::domain::audit::AuditEntry;
use crate::domain::comment::Comment;
use crate::domain::ids::{TeamId, WalletId};
use crate::domain::money::Money;
use crate::domain::org::ApiKey;
use crate::domain::payment::{Payment, Urgency};
use crate::domain::people::{Member, Person, Team};
use crate::domain::permission::{self, Permission};
use crate::domain::review::{DecisionType, Review};
use crate::domain::score::Score;
use crate::service::{ApprovalDetail, Caller, InboxItem, InboxStatus, ReviewDetail};

/// The frame of every page: who is signed in, the CSRF token of the sign-out form, the version
/// of the static files (for cache busting), and which pages of the header the caller may open
/// (a link that only leads to a 403 is not shown).
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub who: Option<String>,
    pub csrf: String,
    pub assets: &'static str,
    /// `/dashboard/stats` needs `approvals:read`.
    pub stats: bool,
    /// `/dashboard/policy-changes` needs `wallets:read`.
    pub policy_changes: bool,
}

static ASSET_VERSION: LazyLock<String> = LazyLock::new(assets::version);

impl Chrome {
    pub fn signed_in(caller: &Caller, csrf: &str) -> Self {
        let who = match caller {
            Caller::Key(k) => k.name.clone(),
            Caller::Operator => "operator".into(),
        };
        let may = |needed: Permission| matches!(caller, Caller::Key(k) if permission::allows(&k.permissions, needed));
        Chrome {
            who: Some(who),
            csrf: csrf.to_string(),
            assets: ASSET_VERSION.as_str(),
            stats: may(Permission::ApprovalsRead),
            policy_changes: may(Permission::WalletsRead),
        }
    }

    pub fn anonymous() -> Self {
        Chrome { assets: ASSET_VERSION.as_str(), ..Chrome::default() }
    }
}

pub fn money(m: &Money) -> String {
    format!("{} {}", m.to_wire(), m.currency().code())
}

pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// "3 h 5 min left", "expired".
pub fn time_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let left = expires_at - now;
    if left <= chrono::Duration::zero() {
        return "expired".into();
    }
    let (days, hours, minutes) = (left.num_days(), left.num_hours() % 24, left.num_minutes() % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "under a minute left".into(),
        (0, 0, m) => format!("{m} min left"),
        (0, h, m) => format!("{h} h {m} min left"),
        (d, h, _) => format!("{d} d {h} h left"),
    }
}

pub fn urgency(u: Option<Urgency>) -> &'static str {
    match u {
        Some(Urgency::Critical) => "critical",
        Some(Urgency::High) => "high",
        Some(Urgency::Medium) => "medium",
        Some(Urgency::Low) => "low",
        None => "none given",
    }
}

fn score(s: Option<Score>) -> String {
    s.map_or_else(|| "none given".into(), |s| s.value().normalize().to_string())
}

fn team_name(teams: &[Team], id: Option<&TeamId>) -> String {
    match id {
        None => "anyone who may approve".into(),
        Some(id) => match teams.iter().find(|t| t.id == *id) {
            Some(t) => format!("{} ({id})", t.name),
            None => id.to_string(),
        },
    }
}

fn person_name(members: &[Member], person: &Person) -> String {
    match person {
        Person::Member(m) => match members.iter().find(|x| x.id == *m) {
            Some(x) => format!("{} ({m})", x.name),
            None => m.to_string(),
        },
        Person::Key(k) => format!("key {k}"),
    }
}

/// "Name (wal_…)", or the id alone when the name is unknown.
pub fn wallet(names: &HashMap<WalletId, String>, id: &WalletId) -> String {
    match names.get(id) {
        Some(name) => format!("{name} ({id})"),
        None => id.to_string(),
    }
}

/// A wallet's name alone (the queue is read at a glance; the detail page shows ids).
fn wallet_short(names: &HashMap<WalletId, String>, id: &WalletId) -> String {
    names.get(id).cloned().unwrap_or_else(|| id.to_string())
}

/// A team's name alone, for the queue.
fn team_short(teams: &[Team], id: Option<&TeamId>) -> String {
    match id {
        None => "any approver".into(),
        Some(id) => teams.iter().find(|t| t.id == *id).map_or_else(|| id.to_string(), |t| t.name.clone()),
    }
}

/// A JSON value as one readable line.
fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max).collect();
    format!("{cut}…")
}

// ---------------------------------------------------------------------------------------------
// The queue

pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

pub struct QueueRow {
    pub href: String,
    pub kind: &'static str,
    /// The link text: amount, currency and description; or a review's task and proposed action.
    pub title: String,
    pub subtitle: String,
    pub status: String,
    pub status_class: String,
    pub urgency: &'static str,
    pub time_left: String,
    pub team: String,
    pub open: bool,
    /// An open approval's id: its row has a checkbox for the bulk buttons.
    pub selectable: Option<String>,
}

impl QueueRow {
    pub fn of(item: &InboxItem, teams: &[Team], names: &HashMap<WalletId, String>, now: DateTime<Utc>) -> Self {
        match item {
            InboxItem::Approval(a) => {
                let approval = &a.approval;
                let details = &approval.transaction_details;
                let description = details.description.as_deref().unwrap_or("no description");
                let from = a.payment.as_ref().map_or(&approval.wallet_id, |p| &p.from);
                QueueRow {
                    href: format!("/dashboard/approvals/{}", approval.id),
                    kind: "Payment",
                    title: format!("{} — {}", money(&details.amount), shorten(description, 120)),
                    subtitle: format!("{} → {}", wallet_short(names, from), wallet_short(names, &details.recipient)),
                    status: approval.status.as_str().to_string(),
                    status_class: approval.status.as_str().to_lowercase(),
                    urgency: urgency(item.urgency()),
                    time_left: if approval.is_open() { time_left(approval.expires_at, now) } else { "—".into() },
                    team: team_short(teams, approval.assigned_team.as_ref()),
                    open: approval.is_open(),
                    selectable: approval.is_open().then(|| approval.id.to_string()),
                }
            }
            InboxItem::Review(r) => QueueRow {
                href: format!("/dashboard/reviews/{}", r.id),
                kind: "Review",
                title: format!("{}: {}", r.task_type, shorten(&r.proposed_action, 120)),
                subtitle: "Proposed action".into(),
                status: r.status.as_str().to_uppercase(),
                status_class: r.status.as_str().to_string(),
                urgency: urgency(Some(r.urgency)),
                time_left: if r.is_open() { time_left(r.expires_at, now) } else { "—".into() },
                team: team_short(teams, r.assigned_team.as_ref()),
                open: r.is_open(),
                selectable: None,
            },
        }
    }
}

#[derive(Template)]
#[template(path = "queue.html")]
pub struct QueuePage {
    pub chrome: Chrome,
    pub rows: Vec<QueueRow>,
    pub statuses: Vec<Choice>,
    pub teams: Vec<Choice>,
    pub wallets: Vec<Choice>,
    pub urgencies: Vec<Choice>,
    pub stamp: String,
    pub pulse: String,
    pub truncated: bool,
    pub filtered: bool,
    pub error: Option<String>,
}

/// One approval of a bulk decision, as its results page shows it.
pub struct BulkRow {
    pub id: String,
    pub href: String,
    pub ok: bool,
    /// The approval's status after the vote, or the refusal with its API error code.
    pub outcome: String,
}

/// `POST /dashboard/approvals/bulk`: what happened to each approval selected.
#[derive(Template)]
#[template(path = "bulk.html")]
pub struct BulkPage {
    pub chrome: Chrome,
    pub decision: &'static str,
    pub rows: Vec<BulkRow>,
    pub decided: usize,
    pub refused: usize,
}

pub fn status_choices(selected: InboxStatus) -> Vec<Choice> {
    InboxStatus::ALL
        .into_iter()
        .map(|s| Choice {
            value: s.as_str().into(),
            label: match s {
                InboxStatus::Open => "Open (pending or escalated)".into(),
                other => {
                    let text = other.as_str();
                    text[..1].to_uppercase() + &text[1..]
                }
            },
            selected: s == selected,
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// One approval

pub struct Row {
    pub label: &'static str,
    pub value: String,
}

pub struct Pair {
    pub key: String,
    pub value: String,
}

pub struct VoteRow {
    pub who: String,
    pub decision: &'static str,
    pub note: String,
    pub at: String,
    /// Made with a passkey (step-up).
    pub passkey: bool,
}

pub struct CommentRow {
    pub who: String,
    pub at: String,
    pub body: String,
}

fn comment_rows(comments: &[Comment], members: &[Member]) -> Vec<CommentRow> {
    comments
        .iter()
        .map(|c| CommentRow {
            who: match &c.author.member_id {
                Some(m) => person_name(members, &Person::Member(m.clone())),
                None => format!("key {}", c.author.key_id),
            },
            at: when(c.created_at),
            body: c.body.clone(),
        })
        .collect()
}

pub struct HistoryRow {
    pub at: String,
    pub action: String,
    pub actor: String,
    pub details: String,
}

fn history_rows(history: &[AuditEntry], members: &[Member]) -> Vec<HistoryRow> {
    history
        .iter()
        .map(|h| {
            let actor = match Person::parse(&h.actor) {
                Some(p) => person_name(members, &p),
                None => h.actor.clone(),
            };
            let details = match &h.details {
                serde_json::Value::Object(m) if m.is_empty() => String::new(),
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| format!("{k}: {}", shorten(&json_text(v), 200)))
                    .collect::<Vec<_>>()
                    .join(" · "),
                other => shorten(&json_text(other), 200),
            };
            HistoryRow { at: when(h.created_at), action: h.action.clone(), actor, details }
        })
        .collect()
}

fn metadata(map: &serde_json::Map<String, serde_json::Value>) -> Vec<Pair> {
    map.iter().map(|(k, v)| Pair { key: k.clone(), value: json_text(v) }).collect()
}

fn vote_rows(votes: &[Vote], members: &[Member]) -> Vec<VoteRow> {
    votes
        .iter()
        .map(|v| VoteRow {
            who: person_name(members, &v.voter()),
            decision: match v.decision {
                VoteDecision::Approve => "approved",
                VoteDecision::Reject => "rejected",
            },
            note: v.note.clone().unwrap_or_default(),
            at: when(v.at),
            passkey: v.passkey.is_some(),
        })
        .collect()
}

/// What a decision just did, shown on the confirmation page of the review link that made it.
pub fn flash(done: Option<&str>) -> Option<&'static str> {
    match done? {
        "approve" => Some("Your approval was recorded."),
        "reject" => Some("Rejected."),
        "modify" => Some("Approved as modified."),
        "escalate" => Some("Escalated."),
        _ => None,
    }
}

/// The viewer's own part in an approval, read from what the server holds (their person's vote,
/// or an escalation their key made), never from the address: a link cannot make a page claim a
/// decision nobody made.
pub fn own_part_in_approval(approval: &Approval, history: &[AuditEntry], viewer: &ApiKey) -> Option<&'static str> {
    let person = viewer.person();
    if let Some(vote) = approval.votes.iter().find(|v| v.voter() == person) {
        return Some(match (vote.decision, vote.modified_action.is_some()) {
            (VoteDecision::Approve, true) => "You approved it as modified.",
            (VoteDecision::Approve, false) => "Your approval was recorded.",
            (VoteDecision::Reject, _) => "You rejected it.",
        });
    }
    let escalated_by_viewer = history.iter().any(|e| e.action == "approval.escalated" && e.actor == viewer.id.as_str());
    escalated_by_viewer.then_some("You escalated it.")
}

/// The viewer's own part in a review, from the server's record of it.
pub fn own_part_in_review(review: &Review, history: &[AuditEntry], viewer: &ApiKey) -> Option<&'static str> {
    if let Some(decision) = review.decision.as_ref().filter(|d| d.reviewer == viewer.person()) {
        return Some(match decision.decision_type {
            DecisionType::Approve => "Your approval was recorded.",
            DecisionType::Reject => "You rejected it.",
            DecisionType::Modify => "You approved it as modified.",
        });
    }
    let escalated_by_viewer = history.iter().any(|e| e.action == "review.escalated" && e.actor == viewer.id.as_str());
    escalated_by_viewer.then_some("You escalated it.")
}

#[derive(Template)]
#[template(path = "approval.html")]
pub struct ApprovalPage {
    pub chrome: Chrome,
    pub id: String,
    pub title: String,
    pub status: String,
    pub status_class: String,
    pub time_left: String,
    pub open: bool,
    pub transaction: Vec<Row>,
    pub agent: Vec<Row>,
    pub policy: Vec<Row>,
    pub assignment: Vec<Row>,
    pub votes: Vec<VoteRow>,
    pub quorum: String,
    pub metadata: Vec<Pair>,
    pub history: Vec<HistoryRow>,
    pub comments: Vec<CommentRow>,
    pub comments_truncated: bool,
    pub teams: Vec<Choice>,
    pub flash: Option<&'static str>,
    pub error: Option<String>,
    /// What the reviewer typed, kept when a decision (or a comment) was refused.
    pub note: String,
    pub amount: String,
    pub comment: String,
    /// Approving or modifying above this amount needs the reviewer's passkey (`step_up_limit`:
    /// the bare decimal, for the page's script; `asked`: the amount Approve would execute).
    pub step_up_above: Option<String>,
    pub step_up_limit: String,
    pub asked: String,
    /// Approve may also make an "always allow" rule (a payment's approval, one approver).
    pub always_allow_offered: bool,
}

impl ApprovalPage {
    pub fn of(detail: &ApprovalDetail, chrome: Chrome, now: DateTime<Utc>) -> Self {
        let ApprovalDetail {
            approval,
            payment,
            history,
            teams,
            members,
            wallet_names,
            step_up_above,
            comments,
            comments_truncated,
        } = detail;
        let details = &approval.transaction_details;
        let mut transaction = vec![
            Row { label: "From", value: wallet(wallet_names, &payment.from) },
            Row { label: "To", value: wallet(wallet_names, &details.recipient) },
            Row { label: "Amount", value: details.amount.to_wire() },
            Row { label: "Currency", value: details.amount.currency().code().to_string() },
        ];
        if let Some(original) = approval.original_amount.as_ref().or(payment.original_amount.as_ref()) {
            transaction.push(Row { label: "Amount asked for", value: money(original) });
        }
        transaction.extend([
            Row { label: "Description", value: details.description.clone().unwrap_or_else(|| "none".into()) },
            Row { label: "Payment", value: format!("{} ({})", payment.id, payment.status().as_str()) },
            Row { label: "Approval", value: approval.id.to_string() },
        ]);
        ApprovalPage {
            chrome,
            id: approval.id.to_string(),
            title: format!("{} — {}", money(&details.amount), details.description.as_deref().unwrap_or("payment")),
            status: approval.status.as_str().into(),
            status_class: approval.status.as_str().to_lowercase(),
            time_left: if approval.is_open() { time_left(approval.expires_at, now) } else { String::new() },
            open: approval.is_open(),
            transaction,
            agent: agent_rows(payment),
            policy: vec![
                Row { label: "Rule", value: payment.decision.rule.clone() },
                Row { label: "Reason", value: approval.reason.clone() },
                Row {
                    label: "Policy",
                    value: approval.policy_id.as_ref().map_or_else(|| "none".into(), ToString::to_string),
                },
            ],
            assignment: assignment_rows(approval, teams),
            votes: vote_rows(&approval.votes, members),
            quorum: quorum(approval),
            metadata: metadata(&payment.metadata),
            history: history_rows(history, members),
            comments: comment_rows(comments, members),
            comments_truncated: *comments_truncated,
            teams: team_choices(teams),
            flash: None,
            error: None,
            note: String::new(),
            amount: String::new(),
            comment: String::new(),
            step_up_above: step_up_above.map(|a| format!("{a} {}", details.amount.currency().code())),
            step_up_limit: step_up_above.map(|a| a.to_string()).unwrap_or_default(),
            asked: details.amount.to_wire(),
            always_allow_offered: approval.refund_id.is_none() && approval.required_approvals <= 1,
        }
    }
}

fn team_choices(teams: &[Team]) -> Vec<Choice> {
    teams.iter().map(|t| Choice { value: t.id.to_string(), label: t.name.clone(), selected: false }).collect()
}

fn agent_rows(payment: &Payment) -> Vec<Row> {
    vec![
        Row { label: "Reasoning", value: payment.agent_reasoning.clone().unwrap_or_else(|| "none given".into()) },
        Row { label: "Confidence", value: score(payment.confidence_score) },
        Row { label: "Risk score", value: score(payment.risk_score) },
        Row { label: "Urgency", value: urgency(payment.urgency).into() },
    ]
}

fn assignment_rows(approval: &Approval, teams: &[Team]) -> Vec<Row> {
    let mut rows = vec![
        Row { label: "Assigned team", value: team_name(teams, approval.assigned_team.as_ref()) },
        Row { label: "Expires", value: when(approval.expires_at) },
        Row { label: "Created", value: when(approval.created_at) },
    ];
    if !approval.escalation_chain.is_empty() {
        let chain: Vec<String> = approval.escalation_chain.iter().map(|t| team_name(teams, Some(t))).collect();
        rows.push(Row { label: "Escalation chain", value: chain.join(" → ") });
    }
    if let Some(at) = approval.resolved_at {
        rows.push(Row { label: "Resolved", value: when(at) });
    }
    rows
}

fn quorum(approval: &Approval) -> String {
    let approvals = approval.votes.iter().filter(|v| v.decision == VoteDecision::Approve).count();
    format!("{approvals} of {} approvals needed", approval.required_approvals.max(1))
}

// ---------------------------------------------------------------------------------------------
// One review

#[derive(Template)]
#[template(path = "review.html")]
pub struct ReviewPage {
    pub chrome: Chrome,
    pub id: String,
    pub title: String,
    pub proposed_action: String,
    pub status: String,
    pub status_class: String,
    pub time_left: String,
    pub open: bool,
    pub about: Vec<Row>,
    pub decision: Vec<Row>,
    pub metadata: Vec<Pair>,
    pub history: Vec<HistoryRow>,
    pub teams: Vec<Choice>,
    pub flash: Option<&'static str>,
    pub error: Option<String>,
    pub note: String,
    pub modified_action: String,
}

impl ReviewPage {
    pub fn of(detail: &ReviewDetail, chrome: Chrome, now: DateTime<Utc>) -> Self {
        let ReviewDetail { review, history, teams, members } = detail;
        ReviewPage {
            chrome,
            id: review.id.to_string(),
            title: format!("Review: {}", review.task_type),
            proposed_action: review.proposed_action.clone(),
            status: review.status.as_str().to_uppercase(),
            status_class: review.status.as_str().into(),
            time_left: if review.is_open() { time_left(review.expires_at, now) } else { String::new() },
            open: review.is_open(),
            about: review_rows(review, teams),
            decision: decision_rows(review),
            metadata: metadata(&review.metadata),
            history: history_rows(history, members),
            teams: team_choices(teams),
            flash: None,
            error: None,
            note: String::new(),
            modified_action: String::new(),
        }
    }
}

fn review_rows(review: &Review, teams: &[Team]) -> Vec<Row> {
    vec![
        Row { label: "Task type", value: review.task_type.clone() },
        Row {
            label: "Agent's reasoning",
            value: review.agent_reasoning.clone().unwrap_or_else(|| "none given".into()),
        },
        Row { label: "Confidence", value: score(review.confidence_score) },
        Row { label: "Urgency", value: urgency(Some(review.urgency)).into() },
        Row { label: "Framework", value: review.framework.clone().unwrap_or_else(|| "none given".into()) },
        Row { label: "Assigned team", value: team_name(teams, review.assigned_team.as_ref()) },
        Row { label: "Expires", value: when(review.expires_at) },
        Row { label: "Review", value: review.id.to_string() },
    ]
}

fn decision_rows(review: &Review) -> Vec<Row> {
    let Some(d) = &review.decision else { return Vec::new() };
    let mut rows = vec![
        Row {
            label: "Decision",
            value: match d.decision_type {
                DecisionType::Approve => "approved",
                DecisionType::Reject => "rejected",
                DecisionType::Modify => "modified",
            }
            .into(),
        },
        Row { label: "By", value: format!("{} ({})", d.reviewer_name, d.reviewer) },
        Row { label: "At", value: when(d.timestamp) },
    ];
    if let Some(a) = &d.modified_action {
        rows.push(Row { label: "Modified action", value: a.clone() });
    }
    if let Some(n) = &d.notes {
        rows.push(Row { label: "Notes", value: n.clone() });
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Sign-in, review links, the cross-site hop

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub next: String,
    pub message: Option<String>,
    pub error: Option<String>,
}

/// The one-time sign-in link's page (`start`): a button, nothing spent by looking.
#[derive(Template)]
#[template(path = "start.html")]
pub struct StartPage {
    pub chrome: Chrome,
    pub csrf: String,
    pub token: String,
}

#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub token: String,
    pub id: String,
    pub title: String,
    pub status: String,
    pub status_class: String,
    pub time_left: String,
    pub open: bool,
    pub summary: Vec<Row>,
    pub used: bool,
    pub done: Option<&'static str>,
    pub error: Option<String>,
    pub note: String,
}

impl ConfirmPage {
    pub fn of(detail: &ApprovalDetail, token: &str, chrome: Chrome, now: DateTime<Utc>) -> Self {
        let page = ApprovalPage::of(detail, chrome, now);
        let wanted = ["From", "To", "Amount", "Currency", "Description", "Reasoning", "Reason", "Assigned team"];
        let mut rows: Vec<Row> =
            [page.transaction, page.agent, page.policy, page.assignment].into_iter().flatten().collect();
        rows.retain(|r| wanted.contains(&r.label));
        let summary = rows;
        ConfirmPage {
            chrome: page.chrome,
            token: token.to_string(),
            id: page.id,
            title: page.title,
            status: page.status,
            status_class: page.status_class,
            time_left: page.time_left,
            open: page.open,
            summary,
            used: false,
            done: None,
            error: None,
            note: String::new(),
        }
    }
}

/// Reloads `url` from this site's own page (see `auth::Visitor::to_sign_in`).
#[derive(Template)]
#[template(path = "refresh.html")]
pub struct RefreshPage {
    pub chrome: Chrome,
    pub url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_naturally() {
        let now = Utc::now();
        let h = |s: i64| time_left(now + chrono::Duration::seconds(s), now);
        assert_eq!(h(-5), "expired");
        assert_eq!(h(30), "under a minute left");
        assert_eq!(h(5 * 60 + 3), "5 min left");
        assert_eq!(h(3 * 3600 + 120), "3 h 2 min left");
        assert_eq!(h(2 * 86400 + 3600), "2 d 1 h left");
    }

    #[test]
    fn every_value_is_escaped_in_the_pages() {
        let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>";
        let page = RefreshPage { chrome: Chrome::anonymous(), url: hostile.into() };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert") && !html.contains("<img src=x"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{html}");
        let page = SignInPage {
            chrome: Chrome::anonymous(),
            csrf: hostile.into(),
            next: hostile.into(),
            message: Some(hostile.into()),
            error: Some(hostile.into()),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<img src=x"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
    }
}
