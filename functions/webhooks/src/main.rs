//! The webhooks Lambda, fed by the SQS queue the EventBridge rule targets
//! (`ReportBatchItemFailures` on the event source). Clients are built once per cold start.

use countersign_webhooks::handler;

use aws_lambda_events::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    countersign_core::config::init_tracing();
    let service = countersign_core::config::aws_service(countersign_core::config::functions::WEBHOOKS).await?;
    let service = &service;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(handler::handle(service, event.payload).await)
    }))
    .await
}
