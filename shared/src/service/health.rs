//! The deep health check: proves the store answers, without needing any item to exist.

use super::UseCases;
use crate::error::AppResult;
use crate::ports::Key;

/// A key no record ever uses: the read finds nothing, which is all the check needs.
const PROBE_PK: &str = "HEALTH";
const PROBE_SK: &str = "HEALTH";

impl UseCases {
    /// One strongly consistent read of a fixed key. MUST return `AppError::Store` when the store
    /// cannot be reached (missing table, wrong endpoint, no credentials), and `Ok` whether or not
    /// an item exists at the key.
    pub async fn check_store(&self) -> AppResult<()> {
        self.store().get(&Key::new(PROBE_PK, PROBE_SK)).await?;
        Ok(())
    }
}
