//! Members (the people behind keys), teams of them, and the routing rules that assign a held
//! payment's approval to a team.

use crate::engine::Reader;
use serde_json::json;

use crate::domain::audit::Actor;
use crate::domain::ids::{MemberId, OrgId, RoutingRuleId, TeamId};
use crate::domain::input::InputError;
use crate::domain::notification::SlackUserLink;
use crate::domain::org::{ApiKey, Organization};
use crate::domain::people::{Member, Team};
use crate::domain::permission::Permission;
use crate::domain::routing::{Conditions, RoutingRule};
use crate::engine::plan::{PlanError, Tx};
use crate::error::{AppError, AppResult};
use crate::layout::{self, member_key, org_key, rule_key, slack_user_key, team_key, Stored};
use crate::ports::Query;
use crate::service::{Caller, UseCases};

const MAX_MEMBERS: usize = 1_000;
const MAX_TEAMS: usize = 100;
const MAX_RULES: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct NewMember {
    pub name: String,
    pub email: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewTeam {
    pub name: String,
    pub members: Vec<MemberId>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamPatch {
    pub name: Option<String>,
    pub members: Option<Vec<MemberId>>,
    /// `Some(None)` clears it.
    pub slack_channel: Option<Option<String>>,
}

/// `PATCH /v1/members/{id}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberPatch {
    /// `Some(None)` unlinks the member's Slack user.
    pub slack_user_id: Option<Option<String>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewRoutingRule {
    pub name: String,
    pub priority: i64,
    pub conditions: Conditions,
    pub assign_to_team: TeamId,
    pub is_active: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutingRulePatch {
    pub name: Option<String>,
    pub priority: Option<i64>,
    pub conditions: Option<Conditions>,
    pub assign_to_team: Option<TeamId>,
    pub is_active: Option<bool>,
}

/// Only an admin key changes who is in a team: membership decides who countersigns.
fn ensure_may_change_membership(caller: &ApiKey) -> AppResult<()> {
    if caller.is_org_admin() {
        Ok(())
    } else {
        Err(AppError::PermissionDenied(Permission::Admin))
    }
}

impl UseCases {
    pub async fn create_member(&self, caller: &Caller, request: NewMember) -> AppResult<Member> {
        let caller = caller.organiser(Permission::MembersWrite)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let used = async { Ok(r.org_members(&caller.org_id).await?.len()) };
                let room = Room { max: MAX_MEMBERS, field: "email", of: "members" };
                r.claim_room(&mut tx, &caller.org_id, room, used).await?;
                let member = Member {
                    id: MemberId::generate(),
                    org_id: caller.org_id.clone(),
                    name: request.name.clone(),
                    email: request.email.clone(),
                    slack_user_id: None,
                    created_at: tx.now(),
                };
                tx.create(&member)?;
                tx.audit("member.created", "member", member.id.as_str(), json!({"name": member.name}))?;
                Ok(tx.done(member))
            })
            .await
    }

    /// `PATCH /v1/members/{id}`: links (or unlinks) the member's Slack user. Admin only: a
    /// Slack user's clicks become this member's votes. A Slack user is one member's at most
    /// (claimed with a conditional create; taken: 409).
    pub async fn update_member(&self, caller: &Caller, id: &MemberId, patch: MemberPatch) -> AppResult<Member> {
        let caller = caller.organiser(Permission::MembersWrite)?;
        ensure_may_change_membership(caller)?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut member = r.read_owned::<Member>(&member_key(&caller.org_id, id), &caller.org_id).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                if patch.slack_user_id.as_ref().is_none_or(|wanted| *wanted == member.value.slack_user_id) {
                    // Nothing changes: nothing is written or audited.
                    return Ok(tx.done(member.value));
                }
                if let Some(wanted) = &patch.slack_user_id {
                    if member.value.slack_user_id != *wanted {
                        if let Some(old) = &member.value.slack_user_id {
                            let link = r.read::<SlackUserLink>(&slack_user_key(&caller.org_id, old)).await?;
                            if let Some(link) = link.filter(|l| l.value.member_id == *id) {
                                tx.delete(&link);
                            }
                        }
                        if let Some(new) = wanted {
                            if r.read::<SlackUserLink>(&slack_user_key(&caller.org_id, new)).await?.is_some() {
                                return Err(AppError::SlackUserTaken.into());
                            }
                            tx.create(&SlackUserLink {
                                org_id: caller.org_id.clone(),
                                slack_user_id: new.clone(),
                                member_id: id.clone(),
                            })?;
                        }
                        member.value.slack_user_id = wanted.clone();
                    }
                }
                tx.update(&member)?;
                let details = json!({"slackUserId": member.value.slack_user_id});
                tx.audit("member.updated", "member", id.as_str(), details)?;
                Ok(tx.done(member.value))
            })
            .await
    }

    pub async fn list_members(&self, caller: &Caller) -> AppResult<Vec<Member>> {
        let caller = caller.organiser(Permission::MembersWrite)?;
        self.reader().org_members(&caller.org_id).await
    }

    pub async fn create_team(&self, caller: &Caller, request: NewTeam) -> AppResult<Team> {
        let caller = caller.organiser(Permission::MembersWrite)?;
        if !request.members.is_empty() {
            ensure_may_change_membership(caller)?;
        }
        self.reader().ensure_members(&caller.org_id, &request.members).await?;
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                let used = async { Ok(r.org_teams(&caller.org_id).await?.len()) };
                r.claim_room(&mut tx, &caller.org_id, Room { max: MAX_TEAMS, field: "name", of: "teams" }, used)
                    .await?;
                let team = Team {
                    id: TeamId::generate(),
                    org_id: caller.org_id.clone(),
                    name: request.name.clone(),
                    members: request.members.clone(),
                    slack_channel: None,
                    created_at: tx.now(),
                    updated_at: tx.now(),
                };
                tx.create(&team)?;
                tx.audit(
                    "team.created",
                    "team",
                    team.id.as_str(),
                    json!({"name": team.name, "members": team.members}),
                )?;
                Ok(tx.done(team))
            })
            .await
    }

    pub async fn list_teams(&self, caller: &Caller) -> AppResult<Vec<Team>> {
        let caller = caller.organiser(Permission::MembersWrite)?;
        self.reader().org_teams(&caller.org_id).await
    }

    pub async fn update_team(&self, caller: &Caller, id: &TeamId, patch: TeamPatch) -> AppResult<Team> {
        let caller = caller.organiser(Permission::MembersWrite)?;
        if let Some(members) = &patch.members {
            ensure_may_change_membership(caller)?;
            self.reader().ensure_members(&caller.org_id, members).await?;
        }
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut team = r.read_owned::<Team>(&team_key(&caller.org_id, id), &caller.org_id).await?;
                let mut tx = Tx::new(&caller.org_id, Actor::Key(caller.id.clone()), self.now());
                if let Some(name) = &patch.name {
                    team.value.name = name.clone();
                }
                if let Some(members) = &patch.members {
                    team.value.members = members.clone();
                }
                if let Some(channel) = &patch.slack_channel {
                    team.value.slack_channel = channel.clone();
                }
                team.value.updated_at = tx.now();
                tx.update(&team)?;
                let details = json!({
                    "name": team.value.name, "members": team.value.members, "slackChannel": team.value.slack_channel
                });
                tx.audit("team.updated", "team", id.as_str(), details)?;
                Ok(tx.done(team.value))
            })
            .await
    }

    /// `GET /v1/routing-rules`. Creating, changing and deleting a rule go through
    /// `submit_change` (four-eyes when the organisation asks for it), which plans them with
    /// `plan_rule_create`, `plan_rule_update` and `plan_rule_delete`.
    pub async fn list_routing_rules(&self, caller: &Caller) -> AppResult<Vec<RoutingRule>> {
        let caller = caller.organiser(Permission::PoliciesWrite)?;
        self.reader().org_rules(&caller.org_id).await
    }
}

/// Plans a new routing rule of `org` into `tx`: its team must be `org`'s, and the organisation
/// stays under `MAX_RULES` (counted in the plan). Audited by `tx`'s actor; permissions are the
/// caller's to check.
pub(crate) async fn plan_rule_create(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    request: &NewRoutingRule,
) -> Result<RoutingRule, PlanError> {
    r.read_owned::<Team>(&team_key(org, &request.assign_to_team), org).await?;
    let used = async { Ok(r.org_rules(org).await?.len()) };
    r.claim_room(tx, org, Room { max: MAX_RULES, field: "name", of: "rules" }, used).await?;
    let mut rule = RoutingRule::new(
        org.clone(),
        request.name.clone(),
        request.priority,
        request.conditions.clone(),
        request.assign_to_team.clone(),
        tx.now(),
    );
    rule.is_active = request.is_active;
    tx.create(&rule)?;
    tx.audit("routing_rule.created", "routing_rule", rule.id.as_str(), json!({"name": rule.name}))?;
    Ok(rule)
}

/// Plans `patch` on a routing rule of `org` into `tx` (a new team must be `org`'s). Audited by
/// `tx`'s actor; permissions are the caller's to check.
pub(crate) async fn plan_rule_update(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    id: &RoutingRuleId,
    patch: &RoutingRulePatch,
) -> Result<RoutingRule, PlanError> {
    if let Some(team) = &patch.assign_to_team {
        r.read_owned::<Team>(&team_key(org, team), org).await?;
    }
    let mut rule = r.owned_rule(org, id).await?;
    let v = &mut rule.value;
    if let Some(name) = &patch.name {
        v.name = name.clone();
    }
    if let Some(priority) = patch.priority {
        v.priority = priority;
    }
    if let Some(conditions) = &patch.conditions {
        v.conditions = conditions.clone();
    }
    if let Some(team) = &patch.assign_to_team {
        v.assign_to_team = team.clone();
    }
    if let Some(active) = patch.is_active {
        v.is_active = active;
    }
    v.updated_at = tx.now();
    tx.audit("routing_rule.updated", "routing_rule", id.as_str(), json!({"name": v.name}))?;
    tx.update(&rule)?;
    Ok(rule.value)
}

/// Plans the deletion of a routing rule of `org` into `tx` (audited by `tx`'s actor).
pub(crate) async fn plan_rule_delete(
    r: &Reader,
    tx: &mut Tx,
    org: &OrgId,
    id: &RoutingRuleId,
) -> Result<RoutingRuleId, PlanError> {
    let rule = r.owned_rule(org, id).await?;
    tx.delete(&rule);
    tx.audit("routing_rule.deleted", "routing_rule", id.as_str(), json!({}))?;
    Ok(id.clone())
}

/// The query that reads every routing rule of `org`.
pub(crate) fn rules_query(org: &OrgId) -> Query {
    layout::partition_query(format!("ORG#{org}#RULE"), "RULE#", MAX_RULES)
}

impl Reader {
    pub(crate) async fn org_teams(&self, org: &OrgId) -> AppResult<Vec<Team>> {
        self.all_of(layout::partition_query(format!("ORG#{org}#TEAM"), "TEAM#", MAX_TEAMS)).await
    }

    /// Every routing rule of an organisation (bounded by `MAX_RULES`).
    pub(crate) async fn org_rules(&self, org: &OrgId) -> AppResult<Vec<RoutingRule>> {
        self.all_of(rules_query(org)).await
    }

    /// Members must exist in the caller's organisation.
    pub(crate) async fn ensure_members(&self, org: &OrgId, members: &[MemberId]) -> AppResult<()> {
        for m in members {
            self.read_owned::<Member>(&member_key(org, m), org).await?;
        }
        Ok(())
    }

    pub(crate) async fn org_members(&self, org: &OrgId) -> AppResult<Vec<Member>> {
        self.all_of(layout::partition_query(format!("ORG#{org}#MEMBER"), "MEMBER#", MAX_MEMBERS)).await
    }
}

impl Reader {
    pub(crate) async fn owned_rule(&self, org: &OrgId, id: &RoutingRuleId) -> AppResult<Stored<RoutingRule>> {
        self.read_owned::<RoutingRule>(&rule_key(org, id), org).await
    }
}

/// A cap on how many of a kind an organisation may have.
pub(crate) struct Room {
    pub max: usize,
    /// The request field a refusal names.
    pub field: &'static str,
    /// What is capped, in words (`members`).
    pub of: &'static str,
}

impl Reader {
    /// Room for one more of a capped kind, `used` counted in the plan. The organisation record
    /// is read first and rewritten with the change: a count made after that read sees every
    /// creation queued before this plan's version of the record (the count waits for their
    /// uncommitted writes), and a creation that commits after it makes this plan's rewrite of
    /// the record fail, so it counts again. Two concurrent creations cannot both pass the cap.
    pub(crate) async fn claim_room(
        &self,
        tx: &mut Tx,
        org: &OrgId,
        room: Room,
        used: impl std::future::Future<Output = AppResult<usize>>,
    ) -> Result<(), PlanError> {
        let record = self.read::<Organization>(&org_key(org)).await?.ok_or(AppError::NotFound("organization"))?;
        if used.await? >= room.max {
            let message = format!("an organisation may have at most {} {}", room.max, room.of);
            return Err(InputError::invalid(room.field, message).into());
        }
        tx.update(&record)?;
        Ok(())
    }
}
