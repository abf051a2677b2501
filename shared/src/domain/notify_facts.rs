//! What a Slack message or an email says about one held approval (or review): the facts the
//! service gathers once, from which `slack` and `email` build their messages.

use chrono::{DateTime, Utc};

/// What a notification says about one approval (or review), gathered by the service.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyFacts {
    /// `apr_…` (approval) or `rev_…` (review): the Slack buttons' `value`.
    pub subject_id: String,
    pub kind: NoticeKind,
    /// A decimal string as on the wire, e.g. "1250.00" (None for reviews).
    pub amount: Option<String>,
    /// "USD" (None for reviews).
    pub currency: Option<String>,
    /// The payer wallet id (for reviews: the review's action type).
    pub payer: String,
    /// The payee wallet id (for reviews: the proposed action, short).
    pub payee: String,
    pub description: Option<String>,
    pub agent_reasoning: Option<String>,
    /// "0.82".
    pub risk_score: Option<String>,
    /// Why it was held (the policy's explanation).
    pub reason: String,
    /// The assigned team.
    pub team_name: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// For "time left".
    pub now: DateTime<Utc>,
    /// The scanner-safe confirm page (a GET never decides).
    pub review_url: Option<String>,
    /// The dashboard page of the approval (for step-up).
    pub dashboard_url: Option<String>,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    Created,
    Escalated,
    Reminder,
}

impl NoticeKind {
    /// The first words of a Slack header or an email subject.
    pub fn headline(self) -> &'static str {
        match self {
            NoticeKind::Created => "Approval needed",
            NoticeKind::Escalated => "Escalated: approval needed",
            NoticeKind::Reminder => "Reminder: approval needed",
        }
    }
}

/// How it ended, for the updated Slack message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeFacts {
    /// "Approved" | "Rejected" | "Expired" | "Modified" | …
    pub outcome: String,
    /// A person's name.
    pub decided_by: Option<String>,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

impl NotifyFacts {
    /// "1250.00 USD to wal_…" for a payment; "<action type>: <proposed action>" for a review,
    /// which has no amount. Raw: callers escape it for where it goes.
    pub fn summary(&self) -> String {
        match (&self.amount, &self.currency) {
            (Some(amount), Some(currency)) => format!("{amount} {currency} to {}", self.payee),
            (Some(amount), None) => format!("{amount} to {}", self.payee),
            _ => format!("{}: {}", self.payer, self.payee),
        }
    }

    /// "1250.00 USD", when there is an amount.
    pub fn amount_text(&self) -> Option<String> {
        let amount = self.amount.as_deref()?;
        Some(match self.currency.as_deref() {
            Some(currency) => format!("{amount} {currency}"),
            None => amount.to_string(),
        })
    }

    /// Time left until the deadline, in words (see `time_left`).
    pub fn time_left(&self) -> String {
        time_left(self.expires_at, self.now)
    }
}

/// Time left in words: "1 d 3 h", "2 h 5 min", "45 min", "under a minute", "expired".
pub fn time_left(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let left = expires_at - now;
    if left <= chrono::Duration::zero() {
        return "expired".into();
    }
    let (days, hours, minutes) = (left.num_days(), left.num_hours() % 24, left.num_minutes() % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => "under a minute".into(),
        (0, 0, m) => format!("{m} min"),
        (0, h, m) => format!("{h} h {m} min"),
        (d, h, _) => format!("{d} d {h} h"),
    }
}

/// Facts for tests of the modules that render them.
#[cfg(test)]
pub(crate) fn sample_facts() -> NotifyFacts {
    let now = DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
    NotifyFacts {
        subject_id: "apr_01JZ0000000000000000000000".into(),
        kind: NoticeKind::Created,
        amount: Some("1250.00".into()),
        currency: Some("USD".into()),
        payer: "wal_payer".into(),
        payee: "wal_payee".into(),
        description: Some("Invoice 42 for cloud hosting".into()),
        agent_reasoning: Some("Monthly hosting bill, matches the contract".into()),
        risk_score: Some("0.82".into()),
        reason: "Amount above 1000.00 USD needs a person".into(),
        team_name: Some("Finance".into()),
        expires_at: now + chrono::Duration::minutes(125),
        now,
        review_url: Some("https://countersign.example/review/apr_01JZ.123.tag".into()),
        dashboard_url: Some("https://countersign.example/dashboard/approvals/apr_01JZ".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_naturally() {
        let now = DateTime::from_timestamp(1_750_000_000, 0).unwrap_or_default();
        let left = |s: i64| time_left(now + chrono::Duration::seconds(s), now);
        assert_eq!(left(-5), "expired");
        assert_eq!(left(0), "expired");
        assert_eq!(left(30), "under a minute");
        assert_eq!(left(45 * 60 + 10), "45 min");
        assert_eq!(left(2 * 3600 + 5 * 60), "2 h 5 min");
        assert_eq!(left(86400 + 3 * 3600 + 59), "1 d 3 h");
    }

    #[test]
    fn summary_names_amount_currency_and_payee_or_the_review() {
        let facts = sample_facts();
        assert_eq!(facts.summary(), "1250.00 USD to wal_payee");
        assert_eq!(facts.amount_text().as_deref(), Some("1250.00 USD"));
        assert_eq!(facts.time_left(), "2 h 5 min");
        let review = NotifyFacts {
            amount: None,
            currency: None,
            payer: "refund".into(),
            payee: "refund 20.00 EUR".into(),
            ..facts
        };
        assert_eq!(review.summary(), "refund: refund 20.00 EUR");
        assert_eq!(review.amount_text(), None);
    }

    #[test]
    fn headlines_say_why() {
        assert_eq!(NoticeKind::Created.headline(), "Approval needed");
        assert_eq!(NoticeKind::Escalated.headline(), "Escalated: approval needed");
        assert_eq!(NoticeKind::Reminder.headline(), "Reminder: approval needed");
    }
}
