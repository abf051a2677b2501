//! A browser without JavaScript for the dashboard's HTTP tests: it keeps cookies, follows no
//! redirects, and reads the CSRF field of a page. The browser-level checks (XSS, shortcuts, live
//! refresh) run in headless Chromium in tests/dashboard.

use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use crate::TestApp;

/// A browser without JavaScript: keeps the cookies it is given, follows no redirects.
pub struct Browser {
    pub base: String,
    pub http: reqwest::Client,
    pub cookies: std::collections::BTreeMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub content_type: String,
    pub body: String,
}

impl Page {
    /// The value of the hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let start = self.body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        self.body[start..].split('"').next().expect("value").to_string()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().expect("client");
        Browser { base: app.base.clone(), http, cookies: Default::default() }
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = if cookie.is_empty() { req } else { req.header(COOKIE, cookie.join("; ")) };
        let res = req.send().await.expect("request");
        for set in res.headers().get_all(SET_COOKIE) {
            let set = set.to_str().expect("cookie");
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let header = |name| res.headers().get(name).and_then(|v| v.to_str().ok()).map(String::from);
        let (location, content_type) = (header(LOCATION), header(CONTENT_TYPE).unwrap_or_default());
        let status = res.status().as_u16();
        Page { status, location, content_type, body: res.text().await.expect("body") }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    pub async fn sign_in(&mut self, key: &str) -> Page {
        let page = self.get("/dashboard/sign-in").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.csrf();
        self.post("/dashboard/sign-in", &[("csrf", &csrf), ("api_key", key), ("next", "/dashboard")]).await
    }

    /// Signs in and returns the CSRF token of the signed-in pages.
    pub async fn signed_in(&mut self, key: &str) -> String {
        let page = self.sign_in(key).await;
        assert_eq!((page.status, page.location.as_deref()), (303, Some("/dashboard")), "{}", page.body);
        let queue = self.get("/dashboard").await;
        assert_eq!(queue.status, 200, "{}", queue.body);
        queue.csrf()
    }
}
