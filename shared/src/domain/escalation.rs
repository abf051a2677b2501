//! Escalation moves forward only (docs/api.md, "Separation of duties"), for approvals and reviews alike: to the
//! chain's next tier not yet assigned, or (an admin only) to a named team the item has never had;
//! never by the person who asked; and the whole window is bounded by the chain, so handing an
//! item around can never keep it open past `created_at + (tiers + 1) × window`.

use chrono::{DateTime, Duration, Utc};

use super::ids::TeamId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EscalationError {
    #[error("the person who asked for this cannot escalate it")]
    BySubmitter,
    #[error("only an admin key names the team to escalate to (other than the chain's next tier)")]
    NamedTeamNeedsAdmin,
    #[error("it has already been assigned to this team; escalation only moves forward")]
    AlreadyAssigned(TeamId),
    #[error("the escalation chain has no further team")]
    ChainEnded,
}

/// Where an item stands for escalation: its team now, the teams it had before, its chain.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    pub current: Option<&'a TeamId>,
    pub previous: &'a [TeamId],
    pub chain: &'a [TeamId],
}

impl Route<'_> {
    /// Whether the item has ever been assigned to `team` (now or before).
    pub fn had(&self, team: &TeamId) -> bool {
        self.current == Some(team) || self.previous.contains(team)
    }

    /// The chain's next tier: the first team after the current one's place in the chain (from the
    /// start when the current team is not in it) that the item has never had.
    pub fn next_tier(&self) -> Option<TeamId> {
        let start = self.current.and_then(|t| self.chain.iter().position(|c| c == t)).map_or(0, |i| i + 1);
        self.chain.iter().skip(start).find(|t| !self.had(t)).cloned()
    }

    /// The team an escalation goes to. `to` names one: an admin may name any team the item has
    /// never had; anyone else only the chain's next tier (naming it changes nothing). Without
    /// `to`, the next tier.
    pub fn target(&self, to: Option<&TeamId>, admin: bool) -> Result<TeamId, EscalationError> {
        let next = self.next_tier();
        let Some(to) = to else { return next.ok_or(EscalationError::ChainEnded) };
        if self.had(to) {
            return Err(EscalationError::AlreadyAssigned(to.clone()));
        }
        if admin || next.as_ref() == Some(to) {
            Ok(to.clone())
        } else {
            Err(EscalationError::NamedTeamNeedsAdmin)
        }
    }
}

/// The latest an item created at `created_at` may stay open: one `window` for the team it starts
/// with and one more per tier of its chain. Escalation hands an item on within this bound.
pub fn latest_deadline(created_at: DateTime<Utc>, tiers: usize, window_seconds: u64) -> DateTime<Utc> {
    let windows = i64::try_from(tiers).unwrap_or(i64::MAX).saturating_add(1);
    let window = i64::try_from(window_seconds.max(1)).unwrap_or(i64::MAX);
    let seconds = windows.saturating_mul(window).min(MAX_TOTAL_SECONDS);
    created_at + Duration::seconds(seconds)
}

/// No item stays open longer than a year, whatever its chain (keeps the arithmetic in range).
const MAX_TOTAL_SECONDS: i64 = 366 * 24 * 3600;

/// The deadline after an escalation at `now`: a fresh `window`, cut at `latest`; `None` when
/// nothing of the bound is left (the item's time is spent).
pub fn escalated_deadline(now: DateTime<Utc>, window_seconds: u64, latest: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let window = i64::try_from(window_seconds.max(1)).unwrap_or(MAX_TOTAL_SECONDS).min(MAX_TOTAL_SECONDS);
    let deadline = (now + Duration::seconds(window)).min(latest);
    (deadline > now).then_some(deadline)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn teams(n: usize) -> Vec<TeamId> {
        (0..n).map(|_| TeamId::generate()).collect()
    }

    #[test]
    fn the_next_tier_skips_teams_already_had_and_ends() {
        let chain = teams(3);
        let route = Route { current: Some(&chain[0]), previous: &[], chain: &chain };
        assert_eq!(route.next_tier(), Some(chain[1].clone()));
        let previous = [chain[2].clone()];
        let route = Route { current: Some(&chain[1]), previous: &previous, chain: &chain };
        assert_eq!(route.next_tier(), None, "the last tier was had already");
        let elsewhere = TeamId::generate();
        let route = Route { current: Some(&elsewhere), previous: &[], chain: &chain };
        assert_eq!(route.next_tier(), Some(chain[0].clone()), "from outside the chain: its first tier");
    }

    #[test]
    fn named_teams_are_forward_only_and_for_admins() {
        let chain = teams(2);
        let other = TeamId::generate();
        let route = Route { current: Some(&chain[0]), previous: &[], chain: &chain };
        assert_eq!(route.target(Some(&chain[0]), true), Err(EscalationError::AlreadyAssigned(chain[0].clone())));
        assert_eq!(route.target(Some(&other), false), Err(EscalationError::NamedTeamNeedsAdmin));
        assert_eq!(route.target(Some(&chain[1]), false), Ok(chain[1].clone()), "naming the next tier is fine");
        assert_eq!(route.target(Some(&other), true), Ok(other.clone()));
        let previous = [other.clone()];
        let route = Route { current: Some(&chain[1]), previous: &previous, chain: &chain };
        assert_eq!(route.target(Some(&other), true), Err(EscalationError::AlreadyAssigned(other)));
        assert_eq!(route.target(None, true), Err(EscalationError::ChainEnded));
    }

    #[test]
    fn the_window_is_bounded_by_the_chain() {
        let created = Utc::now();
        let latest = latest_deadline(created, 2, 60);
        assert_eq!(latest, created + Duration::seconds(180));
        let at = created + Duration::seconds(150);
        assert_eq!(escalated_deadline(at, 60, latest), Some(latest), "cut at the bound");
        assert_eq!(escalated_deadline(latest, 60, latest), None, "nothing left");
        assert_eq!(escalated_deadline(created, 60, latest), Some(created + Duration::seconds(60)));
    }
}
