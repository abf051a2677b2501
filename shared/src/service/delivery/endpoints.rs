//! Webhook sends in flight, counted per line: one organisation's sends to one host and port
//! (its subscriptions' URLs to that host share it, whatever their paths). Each line has a few
//! slots and a short queue, and each organisation a bounded share of places across its lines.
//! A delivery that finds its line or its organisation's share full, or does not reach a slot
//! within `PATIENCE`, is handed back to the queue for a little later; so an endpoint that
//! accepts connections and never answers holds a bounded part of its own organisation's
//! places, never a pool other organisations' deliveries wait for. Two organisations sending to
//! the same host (a chat service's webhooks) have separate lines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::ids::OrgId;

/// Sends in flight on one line from this process.
pub const SLOTS_PER_ENDPOINT: usize = 4;
/// Sends that may wait for one of a line's slots; more are handed back to the queue.
const LINE_PER_ENDPOINT: usize = 12;
/// Places (in flight or waiting) one organisation may hold across its lines: less than the
/// local worker's pool, so others always find room. More than one line's, so one hanging
/// host leaves room for the organisation's other endpoints.
pub const PLACES_PER_ORG: usize = 32;
/// How long a send waits in line: a healthy endpoint frees a slot much sooner, a hanging one
/// not before its timeout.
const PATIENCE: Duration = Duration::from_secs(1);

/// One organisation's sends to one `host:port`.
#[derive(Clone, PartialEq, Eq, Hash)]
struct LineKey {
    org: OrgId,
    host: String,
}

impl LineKey {
    fn new(org: &OrgId, url: &str) -> Self {
        // Webhook URLs were parsed when saved; an unparsable one (never expected) gets a line of
        // its own rather than none.
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
            .unwrap_or_else(|| url.to_string());
        LineKey { org: org.clone(), host }
    }
}

struct Line {
    slots: Arc<Semaphore>,
    /// Sends holding or waiting for a slot.
    members: usize,
}

#[derive(Default)]
struct State {
    lines: HashMap<LineKey, Line>,
    /// Places each organisation holds across its lines (only organisations holding some).
    orgs: HashMap<OrgId, usize>,
}

type Shared = Arc<Mutex<State>>;

/// The lines this process sends on (a line exists while some send holds or waits for one of
/// its slots).
#[derive(Default)]
pub struct Endpoints {
    state: Shared,
}

/// A slot of one line, given back when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _place: Place,
}

/// A place in a line and in its organisation's share; leaving it (drop) removes what is empty.
struct Place {
    state: Shared,
    key: LineKey,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Ok(mut state) = self.state.lock() else { return };
        if let Some(line) = state.lines.get_mut(&self.key) {
            line.members = line.members.saturating_sub(1);
            if line.members == 0 {
                state.lines.remove(&self.key);
            }
        }
        if let Some(held) = state.orgs.get_mut(&self.key.org) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                state.orgs.remove(&self.key.org);
            }
        }
    }
}

impl Endpoints {
    /// A slot of `org`'s line to `url`'s host, waiting in line for at most `PATIENCE`; `None`
    /// when the line or the organisation's share is full or the wait runs out (the caller
    /// hands the delivery back to the queue).
    pub async fn slot(&self, org: &OrgId, url: &str) -> Option<Slot> {
        let (slots, place) = self.join(LineKey::new(org, url))?;
        let permit = tokio::time::timeout(PATIENCE, slots.acquire_owned()).await.ok()?.ok()?;
        Some(Slot { _permit: permit, _place: place })
    }

    fn join(&self, key: LineKey) -> Option<(Arc<Semaphore>, Place)> {
        let mut guard = self.state.lock().ok()?;
        let state = &mut *guard;
        let held = state.orgs.get(&key.org).copied().unwrap_or_default();
        let members = state.lines.get(&key).map_or(0, |l| l.members);
        if held >= PLACES_PER_ORG || members >= SLOTS_PER_ENDPOINT + LINE_PER_ENDPOINT {
            return None;
        }
        let line = state
            .lines
            .entry(key.clone())
            .or_insert_with(|| Line { slots: Arc::new(Semaphore::new(SLOTS_PER_ENDPOINT)), members: 0 });
        line.members += 1;
        let slots = line.slots.clone();
        *state.orgs.entry(key.org.clone()).or_default() += 1;
        Some((slots, Place { state: self.state.clone(), key }))
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        self.state.lock().map(|s| (s.lines.len(), s.orgs.len())).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(endpoints: &Endpoints, org: &OrgId, url: &str) -> Option<(Arc<Semaphore>, Place)> {
        endpoints.join(LineKey::new(org, url))
    }

    #[tokio::test]
    async fn an_endpoint_gets_its_slots_and_a_line_and_no_more() {
        let endpoints = Endpoints::default();
        let org = OrgId::generate();
        let mut held = Vec::new();
        for _ in 0..SLOTS_PER_ENDPOINT {
            held.push(endpoints.slot(&org, "https://a.example/hook").await.expect("a free slot"));
        }
        // The slots are taken: a send waits its patience out, then goes back to the queue.
        assert!(endpoints.slot(&org, "https://a.example/hook").await.is_none());
        // Another host is not affected.
        assert!(endpoints.slot(&org, "https://b.example/hook").await.is_some());
        // A slot given back is taken by the next in line.
        let waiting = {
            let (endpoints, org) = (&endpoints, &org);
            async move { endpoints.slot(org, "https://a.example/hook").await }
        };
        let (next, _) = tokio::join!(waiting, async { drop(held.pop()) });
        assert!(next.is_some());
        drop((next, held));
        assert_eq!(endpoints.held(), (0, 0), "empty lines and shares are removed");
    }

    #[tokio::test]
    async fn a_full_line_turns_sends_away_at_once() {
        let endpoints = Endpoints::default();
        let org = OrgId::generate();
        let places: Vec<_> = (0..SLOTS_PER_ENDPOINT + LINE_PER_ENDPOINT)
            .map(|_| join(&endpoints, &org, "https://a.example/").expect("room"))
            .collect();
        assert!(join(&endpoints, &org, "https://a.example/").is_none(), "the line is full");
        drop(places);
        assert!(join(&endpoints, &org, "https://a.example/").is_some());
    }

    #[test]
    fn one_organisations_urls_to_one_host_share_a_line_other_organisations_do_not() {
        let endpoints = Endpoints::default();
        let (org, other) = (OrgId::generate(), OrgId::generate());
        let places: Vec<_> = (0..SLOTS_PER_ENDPOINT + LINE_PER_ENDPOINT)
            .map(|n| join(&endpoints, &org, &format!("https://hooks.example/h?{n}")).expect("room"))
            .collect();
        assert!(join(&endpoints, &org, "https://hooks.example/other").is_none(), "same host, same line");
        assert!(join(&endpoints, &org, "https://HOOKS.example:443/").is_none(), "the same host spelt otherwise");
        assert!(join(&endpoints, &org, "https://hooks.example:8443/").is_some(), "another port");
        assert!(join(&endpoints, &other, "https://hooks.example/h?1").is_some(), "another organisation");
        drop(places);
    }

    #[test]
    fn an_organisation_holds_its_share_of_places_and_no_more() {
        let endpoints = Endpoints::default();
        let (org, other) = (OrgId::generate(), OrgId::generate());
        let places: Vec<_> = (0..PLACES_PER_ORG)
            .map(|n| join(&endpoints, &org, &format!("https://h{}.example/", n % 4)).expect("room"))
            .collect();
        assert!(join(&endpoints, &org, "https://h9.example/").is_none(), "the share is used, whatever the host");
        assert!(join(&endpoints, &other, "https://h0.example/").is_some(), "another organisation has its own");
        drop(places);
        assert!(join(&endpoints, &org, "https://h9.example/").is_some());
    }
}
