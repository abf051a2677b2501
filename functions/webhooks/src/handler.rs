//! SQS batch handler: each message is a published event (EventBridge envelope) to fan out (to
//! webhooks, Slack and email), a delivery due for a retry, or a notification due. Messages run
//! concurrently; failures are reported per message so SQS retries only those (and moves poison
//! messages to the dead-letter queue).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use countersign_core::domain::event::Event;
use countersign_core::ports::QueueMessage;
use countersign_core::service::Countersign;
use futures::stream::{self, StreamExt};

/// Messages of one batch handled at once.
const CONCURRENCY: usize = 16;

/// Reads a queue message body: the EventBridge rule's envelope, or one of our own messages.
pub fn parse_message(body: &str) -> Result<QueueMessage, String> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("body is not JSON: {e}"))?;
    if value.get("detail").is_some() && value.get("source").is_some() {
        let envelope: EventBridgeEvent<Event> =
            serde_json::from_value(value).map_err(|e| format!("not a Countersign event: {e}"))?;
        return Ok(QueueMessage::Event { event: envelope.detail });
    }
    serde_json::from_value(value).map_err(|e| format!("unknown message: {e}"))
}

pub async fn handle(service: &Countersign, batch: SqsEvent) -> SqsBatchResponse {
    let failures: Vec<Option<String>> = stream::iter(batch.records)
        .map(|record| async move {
            let id = record.message_id.unwrap_or_default();
            let outcome = match record.body.as_deref().map(parse_message) {
                Some(Ok(message)) => service.handle_message(&message).await.map_err(|e| e.to_string()),
                Some(Err(e)) => Err(e),
                None => Err("empty message".to_string()),
            };
            match outcome {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(message_id = %id, error = %e, "message failed; SQS will retry it");
                    Some(id)
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut response = SqsBatchResponse::default();
    for id in failures.into_iter().flatten() {
        response.batch_item_failures.push(BatchItemFailure { item_identifier: id });
    }
    response
}

// Tests that need a running service (`TestApp`) are in `tests/tests/webhooks_handler.rs`, so this
// crate does not dev-depend on `countersign-tests` (which depends on it).
#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(text: &str) -> SqsEvent {
        serde_json::from_str(text).expect("fixture")
    }

    #[test]
    fn parses_eventbridge_envelopes_and_retry_messages() {
        let batch = fixture(include_str!("../../../events/webhooks/sqs-event.json"));
        let body = batch.records[0].body.as_deref().unwrap();
        assert!(matches!(parse_message(body), Ok(QueueMessage::Event { event }) if event.kind == "approval.created"));
        let batch = fixture(include_str!("../../../events/webhooks/sqs-delivery-retry.json"));
        assert!(matches!(parse_message(batch.records[0].body.as_deref().unwrap()), Ok(QueueMessage::Delivery { .. })));
        // A notification due (a Slack message or an email, issue 24).
        let batch = fixture(include_str!("../../../events/webhooks/sqs-notification.json"));
        assert!(matches!(
            parse_message(batch.records[0].body.as_deref().unwrap()),
            Ok(QueueMessage::Notification { attempt: 0, .. })
        ));
        assert!(parse_message("{\"kind\": \"other\"}").is_err());
    }
}
