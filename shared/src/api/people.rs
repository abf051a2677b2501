//! `/v1/members`, `/v1/teams` and `/v1/routing-rules` (also at `/routing-rules`, the Humancheck
//! spelling: `assign_to_team_id`, `is_active`, snake_case condition fields).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::extract::{Auth, Body, Ids};
use super::policy_changes::answer;
use super::wire::{self, present, respond, whole_list};
use super::AppState;
use crate::domain::ids::{MemberId, RoutingRuleId, TeamId};
use crate::domain::input::{self, InputError};
use crate::domain::notification::is_slack_id;
use crate::domain::permission::Permission;
use crate::domain::routing::Conditions;
use crate::error::AppResult;
use crate::service::{ChangeRequest, MemberPatch, NewMember, NewRoutingRule, NewTeam, RoutingRulePatch, TeamPatch};

const MAX_TEAM_MEMBERS: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberBody {
    name: String,
    email: String,
}

impl MemberBody {
    pub fn try_into_domain(self) -> Result<NewMember, InputError> {
        let email = input::bounded_text("email", self.email.trim(), 254)?;
        let well_formed =
            email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
        if !well_formed || email.contains(char::is_whitespace) {
            return Err(InputError::invalid("email", "must be an email address"));
        }
        Ok(NewMember { name: input::name("name", &self.name)?, email })
    }
}

fn member_ids(ids: &[String]) -> Result<Vec<MemberId>, InputError> {
    if ids.len() > MAX_TEAM_MEMBERS {
        return Err(InputError::invalid("members", format!("must list at most {MAX_TEAM_MEMBERS} members")));
    }
    let mut out: Vec<MemberId> = Vec::new();
    for id in ids {
        let id =
            MemberId::parse(id).ok_or_else(|| InputError::invalid("members", format!("{id:?} is not a member id")))?;
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    name: String,
    #[serde(default)]
    members: Vec<String>,
}

impl TeamBody {
    pub fn try_into_domain(self) -> Result<NewTeam, InputError> {
        Ok(NewTeam { name: input::name("name", &self.name)?, members: member_ids(&self.members)? })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[serde(rename_all = "camelCase")]
pub struct TeamPatchBody {
    name: Option<String>,
    members: Option<Vec<String>>,
    /// A Slack channel id (`C…`) for the team's requests, or `null` to clear it; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    slack_channel: Option<Value>,
}

/// `Some(None)` for `null`, `Some(Some(id))` for an id, `None` when absent.
fn optional_slack_id(field: &'static str, value: Option<Value>) -> Result<Option<Option<String>>, InputError> {
    match value {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(text)) if is_slack_id(&text) => Ok(Some(Some(text))),
        Some(_) => Err(InputError::invalid(field, "must be a Slack id (letters and digits) or null")),
    }
}

impl TeamPatchBody {
    pub fn try_into_domain(self) -> Result<TeamPatch, InputError> {
        Ok(TeamPatch {
            name: self.name.as_deref().map(|n| input::name("name", n)).transpose()?,
            members: self.members.as_deref().map(member_ids).transpose()?,
            slack_channel: optional_slack_id("slackChannel", self.slack_channel)?,
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MemberPatchBody {
    /// The member's Slack user id (`U…`), or `null` to unlink it; absent: unchanged.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    slack_user_id: Option<Value>,
}

impl MemberPatchBody {
    pub fn try_into_domain(self) -> Result<MemberPatch, InputError> {
        Ok(MemberPatch { slack_user_id: optional_slack_id("slackUserId", self.slack_user_id)? })
    }
}

/// Both spellings: `assignToTeam`/`assign_to_team_id`, `isActive`/`is_active`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuleBody {
    name: Option<String>,
    priority: Option<i64>,
    conditions: Option<Value>,
    #[serde(alias = "assign_to_team_id", alias = "assignToTeamId", alias = "assign_to_team")]
    assign_to_team: Option<String>,
    #[serde(alias = "is_active")]
    is_active: Option<bool>,
}

fn team_field(text: &str) -> Result<TeamId, InputError> {
    TeamId::parse(text).ok_or_else(|| InputError::invalid("assignToTeam", "is not a team id"))
}

impl RuleBody {
    pub fn try_into_patch(self) -> Result<RoutingRulePatch, InputError> {
        Ok(RoutingRulePatch {
            name: self.name.as_deref().map(|n| input::name("name", n)).transpose()?,
            priority: self.priority,
            conditions: self.conditions.as_ref().map(Conditions::parse).transpose()?,
            assign_to_team: self.assign_to_team.as_deref().map(team_field).transpose()?,
            is_active: self.is_active,
        })
    }

    pub fn try_into_domain(self) -> Result<NewRoutingRule, InputError> {
        let patch = self.try_into_patch()?;
        Ok(NewRoutingRule {
            name: patch.name.ok_or(InputError::Missing { field: "name" })?,
            priority: patch.priority.unwrap_or(0),
            conditions: match patch.conditions {
                Some(c) => c,
                None => Conditions::parse(&serde_json::json!({}))?,
            },
            assign_to_team: patch.assign_to_team.ok_or_else(|| {
                InputError::invalid("assignToTeam", "is required (assign_to_team_id in the Humancheck spelling)")
            })?,
            is_active: patch.is_active.unwrap_or(true),
        })
    }
}

pub async fn create_member(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.organiser(Permission::MembersWrite)?;
    let request = wire::parse::<MemberBody>(b)?.try_into_domain()?;
    Ok(respond(StatusCode::CREATED, &s.create_member(&c, request).await?))
}

/// `PATCH /v1/members/{id} {"slackUserId"}` (admin).
pub async fn update_member(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    Body(b): Body,
) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::Admin)?;
    let id = ids.parse("id", MemberId::parse, "member")?;
    let patch = wire::parse::<MemberPatchBody>(b)?.try_into_domain()?;
    Ok(Json(s.update_member(&c, &id, patch).await?))
}

pub async fn list_members(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::MembersWrite)?;
    Ok(whole_list(s.list_members(&c).await?))
}

pub async fn create_team(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.organiser(Permission::MembersWrite)?;
    let request = wire::parse::<TeamBody>(b)?.try_into_domain()?;
    Ok(respond(StatusCode::CREATED, &s.create_team(&c, request).await?))
}

pub async fn list_teams(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::MembersWrite)?;
    Ok(whole_list(s.list_teams(&c).await?))
}

pub async fn update_team(
    State(s): State<AppState>,
    Auth(c): Auth,
    ids: Ids,
    Body(b): Body,
) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::MembersWrite)?;
    let id = ids.parse("id", TeamId::parse, "team")?;
    let patch = wire::parse::<TeamPatchBody>(b)?.try_into_domain()?;
    Ok(Json(s.update_team(&c, &id, patch).await?))
}

/// `POST /v1/routing-rules` as a new rule.
pub(super) fn rule_create(body: Value) -> AppResult<NewRoutingRule> {
    Ok(wire::parse::<RuleBody>(body)?.try_into_domain()?)
}

/// `PATCH /v1/routing-rules/{id}` as a rule change.
pub(super) fn rule_patch(body: Value) -> AppResult<RoutingRulePatch> {
    Ok(wire::parse::<RuleBody>(body)?.try_into_patch()?)
}

/// 201 with the rule, or 202 with the pending change while four-eyes is on.
pub async fn create_rule(State(s): State<AppState>, Auth(c): Auth, Body(b): Body) -> AppResult<Response> {
    c.organiser(Permission::PoliciesWrite)?;
    let request = rule_create(b.clone())?;
    Ok(answer(StatusCode::CREATED, s.submit_change(&c, ChangeRequest::RuleCreate(request), b).await?))
}

pub async fn list_rules(State(s): State<AppState>, Auth(c): Auth) -> AppResult<impl IntoResponse> {
    c.organiser(Permission::PoliciesWrite)?;
    Ok(whole_list(s.list_routing_rules(&c).await?))
}

fn rule_id(ids: &Ids) -> AppResult<RoutingRuleId> {
    ids.parse("id", RoutingRuleId::parse, "routing rule")
}

/// 200 with the rule, or 202 with the pending change while four-eyes is on.
pub async fn update_rule(State(s): State<AppState>, Auth(c): Auth, ids: Ids, Body(b): Body) -> AppResult<Response> {
    c.organiser(Permission::PoliciesWrite)?;
    let rule = rule_id(&ids)?;
    let patch = rule_patch(b.clone())?;
    Ok(answer(StatusCode::OK, s.submit_change(&c, ChangeRequest::RuleUpdate { rule, patch }, b).await?))
}

/// 200 `{"id", "deleted": true}`, or 202 with the pending change while four-eyes is on.
pub async fn delete_rule(State(s): State<AppState>, Auth(c): Auth, ids: Ids) -> AppResult<Response> {
    c.organiser(Permission::PoliciesWrite)?;
    let rule = rule_id(&ids)?;
    Ok(answer(StatusCode::OK, s.submit_change(&c, ChangeRequest::RuleDelete { rule }, serde_json::json!({})).await?))
}
