//! `countersign mcp --url URL`: the MCP tools of a Countersign server over stdio, for desktop
//! clients that start a command. A proxy: an MCP client of `URL/mcp` (Streamable HTTP, the
//! key from `COUNTERSIGN_API_KEY` as its Bearer token) behind an MCP server on stdin/stdout,
//! so the tools, their checks and their errors are the server's own.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, ListToolsResult, PaginatedRequestParams, ResultType,
    ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, RoleServer, ServerHandler, ServiceExt};

/// The environment variable holding the API key the proxy sends.
pub const API_KEY_ENV: &str = "COUNTERSIGN_API_KEY";

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("{API_KEY_ENV} is not set: give the API key the tools act as")]
    NoKey,
    #[error(
        "refusing {url}: {reason}; use https://, or http:// only to this machine \
         (localhost, 127.0.0.0/8, [::1])"
    )]
    InsecureUrl { url: String, reason: &'static str },
    #[error("could not connect to {url}: {reason}")]
    Upstream { url: String, reason: String },
    #[error("the stdio session failed: {0}")]
    Stdio(String),
}

/// The MCP endpoint of the server at `base` (`http://host:port`, or the `/mcp` URL itself).
pub fn endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(super::MCP_PATH) {
        base.to_string()
    } else {
        format!("{base}{}", super::MCP_PATH)
    }
}

/// Refuses a URL the API key would travel to in clear: anything but `https://`, or `http://`
/// to a loopback host (the traffic never leaves the machine). Checked before any connection.
pub fn check_transport(url: &str) -> Result<(), ProxyError> {
    let refuse = |reason| ProxyError::InsecureUrl { url: url.to_string(), reason };
    let parsed = url::Url::parse(url).map_err(|_| refuse("not an absolute URL"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback(&parsed) => Ok(()),
        "http" => Err(refuse("plain http:// would send the API key in clear")),
        _ => Err(refuse("only https:// is supported")),
    }
}

fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Serves the tools of `url` on stdin/stdout until the client closes stdin.
pub async fn run(url: &str, key: Option<String>) -> Result<(), ProxyError> {
    check_transport(url)?;
    let key = key.filter(|k| !k.trim().is_empty()).ok_or(ProxyError::NoKey)?;
    let url = endpoint(url);
    let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).auth_header(key.trim());
    let upstream =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .map_err(|e| ProxyError::Upstream { url: url.clone(), reason: e.to_string() })?;
    let proxy = Proxy { upstream };
    let session = proxy.serve(rmcp::transport::stdio()).await.map_err(|e| ProxyError::Stdio(e.to_string()))?;
    session.waiting().await.map_err(|e| ProxyError::Stdio(e.to_string()))?;
    Ok(())
}

struct Proxy {
    upstream: RunningService<RoleClient, ()>,
}

fn upstream_error(error: rmcp::ServiceError) -> ErrorData {
    match error {
        rmcp::ServiceError::McpError(e) => e,
        other => ErrorData::internal_error(format!("the Countersign server did not answer: {other}"), None),
    }
}

impl ServerHandler for Proxy {
    fn get_info(&self) -> ServerConfig {
        let config = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        match self.upstream.peer_info() {
            Some(info) => {
                let config = match &info.server_info {
                    Some(server) => config.with_server_info(server.clone()),
                    None => config,
                };
                match &info.instructions {
                    Some(text) => config.with_instructions(text.clone()),
                    None => config,
                }
            }
            None => config,
        }
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut listed = self.upstream.list_tools(request).await.map_err(upstream_error)?;
        // An absent result type means complete (the server session may be on an older protocol
        // version than the stdio one); rmcp drops it again for older stdio clients.
        listed.result_type.get_or_insert(ResultType::COMPLETE);
        Ok(listed)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        // Only the call itself travels: the desktop client's request metadata belongs to the
        // stdio session, not to the one with the server.
        let mut call = CallToolRequestParams::new(request.name);
        call.arguments = request.arguments;
        Ok(match self.upstream.call_tool_once(call).await.map_err(upstream_error)? {
            CallToolResponse::Complete(mut result) => {
                result.result_type.get_or_insert(ResultType::COMPLETE);
                CallToolResponse::Complete(result)
            }
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        for ok in [
            "https://countersign.example.com",
            "http://127.0.0.1:8080/mcp",
            "http://127.8.9.10:1/",
            "http://[::1]:8080",
            "http://localhost:8080",
            "http://LOCALHOST:8080/mcp",
        ] {
            assert!(check_transport(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://example.com/mcp",
            "http://10.0.0.1:8080",
            "http://[::ffff:7f00:1]:8080", // mapped loopback: not what `http://` to this machine means
            "http://localhost.example.com",
            "http://127.0.0.1.nip.io",
            "ftp://127.0.0.1",
            "127.0.0.1:8080",
        ] {
            assert!(matches!(check_transport(refused), Err(ProxyError::InsecureUrl { .. })), "{refused}");
        }
    }
}
