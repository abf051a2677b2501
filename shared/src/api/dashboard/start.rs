//! `/dashboard/start/{token}`: the one-time sign-in link `countersign serve` prints when it sets
//! up a new data directory (as Jupyter's `?token=` link), so the first admin reaches a signed-in
//! dashboard by opening it.
//!
//! - The link lives only in the memory of the process that printed it (an axum `Extension`):
//!   the token's SHA-256 (compared in constant time) and the admin key's secret, which the
//!   process made a moment before and which is dropped once the link is used or has expired.
//! - It works once, and for `SIGN_IN_LINK_MINUTES` after start; a restart ends it (the admin key
//!   still signs in on the sign-in form).
//! - A GET only shows a "Sign in" button: link scanners and previews fetch links, and nothing
//!   they fetch signs in or spends the link. The button POSTs with a CSRF token bound to a nonce
//!   cookie (as the sign-in form), refused when the browser marks it cross-site.
//! - The POST signs in with the admin key through the same `sign_in` as the form, so the session
//!   is an ordinary one (server-side, 12 h, ended by revoking the key).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::auth::Visitor;
use super::form::{Form, PathParam};
use super::page::{html, see_other, DashError, Reply};
use super::tokens::{new_nonce, read_cookie, sign_in_ok, sign_in_token};
use super::views::{Chrome, StartPage};
use crate::api::AppState;

/// How long the printed sign-in link works.
pub const SIGN_IN_LINK_MINUTES: u64 = 15;

/// The path of a sign-in link, before its token.
pub const SIGN_IN_LINK_PATH: &str = "/dashboard/start/";

/// A one-time sign-in link for an API key (module doc). Never printed by `Debug`.
pub struct SignInLink {
    token_hash: [u8; 32],
    expires_at: Instant,
    /// The key's secret until the link is used; `None` after.
    secret: Mutex<Option<String>>,
}

impl std::fmt::Debug for SignInLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignInLink(<redacted>)")
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl SignInLink {
    /// A link that signs in with the API key `secret`, working once for `ttl`, and its token
    /// (32 random bytes, base64url): the caller shows the token once and keeps no copy.
    pub fn new(secret: String, ttl: Duration) -> (Arc<Self>, String) {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let link = SignInLink {
            token_hash: digest(&token),
            expires_at: Instant::now() + ttl,
            secret: Mutex::new(Some(secret)),
        };
        (Arc::new(link), token)
    }

    /// The link's path with its token.
    pub fn path(token: &str) -> String {
        format!("{SIGN_IN_LINK_PATH}{token}")
    }

    fn matches(&self, token: &str) -> bool {
        token.len() <= 64 && bool::from(digest(token).ct_eq(&self.token_hash))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        // A panic while holding the lock leaves nothing half-done: take or put back one value.
        self.secret.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `token` is this link and it may still be used. An expired link forgets its key.
    fn usable(&self, token: &str) -> bool {
        if !self.matches(token) {
            return false;
        }
        let mut slot = self.slot();
        if Instant::now() >= self.expires_at {
            *slot = None;
        }
        slot.is_some()
    }

    /// Spends the link: the key's secret, once, if `token` is this link and it has not expired.
    fn spend(&self, token: &str) -> Option<String> {
        if !self.usable(token) {
            return None;
        }
        self.slot().take()
    }

    /// Gives the secret back after a sign-in that failed for a reason of the server's.
    fn restore(&self, secret: String) {
        let mut slot = self.slot();
        if slot.is_none() && Instant::now() < self.expires_at {
            *slot = Some(secret);
        }
    }
}

fn gone() -> DashError {
    DashError::new(
        StatusCode::NOT_FOUND,
        "Link not valid",
        "This sign-in link has been used, has expired, or is not one this server printed. Sign in \
         with the admin API key that countersign serve printed instead.",
    )
}

type Link = Option<Extension<Arc<SignInLink>>>;

fn link_of(link: &Link, token: &str) -> Option<Arc<SignInLink>> {
    link.as_ref().map(|Extension(l)| l.clone()).filter(|l| l.matches(token))
}

/// The confirm page: a button that signs in. Spends nothing.
pub async fn confirm(visitor: Visitor, link: Link, PathParam(token): PathParam) -> Reply {
    if !link_of(&link, &token).is_some_and(|l| l.usable(&token)) {
        return Err(gone());
    }
    let nonce = new_nonce();
    let page = StartPage { chrome: Chrome::anonymous(), csrf: sign_in_token(&visitor.secret, &nonce), token };
    let mut response = html(StatusCode::OK, &page);
    if let Ok(v) = HeaderValue::from_str(&visitor.transport.sign_in_nonce(&nonce)) {
        response.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    Ok(response)
}

/// The button's POST: spends the link, signs in with its key, and opens the queue.
pub async fn sign_in(
    State(s): State<AppState>,
    visitor: Visitor,
    link: Link,
    headers: axum::http::HeaderMap,
    PathParam(token): PathParam,
    form: Form,
) -> Reply {
    let nonce = read_cookie(&headers, visitor.transport.sign_in_cookie());
    if visitor.cross_site || !sign_in_ok(&visitor.secret, nonce.as_deref(), form.get("csrf")) {
        return Err(DashError::csrf());
    }
    let link = link_of(&link, &token).ok_or_else(gone)?;
    let secret = link.spend(&token).ok_or_else(gone)?;
    match s.sign_in(&secret).await {
        Ok(signed_in) => {
            let t = visitor.transport;
            let cookies = vec![t.session(&visitor.secret, &signed_in.session), t.clear(t.sign_in_cookie())];
            Ok(see_other("/dashboard", cookies))
        }
        Err(e) => {
            // The key was revoked meanwhile (the link stays spent), or the store failed (the
            // link may be tried again).
            if e.parts().0.is_server_error() {
                link.restore(secret);
            }
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once_and_only_with_its_token() {
        let (link, token) = SignInLink::new("csk_secret".into(), Duration::from_secs(60));
        assert!(!link.usable("wrong"));
        assert!(!link.usable(&format!("{token}x")));
        assert_eq!(link.spend("wrong"), None);
        assert!(link.usable(&token), "looking does not spend it");
        assert_eq!(link.spend(&token).as_deref(), Some("csk_secret"));
        assert_eq!(link.spend(&token), None, "spent");
        assert!(!link.usable(&token));
        assert!(!format!("{link:?}").contains("csk_"));
        assert!(!format!("{link:?}").contains(&token));
    }

    #[test]
    fn an_expired_link_forgets_its_key() {
        let (link, token) = SignInLink::new("csk_secret".into(), Duration::ZERO);
        assert!(!link.usable(&token));
        assert_eq!(link.spend(&token), None);
        assert!(link.slot().is_none());
        link.restore("csk_secret".into());
        assert!(link.slot().is_none(), "nothing comes back after expiry");
    }
}
