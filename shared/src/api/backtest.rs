//! `POST /v1/wallets/{id}/policies/backtest`: a draft policy tried on the wallet's past payments.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::extract::{Auth, Body, Ids};
use super::policies::PolicyBody;
use super::wire;
use super::AppState;
use crate::domain::backtest::{draft_field, Window};
use crate::domain::ids::{PolicyId, WalletId};
use crate::domain::input::InputError;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::service::BacktestRequest;

/// A backtest as sent: `policy` takes the fields `POST /v1/wallets/{id}/policies` takes
/// (`name` optional here).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BacktestBody {
    policy: Option<PolicyBody>,
    /// A policy of this wallet the draft stands in for; without it the draft is added.
    #[schema(example = "pol_01JEA5CZSN4RCA53RNF39CQ0M1")]
    replace: Option<String>,
    /// RFC 3339: payments made at or after it are replayed.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-11-01T00:00:00Z")]
    since: Option<Value>,
    /// RFC 3339: payments made before it are replayed; at most 93 days after `since`.
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-12-01T00:00:00Z")]
    until: Option<Value>,
}

fn time(field: &'static str, value: Option<&Value>) -> Result<DateTime<Utc>, InputError> {
    let value = value.ok_or(InputError::Missing { field })?;
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| InputError::invalid(field, "must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z"))
}

impl BacktestBody {
    pub fn try_into_domain(self) -> Result<BacktestRequest, InputError> {
        let policy = self.policy.ok_or(InputError::Missing { field: "policy" })?;
        let draft = policy.try_into_domain().map_err(|e| {
            let field = draft_field(e.field());
            e.for_field(field)
        })?;
        let replace = self
            .replace
            .as_deref()
            .map(|id| {
                PolicyId::parse(id).ok_or_else(|| {
                    InputError::invalid(
                        "replace",
                        format!("{:?} is not a policy id", id.chars().take(64).collect::<String>()),
                    )
                })
            })
            .transpose()?;
        let window = Window::new(time("since", self.since.as_ref())?, time("until", self.until.as_ref())?)?;
        Ok(BacktestRequest { draft, replace, window })
    }
}

/// `POST /v1/wallets/{id}/policies/backtest`: what the draft would have done to the window's
/// payments, beside what the current policies do; written nowhere.
pub async fn backtest(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    Body(b): Body,
) -> AppResult<impl IntoResponse> {
    c.authorize(Permission::WalletsRead)?;
    let wallet = ids.parse("id", WalletId::parse, "wallet")?;
    let request = wire::parse::<BacktestBody>(b)?.try_into_domain()?;
    Ok(Json(s.backtest_policies(&c, &wallet, request).await?))
}
