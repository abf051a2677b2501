//! Email over SMTP with lettre (tokio, rustls): one multipart/alternative message (text and HTML)
//! per recipient, the server named by a URL (`COUNTERSIGN_SMTP_URL`).

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::{SMTP_PORT, SUBMISSIONS_PORT, SUBMISSION_PORT};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::domain::email::EmailContent;
use crate::ports::notify::{MailError, Mailer};

/// How long one send may take (connect, TLS, the SMTP dialogue).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://host:port`: no TLS (a relay on the same host or network).
    Plain,
    /// `smtp://host:port?tls=required`: STARTTLS, refusing to go on without it.
    StartTls,
    /// `smtps://host:port`: TLS from the first byte.
    ImplicitTls,
}

/// Where mail goes, as read from the URL (for logs: no credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub authenticated: bool,
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    target: SmtpTarget,
}

impl SmtpMailer {
    /// A mailer for `url` (`smtp://host:port`, `smtp://…?tls=required`, `smtps://host:port`;
    /// `user:password@` for authentication, percent-encoded) sending as `from`
    /// (`noreply@example.com` or `Countersign <noreply@example.com>`). Errors never repeat the URL,
    /// which may hold a password.
    pub fn from_url(url: &str, from: &str) -> Result<Self, String> {
        let target = parse_target(url)?;
        let from: Mailbox = from.parse().map_err(|e| format!("invalid sender address {from:?}: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("invalid SMTP URL: {e}"))?
            .timeout(Some(SEND_TIMEOUT))
            .build();
        Ok(SmtpMailer { transport, from, target })
    }

    pub fn target(&self) -> &SmtpTarget {
        &self.target
    }
}

/// Reads the URL the way lettre will, refusing what lettre would take but should not be used:
/// `tls=opportunistic` (a man in the middle can strip it, credentials then go in clear).
fn parse_target(url: &str) -> Result<SmtpTarget, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("invalid SMTP URL: {e}"))?;
    let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("invalid SMTP URL: no host")?.to_string();
    let tls = parsed.query_pairs().find(|(name, _)| name == "tls").map(|(_, value)| value.into_owned());
    let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None) => (SmtpSecurity::Plain, SMTP_PORT),
        ("smtp", Some("required")) => (SmtpSecurity::StartTls, SUBMISSION_PORT),
        ("smtps", None | Some("required")) => (SmtpSecurity::ImplicitTls, SUBMISSIONS_PORT),
        (scheme @ ("smtp" | "smtps"), Some(other)) => {
            return Err(format!(
                "invalid SMTP URL: tls={other:?} with {scheme}:// (use smtp://…?tls=required for STARTTLS or smtps://)"
            ))
        }
        (scheme, _) => return Err(format!("invalid SMTP URL: scheme {scheme:?} (use smtp:// or smtps://)")),
    };
    let authenticated = parsed.password().is_some();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if authenticated && security == SmtpSecurity::Plain && !loopback {
        // A password must not cross the network in clear.
        return Err("invalid SMTP URL: a password needs TLS (smtps://… or smtp://…?tls=required)".into());
    }
    Ok(SmtpTarget { host, port: parsed.port().unwrap_or(default_port), security, authenticated })
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, to: &str, content: &EmailContent) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError::Rejected(format!("invalid recipient address: {e}")))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(content.subject.as_str())
            .multipart(MultiPart::alternative_plain_html(content.text.clone(), content.html.clone()))
            .map_err(|e| MailError::Rejected(format!("the message could not be built: {e}")))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| classify(&e))
    }
}

/// A 5xx reply is final; anything else (4xx, no connection, TLS, a timeout) may pass later.
fn classify(error: &lettre::transport::smtp::Error) -> MailError {
    if error.is_permanent() {
        MailError::Rejected(error.to_string())
    } else {
        MailError::Unavailable(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: &str = "Countersign <noreply@example.com>";

    fn target(url: &str) -> Result<SmtpTarget, String> {
        SmtpMailer::from_url(url, FROM).map(|m| m.target().clone())
    }

    #[test]
    fn urls_name_host_port_and_protection() {
        let expect =
            |host: &str, port, security, authenticated| SmtpTarget { host: host.into(), port, security, authenticated };
        assert_eq!(target("smtp://127.0.0.1:2525"), Ok(expect("127.0.0.1", 2525, SmtpSecurity::Plain, false)));
        assert_eq!(target("smtp://mail.example.com"), Ok(expect("mail.example.com", 25, SmtpSecurity::Plain, false)));
        assert_eq!(
            target("smtp://user:p%40ss@mail.example.com?tls=required"),
            Ok(expect("mail.example.com", 587, SmtpSecurity::StartTls, true))
        );
        assert_eq!(
            target("smtp://mail.example.com:2587?tls=required"),
            Ok(expect("mail.example.com", 2587, SmtpSecurity::StartTls, false))
        );
        assert_eq!(
            target("smtps://apikey:secret@smtp.example.com"),
            Ok(expect("smtp.example.com", 465, SmtpSecurity::ImplicitTls, true))
        );
        assert_eq!(
            target("smtps://smtp.example.com:2465"),
            Ok(expect("smtp.example.com", 2465, SmtpSecurity::ImplicitTls, false))
        );
    }

    #[test]
    fn bad_urls_and_senders_are_refused_without_echoing_secrets() {
        for url in [
            "",
            "not a url",
            "http://user:hunter2@mail.example.com",
            "smtp://user:hunter2@mail.example.com?tls=opportunistic",
            "smtp://user:hunter2@mail.example.com?tls=maybe",
            "smtp://user:hunter2@:25",
            // A password over the network in clear.
            "smtp://user:hunter2@mail.example.com:587",
            "mailto:someone@example.com",
        ] {
            let refused = target(url).err().unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(refused.starts_with("invalid SMTP URL"), "{url}: {refused}");
            assert!(!refused.contains("hunter2"), "{url}: {refused}");
        }
        for from in ["", "not an address", "a@b\r\nBcc: x@y"] {
            let refused = SmtpMailer::from_url("smtp://127.0.0.1:2525", from).err();
            assert!(refused.is_some_and(|e| e.starts_with("invalid sender address")), "{from:?}");
        }
        assert!(SmtpMailer::from_url("smtp://127.0.0.1:2525", "noreply@example.com").is_ok());
        // On loopback (a local relay) a password may go without TLS.
        assert!(SmtpMailer::from_url("smtp://user:hunter2@127.0.0.1:2525", "noreply@example.com").is_ok());
    }

    #[tokio::test]
    async fn a_bad_recipient_is_rejected_before_connecting() {
        // Port 9 (discard) on loopback: were it contacted, the error would be Unavailable instead.
        let mailer = SmtpMailer::from_url("smtp://127.0.0.1:9", FROM).unwrap();
        let content = EmailContent { subject: "s".into(), text: "t".into(), html: "<p>h</p>".into() };
        let refused = mailer.send("not an address", &content).await;
        assert!(matches!(refused, Err(MailError::Rejected(_))), "{refused:?}");
        let unreachable = mailer.send("alice@example.com", &content).await;
        assert!(matches!(unreachable, Err(MailError::Unavailable(_))), "{unreachable:?}");
    }
}
