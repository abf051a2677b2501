//! The dashboard's cookies and CSRF tokens. Pure: no I/O.
//!
//! - Session cookie: `<session id>.<tag>`: the random id of a server-side session (never the
//!   API key) and its HMAC under the server secret, so forged values are refused before any read.
//!   HttpOnly, SameSite=Strict, Path=/, 12 h; Secure (and the `__Host-` prefix) unless the
//!   dashboard is reached over plain http on a loopback address.
//! - CSRF: every form carries a token; signed in, the HMAC of the session id; on the sign-in
//!   form, the HMAC of a random nonce held in a short-lived cookie (double submit).

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cookie::{Cookie, SameSite};
use rand::RngCore;

use crate::domain::secret::{Purpose, ServerSecret};
use crate::service::{SessionId, SESSION_HOURS};

/// How long the sign-in form's nonce lives.
const SIGN_IN_NONCE_MINUTES: i64 = 60;

/// Whether cookies get `Secure` (and the `__Host-` prefix): always, except for plain http to a
/// loopback address (`countersign serve` on 127.0.0.1), where browsers would drop them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    pub secure: bool,
}

impl Transport {
    pub fn of(headers: &HeaderMap) -> Self {
        let forwarded_https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
        Transport { secure: forwarded_https || !is_loopback_host(host) }
    }

    pub fn session_cookie(self) -> &'static str {
        if self.secure {
            "__Host-countersign-session"
        } else {
            "countersign-session"
        }
    }

    pub fn sign_in_cookie(self) -> &'static str {
        if self.secure {
            "__Host-countersign-sign-in"
        } else {
            "countersign-sign-in"
        }
    }

    /// The marker of the one reload a cross-site navigation gets (`auth`): SameSite=Lax, so that
    /// the browser sends it even if it still calls the reload cross-site, and the reload is not
    /// repeated.
    pub fn hop_cookie(self) -> &'static str {
        if self.secure {
            "__Host-countersign-hop"
        } else {
            "countersign-hop"
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure when `self.secure`.
    pub fn set(self, name: &'static str, value: String, minutes: i64) -> String {
        self.build(name, value, minutes, SameSite::Strict)
    }

    fn build(self, name: &'static str, value: String, minutes: i64, same_site: SameSite) -> String {
        Cookie::build((name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(same_site)
            .path("/")
            .max_age(cookie::time::Duration::minutes(minutes))
            .build()
            .to_string()
    }

    /// The reload marker: one minute, SameSite=Lax, holding nothing secret.
    pub fn hop(self) -> String {
        self.build(self.hop_cookie(), "1".into(), 1, SameSite::Lax)
    }

    /// A `Set-Cookie` value that removes the cookie.
    pub fn clear(self, name: &'static str) -> String {
        self.set(name, String::new(), 0)
    }

    pub fn session(self, secret: &ServerSecret, session: &SessionId) -> String {
        self.set(self.session_cookie(), seal_session(secret, session), SESSION_HOURS * 60)
    }

    pub fn sign_in_nonce(self, nonce: &str) -> String {
        self.set(self.sign_in_cookie(), nonce.to_string(), SIGN_IN_NONCE_MINUTES)
    }
}

/// `host[:port]` names a loopback address (127.0.0.0/8, ::1, localhost).
fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The value of cookie `name` in the request, if any (the first, if repeated).
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

fn b64(tag: [u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(tag)
}

/// The session cookie's value for `session`.
pub fn seal_session(secret: &ServerSecret, session: &SessionId) -> String {
    format!("{}.{}", session.as_str(), b64(secret.tag(Purpose::Session, session.as_str().as_bytes())))
}

/// The session a cookie value names, if the value is one this server signed.
pub fn open_session(secret: &ServerSecret, value: &str) -> Option<SessionId> {
    let (id, tag) = value.split_once('.')?;
    let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
    secret.verify(Purpose::Session, id.as_bytes(), &tag).then(|| SessionId::parse(id)).flatten()
}

fn session_csrf_message(session: &SessionId) -> Vec<u8> {
    format!("session:{}", session.as_str()).into_bytes()
}

fn sign_in_csrf_message(nonce: &str) -> Vec<u8> {
    format!("sign-in:{nonce}").into_bytes()
}

/// The CSRF token of a signed-in session's forms.
pub fn csrf_token(secret: &ServerSecret, session: &SessionId) -> String {
    b64(secret.tag(Purpose::Csrf, &session_csrf_message(session)))
}

pub fn csrf_ok(secret: &ServerSecret, session: &SessionId, presented: Option<&str>) -> bool {
    check(secret, &session_csrf_message(session), presented)
}

/// A fresh nonce for the sign-in form's cookie.
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The sign-in form's CSRF token for the nonce in its cookie.
pub fn sign_in_token(secret: &ServerSecret, nonce: &str) -> String {
    b64(secret.tag(Purpose::Csrf, &sign_in_csrf_message(nonce)))
}

pub fn sign_in_ok(secret: &ServerSecret, nonce: Option<&str>, presented: Option<&str>) -> bool {
    match nonce.filter(|n| !n.is_empty() && n.len() <= 64) {
        Some(nonce) => check(secret, &sign_in_csrf_message(nonce), presented),
        None => false,
    }
}

fn check(secret: &ServerSecret, message: &[u8], presented: Option<&str>) -> bool {
    let Some(tag) = presented.and_then(|p| URL_SAFE_NO_PAD.decode(p).ok()) else { return false };
    secret.verify(Purpose::Csrf, message, &tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn secret() -> ServerSecret {
        ServerSecret::new("dashboard-test-secret-0123456789abcdef").unwrap()
    }

    fn session() -> SessionId {
        SessionId::parse(&URL_SAFE_NO_PAD.encode([7u8; 32])).unwrap()
    }

    #[test]
    fn session_cookies_open_only_when_signed_by_this_secret() {
        let (s, id) = (secret(), session());
        let value = seal_session(&s, &id);
        assert_eq!(open_session(&s, &value), Some(id.clone()));
        let (raw, tag) = value.split_once('.').unwrap();
        let other = SessionId::parse(&URL_SAFE_NO_PAD.encode([8u8; 32])).unwrap();
        for bad in [
            format!("{}.{tag}", other.as_str()),
            raw.to_string(),
            format!("{raw}.{}", &tag[..10]),
            format!("{raw}.!!!"),
            String::new(),
            ".".into(),
        ] {
            assert_eq!(open_session(&s, &bad), None, "{bad}");
        }
        let foreign = ServerSecret::new("another-dashboard-secret-0123456789ab").unwrap();
        assert_eq!(open_session(&foreign, &value), None);
    }

    #[test]
    fn the_cookie_holds_no_api_key_and_has_the_strict_attributes() {
        let (s, id) = (secret(), session());
        let set = Transport { secure: true }.session(&s, &id);
        assert!(set.starts_with("__Host-countersign-session="), "{set}");
        for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
            assert!(set.contains(attribute), "{attribute} missing: {set}");
        }
        assert!(!set.contains("csk_"));
        let local = Transport { secure: false }.session(&s, &id);
        assert!(local.starts_with("countersign-session=") && !local.contains("Secure"), "{local}");
        assert!(local.contains("HttpOnly") && local.contains("SameSite=Strict"));
        let cleared = Transport { secure: true }.clear("__Host-countersign-session");
        assert!(cleared.contains("Max-Age=0"), "{cleared}");
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_session_or_nonce() {
        let (s, id) = (secret(), session());
        let token = csrf_token(&s, &id);
        assert!(csrf_ok(&s, &id, Some(&token)));
        assert!(!csrf_ok(&s, &id, None));
        assert!(!csrf_ok(&s, &id, Some("")));
        let other = SessionId::parse(&URL_SAFE_NO_PAD.encode([9u8; 32])).unwrap();
        assert!(!csrf_ok(&s, &other, Some(&token)), "another session's token");
        let nonce = new_nonce();
        let sign_in = sign_in_token(&s, &nonce);
        assert!(sign_in_ok(&s, Some(&nonce), Some(&sign_in)));
        assert!(!sign_in_ok(&s, Some(&new_nonce()), Some(&sign_in)), "another browser's nonce");
        assert!(!sign_in_ok(&s, None, Some(&sign_in)), "no nonce cookie");
        assert!(!csrf_ok(&s, &id, Some(&sign_in)), "a sign-in token is no session token");
    }

    #[test]
    fn only_plain_http_to_loopback_drops_secure() {
        let transport = |host: &str, proto: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
            if let Some(p) = proto {
                h.insert("x-forwarded-proto", HeaderValue::from_str(p).unwrap());
            }
            Transport::of(&h).secure
        };
        assert!(!transport("127.0.0.1:8080", None));
        assert!(!transport("localhost:8080", None));
        assert!(!transport("[::1]:8080", None));
        assert!(!transport("127.0.0.2", None));
        assert!(transport("127.0.0.1:8080", Some("https")));
        assert!(transport("abc.execute-api.us-east-1.amazonaws.com", None));
        assert!(transport("192.168.1.5:8080", None));
        assert!(transport("localhost.evil.example", None));
        assert!(transport("", None));
    }

    #[test]
    fn cookies_are_read_by_name() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; countersign-session=xyz; b=2"));
        assert_eq!(read_cookie(&h, "countersign-session").as_deref(), Some("xyz"));
        assert_eq!(read_cookie(&h, "missing"), None);
    }
}
