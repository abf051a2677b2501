//! Typed transaction plans. A use case reads what it needs from its `Reader`, then describes its
//! change on a `Tx`: records to create, update or delete, versions to check, events and audit
//! rows. `done` turns that into a `Plan`: the writes for one conditional transaction, the events
//! committed with them (as values, published after the commit), and the outcome to return if it
//! commits. A plan that cannot be made says why (`PlanError`): a refusal for the caller, or that
//! its reads were overtaken, which only the engine sees (it plans again).

use chrono::{DateTime, Utc};

use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::event::Event;
use crate::domain::ids::OrgId;
use crate::error::{AppError, AppResult};
use crate::layout::{self, Record, Stored};
use crate::ports::{Adjustment, Expect, Guard, Key, Write};

pub(crate) struct Plan<T> {
    pub writes: Vec<Write>,
    /// For each in-place write (`Tx::adjust`, `Tx::require`), by position, what a store whose
    /// plans take turns under record locks writes instead: the whole record, or a check,
    /// conditional on the version read (`Plan::rewriting`).
    pub rewrites: Vec<(usize, Write)>,
    pub events: Vec<Event>,
    pub outcome: T,
    /// Whether an idempotency key keeps this outcome for replays. A refusal that only writes its
    /// audit row is not kept: the same request may be tried again once policies change.
    pub remembered: bool,
}

/// One actor's change to one organisation at one instant.
pub(crate) struct Tx {
    org: OrgId,
    actor: Actor,
    now: DateTime<Utc>,
    writes: Vec<Write>,
    rewrites: Vec<(usize, Write)>,
    events: Vec<Event>,
}

impl Tx {
    pub fn new(org: &OrgId, actor: Actor, now: DateTime<Utc>) -> Self {
        Tx { org: org.clone(), actor, now, writes: Vec::with_capacity(8), rewrites: Vec::new(), events: Vec::new() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn org(&self) -> &OrgId {
        &self.org
    }

    /// Who makes this change (as its audit rows name them).
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Creates `record`; the commit fails if anything is stored at its key.
    pub fn create<R: Record>(&mut self, record: &R) -> AppResult<()> {
        self.writes.push(layout::create(record)?);
        Ok(())
    }

    /// Writes a record read earlier; the commit fails if it changed since.
    pub fn update<R: Record>(&mut self, stored: &Stored<R>) -> AppResult<()> {
        self.writes.push(layout::update(&stored.value, stored.version)?);
        Ok(())
    }

    /// Deletes a record read earlier; the commit fails if it changed since.
    pub fn delete<R: Record>(&mut self, stored: &Stored<R>) {
        self.writes.push(Write::Delete { key: stored.value.key(), expect: Expect::Version(stored.version) });
    }

    /// Commits only if nothing is stored at `key` (read earlier and found absent).
    pub fn check_absent(&mut self, key: Key) {
        self.writes.push(Write::Check { key, expect: Expect::Absent });
    }

    /// Commits only if a record read earlier is unchanged (the decision depended on it).
    pub fn check<R: Record>(&mut self, stored: &Stored<R>) {
        self.writes.push(Write::Check { key: stored.value.key(), expect: Expect::Version(stored.version) });
    }

    /// Writes a record read earlier (`changed`: as read, then changed) by its `adjustment`
    /// alone: counters moved, fields set, under guards, whatever its version. Concurrent writers
    /// of the record (payments from one wallet) then conflict only while committing, not on
    /// what they read. Under record locks (the embedded store) the whole record is written
    /// conditional on the version read instead, as `update` does.
    pub fn adjust<R: Record>(&mut self, changed: &Stored<R>, adjustment: Adjustment) -> AppResult<()> {
        let whole = layout::update(&changed.value, changed.version)?;
        self.rewrites.push((self.writes.len(), whole));
        self.writes.push(Write::Adjust { key: changed.value.key(), adjustment });
        Ok(())
    }

    /// Commits only if a record read earlier still exists and `guards` hold on it (e.g. a
    /// wallet still not frozen), whatever else changed in it. Under record locks: unchanged
    /// since read, as `check`.
    pub fn require<R: Record>(&mut self, stored: &Stored<R>, guards: Vec<Guard>) {
        let key = stored.value.key();
        let check = Write::Check { key: key.clone(), expect: Expect::Version(stored.version) };
        self.rewrites.push((self.writes.len(), check));
        self.writes.push(Write::Require { key, guards });
    }

    /// An outbox event, committed with the change and published after it.
    pub fn event(&mut self, event: Event) -> AppResult<()> {
        self.writes.push(layout::create(&event)?);
        self.events.push(event);
        Ok(())
    }

    /// An audit row for this change, by this plan's actor.
    pub fn audit(
        &mut self,
        action: &str,
        resource_type: &str,
        resource_id: &str,
        details: serde_json::Value,
    ) -> AppResult<()> {
        let entry =
            AuditEntry::new(&self.org, action, resource_type, resource_id, self.actor.name(), details, self.now);
        self.writes.push(layout::create(&entry)?);
        Ok(())
    }

    pub fn done<T>(self, outcome: T) -> Plan<T> {
        Plan { writes: self.writes, rewrites: self.rewrites, events: self.events, outcome, remembered: true }
    }

    /// A refusal: the audit row commits, but an idempotency key does not keep the outcome.
    pub fn refused<T>(self, outcome: T) -> Plan<T> {
        Plan { remembered: false, ..self.done(outcome) }
    }
}

/// Why a plan was not made.
#[derive(Debug)]
pub(crate) enum PlanError {
    /// The request is refused: the caller hears why.
    Refused(AppError),
    /// Two reads of the plan disagreed (another writer committed between them): the engine
    /// plans again from fresh reads. Never leaves the engine.
    Overtaken,
}

impl<E: Into<AppError>> From<E> for PlanError {
    fn from(e: E) -> Self {
        PlanError::Refused(e.into())
    }
}

/// What a plan closure returns.
pub(crate) type Planned<T> = Result<Plan<T>, PlanError>;

/// For a transition refused inside a plan (a payment, refund or review already moved on): it
/// was read after another writer moved it (its approval, read first, still said pending), so
/// the plan must be made again.
pub(crate) fn overtaken<E>(_: E) -> PlanError {
    PlanError::Overtaken
}

impl<T> Plan<T> {
    /// A plan that changes nothing.
    pub fn nothing(outcome: T) -> Self {
        Plan { writes: Vec::new(), rewrites: Vec::new(), events: Vec::new(), outcome, remembered: false }
    }

    /// The plan as a store under record locks commits it: every in-place write replaced by its
    /// rewrite conditional on the version read.
    pub fn rewriting(mut self) -> Self {
        for (at, rewrite) in self.rewrites.drain(..) {
            if let Some(write) = self.writes.get_mut(at) {
                *write = rewrite;
            }
        }
        self
    }
}
