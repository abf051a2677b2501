//! `GET /v1/audit-logs/export`: the organisation's whole audit log as JSON Lines, oldest first,
//! each checkpoint right after the last entry it seals, read page by page as it is sent (two
//! sorted reads merged: entries by id, checkpoints by sequence).

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{self, Stream};

use super::super::{ensure_unbound, require, Caller, Countersign};
use crate::domain::ids::OrgId;
use crate::domain::permission::Permission;
use crate::error::{AppError, AppResult};
use crate::layout::{checkpoint_partition, checkpoint_sort_key, decode};
use crate::ports::{Index, Position, Query};
use crate::proof::checkpoint::Checkpoint;

/// Entries read per page.
const ENTRY_PAGE: usize = 200;
/// Checkpoints read per page.
const CHECKPOINT_PAGE: usize = 50;

struct Export {
    service: Arc<Countersign>,
    org: OrgId,
    /// The last entry sent.
    after_entry: Option<String>,
    /// Checkpoints read and not yet sent, in order.
    checkpoints: VecDeque<Checkpoint>,
    last_seq_read: u64,
    checkpoints_done: bool,
    lines: VecDeque<String>,
    done: bool,
}

fn line<T: serde::Serialize>(value: &T) -> AppResult<String> {
    let mut text = serde_json::to_string(value).map_err(|e| AppError::Corrupt(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

impl Export {
    async fn next_line(&mut self) -> AppResult<Option<String>> {
        loop {
            if let Some(line) = self.lines.pop_front() {
                return Ok(Some(line));
            }
            if self.done {
                return Ok(None);
            }
            if self.checkpoints.is_empty() && !self.checkpoints_done {
                self.read_checkpoints().await?;
            }
            // While checkpoints remain unread, entries are read only up to the last one read, so
            // none is sent ahead of a checkpoint that seals an earlier entry.
            let bound = if self.checkpoints_done { None } else { self.checkpoints.back().map(|c| c.to_id.clone()) };
            let entries = self
                .service
                .entries_after(&self.org, self.after_entry.as_deref(), bound.as_deref(), ENTRY_PAGE)
                .await?;
            for entry in &entries {
                while self.checkpoints.front().is_some_and(|c| c.to_id.as_str() < entry.id.as_str()) {
                    if let Some(c) = self.checkpoints.pop_front() {
                        self.lines.push_back(line(&c)?);
                    }
                }
                self.lines.push_back(line(entry)?);
                self.after_entry = Some(entry.id.to_string());
            }
            if entries.len() < ENTRY_PAGE {
                // Every entry up to the bound (or the end) is sent: so are the checkpoints read.
                while let Some(c) = self.checkpoints.pop_front() {
                    self.lines.push_back(line(&c)?);
                }
                self.done = bound.is_none();
            }
        }
    }

    async fn read_checkpoints(&mut self) -> AppResult<()> {
        let partition = checkpoint_partition(self.org.as_str());
        let mut query = Query::new(Index::Primary, partition.clone(), CHECKPOINT_PAGE);
        query.newest_first = false;
        if self.last_seq_read > 0 {
            query.after = Some(Position { index_sk: None, pk: partition, sk: checkpoint_sort_key(self.last_seq_read) });
        }
        let items = self.service.store().query(query).await?;
        self.checkpoints_done = items.len() < CHECKPOINT_PAGE;
        for item in items {
            let checkpoint = decode::<Checkpoint>(item)?.value;
            self.last_seq_read = checkpoint.seq;
            self.checkpoints.push_back(checkpoint);
        }
        Ok(())
    }
}

impl Countersign {
    /// The caller's organisation's audit log with its checkpoints, as lines of JSON (each ends in
    /// a newline), read as the stream is polled. Checked before anything is read.
    pub fn export_audit_log(
        self: &Arc<Self>,
        caller: &Caller,
    ) -> AppResult<impl Stream<Item = AppResult<String>> + Send + 'static> {
        let key = caller.key()?;
        require(key, Permission::AuditRead)?;
        ensure_unbound(key)?;
        let export = Export {
            service: self.clone(),
            org: key.org_id.clone(),
            after_entry: None,
            checkpoints: VecDeque::new(),
            last_seq_read: 0,
            checkpoints_done: false,
            lines: VecDeque::new(),
            done: false,
        };
        Ok(stream::unfold(export, |mut export| async move {
            match export.next_line().await {
                Ok(Some(line)) => Some((Ok(line), export)),
                Ok(None) => None,
                Err(e) => {
                    // The body ends with an error (the client sees a broken transfer), never a
                    // shorter log that looks whole.
                    export.done = true;
                    export.lines.clear();
                    Some((Err(e), export))
                }
            }
        }))
    }
}
