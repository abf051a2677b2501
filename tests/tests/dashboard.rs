//! The reviewer dashboard over HTTP on both stores: sign-in and its session (cookie without the
//! key, re-checked each request, ended by revocation and by signing out), CSRF refusals and bad
//! input as readable 4xx pages with nothing written, and review links deciding at most once
//! under a race. The browser-level checks (XSS, shortcuts, live refresh) are in tests/dashboard.

use std::sync::Arc;

use countersign_core::domain::ids::ApprovalId;
use countersign_core::domain::secret::ServerSecret;
use countersign_tests::browser::Browser;
use countersign_tests::{per_backend, Backend, Scenario, TestApp};
use serde_json::json;

const SECRET: &str = "dashboard-integration-secret-0123456789";

async fn app(backend: Backend) -> TestApp {
    TestApp::spawn_tuned(backend, |s| {
        s.session_secret = Some(Arc::new(ServerSecret::new(SECRET).expect("secret")));
        s.public_url = Some("http://dashboard.test".into());
    })
    .await
}

fn key_id(secret: &str) -> String {
    let rest = secret.strip_prefix("csk_").expect("secret");
    rest.rsplit_once('_').expect("id").0.to_string()
}

async fn approval(app: &TestApp, s: &Scenario, id: &str) -> serde_json::Value {
    let (status, body) = app.get(&format!("/v1/approvals/{id}"), &s.reviewer).await;
    assert_eq!(status, 200, "{body}");
    body
}

per_backend!(signing_in_keeps_a_session_that_revocation_ends);
async fn signing_in_keeps_a_session_that_revocation_ends(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("10000.00").await;
    app.held_payment(&s, "5000.00").await;
    let mut browser = Browser::new(&app);
    let first = browser.get("/dashboard").await;
    assert_eq!((first.status, first.location.as_deref()), (303, Some("/dashboard/sign-in?next=%2Fdashboard")));

    // The sign-in form's token is bound to this browser's nonce cookie.
    let page = browser.get("/dashboard/sign-in").await;
    let stolen = page.csrf();
    let mut other = Browser::new(&app);
    other.get("/dashboard/sign-in").await;
    let refused = other.post("/dashboard/sign-in", &[("csrf", &stolen), ("api_key", &s.reviewer)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.content_type.starts_with("text/html") && refused.body.contains("security token"));
    let wrong = browser.post("/dashboard/sign-in", &[("csrf", &stolen), ("api_key", "csk_nope")]).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("That API key was not recognised."), "{}", wrong.body);
    assert!(!wrong.body.contains("csk_nope"), "the key is never echoed back");

    let csrf = browser.signed_in(&s.reviewer).await;
    let session = browser.cookies.get("countersign-session").expect("session cookie").clone();
    assert!(!session.contains(&s.reviewer) && !session.contains("csk_"), "the cookie holds no key");
    let queue = browser.get("/dashboard").await;
    assert!(queue.body.contains("5000.00 USD"), "{}", queue.body);
    assert!(queue.body.contains("Signed in as"));

    // Revoking the key ends the session on its next request.
    let (status, body) =
        app.call("DELETE", &format!("/v1/api-keys/{}", key_id(&s.reviewer)), Some(&s.admin), None).await;
    assert_eq!(status, 200, "{body}");
    let after = browser.get("/dashboard").await;
    assert_eq!(after.status, 303);
    assert_eq!(after.location.as_deref(), Some("/dashboard/sign-in?next=%2Fdashboard&ended=revoked"));
    assert!(!browser.cookies.contains_key("countersign-session"), "the cookie is cleared");
    let again = browser.get("/dashboard/sign-in?ended=revoked").await;
    assert!(again.body.contains("revoked"), "{}", again.body);

    // Signing out ends the session server-side: a copy of the cookie no longer works.
    let reviewer = app.key(&s.admin, &["approvals:read", "approvals:write"]).await;
    let mut browser = Browser::new(&app);
    let csrf_2 = browser.signed_in(&reviewer).await;
    assert_ne!(csrf, csrf_2, "each session has its own token");
    let copy = browser.cookies.clone();
    let out = browser.post("/dashboard/sign-out", &[("csrf", &csrf_2)]).await;
    assert_eq!((out.status, out.location.as_deref()), (303, Some("/dashboard/sign-in?ended=signed-out")));
    let mut thief = Browser::new(&app);
    thief.cookies = copy;
    assert_eq!(thief.get("/dashboard").await.status, 303);

    // The operator key and keys that cannot read approvals do not sign in.
    let mut browser = Browser::new(&app);
    let operator = browser.sign_in(countersign_tests::OPERATOR_KEY).await;
    assert_eq!(operator.status, 403, "{}", operator.body);
    let agent = browser.sign_in(&s.agent).await;
    assert_eq!(agent.status, 403);
    assert!(agent.body.contains("approvals:read"), "{}", agent.body);
}

per_backend!(forms_without_a_token_and_bad_input_are_readable_4xx_pages);
async fn forms_without_a_token_and_bad_input_are_readable_4xx_pages(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("10000.00").await;
    let (_, approval_id) = app.held_payment(&s, "5000.00").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.signed_in(&s.reviewer).await;
    let decide = format!("/dashboard/approvals/{approval_id}/decide");
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("action", "approve")], 403, "security token"),
        (vec![("csrf", "forged"), ("action", "approve")], 403, "security token"),
        (vec![("csrf", &csrf), ("action", "modify"), ("amount", "ten")], 400, "INVALID_AMOUNT"),
        (vec![("csrf", &csrf), ("action", "modify")], 400, "amount"),
        (vec![("csrf", &csrf), ("action", "modify"), ("amount", "9000.00")], 400, "VALIDATION_ERROR"),
        (vec![("csrf", &csrf), ("action", "approve"), ("amount", "10.00")], 400, "only for Modify"),
        (vec![("csrf", &csrf), ("action", "launch")], 400, "action"),
        (vec![("csrf", &csrf), ("action", "approve"), ("action", "reject")], 400, "twice"),
    ];
    for (form, status, says) in cases {
        let page = browser.post(&decide, &form).await;
        assert_eq!(page.status, status, "{form:?}: {}", page.body);
        assert!(page.content_type.starts_with("text/html"), "{form:?}");
        assert!(page.body.contains(says), "{form:?} should say {says}: {}", page.body);
    }
    let unknown = ApprovalId::generate();
    let page = browser
        .post(&format!("/dashboard/approvals/{unknown}/decide"), &[("csrf", &csrf), ("action", "approve")])
        .await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert_eq!(browser.get(&format!("/dashboard/approvals/{unknown}")).await.status, 404);
    assert_eq!(browser.get("/dashboard/approvals/not-an-id").await.status, 404);
    let undecodable = browser.get("/dashboard/approvals/%FF%FE").await;
    assert_eq!(undecodable.status, 404);
    assert!(undecodable.content_type.starts_with("text/html"));
    assert_eq!(browser.get("/dashboard/nowhere").await.status, 404);
    let page = browser.get(&decide).await;
    assert_eq!(page.status, 405);
    assert!(page.content_type.starts_with("text/html"));
    assert_eq!(browser.get("/dashboard?status=bogus").await.status, 400);
    let json = browser
        .send(browser.http.post(format!("{}{decide}", browser.base)).json(&json!({"csrf": csrf, "action": "approve"})))
        .await;
    assert_eq!(json.status, 400, "{}", json.body);
    // Nothing was written by any of them.
    let a = approval(&app, &s, &approval_id).await;
    assert_eq!((a["status"].as_str(), a["votes"].as_array().map(Vec::len)), (Some("PENDING"), Some(0)), "{a}");

    // A valid decision shows the new status after the redirect.
    let page = browser.post(&decide, &[("csrf", &csrf), ("action", "reject"), ("note", "not this vendor")]).await;
    assert_eq!(page.status, 303, "{}", page.body);
    let shown = browser.get(page.location.as_deref().expect("location")).await;
    assert!(shown.body.contains(">REJECTED<") && shown.body.contains("not this vendor"), "{}", shown.body);
    let again = browser.post(&decide, &[("csrf", &csrf), ("action", "approve")]).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("APPROVAL_NOT_PENDING"), "{}", again.body);
    for page in [shown, again] {
        assert!(page.body.contains("Refused") || page.body.contains("You rejected it."), "{}", page.body);
    }
}

per_backend!(a_review_link_decides_once_and_never_on_a_get);
async fn a_review_link_decides_once_and_never_on_a_get(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("10000.00").await;
    // Two approvers needed: without the link's single use, both votes below would count.
    app.policy(
        &s.admin,
        &s.from,
        json!({"name": "two people", "maxTransactionAmount": "100.00", "requireHumanApproval": true, "requiredApprovals": 2}),
    )
    .await;
    let (_, approval_id) = app.held_payment(&s, "5000.00").await;
    let a = approval(&app, &s, &approval_id).await;
    let expires = a["expiresAt"].as_str().expect("expiresAt").parse().expect("time");
    let id = ApprovalId::parse(&approval_id).expect("id");
    let url = app.service.review_url(&id, expires).expect("a review link");
    let path = url.strip_prefix("http://dashboard.test").expect("public url").to_string();

    // GETs (a scanner's, then a signed-in reviewer's) decide nothing.
    let mut scanner = Browser::new(&app);
    let scanned = scanner.get(&path).await;
    assert_eq!(scanned.status, 303, "{}", scanned.body);
    let cross_site =
        scanner.send(scanner.http.get(format!("{}{path}", scanner.base)).header("sec-fetch-site", "cross-site")).await;
    assert_eq!(cross_site.status, 200);
    assert!(cross_site.body.contains("http-equiv=\"refresh\""), "{}", cross_site.body);
    let reviewers = [s.reviewer.clone(), app.key(&s.admin, &["approvals:read", "approvals:write"]).await];
    let mut browsers = Vec::new();
    for key in &reviewers {
        let mut b = Browser::new(&app);
        b.signed_in(key).await;
        let confirm = b.get(&path).await;
        assert_eq!(confirm.status, 200, "{}", confirm.body);
        assert!(confirm.body.contains("Confirm your decision"), "{}", confirm.body);
        let csrf = confirm.csrf();
        browsers.push((b, csrf));
    }
    let a = approval(&app, &s, &approval_id).await;
    assert_eq!(a["votes"].as_array().map(Vec::len), Some(0), "a GET never decides");
    assert_eq!(scanner.get(&format!("{path}x")).await.status, 303, "signed out: sign in first");
    let mut tampered = browsers.pop().expect("browser");
    let bad = tampered.0.get(&format!("{path}x")).await;
    assert_eq!(bad.status, 404, "{}", bad.body);
    browsers.push(tampered);

    // Both reviewers press Approve at once: one vote counts, the other sees the link used.
    let posts = browsers.into_iter().map(|(mut b, csrf)| {
        let path = path.clone();
        async move { b.post(&path, &[("csrf", &csrf), ("action", "approve")]).await.status }
    });
    let mut statuses = futures::future::join_all(posts).await;
    statuses.sort();
    assert_eq!(statuses, vec![200, 409]);
    let a = approval(&app, &s, &approval_id).await;
    assert_eq!((a["status"].as_str(), a["votes"].as_array().map(Vec::len)), (Some("PENDING"), Some(1)), "{a}");

    // The link's expiry is the approval's: a link past it is refused.
    let old = app.service.review_url(&id, chrono::Utc::now() - chrono::Duration::seconds(1)).expect("link");
    let mut b = Browser::new(&app);
    b.signed_in(&s.reviewer).await;
    let expired = b.get(old.strip_prefix("http://dashboard.test").expect("path")).await;
    assert_eq!(expired.status, 410, "{}", expired.body);
}

per_backend!(the_lambda_serves_the_dashboard_over_https_with_secure_cookies);
async fn the_lambda_serves_the_dashboard_over_https_with_secure_cookies(backend: Backend) {
    use tower::ServiceExt;
    let app = app(backend).await;
    let event = include_str!("../../events/approvals/dashboard-sign-in.json");
    let request = lambda_http::request::from_str(event).expect("API Gateway event");
    let response = countersign_core::api::router(app.service.clone()).oneshot(request).await.expect("router");
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(header("content-type").starts_with("text/html"));
    assert!(header("content-security-policy").contains("script-src 'self'"));
    let cookie = header("set-cookie");
    assert!(cookie.starts_with("__Host-countersign-sign-in=") && cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("<label for=\"api-key\">API key</label>") && body.contains(">Sign in</button>"), "{body}");
}

per_backend!(a_notice_comes_from_what_the_server_holds_never_from_the_address);
async fn a_notice_comes_from_what_the_server_holds_never_from_the_address(backend: Backend) {
    let app = app(backend).await;
    let s = app.scenario("10000.00").await;
    let (_, approval_id) = app.held_payment(&s, "5000.00").await;
    let mut browser = Browser::new(&app);
    let csrf = browser.signed_in(&s.reviewer).await;
    let page = format!("/dashboard/approvals/{approval_id}");
    // A crafted link claims a decision nobody made: the page says nothing of it.
    for claim in ["approve", "reject", "modify", "escalate"] {
        let shown = browser.get(&format!("{page}?done={claim}")).await;
        assert_eq!(shown.status, 200, "{}", shown.body);
        assert!(!shown.body.contains("class=\"flash\""), "?done={claim} made a notice: {}", shown.body);
        assert!(shown.body.contains(">PENDING<"), "{}", shown.body);
    }
    // After a real decision, the notice is the viewer's own vote, whatever the address says.
    let decided = browser.post(&format!("{page}/decide"), &[("csrf", &csrf), ("action", "reject")]).await;
    assert_eq!((decided.status, decided.location.as_deref()), (303, Some(page.as_str())), "{}", decided.body);
    let shown = browser.get(&format!("{page}?done=approve")).await;
    assert!(
        shown.body.contains("You rejected it.") && !shown.body.contains("Your approval was recorded."),
        "{}",
        shown.body
    );
    // Another reviewer sees no notice: it is not their decision.
    let mut other = Browser::new(&app);
    other.signed_in(&app.key(&s.admin, &["approvals:read", "approvals:write"]).await).await;
    let theirs = other.get(&page).await;
    assert!(theirs.body.contains(">REJECTED<") && !theirs.body.contains("class=\"flash\""), "{}", theirs.body);
}
