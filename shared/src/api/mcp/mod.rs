//! The MCP server (docs/api.md, "MCP details") at `/mcp`: Streamable HTTP, stateless, plain JSON responses,
//! the same Bearer keys as the REST API. Every request is authenticated here first, by the
//! REST extractor (a missing or bad key is the REST 401 envelope, before any MCP exchange); the
//! tools then call the REST routes' service functions as that caller.
//!
//! Stateless with JSON responses, each POST is one self-contained request and response: nothing
//! is kept between requests, no SSE stream stays open, so it runs on Lambda behind API Gateway
//! (buffered responses) as well as on the local server. GET (a server-to-client stream) and
//! DELETE (ending a session) answer 405: there are no sessions.

mod args;
mod calls;
mod outcome;
mod tools;

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use super::extract::{refuse_duplicate_keys, Auth};
use super::{AppState, MAX_BODY_BYTES};
use crate::error::AppError;

/// Where the MCP server is mounted.
pub const PATH: &str = "/mcp";

type McpService = StreamableHttpService<tools::Tools, NeverSessionManager>;

/// `/mcp` on `service`. The MCP service (its tools' schemas) is built by the first MCP request,
/// not at start: every cold start of a function that serves the API would otherwise pay for it
/// (about 0.3 ms), though few of their requests are MCP.
pub fn routes(service: AppState) -> Router {
    let built: Arc<OnceLock<McpService>> = Arc::default();
    let state = service.clone();
    Router::new()
        .route(
            PATH,
            any(move |Auth(caller): Auth, request: Request| {
                let mcp = built.get_or_init(|| http_service(service.clone())).clone();
                async move {
                    let mut request = match without_duplicate_keys(request).await {
                        Ok(request) => request,
                        Err(refused) => return refused.into_response(),
                    };
                    request.extensions_mut().insert(caller);
                    mcp.handle(request).await.into_response()
                }
            }),
        )
        .with_state(state)
}

/// The request, its body read whole, unless that body is JSON giving a key twice in one object:
/// tool arguments are refused as REST bodies are (400 `VALIDATION_ERROR` naming the key), before
/// any tool runs.
async fn without_duplicate_keys(request: Request) -> Result<Request, AppError> {
    let (parts, body) = request.into_parts();
    // Read at most MAX_BODY_BYTES: a larger body is refused before it is buffered whole.
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        if e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            AppError::PayloadTooLarge
        } else {
            AppError::MalformedBody("could not read the request body".into())
        }
    })?;
    refuse_duplicate_keys(&bytes)?;
    Ok(Request::from_parts(parts, axum::body::Body::from(bytes)))
}

fn http_service(service: AppState) -> McpService {
    let router = tools::Tools::new(service.clone()).router();
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_BODY_BYTES)
        // rmcp checks Host against loopback names by default, against DNS rebinding of an
        // unauthenticated local server. Here every request carries a key the page cannot
        // read, and the deployed API's host name is not known in advance.
        .disable_allowed_hosts();
    StreamableHttpService::new(
        move || Ok(tools::Tools::with_router(service.clone(), router.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}
