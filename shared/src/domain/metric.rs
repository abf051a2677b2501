//! Every metric Countersign emits, named here and nowhere else, each with its unit and its one
//! dimension (if any). The adapters write them (CloudWatch EMF on Lambda, a log line locally);
//! `infra/template.yaml`'s dashboard graphs them, and `tests/tests/metrics.rs` fails when the
//! dashboard graphs a metric the code never emits or the code stops emitting one listed here.

/// A CloudWatch unit (the names are CloudWatch's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// What a decision came to: at intake (executed, held, denied), or on an approval (closed by
/// people, escalated, or closed by the sweep when its window ran out: the approval's new status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Executed,
    Held,
    Denied,
    Approved,
    Rejected,
    Modified,
    Expired,
    Escalated,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Executed,
        Outcome::Held,
        Outcome::Denied,
        Outcome::Approved,
        Outcome::Rejected,
        Outcome::Modified,
        Outcome::Expired,
        Outcome::Escalated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Executed => "executed",
            Outcome::Held => "held",
            Outcome::Denied => "denied",
            Outcome::Approved => "approved",
            Outcome::Rejected => "rejected",
            Outcome::Modified => "modified",
            Outcome::Expired => "expired",
            Outcome::Escalated => "escalated",
        }
    }
}

/// One metric, with the value of its dimension where it has one (so a decision cannot be
/// recorded without its outcome).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// `Decisions` (Count, dimension `Outcome`): payments and refunds decided at intake, and
    /// approvals decided, escalated or timed out.
    Decisions(Outcome),
    /// `TimeToDecision` (Seconds): from an approval's creation to the vote that closed it.
    TimeToDecision,
    /// `IntakeLatency` (Milliseconds): a payment or refund request, from the door to its answer.
    IntakeLatency,
    /// `OutboxUnpublishedAge` (Seconds): the oldest outbox event the sweep found still
    /// unpublished past the re-publish threshold; 0 when there is none.
    OutboxUnpublishedAge,
    /// `DeliveriesPending` (Count): webhook deliveries waiting for a retry after a failed attempt.
    DeliveriesPending,
    /// `NotificationsFailed` (Count): Slack or email messages given up on.
    NotificationsFailed,
    /// `OutboxEventsParked` (Count): outbox events given up on after repeated bus refusals.
    OutboxEventsParked,
}

impl Metric {
    /// The dimension of `Decisions`.
    pub const OUTCOME: &'static str = "Outcome";

    /// Every metric the code emits, each decision outcome on its own.
    pub fn all() -> Vec<Metric> {
        let plain = [
            Metric::TimeToDecision,
            Metric::IntakeLatency,
            Metric::OutboxUnpublishedAge,
            Metric::DeliveriesPending,
            Metric::NotificationsFailed,
            Metric::OutboxEventsParked,
        ];
        Outcome::ALL.into_iter().map(Metric::Decisions).chain(plain).collect()
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Decisions(_) => "Decisions",
            Metric::TimeToDecision => "TimeToDecision",
            Metric::IntakeLatency => "IntakeLatency",
            Metric::OutboxUnpublishedAge => "OutboxUnpublishedAge",
            Metric::DeliveriesPending => "DeliveriesPending",
            Metric::NotificationsFailed => "NotificationsFailed",
            Metric::OutboxEventsParked => "OutboxEventsParked",
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Metric::TimeToDecision | Metric::OutboxUnpublishedAge => Unit::Seconds,
            Metric::IntakeLatency => Unit::Milliseconds,
            Metric::Decisions(_)
            | Metric::DeliveriesPending
            | Metric::NotificationsFailed
            | Metric::OutboxEventsParked => Unit::Count,
        }
    }

    /// Its dimension as (name, value), if it has one.
    pub fn dimension(self) -> Option<(&'static str, &'static str)> {
        match self {
            Metric::Decisions(outcome) => Some((Metric::OUTCOME, outcome.as_str())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_listed_once_and_only_decisions_have_a_dimension() {
        let all = Metric::all();
        let unique: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len());
        assert_eq!(all.len(), Outcome::ALL.len() + 6);
        for m in all {
            assert_eq!(m.dimension().is_some(), m.name() == "Decisions", "{m:?}");
        }
    }
}
