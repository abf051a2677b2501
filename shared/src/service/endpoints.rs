//! Webhook sends in flight, counted per endpoint (the subscription's URL): each endpoint has a
//! few slots and a short line. A delivery that finds the line full, or does not reach a slot
//! within `PATIENCE`, is handed back to the queue for a little later; so an endpoint that
//! accepts connections and never answers holds its own slots, never a pool other
//! organisations' deliveries wait for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Sends in flight to one endpoint from this process.
pub const SLOTS_PER_ENDPOINT: usize = 4;
/// Sends that may wait for one of an endpoint's slots; more are handed back to the queue.
const LINE_PER_ENDPOINT: usize = 64;
/// How long a send waits in line: a healthy endpoint frees a slot much sooner, a hanging one
/// not before its timeout.
const PATIENCE: Duration = Duration::from_secs(1);

struct Line {
    slots: Arc<Semaphore>,
    /// Sends holding or waiting for a slot.
    members: usize,
}

type Lines = Arc<Mutex<HashMap<String, Line>>>;

/// The lines of every endpoint this process sends to (an endpoint's line exists while some
/// send holds or waits for one of its slots).
#[derive(Default)]
pub struct Endpoints {
    lines: Lines,
}

/// A slot of one endpoint, given back when dropped.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _place: Place,
}

/// A place in an endpoint's line; leaving it (drop) removes an empty line.
struct Place {
    lines: Lines,
    url: String,
}

impl Drop for Place {
    fn drop(&mut self) {
        let Ok(mut lines) = self.lines.lock() else { return };
        if let Some(line) = lines.get_mut(&self.url) {
            line.members = line.members.saturating_sub(1);
            if line.members == 0 {
                lines.remove(&self.url);
            }
        }
    }
}

impl Endpoints {
    /// A slot of `url`'s endpoint, waiting in its line for at most `PATIENCE`; `None` when the
    /// line is full or the wait runs out (the caller hands the delivery back to the queue).
    pub async fn slot(&self, url: &str) -> Option<Slot> {
        let (slots, place) = self.join(url)?;
        let permit = tokio::time::timeout(PATIENCE, slots.acquire_owned()).await.ok()?.ok()?;
        Some(Slot { _permit: permit, _place: place })
    }

    fn join(&self, url: &str) -> Option<(Arc<Semaphore>, Place)> {
        let mut lines = self.lines.lock().ok()?;
        let line = lines
            .entry(url.to_string())
            .or_insert_with(|| Line { slots: Arc::new(Semaphore::new(SLOTS_PER_ENDPOINT)), members: 0 });
        if line.members >= SLOTS_PER_ENDPOINT + LINE_PER_ENDPOINT {
            return None;
        }
        line.members += 1;
        Some((line.slots.clone(), Place { lines: self.lines.clone(), url: url.to_string() }))
    }

    #[cfg(test)]
    fn lines(&self) -> usize {
        self.lines.lock().map(|l| l.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_endpoint_gets_its_slots_and_a_line_and_no_more() {
        let endpoints = Endpoints::default();
        let mut held = Vec::new();
        for _ in 0..SLOTS_PER_ENDPOINT {
            held.push(endpoints.slot("https://a.example/hook").await.expect("a free slot"));
        }
        // The slots are taken: a send waits its patience out, then goes back to the queue.
        assert!(endpoints.slot("https://a.example/hook").await.is_none());
        // Another endpoint is not affected.
        assert!(endpoints.slot("https://b.example/hook").await.is_some());
        // A slot given back is taken by the next in line.
        let waiting = {
            let endpoints = &endpoints;
            async move { endpoints.slot("https://a.example/hook").await }
        };
        let (next, _) = tokio::join!(waiting, async { drop(held.pop()) });
        assert!(next.is_some());
        drop((next, held));
        assert_eq!(endpoints.lines(), 0, "empty lines are removed");
    }

    #[tokio::test]
    async fn a_full_line_turns_sends_away_at_once() {
        let endpoints = Endpoints::default();
        let places: Vec<_> = (0..SLOTS_PER_ENDPOINT + LINE_PER_ENDPOINT)
            .map(|_| endpoints.join("https://a.example/").expect("room"))
            .collect();
        assert!(endpoints.join("https://a.example/").is_none(), "the line is full");
        drop(places);
        assert!(endpoints.join("https://a.example/").is_some());
    }
}
