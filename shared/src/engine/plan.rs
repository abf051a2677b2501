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
use crate::ports::{Expect, Write};

pub(crate) struct Plan<T> {
    pub writes: Vec<Write>,
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
    events: Vec<Event>,
}

impl Tx {
    pub fn new(org: &OrgId, actor: Actor, now: DateTime<Utc>) -> Self {
        Tx { org: org.clone(), actor, now, writes: Vec::with_capacity(8), events: Vec::new() }
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.now
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

    /// Commits only if a record read earlier is unchanged (the decision depended on it).
    pub fn check<R: Record>(&mut self, stored: &Stored<R>) {
        self.writes.push(Write::Check { key: stored.value.key(), expect: Expect::Version(stored.version) });
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
        Plan { writes: self.writes, events: self.events, outcome, remembered: true }
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
        Plan { writes: Vec::new(), events: Vec::new(), outcome, remembered: false }
    }
}
