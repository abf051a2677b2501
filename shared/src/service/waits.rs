//! Long-polls held per API key (DESIGN §2.6): a key holds at most `MAX_WAITS_PER_KEY` waits for
//! a decision at once (`POST /reviews` with `blocking`, `GET /reviews/{id}/decision?wait=`, MCP
//! `wait_for_decision`); one more is refused with 429 and `Retry-After`, other keys unaffected.
//! The count lives in this process: on Lambda each instance counts its own (API Gateway's
//! concurrency bounds the instances), on the local server it is the whole count. A slot is an
//! RAII guard, so a wait that ends, fails or is dropped (the client went away) gives it back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Caller, Countersign};
use crate::domain::ids::ApiKeyId;
use crate::error::{AppError, AppResult};

/// Waits one key may hold at once.
pub const MAX_WAITS_PER_KEY: usize = 16;
/// What a refused wait is told to wait before trying again: a few poll intervals, well within
/// the longest wait (28 s), after which a slot has surely come free.
pub const WAIT_RETRY_AFTER_SECONDS: u64 = 5;

/// Waits held, by key.
#[derive(Debug, Default)]
pub(crate) struct WaitSlots {
    held: Mutex<HashMap<ApiKeyId, usize>>,
}

impl WaitSlots {
    fn lock(&self) -> MutexGuard<'_, HashMap<ApiKeyId, usize>> {
        // A panic while holding this lock cannot leave a count half-written: keep counting.
        self.held.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(self: &Arc<Self>, key: &ApiKeyId) -> AppResult<WaitSlot> {
        let mut held = self.lock();
        let count = held.entry(key.clone()).or_default();
        if *count >= MAX_WAITS_PER_KEY {
            return Err(AppError::TooManyWaits {
                limit: MAX_WAITS_PER_KEY,
                retry_after_seconds: WAIT_RETRY_AFTER_SECONDS,
            });
        }
        *count += 1;
        Ok(WaitSlot { slots: self.clone(), key: key.clone() })
    }

    fn held(&self, key: &ApiKeyId) -> usize {
        self.lock().get(key).copied().unwrap_or(0)
    }
}

/// One wait's place among its key's; given back when dropped.
#[derive(Debug)]
pub struct WaitSlot {
    slots: Arc<WaitSlots>,
    key: ApiKeyId,
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl Countersign {
    /// A place for one more wait by the caller's key, or 429 `RATE_LIMIT_EXCEEDED` when it
    /// already holds `MAX_WAITS_PER_KEY`. Taken before anything is written (a blocking create).
    pub fn wait_slot(&self, caller: &Caller) -> AppResult<WaitSlot> {
        self.waits.take(&caller.key()?.id)
    }

    /// How many waits `key` holds in this process now.
    pub fn waits_held(&self, key: &ApiKeyId) -> usize {
        self.waits.held(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_holds_sixteen_waits_and_gets_each_back_when_dropped() {
        let slots = Arc::new(WaitSlots::default());
        let (mine, theirs) = (ApiKeyId::generate(), ApiKeyId::generate());
        let held: Vec<WaitSlot> = (0..MAX_WAITS_PER_KEY).map(|_| slots.take(&mine).expect("slot")).collect();
        assert!(matches!(slots.take(&mine), Err(AppError::TooManyWaits { limit: MAX_WAITS_PER_KEY, .. })));
        let other = slots.take(&theirs).expect("another key is not held back");
        drop(held);
        assert_eq!((slots.held(&mine), slots.held(&theirs)), (0, 1));
        drop(other);
        assert!(slots.lock().is_empty(), "no entry left behind");
        assert!(slots.take(&mine).is_ok());
    }
}
