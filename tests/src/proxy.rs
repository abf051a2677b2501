//! A counting HTTP proxy between the code and DynamoDB Local: every request is forwarded as it
//! came and logged with its operation (`X-Amz-Target`) and when it was in flight, so an
//! operation's requests and its sequential round trips (requests overlapping in time count as
//! one) are measured on the wire, not at the adapter.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use countersign_core::domain::event::Event;
use countersign_core::ports::{BusError, EventBus, Published};

#[derive(Debug, Clone)]
struct Span {
    target: String,
    start: Instant,
    end: Instant,
}

#[derive(Clone)]
pub struct Proxy {
    pub endpoint: String,
    log: Arc<Mutex<Vec<Span>>>,
    last_bodies: Arc<Mutex<BTreeMap<String, axum::body::Bytes>>>,
}

/// What went over the wire during one operation.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Requests by operation (`GetItem`, `TransactWriteItems`, ...).
    pub by_target: BTreeMap<String, usize>,
    pub requests: usize,
    /// Groups of requests in flight one after another (overlapping ones count once).
    pub round_trips: usize,
}

impl Traffic {
    pub fn targets(&self) -> String {
        self.by_target.iter().map(|(t, n)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
    }
}

/// What one request cost on the wire: up to its commit (its reads and its transaction), and
/// after (the outbox marks that follow publishing its events).
#[derive(Debug, Default)]
pub struct Cost {
    pub commit: Traffic,
    pub marks: Traffic,
}

/// An event bus that accepts every event and, at the moment a request publishes, takes what
/// the proxy saw so far: so a request's own reads and transaction are told from the outbox
/// marks after them.
pub struct SplittingBus {
    proxy: Proxy,
    before_publish: Mutex<Option<Traffic>>,
}

impl SplittingBus {
    pub fn new(proxy: Proxy) -> Self {
        SplittingBus { proxy, before_publish: Mutex::new(None) }
    }

    /// Forgets what was seen so far: the next request's cost starts here.
    pub fn reset(&self) {
        self.proxy.reset();
        *self.before_publish.lock().expect("lock") = None;
    }

    /// What the requests since `reset` cost (one request at a time).
    pub fn cost(&self) -> Cost {
        let after = self.proxy.take();
        match self.before_publish.lock().expect("lock").take() {
            Some(commit) => Cost { commit, marks: after },
            None => Cost { commit: after, marks: Traffic::default() },
        }
    }
}

#[async_trait::async_trait]
impl EventBus for SplittingBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        *self.before_publish.lock().expect("lock") = Some(self.proxy.take());
        Ok(Published { accepted: events.iter().map(|e| e.id.clone()).collect(), refused: vec![] })
    }
}

#[derive(Clone)]
struct Upstream {
    url: String,
    http: reqwest::Client,
    log: Arc<Mutex<Vec<Span>>>,
    last_bodies: Arc<Mutex<BTreeMap<String, axum::body::Bytes>>>,
}

impl Proxy {
    /// Listens on a loopback port and forwards to `upstream`.
    pub async fn start(upstream: &str) -> Proxy {
        let log = Arc::new(Mutex::new(Vec::new()));
        let last_bodies = Arc::new(Mutex::new(BTreeMap::new()));
        let state = Upstream {
            url: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("client"),
            log: log.clone(),
            last_bodies: last_bodies.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { endpoint: format!("http://{addr}"), log, last_bodies }
    }

    /// The body of the last request of operation `target` (`TransactWriteItems`, ...) forwarded.
    pub fn last_body(&self, target: &str) -> Option<axum::body::Bytes> {
        self.last_bodies.lock().expect("bodies").get(target).cloned()
    }

    /// Forgets what was logged so far.
    pub fn reset(&self) {
        self.log.lock().expect("log").clear();
    }

    /// What was logged since the last reset (which it also is).
    pub fn take(&self) -> Traffic {
        let mut spans = std::mem::take(&mut *self.log.lock().expect("log"));
        spans.sort_by_key(|s| s.start);
        let mut traffic = Traffic { requests: spans.len(), ..Traffic::default() };
        let mut reach: Option<Instant> = None;
        for span in &spans {
            *traffic.by_target.entry(span.target.clone()).or_default() += 1;
            match reach {
                Some(end) if span.start < end => reach = Some(end.max(span.end)),
                _ => {
                    traffic.round_trips += 1;
                    reach = Some(span.end);
                }
            }
        }
        traffic
    }
}

async fn forward(State(up): State<Upstream>, request: Request<Body>) -> Response<Body> {
    let start = Instant::now();
    let (parts, body) = request.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
        .unwrap_or_else(|| "(none)".into());
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return Response::builder().status(StatusCode::BAD_REQUEST).body(Body::empty()).expect("response");
    };
    up.last_bodies.lock().expect("bodies").insert(target.clone(), bytes.clone());
    let uri = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut outbound = up.http.request(parts.method.clone(), format!("{}{uri}", up.url)).body(bytes);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            outbound = outbound.header(name, value);
        }
    }
    let response = match outbound.send().await {
        Ok(r) => r,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(e.to_string()))
                .expect("response")
        }
    };
    let mut reply = Response::builder().status(response.status().as_u16());
    for (name, value) in response.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            reply = reply.header(name, value);
        }
    }
    let body = response.bytes().await.unwrap_or_default();
    up.log.lock().expect("log").push(Span { target, start, end: Instant::now() });
    reply.body(Body::from(body)).expect("response")
}
