//! The expiry Lambda, run by an EventBridge schedule (rate 1 minute). Clients are built once per
//! cold start.

mod handler;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    countersign_core::config::init_tracing();
    let service = countersign_core::config::aws_service(countersign_core::config::functions::EXPIRY).await?;
    let service = &service;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
        let deadline = chrono::DateTime::<chrono::Utc>::from(event.context.deadline());
        let summary = handler::handle(service, deadline).await?;
        Ok::<_, Error>(summary)
    }))
    .await
}
