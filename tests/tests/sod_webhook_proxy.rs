//! The webhook client ignores proxy settings from the environment (docs/api.md, "Webhooks"): a proxy would
//! resolve the target itself, where the SSRF guard never sees the address. Its own test binary:
//! it sets process-wide environment variables, before any client is built, in its only test.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use countersign_core::adapters::http_client::HttpWebhookClient;
use countersign_core::domain::webhook::sign;
use countersign_core::ports::WebhookClient;
use tokio::net::TcpListener;

const PROXY_VARIABLES: [&str; 6] = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"];

/// A "proxy" that counts the connections it gets and answers none of them.
async fn proxy() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (url, connections)
}

async fn endpoint() -> String {
    let app = axum::Router::new().route("/hook", axum::routing::post(|| async { axum::http::StatusCode::NO_CONTENT }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_client_ignores_proxy_variables() {
    let (proxy, connections) = proxy().await;
    for name in PROXY_VARIABLES {
        std::env::set_var(name, &proxy);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(name);
    }
    let target = endpoint().await;
    // Private targets allowed, so the loopback endpoint stands in for a public one.
    let client = HttpWebhookClient::new(true, Duration::from_secs(2)).expect("client");
    let headers = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_1", 0, b"{}");
    let outcome = client.post(&target, &headers, b"{}".to_vec()).await;
    assert_eq!(connections.load(Ordering::SeqCst), 0, "the client went through the proxy: {outcome:?}");
    assert_eq!(outcome.expect("delivered directly").status, 204);
}
