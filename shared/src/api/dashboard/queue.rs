//! `GET /dashboard`: the queue, with its filters; `GET /dashboard/pulse`: whether it changed.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;

use super::auth::{Reviewer, Visitor};
use super::form::Form;
use super::page::{html, secure_headers, DashError, Reply};
use super::views::{status_choices, urgency, wallet, Choice, QueuePage, QueueRow};
use crate::api::AppState;
use crate::domain::ids::{TeamId, WalletId};
use crate::domain::payment::Urgency;
use crate::service::{InboxFilter, InboxStatus};

const URGENCIES: [Urgency; 4] = [Urgency::Critical, Urgency::High, Urgency::Medium, Urgency::Low];

/// The filters in the query string; a value that names nothing is refused (400 page).
fn filter(query: Option<&str>) -> Result<InboxFilter, DashError> {
    let fields = Form::parse(query.unwrap_or("").as_bytes())?;
    let bad = |what: &str| DashError::bad_request(format!("The {what} filter is not one this dashboard offers."));
    Ok(InboxFilter {
        status: fields
            .get("status")
            .map(|s| InboxStatus::parse(s).ok_or_else(|| bad("status")))
            .transpose()?
            .unwrap_or_default(),
        team: fields.get("team").map(|t| TeamId::parse(t).ok_or_else(|| bad("team"))).transpose()?,
        wallet: fields.get("wallet").map(|w| WalletId::parse(w).ok_or_else(|| bad("wallet"))).transpose()?,
        urgency: fields.get("urgency").map(|u| Urgency::parse(u).ok_or_else(|| bad("urgency"))).transpose()?,
    })
}

pub async fn show(State(s): State<AppState>, reviewer: Reviewer, RawQuery(query): RawQuery) -> Reply {
    let filter = filter(query.as_deref())?;
    let inbox = s.inbox(reviewer.caller(), &filter).await?;
    let now = Utc::now();
    let mut wallets: Vec<Choice> = inbox
        .wallets
        .iter()
        .map(|w| Choice {
            value: w.to_string(),
            label: wallet(&inbox.wallet_names, w),
            selected: filter.wallet.as_ref() == Some(w),
        })
        .collect();
    if let Some(w) = filter.wallet.as_ref().filter(|w| !inbox.wallets.contains(w)) {
        wallets.push(Choice { value: w.to_string(), label: w.to_string(), selected: true });
    }
    let page = QueuePage {
        chrome: reviewer.chrome(),
        rows: inbox.items.iter().map(|i| QueueRow::of(i, &inbox.teams, &inbox.wallet_names, now)).collect(),
        statuses: status_choices(filter.status),
        teams: inbox
            .teams
            .iter()
            .map(|t| Choice {
                value: t.id.to_string(),
                label: t.name.clone(),
                selected: filter.team.as_ref() == Some(&t.id),
            })
            .collect(),
        wallets,
        urgencies: URGENCIES
            .iter()
            .map(|u| Choice {
                value: urgency(Some(*u)).into(),
                label: urgency(Some(*u)).into(),
                selected: filter.urgency == Some(*u),
            })
            .collect(),
        stamp: inbox.stamp,
        pulse: format!("/dashboard/pulse?{}", query.as_deref().unwrap_or("")),
        truncated: inbox.truncated,
        filtered: filter.status != InboxStatus::Open
            || filter.team.is_some()
            || filter.wallet.is_some()
            || filter.urgency.is_some(),
        error: None,
    };
    Ok(html(StatusCode::OK, &page))
}

/// `{"stamp": "..."}` for the queue with these filters; 401 when not signed in.
pub async fn pulse(State(s): State<AppState>, visitor: Visitor, RawQuery(query): RawQuery) -> Response {
    let mut response = match (&visitor.session, filter(query.as_deref())) {
        (None, _) => (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"signedIn": false}))).into_response(),
        (Some(_), Err(e)) => (e.status, Json(serde_json::json!({"error": e.message}))).into_response(),
        (Some(session), Ok(filter)) => match s.inbox_stamp(&session.caller, &filter).await {
            Ok(stamp) => Json(serde_json::json!({"stamp": stamp})).into_response(),
            Err(e) => {
                let (status, message) = super::page::readable(&e);
                (status, Json(serde_json::json!({"error": message}))).into_response()
            }
        },
    };
    secure_headers(&mut response);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
