//! The approvals Lambda: API Gateway (REST or HTTP API) events served by the shared axum router on
//! DynamoDB. Everything is built once per cold start.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    countersign_core::config::init_tracing();
    let service = countersign_core::config::aws_service().await?;
    let app = countersign_core::api::router(Arc::new(service));
    lambda_http::run(app).await
}
