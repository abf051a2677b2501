//! The scheduled sweep: expire due approvals, then re-publish stuck outbox events, stopping
//! before the invocation's deadline (the next run continues).

use chrono::{DateTime, Utc};
use countersign_core::service::{Countersign, SweepSummary};
use countersign_core::AppError;

/// Due approvals read per page.
pub const PAGE: usize = 100;

pub async fn handle(service: &Countersign, deadline: DateTime<Utc>) -> Result<SweepSummary, AppError> {
    service.sweep(Some(deadline), PAGE).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::eventbridge::EventBridgeEvent;
    use countersign_tests::{Backend, TestApp};

    #[tokio::test(flavor = "multi_thread")]
    async fn scheduled_event_expires_due_approvals() {
        let event: EventBridgeEvent<serde_json::Value> =
            serde_json::from_str(include_str!("../../../events/expiry/scheduled.json")).expect("fixture");
        assert_eq!(event.detail_type, "Scheduled Event");
        let app = TestApp::spawn(Backend::Sqlite).await;
        let s = app.scenario("10000.00").await;
        let (_, approval) = app.held_payment(&s, "5000.00").await;
        let deadline = Utc::now() + chrono::Duration::seconds(30);

        let summary = handle(&app.service, deadline).await.expect("sweep");
        assert_eq!(summary.approvals_expired, 0, "nothing due yet");

        app.clock.advance(chrono::Duration::hours(25));
        let summary = handle(&app.service, deadline).await.expect("sweep");
        assert_eq!((summary.approvals_read, summary.approvals_expired), (1, 1));
        let (_, body) = app.get(&format!("/v1/approvals/{approval}"), &s.reviewer).await;
        assert_eq!(body["status"], "EXPIRED");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn pages_through_due_approvals_and_stops_in_time() {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let s = app.scenario("100000.00").await;
        // More approvals than due-index shards, so some shard holds several.
        let total = 40;
        for _ in 0..total {
            app.held_payment(&s, "2000.00").await;
        }
        app.clock.advance(chrono::Duration::hours(25));
        // No time left: every shard runs one page (of one), the rest waits for the next run.
        let first = app.service.sweep(Some(Utc::now()), 1).await.expect("sweep");
        assert!(first.out_of_time && first.approvals_expired >= 1 && first.approvals_expired < total, "{first:?}");
        // Time enough: pages through the rest.
        let rest = app.service.sweep(Some(Utc::now() + chrono::Duration::seconds(30)), 1).await.expect("sweep");
        assert_eq!((first.approvals_expired + rest.approvals_expired, rest.out_of_time), (total, false), "{rest:?}");
    }
}
