//! The intake Lambda: API Gateway (REST or HTTP API) events served by the shared axum router on
//! DynamoDB. Everything is built once per cold start.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    countersign_core::config::init_tracing();
    let service = countersign_core::config::aws_service(countersign_core::config::functions::INTAKE).await?;
    let app = countersign_core::api::router(Arc::new(service));
    lambda_http::run(app).await
}

#[cfg(test)]
mod tests {
    use countersign_tests::{fixture_service, invoke_http_event, FIXTURE_OPERATOR_KEY};

    #[tokio::test]
    async fn api_gateway_events_reach_the_router() {
        let service = fixture_service();
        let (status, body) =
            invoke_http_event(service.clone(), include_str!("../../../events/intake/list-payments.json"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{body}");
        let (_, org) = invoke_http_event(
            service.clone(),
            include_str!("../../../events/approvals/create-organization.json"),
            None,
        )
        .await;
        let key = format!("Bearer {}", org["adminKey"]["secret"].as_str().expect("key"));
        let (status, body) =
            invoke_http_event(service.clone(), include_str!("../../../events/intake/create-payment.json"), Some(&key))
                .await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("WALLET_NOT_FOUND")), "{body}");
        let (status, body) =
            invoke_http_event(service, include_str!("../../../events/intake/list-payments.json"), Some(&key)).await;
        assert_eq!((status, body["hasMore"].as_bool()), (200, Some(false)), "{body}");
        let _ = FIXTURE_OPERATOR_KEY;
    }
}
