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
    async fn stops_when_the_deadline_is_near() {
        let app = TestApp::spawn(Backend::Sqlite).await;
        let summary = handle(&app.service, Utc::now()).await.expect("sweep");
        assert!(summary.out_of_time);
        assert_eq!(summary.approvals_read, 0);
    }
}
