//! `countersign serve` on a new data directory without an operator key: the real binary sets up a
//! first organisation and prints, once, its admin key and a one-time sign-in link. The key works
//! on the API; the link (a GET that only shows a button, the button's POST) signs a browser in to
//! the queue, once; a restart prints no secret again, and the session it gave survives the
//! restart (the session secret is kept, 0600, in the data directory). With an operator key the
//! operator flow is as before: nothing is set up and nothing secret is printed.
//!
//! Needs COUNTERSIGN_BIN (`cargo build --bin countersign`; scripts/test sets it): fails without.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use countersign_tests::browser::{Browser, Page};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

const ADMIN_KEY_LINE: &str = "Admin API key:";
const SIGN_IN_LINE: &str = "Sign-in link:";
const DASHBOARD_LINE: &str = "Dashboard:";
const AGENT_KEY_LINE: &str = "Demo agent API key:";

fn countersign_bin() -> String {
    let bin = std::env::var("COUNTERSIGN_BIN")
        .unwrap_or_else(|_| panic!("COUNTERSIGN_BIN is not set: build `countersign` and point it at the binary"));
    assert!(Path::new(&bin).exists(), "COUNTERSIGN_BIN={bin} does not exist");
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn temp_dir(name: &str) -> PathBuf {
    // Not created: `countersign serve` makes the data directory itself.
    std::env::temp_dir().join(format!("countersign-{name}-{}", ulid::Ulid::new()))
}

/// A running `countersign serve` and what it printed until it said where the dashboard is.
struct Server {
    child: Child,
    base: String,
    printed: String,
    rest: tokio::task::JoinHandle<String>,
}

impl Server {
    async fn start(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Server {
        Server::start_with(data_dir, port, env, &[]).await
    }

    async fn start_with(data_dir: &Path, port: u16, env: &[(&str, &str)], args: &[&str]) -> Server {
        let mut command = Command::new(countersign_bin());
        command
            .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("COUNTERSIGN_ADMIN_KEY")
            .env_remove("COUNTERSIGN_SESSION_SECRET")
            .env_remove("COUNTERSIGN_PUBLIC_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start countersign serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut printed = String::new();
        let read = async {
            loop {
                let mut line = String::new();
                let n = stdout.read_line(&mut line).await.expect("read stdout");
                assert!(n > 0, "countersign serve exited before printing the dashboard's address:\n{printed}");
                printed.push_str(&line);
                if line.starts_with(DASHBOARD_LINE) {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("the dashboard's address within 30 s");
        // Keep draining stdout (logs) so the server never blocks on a full pipe.
        let rest = tokio::spawn(drain(stdout));
        let server = Server { child, base: format!("http://localhost:{port}"), printed, rest };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http.get(format!("{}/health", self.base)).send().await.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("countersign serve never answered /health");
    }

    /// The value on the line that starts with `prefix`, if printed.
    fn line(&self, prefix: &str) -> Option<String> {
        self.printed.lines().find_map(|l| l.strip_prefix(prefix)).map(|v| v.trim().to_string())
    }

    fn browser(&self) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Browser { base: self.base.clone(), http, cookies: Default::default() }
    }

    /// Stops the server; everything it wrote after the announcement (stdout logs, then stderr).
    async fn stop(mut self) -> String {
        let pid = self.child.id().expect("pid") as i32;
        // SIGTERM: the server shuts down gracefully.
        let killed = std::process::Command::new("kill").arg(pid.to_string()).status().expect("kill");
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("stops within 15 s")
            .expect("wait");
        assert!(status.success(), "countersign serve exited with {status}");
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut stderr).await.expect("stderr");
        }
        let stdout = self.rest.await.expect("drain");
        format!("{stdout}{stderr}")
    }
}

async fn drain(mut stdout: BufReader<ChildStdout>) -> String {
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest).await;
    rest
}

async fn get_wallets(base: &str, key: &str) -> u16 {
    let res = reqwest::Client::new()
        .get(format!("{base}/v1/wallets"))
        .bearer_auth(key)
        .send()
        .await
        .expect("GET /v1/wallets");
    res.status().as_u16()
}

/// Whether `page` is the queue, signed in (not the sign-in form, not a redirect to it).
fn signed_in_queue(page: &Page) -> bool {
    page.status == 200
        && page.body.contains("Approvals queue")
        && page.body.contains("Signed in as")
        && page.body.contains("/dashboard/sign-out")
        && !page.body.contains("name=\"api_key\"")
}

#[tokio::test]
async fn first_run_prints_a_key_and_a_one_time_sign_in_link_once() {
    let data_dir = temp_dir("first-run");
    let port = free_port();
    let server = Server::start(&data_dir, port, &[]).await;

    // Printed once, plainly: the admin key and a link to this server's dashboard.
    let key = server.line(ADMIN_KEY_LINE).unwrap_or_else(|| panic!("no admin key printed:\n{}", server.printed));
    let link = server.line(SIGN_IN_LINE).unwrap_or_else(|| panic!("no sign-in link printed:\n{}", server.printed));
    assert!(key.starts_with("csk_"), "{key}");
    assert_eq!(server.line(DASHBOARD_LINE), Some(format!("{}/dashboard", server.base)));
    let path = link.strip_prefix(&server.base).unwrap_or_else(|| panic!("{link} is not on {}", server.base));
    assert!(path.starts_with("/dashboard/start/"), "{path}");
    let token = &path["/dashboard/start/".len()..];
    assert!(token.len() >= 43, "a token of 32 random bytes: {token}");

    // The key works on the API at once.
    assert_eq!(get_wallets(&server.base, &key).await, 200);

    // The data directory holds the session secret, owner-only.
    let secret_file = data_dir.join("session-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file).expect("session-secret").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "session-secret mode {mode:o}");
    }

    // Not signed in before: the queue sends to the sign-in form.
    let mut browser = server.browser();
    let before = browser.get("/dashboard").await;
    assert_eq!(before.status, 303, "{}", before.body);
    assert!(before.location.as_deref().is_some_and(|l| l.starts_with("/dashboard/sign-in")), "{:?}", before.location);

    // Opening the link shows a button and spends nothing (link scanners fetch links).
    let first_look = browser.get(path).await;
    assert_eq!(first_look.status, 200, "{}", first_look.body);
    let looked_again = browser.get(path).await;
    assert_eq!(looked_again.status, 200, "a GET does not spend the link: {}", looked_again.body);
    assert!(looked_again.body.contains(&format!("action=\"{path}\"")), "{}", looked_again.body);
    assert!(!looked_again.body.contains(&key), "the page never shows the key");
    let csrf = looked_again.csrf();

    // A POST without the page's token, or marked cross-site, is refused and spends nothing.
    let forged = browser.post(path, &[("csrf", "forged")]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let cross_site = browser
        .http
        .post(format!("{}{path}", server.base))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf", csrf.as_str())]);
    let cross = browser.send(cross_site).await;
    assert_eq!(cross.status, 403, "{}", cross.body);

    // The button signs in and opens the queue.
    let signed_in = browser.post(path, &[("csrf", &csrf)]).await;
    assert_eq!((signed_in.status, signed_in.location.as_deref()), (303, Some("/dashboard")), "{}", signed_in.body);
    assert!(browser.cookies.contains_key("countersign-session"), "{:?}", browser.cookies.keys());
    let queue = browser.get("/dashboard").await;
    assert!(signed_in_queue(&queue), "not the signed-in queue: {} {}", queue.status, queue.body);
    assert!(queue.body.contains("Signed in as <strong>admin</strong>"), "{}", queue.body);

    // Single use: the link is spent, for this browser and any other.
    let again = browser.get(path).await;
    assert_eq!(again.status, 404, "{}", again.body);
    // (Its sign-in nonce cookie went with the sign-in, so the old form is refused first.)
    let reposted = browser.post(path, &[("csrf", &csrf)]).await;
    assert_eq!(reposted.status, 403, "{}", reposted.body);
    let mut other = server.browser();
    let other_look = other.get(path).await;
    assert_eq!(other_look.status, 404, "{}", other_look.body);
    let sign_in_form = other.get("/dashboard/sign-in").await;
    let other_csrf = sign_in_form.csrf();
    let other_post = other.post(path, &[("csrf", &other_csrf)]).await;
    assert_eq!(other_post.status, 404, "{}", other_post.body);
    assert!(!other.cookies.contains_key("countersign-session"), "no session from a spent link");
    let other_queue = other.get("/dashboard").await;
    assert_eq!(other_queue.status, 303, "still signed out: {}", other_queue.body);
    // A made-up token is no link either.
    let made_up = other.get("/dashboard/start/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(made_up.status, 404, "{}", made_up.body);

    let logs = server.stop().await;
    assert!(!logs.contains(&key), "the admin key reached the logs:\n{logs}");
    assert!(!logs.contains(token), "the sign-in token reached the logs:\n{logs}");
    assert!(!logs.contains("csk_"), "a key reached the logs:\n{logs}");

    // A restart on the same data: no secret printed again, only the dashboard's address.
    let server = Server::start(&data_dir, port, &[]).await;
    assert_eq!(server.line(ADMIN_KEY_LINE), None, "{}", server.printed);
    assert_eq!(server.line(SIGN_IN_LINE), None, "{}", server.printed);
    assert!(!server.printed.contains("csk_") && !server.printed.contains(token), "{}", server.printed);
    assert_eq!(server.line(DASHBOARD_LINE), Some(format!("{}/dashboard", server.base)));
    assert_eq!(get_wallets(&server.base, &key).await, 200, "the key still works");
    // The old link is gone with the process that printed it; the session it gave is not (the
    // session secret is kept in the data directory).
    let old_link = browser.get(path).await;
    assert_eq!(old_link.status, 404, "{}", old_link.body);
    let queue = browser.get("/dashboard").await;
    assert!(signed_in_queue(&queue), "the session did not survive the restart: {} {}", queue.status, queue.body);
    // The admin key signs in on the form too.
    let mut by_key = server.browser();
    by_key.signed_in(&key).await;
    let logs = server.stop().await;
    assert!(!logs.contains("csk_"), "a key reached the logs:\n{logs}");
    std::fs::remove_dir_all(&data_dir).expect("remove the data directory");
}

#[tokio::test]
async fn with_an_operator_key_nothing_is_set_up_or_printed() {
    let data_dir = temp_dir("first-run-operator");
    let operator = "first-run-operator-key-0123456789";
    let server = Server::start(&data_dir, free_port(), &[("COUNTERSIGN_ADMIN_KEY", operator)]).await;
    assert_eq!(server.line(ADMIN_KEY_LINE), None, "{}", server.printed);
    assert_eq!(server.line(SIGN_IN_LINE), None, "{}", server.printed);
    assert!(!server.printed.contains("csk_"), "{}", server.printed);
    assert_eq!(server.line(DASHBOARD_LINE), Some(format!("{}/dashboard", server.base)));
    // The operator creates the first organisation, as before.
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/v1/organizations", server.base))
        .bearer_auth(operator)
        .json(&serde_json::json!({"name": "Acme"}))
        .send()
        .await
        .expect("create an organisation");
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.expect("json");
    let admin = body["adminKey"]["secret"].as_str().expect("admin key").to_string();
    assert_eq!(get_wallets(&server.base, &admin).await, 200);
    // No sign-in link route without a link.
    let mut browser = server.browser();
    let page = browser.get("/dashboard/start/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_eq!(page.status, 404, "{}", page.body);
    let logs = server.stop().await;
    assert!(!logs.contains("csk_"), "a key reached the logs:\n{logs}");
    std::fs::remove_dir_all(&data_dir).expect("remove the data directory");
}

#[tokio::test]
async fn demo_seeds_a_held_payment_the_admin_can_approve() {
    let data_dir = temp_dir("first-run-demo");
    let port = free_port();
    let server = Server::start_with(&data_dir, port, &[], &["--demo"]).await;
    let admin = server.line(ADMIN_KEY_LINE).unwrap_or_else(|| panic!("no admin key:\n{}", server.printed));
    let agent = server.line(AGENT_KEY_LINE).unwrap_or_else(|| panic!("no agent key:\n{}", server.printed));
    let link = server.line(SIGN_IN_LINE).unwrap_or_else(|| panic!("no link:\n{}", server.printed));
    assert!(agent.starts_with("csk_") && agent != admin, "{agent}");
    let path = link.strip_prefix(&server.base).expect("a link to this server").to_string();

    // The link signs in; the queue holds the demo's held payment.
    let mut browser = server.browser();
    let page = browser.get(&path).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let signed_in = browser.post(&path, &[("csrf", &page.csrf())]).await;
    assert_eq!((signed_in.status, signed_in.location.as_deref()), (303, Some("/dashboard")), "{}", signed_in.body);
    let queue = browser.get("/dashboard").await;
    assert!(signed_in_queue(&queue), "{} {}", queue.status, queue.body);
    assert!(queue.body.contains("Large vendor payment"), "the held payment is not in the queue: {}", queue.body);

    // Over the API: one pending approval, which the admin (another person than the agent) approves.
    let http = reqwest::Client::new();
    let pending = pending_approvals(&http, &server.base, &admin).await;
    let items = pending["data"].as_array().unwrap_or_else(|| panic!("{pending}"));
    assert_eq!(items.len(), 1, "{pending}");
    let id = items[0]["id"].as_str().expect("id");
    let approved = http
        .post(format!("{}/v1/approvals/{id}/approve", server.base))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"note": "demo"}))
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status(), 200, "{}", approved.text().await.unwrap_or_default());
    // The agent key reads payments.
    let payments =
        http.get(format!("{}/v1/payments", server.base)).bearer_auth(&agent).send().await.expect("list payments");
    assert_eq!(payments.status(), 200);
    let logs = server.stop().await;
    assert!(!logs.contains("csk_"), "a key reached the logs:\n{logs}");

    // --demo on a data directory that has its organisation seeds nothing and prints no secret.
    let server = Server::start_with(&data_dir, port, &[], &["--demo"]).await;
    assert!(!server.printed.contains("csk_"), "{}", server.printed);
    let pending = pending_approvals(&http, &server.base, &admin).await;
    assert_eq!(pending["data"].as_array().map(Vec::len), Some(0), "nothing seeded again: {pending}");
    server.stop().await;
    std::fs::remove_dir_all(&data_dir).expect("remove the data directory");
}

/// `GET /v1/approvals?status=PENDING` as `key` sees it.
async fn pending_approvals(http: &reqwest::Client, base: &str, key: &str) -> serde_json::Value {
    let res = http.get(format!("{base}/v1/approvals?status=PENDING")).bearer_auth(key).send().await;
    res.expect("list approvals").json().await.expect("json")
}
