//! People behind keys, and teams of them. Separation of duties and quorum count people, not
//! keys: a key bound to a member acts as that member; a key minted by another key is the same
//! person unless bound to another member; an unbound key is a person of its own.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ids::{ApiKeyId, MemberId, OrgId, TeamId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: MemberId,
    pub org_id: OrgId,
    pub name: String,
    pub email: String,
    /// The member's Slack user (`U…`): their clicks on Slack buttons are their votes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_user_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: TeamId,
    pub org_id: OrgId,
    pub name: String,
    pub members: Vec<MemberId>,
    /// The Slack channel (`C…`) the team's requests are posted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack_channel: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Who acts, as separation of duties counts: a member, or a key that is nobody else.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Person {
    Member(MemberId),
    Key(ApiKeyId),
}

impl Person {
    pub fn parse(text: &str) -> Option<Self> {
        MemberId::parse(text).map(Person::Member).or_else(|| ApiKeyId::parse(text).map(Person::Key))
    }

    pub fn member(&self) -> Option<&MemberId> {
        match self {
            Person::Member(m) => Some(m),
            Person::Key(_) => None,
        }
    }
}

impl fmt::Display for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Person::Member(m) => m.fmt(f),
            Person::Key(k) => k.fmt(f),
        }
    }
}

impl Serialize for Person {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Person {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Person::parse(&text).ok_or_else(|| serde::de::Error::custom("not a member or key id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_round_trip_as_their_ids() {
        let m = Person::Member(MemberId::generate());
        let k = Person::Key(ApiKeyId::generate());
        for p in [m, k] {
            let json = serde_json::to_value(&p).unwrap();
            assert_eq!(serde_json::from_value::<Person>(json).unwrap(), p);
        }
        assert!(Person::parse("wal_01J00000000000000000000000").is_none());
    }
}
