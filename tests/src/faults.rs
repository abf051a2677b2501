//! A store wrapper that makes commits ambiguous on purpose, as a dropped connection or a
//! DynamoDB `TransactionInProgressException` would.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use countersign_core::ports::{Item, Key, Query, Store, StoreError, TxToken, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The transaction commits, then the answer is lost.
    CommitThenDrop,
    /// The store answers "still in progress" without applying anything.
    InProgress,
}

/// Injects the armed faults, one per tokened commit, in order; everything else passes through.
pub struct FlakyStore {
    inner: Arc<dyn Store>,
    faults: Mutex<VecDeque<Fault>>,
    /// Tokened commits seen (including resends).
    pub commits: AtomicUsize,
}

impl FlakyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(FlakyStore { inner, faults: Mutex::new(VecDeque::new()), commits: AtomicUsize::new(0) })
    }

    pub fn arm(&self, faults: &[Fault]) {
        self.faults.lock().expect("faults").extend(faults.iter().copied());
    }
}

#[async_trait]
impl Store for FlakyStore {
    async fn get(&self, key: &Key) -> Result<Option<Item>, StoreError> {
        self.inner.get(key).await
    }

    async fn apply(&self, writes: &[Write], token: Option<&TxToken>) -> Result<(), StoreError> {
        if token.is_some() {
            self.commits.fetch_add(1, Ordering::SeqCst);
            let fault = self.faults.lock().expect("faults").pop_front();
            match fault {
                Some(Fault::CommitThenDrop) => {
                    self.inner.apply(writes, token).await?;
                    return Err(StoreError::Ambiguous("injected: committed, then the connection dropped".into()));
                }
                Some(Fault::InProgress) => {
                    return Err(StoreError::Ambiguous("injected: transaction in progress".into()));
                }
                None => {}
            }
        }
        self.inner.apply(writes, token).await
    }

    async fn query(&self, query: Query) -> Result<Vec<Item>, StoreError> {
        self.inner.query(query).await
    }
}
