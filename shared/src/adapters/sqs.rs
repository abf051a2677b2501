//! The webhook queue on SQS: messages with a delay of at most 15 minutes.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::Client;

use crate::ports::{DeliveryQueue, QueueError, QueueMessage};

const SQS_MAX_DELAY: Duration = Duration::from_secs(900);

/// The IAM actions this adapter's requests need, on the webhook queue (compared with each
/// function's policy in `infra/template.yaml` by `tests/tests/iam.rs`): `send` is SendMessage.
/// Receiving and deleting belong to the Lambda SQS event source, which SAM grants its poller.
pub const IAM_ACTIONS: &[&str] = &["sqs:SendMessage"];

pub struct SqsQueue {
    client: super::OnFirstUse<Client>,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQueue { client: super::OnFirstUse::new(Box::new(move || client)), queue_url: queue_url.into() }
    }

    /// The queue with its client built from `aws` by the first use (`OnFirstUse`).
    pub fn on_first_use(aws: aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        SqsQueue { client: super::OnFirstUse::new(Box::new(move || Client::new(&aws))), queue_url: queue_url.into() }
    }
}

#[async_trait]
impl DeliveryQueue for SqsQueue {
    fn max_delay(&self) -> Duration {
        SQS_MAX_DELAY
    }

    async fn send(&self, message: &QueueMessage, delay: Duration) -> Result<(), QueueError> {
        let body = serde_json::to_string(message).map_err(|e| QueueError(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay.min(SQS_MAX_DELAY).as_secs() as i32)
            .send()
            .await
            .map_err(|e| QueueError(DisplayErrorContext(e).to_string()))?;
        Ok(())
    }
}
