//! The approvals Lambda: API Gateway (REST or HTTP API) events served by the shared axum router on
//! DynamoDB. Everything is built once per cold start.

use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    countersign_core::config::init_tracing();
    let service = countersign_core::config::aws_service(countersign_core::config::functions::APPROVALS).await?;
    let app = countersign_core::api::router(Arc::new(service));
    lambda_http::run(app).await
}

#[cfg(test)]
mod tests {
    use countersign_tests::{fixture_service, invoke_http_event};

    #[tokio::test]
    async fn api_gateway_events_reach_the_router() {
        let service = fixture_service();
        let (status, body) =
            invoke_http_event(service.clone(), include_str!("../../../events/approvals/health.json"), None).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
        let (status, body) =
            invoke_http_event(service.clone(), include_str!("../../../events/approvals/health-deep.json"), None).await;
        assert_eq!((status, body["status"].as_str(), body["store"].as_str()), (200, Some("ok"), Some("ok")), "{body}");
        let (status, org) = invoke_http_event(
            service.clone(),
            include_str!("../../../events/approvals/create-organization.json"),
            None,
        )
        .await;
        assert_eq!(status, 201, "{org}");
        let key = format!("Bearer {}", org["adminKey"]["secret"].as_str().expect("key"));
        let (status, body) = invoke_http_event(
            service.clone(),
            include_str!("../../../events/approvals/list-pending-approvals.json"),
            Some(&key),
        )
        .await;
        assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
        let (status, body) =
            invoke_http_event(service.clone(), include_str!("../../../events/approvals/approve.json"), Some(&key))
                .await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("APPROVAL_NOT_FOUND")), "{body}");
        let (status, body) =
            invoke_http_event(service, include_str!("../../../events/approvals/approve.json"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{body}");
    }

    /// MCP on Lambda: stateless Streamable HTTP answers each POST with one JSON body, which
    /// API Gateway returns as is (no session, no stream).
    #[tokio::test]
    async fn mcp_requests_are_answered_with_plain_json() {
        let service = fixture_service();
        let event = include_str!("../../../events/approvals/mcp-tools-list.json");
        let (status, body) = invoke_http_event(service.clone(), event, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{body}");
        let (_, org) = invoke_http_event(
            service.clone(),
            include_str!("../../../events/approvals/create-organization.json"),
            None,
        )
        .await;
        let key = format!("Bearer {}", org["adminKey"]["secret"].as_str().expect("key"));
        let (status, body) = invoke_http_event(service, event, Some(&key)).await;
        assert_eq!(status, 200, "{body}");
        let tools = body["result"]["tools"].as_array().map(Vec::len);
        assert_eq!((body["id"].as_i64(), tools), (Some(1), Some(12)), "{body}");
    }

    #[tokio::test]
    async fn rest_api_events_route_without_their_stage() {
        // The template sets this for every function, so REST and HTTP APIs route alike.
        std::env::set_var("AWS_LAMBDA_HTTP_IGNORE_STAGE_IN_PATH", "true");
        let (status, body) =
            invoke_http_event(fixture_service(), include_str!("../../../events/approvals/health-rest-api.json"), None)
                .await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");
    }
}
