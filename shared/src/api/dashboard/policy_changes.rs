//! `/dashboard/policy-changes`: policy, routing-rule and settings changes waiting for another
//! person (four-eyes; docs/api.md, "Four-eyes on policy changes"), each with what it changes
//! (field: before → after), and the decisions on them. Decisions call the same service methods
//! as the API, so the same rules hold: the requester cannot approve their own change (they may
//! withdraw it), a decided change is decided, and the approver needs what the direct call needs.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use super::auth::Reviewer;
use super::form::{Form, PathParam};
use super::page::{html, readable, see_other, DashError, Reply};
use super::views::{when, Chrome};
use crate::api::policy_changes::parse_change;
use crate::api::wire::optional_text;
use crate::api::AppState;
use crate::domain::ids::PolicyChangeId;
use crate::domain::input::{InputError, MAX_NOTE_CHARS};
use crate::domain::policy_change::{ChangeStatus, PolicyChange};
use crate::error::AppError;
use crate::service::{ChangeFilter, PageRequest};

/// How many changes one page lists.
const PAGE_SIZE: usize = 50;

pub struct DiffRow {
    pub field: String,
    pub before: String,
    pub after: String,
}

pub struct ChangeRow {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub target: String,
    pub requested_by: String,
    pub requested_at: String,
    pub decided: String,
    /// While pending: until when it may be approved (empty when it has no deadline).
    pub expires: String,
    pub diff: Vec<DiffRow>,
    /// The viewer asked for it: they may withdraw it, never approve it.
    pub own: bool,
    pub pending: bool,
}

pub struct StatusChoice {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "policy_changes.html")]
pub struct PolicyChangesPage {
    pub chrome: Chrome,
    pub rows: Vec<ChangeRow>,
    pub statuses: Vec<StatusChoice>,
    pub status: &'static str,
    pub error: Option<String>,
}

/// A JSON value as a reader sees it: text without quotes, `—` for nothing.
fn shown(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn row(change: PolicyChange, viewer: &crate::domain::people::Person) -> ChangeRow {
    let t = &change.target;
    let mut target: Vec<String> = Vec::new();
    if let Some(w) = &t.wallet_id {
        target.push(format!("wallet {w}"));
    }
    if let Some(p) = &t.policy_id {
        target.push(format!("policy {p}"));
    }
    if let Some(r) = &t.rule_id {
        target.push(format!("rule {r}"));
    }
    let decided = match (&change.decided_by, change.decided_at) {
        (Some(by), Some(at)) => format!("{} by {} ({}) at {}", change.status.as_str(), by.person, by.key_id, when(at)),
        _ => String::new(),
    };
    ChangeRow {
        id: change.id.to_string(),
        kind: change.kind.as_str().into(),
        status: change.status.as_str().into(),
        target: if target.is_empty() { "the organisation".into() } else { target.join(", ") },
        requested_by: format!("{} ({})", change.requested_by.person, change.requested_by.key_id),
        requested_at: when(change.requested_at),
        decided,
        expires: match (change.status, change.expires_at) {
            (crate::domain::policy_change::ChangeStatus::Pending, Some(at)) => when(at),
            _ => String::new(),
        },
        diff: change
            .diff
            .iter()
            .map(|d| DiffRow { field: d.field.clone(), before: shown(&d.before), after: shown(&d.after) })
            .collect(),
        own: change.requested_by.person == *viewer,
        pending: change.status == ChangeStatus::Pending,
    }
}

/// `?status=`: pending when absent or blank.
fn status_of(query: Option<&str>) -> Result<ChangeStatus, DashError> {
    let asked = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "status")
        .map(|(_, value)| value.into_owned())
        .filter(|v| !v.is_empty());
    match asked {
        None => Ok(ChangeStatus::Pending),
        Some(text) => ChangeStatus::parse(&text)
            .ok_or_else(|| DashError::bad_request("The status must be pending, applied or rejected.")),
    }
}

async fn page(
    s: &AppState,
    reviewer: &Reviewer,
    status: ChangeStatus,
    error: Option<String>,
) -> Result<PolicyChangesPage, DashError> {
    let viewer = reviewer.caller().key()?.person();
    let request = PageRequest { limit: PAGE_SIZE, after: None };
    let changes = s.list_policy_changes(reviewer.caller(), &ChangeFilter { status: Some(status) }, &request).await?;
    let statuses = ChangeStatus::ALL
        .into_iter()
        .map(|st| StatusChoice {
            value: st.as_str(),
            label: match st {
                ChangeStatus::Pending => "Waiting for approval",
                ChangeStatus::Applied => "Applied",
                ChangeStatus::Rejected => "Rejected or withdrawn",
            },
            selected: st == status,
        })
        .collect();
    Ok(PolicyChangesPage {
        chrome: reviewer.chrome(),
        rows: changes.data.into_iter().map(|c| row(c, &viewer)).collect(),
        statuses,
        status: status.as_str(),
        error,
    })
}

/// `GET /dashboard/policy-changes[?status=]`: pending changes by default.
pub async fn list(State(s): State<AppState>, reviewer: Reviewer, RawQuery(query): RawQuery) -> Reply {
    let status = status_of(query.as_deref())?;
    Ok(html(StatusCode::OK, &page(&s, &reviewer, status, None).await?))
}

/// The decision a form asks for, made through the service.
async fn decide(s: &AppState, reviewer: &Reviewer, id: &PolicyChangeId, form: &Form) -> Result<(), AppError> {
    let caller = reviewer.caller();
    match form.get("action") {
        Some("approve") => s.approve_policy_change(caller, id, parse_change).await.map(drop),
        Some("reject") => {
            let reason = optional_text("reason", form.get("reason"), MAX_NOTE_CHARS)?;
            s.reject_policy_change(caller, id, reason).await.map(drop)
        }
        _ => Err(InputError::invalid("action", "must be approve or reject").into()),
    }
}

/// `POST /dashboard/policy-changes/{id}/decide` (`action` approve|reject, `reason`): back to the
/// list, or the list with the refusal (its API error code) on it.
pub async fn decide_change(
    State(s): State<AppState>,
    reviewer: Reviewer,
    PathParam(id): PathParam,
    form: Form,
) -> Reply {
    reviewer.check_form(&form)?;
    let id = PolicyChangeId::parse(&id).ok_or_else(DashError::not_found)?;
    match decide(&s, &reviewer, &id, &form).await {
        Ok(()) => Ok(see_other("/dashboard/policy-changes", vec![])),
        Err(e) => {
            let (status, message) = readable(&e);
            if status.is_server_error() || status == StatusCode::NOT_FOUND {
                return Err(DashError::from(e));
            }
            Ok(html(status, &page(&s, &reviewer, ChangeStatus::Pending, Some(message)).await?))
        }
    }
}
