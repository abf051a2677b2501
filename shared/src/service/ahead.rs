//! Reading ahead. Where every read is a network round trip (DynamoDB), the records a request is
//! about to read one by one are fetched first, together: their point reads in one batch
//! (BatchGetItem) and their queries alongside it, all in flight at once. The code that reads
//! them is unchanged: each of its committed reads is answered from what was read ahead, once
//! (a second read of the same key goes to the store, and a plan made again after a lost race
//! reads everything afresh: `forget` drops what its first attempt left unread). Only committed state is read ahead; a plan still sees the pending writes of its
//! lanes first (`pending`). Where reads are cheap (the embedded store) nothing is read ahead.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use super::Countersign;
use crate::ports::{Item, Key, Query};

tokio::task_local! {
    static AHEAD: Arc<ReadAhead>;
}

/// What to read ahead.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    pub keys: Vec<Key>,
    pub queries: Vec<Query>,
}

/// What was read ahead and not yet read.
#[derive(Default)]
struct ReadAhead {
    items: Mutex<HashMap<Key, Option<Item>>>,
    queries: Mutex<Vec<(Query, Vec<Item>)>>,
}

/// The read-ahead answer to a committed read of `key`, if there is one (taken: answered once).
pub(crate) fn take_item(key: &Key) -> Option<Option<Item>> {
    AHEAD.try_with(|ahead| ahead.items.lock().unwrap_or_else(PoisonError::into_inner).remove(key)).ok().flatten()
}

/// The read-ahead answer to `query`, if there is one (taken: answered once).
pub(crate) fn take_query(query: &Query) -> Option<Vec<Item>> {
    AHEAD
        .try_with(|ahead| {
            let mut queries = ahead.queries.lock().unwrap_or_else(PoisonError::into_inner);
            let at = queries.iter().position(|(asked, _)| asked == query)?;
            Some(queries.swap_remove(at).1)
        })
        .ok()
        .flatten()
}

/// Drops whatever was read ahead and not yet read (before a plan is made again).
pub(crate) fn forget() {
    let _ = AHEAD.try_with(|ahead| {
        ahead.items.lock().unwrap_or_else(PoisonError::into_inner).clear();
        ahead.queries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    });
}

impl Countersign {
    /// Runs `work` where reads may be read ahead (`read_ahead`); an enclosing scope is kept.
    pub(crate) async fn reading_ahead<T>(&self, work: impl Future<Output = T>) -> T {
        if !self.committed.reads_are_round_trips() || AHEAD.try_with(|_| ()).is_ok() {
            return work.await;
        }
        AHEAD.scope(Arc::default(), work).await
    }

    /// Reads `reads` in one round trip, for the reads that follow in this `reading_ahead` scope.
    /// Best effort: if it fails, the reads themselves go to the store and report what fails.
    pub(crate) async fn read_ahead(&self, reads: Reads) {
        let Ok(ahead) = AHEAD.try_with(Arc::clone) else { return };
        let store = &self.committed;
        let queries = futures::future::try_join_all(reads.queries.iter().map(|q| store.query(q.clone())));
        let (Ok(items), Ok(answers)) = futures::join!(store.get_many(&reads.keys), queries) else {
            return;
        };
        ahead.items.lock().unwrap_or_else(PoisonError::into_inner).extend(reads.keys.into_iter().zip(items));
        ahead.queries.lock().unwrap_or_else(PoisonError::into_inner).extend(reads.queries.into_iter().zip(answers));
    }
}
