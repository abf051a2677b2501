//! The notification email, pure: subject, plain text and HTML (an askama template, which escapes
//! every value) from the facts of one held approval or review.

use askama::Template;

use super::notify_facts::{NoticeKind, NotifyFacts};

/// A rendered email, ready for a `Mailer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    /// One line: no CR, LF or other control characters.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Subjects longer than this are cut (mail clients show far less).
const SUBJECT_LIMIT: usize = 200;

/// Said beside every review link: mail scanners open links, so opening one must decide nothing.
const LINK_NOTE: &str =
    "Opening the link only shows a confirmation page: nothing is decided until you confirm there, signed in.";

/// One labelled fact of the email.
struct Row {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "notify_email.html")]
struct EmailPage<'a> {
    subject: &'a str,
    headline: &'a str,
    summary: &'a str,
    rows: &'a [Row],
    review_url: Option<&'a str>,
    dashboard_url: Option<&'a str>,
    link_note: &'a str,
    subject_id: &'a str,
}

/// The email asking a reviewer for a decision: subject with amount, currency and payee; the
/// details; the review link.
pub fn request_email(f: &NotifyFacts) -> EmailContent {
    let headline = f.kind.headline();
    let summary = single_line(&f.summary());
    let subject = subject(f, headline, &summary);
    let rows = rows(f);
    let review_url = f.review_url.as_deref().and_then(web_link);
    let dashboard_url = f.dashboard_url.as_deref().and_then(web_link);
    let text = text_body(f, headline, &summary, &rows, review_url, dashboard_url);
    let page = EmailPage {
        subject: &subject,
        headline,
        summary: &summary,
        rows: &rows,
        review_url,
        dashboard_url,
        link_note: LINK_NOTE,
        subject_id: &f.subject_id,
    };
    // Rendering only writes strings into a String; should it ever fail, the text still goes out.
    let html = page.render().unwrap_or_else(|_| preformatted_html(&text));
    EmailContent { subject, text, html }
}

/// "Approval needed: 1250.00 USD to wal_…", plus "(expires in 2 h 5 min)" on a reminder.
fn subject(f: &NotifyFacts, headline: &str, summary: &str) -> String {
    let mut subject = format!("{headline}: {summary}");
    if f.kind == NoticeKind::Reminder {
        subject.push_str(&format!(" (expires in {})", f.time_left()));
    }
    cut(&single_line(&subject), SUBJECT_LIMIT)
}

fn rows(f: &NotifyFacts) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |label: &'static str, value: Option<&str>| {
        if let Some(value) = value.map(clean_text).filter(|v| !v.trim().is_empty()) {
            rows.push(Row { label, value });
        }
    };
    let is_payment = f.amount.is_some();
    add("Amount", f.amount_text().as_deref());
    add(if is_payment { "From" } else { "Action" }, Some(&f.payer));
    add(if is_payment { "To" } else { "Proposed" }, Some(&f.payee));
    add("Description", f.description.as_deref());
    add("Agent reasoning", f.agent_reasoning.as_deref());
    add("Risk score", f.risk_score.as_deref());
    add("Why it was held", Some(&f.reason));
    add("Team", f.team_name.as_deref());
    let deadline = format!("{} (until {})", f.time_left(), f.expires_at.format("%Y-%m-%d %H:%M UTC"));
    add("Time left", Some(&deadline));
    rows
}

fn text_body(
    f: &NotifyFacts,
    headline: &str,
    summary: &str,
    rows: &[Row],
    review_url: Option<&str>,
    dashboard_url: Option<&str>,
) -> String {
    let mut text = format!("{headline}: {summary}\n\n");
    for row in rows {
        // Continuation lines indented: a multi-line description cannot pass for another field.
        text.push_str(&format!("{}: {}\n", row.label, row.value.replace('\n', "\n  ")));
    }
    if let Some(url) = review_url {
        text.push_str(&format!("\nReview: {url}\n{LINK_NOTE}\n"));
    }
    if let Some(url) = dashboard_url {
        text.push_str(&format!("\nDashboard: {url}\n"));
    }
    text.push_str(&format!("\nReference: {}\n", f.subject_id));
    text
}

/// One line: every control character (CR and LF above all: header injection) becomes a space,
/// and runs of whitespace one space.
fn single_line(text: &str) -> String {
    text.split(|c: char| c.is_control() || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Multi-line text with `\n` line ends and no other control characters except tabs.
fn clean_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .map(|c| match c {
            '\r' => '\n',
            '\n' | '\t' => c,
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

/// At most `limit` characters; "…" marks a cut.
fn cut(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut out: String = text.chars().take(limit.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Only web links become links (never `javascript:` or `data:`), whole and on one line.
fn web_link(url: &str) -> Option<&str> {
    let is_web = url.starts_with("https://") || url.starts_with("http://");
    (is_web && !url.chars().any(|c| c.is_control() || c.is_whitespace())).then_some(url)
}

fn preformatted_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 32);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    format!("<!doctype html><html><body><pre>{escaped}</pre></body></html>")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notify_facts::sample_facts;

    #[test]
    fn the_subject_names_amount_currency_and_payee() {
        let email = request_email(&sample_facts());
        assert_eq!(email.subject, "Approval needed: 1250.00 USD to wal_payee");
        let escalated = request_email(&NotifyFacts { kind: NoticeKind::Escalated, ..sample_facts() });
        assert_eq!(escalated.subject, "Escalated: approval needed: 1250.00 USD to wal_payee");
        let reminder = request_email(&NotifyFacts { kind: NoticeKind::Reminder, ..sample_facts() });
        assert_eq!(reminder.subject, "Reminder: approval needed: 1250.00 USD to wal_payee (expires in 2 h 5 min)");
    }

    #[test]
    fn nothing_breaks_out_of_the_subject_line() {
        let facts = NotifyFacts {
            payee: "wal_x\r\nBcc: victim@example.com\r\n\r\nHello".into(),
            currency: Some("USD\n".into()),
            description: Some("line one\r\nSubject: fake\nline three".into()),
            ..sample_facts()
        };
        let email = request_email(&facts);
        assert!(!email.subject.contains('\r') && !email.subject.contains('\n'), "{:?}", email.subject);
        assert_eq!(email.subject, "Approval needed: 1250.00 USD to wal_x Bcc: victim@example.com Hello");
        let long = request_email(&NotifyFacts { payee: "p".repeat(500), ..sample_facts() });
        assert_eq!(long.subject.chars().count(), SUBJECT_LIMIT);
        assert!(long.subject.ends_with('…'));
        // In the body the description keeps its lines, indented under its label.
        assert!(email.text.contains("Description: line one\n  Subject: fake\n  line three\n"), "{}", email.text);
        assert!(!email.text.contains('\r'));
    }

    #[test]
    fn the_body_has_the_details_and_the_review_link() {
        let email = request_email(&sample_facts());
        for expected in [
            "Amount: 1250.00 USD",
            "From: wal_payer",
            "To: wal_payee",
            "Description: Invoice 42 for cloud hosting",
            "Agent reasoning: Monthly hosting bill",
            "Risk score: 0.82",
            "Why it was held: Amount above 1000.00 USD needs a person",
            "Team: Finance",
            "Time left: 2 h 5 min (until 2025-06-15 17:11 UTC)",
            "Review: https://countersign.example/review/apr_01JZ.123.tag",
            "only shows a confirmation page",
            "Reference: apr_01JZ0000000000000000000000",
        ] {
            assert!(email.text.contains(expected), "{expected} missing from:\n{}", email.text);
        }
        assert!(email.html.contains("href=\"https://countersign.example/review/apr_01JZ.123.tag\""), "{}", email.html);
        assert!(email.html.contains("1250.00 USD") && email.html.contains("only shows a confirmation page"));
        let without_link = request_email(&NotifyFacts { review_url: None, dashboard_url: None, ..sample_facts() });
        assert!(!without_link.text.contains("Review:") && !without_link.html.contains("href="));
    }

    #[test]
    fn a_review_without_an_amount_reads_as_an_action() {
        let facts = NotifyFacts {
            subject_id: "rev_01JZ".into(),
            amount: None,
            currency: None,
            payer: "refund".into(),
            payee: "Refund 20.00 EUR of pay_1".into(),
            ..sample_facts()
        };
        let email = request_email(&facts);
        assert_eq!(email.subject, "Approval needed: refund: Refund 20.00 EUR of pay_1");
        assert!(email.text.contains("Action: refund\nProposed: Refund 20.00 EUR of pay_1\n"), "{}", email.text);
        assert!(!email.text.contains("Amount:"));
    }

    #[test]
    fn every_value_is_escaped_in_the_html() {
        let hostile = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>";
        let facts = NotifyFacts {
            description: Some(hostile.into()),
            payee: hostile.into(),
            team_name: Some(hostile.into()),
            dashboard_url: Some("javascript:alert(1)".into()),
            ..sample_facts()
        };
        let email = request_email(&facts);
        assert!(!email.html.contains("<script>") && !email.html.contains("<img src=x"), "{}", email.html);
        assert!(email.html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{}", email.html);
        assert!(!email.html.contains("javascript:") && !email.text.contains("javascript:"), "{}", email.html);
    }

    #[test]
    fn helpers_clean_and_cut() {
        assert_eq!(single_line(" a\r\n\tb \u{0} c "), "a b c");
        assert_eq!(clean_text("a\r\nb\rc\u{7}d\te"), "a\nb\nc d\te");
        assert_eq!(cut("héllo", 3), "hé…");
        assert_eq!(web_link("https://x.example/a b"), None);
        assert_eq!(web_link("http://x.example/"), Some("http://x.example/"));
        assert_eq!(
            preformatted_html("<a href='x'>&</a>"),
            "<!doctype html><html><body><pre>&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;</pre></body></html>"
        );
    }
}
