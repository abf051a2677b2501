//! Review links: `approval.created` webhooks carry `reviewUrl`, a signed link to a confirm page
//! (`domain::review_link`). A link decides at most once: the decision through it first claims
//! the link with a conditional create, so of two concurrent uses exactly one goes ahead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApiKeyId, ApprovalId, OrgId};
use crate::domain::review_link::ReviewLink;
use crate::error::{AppError, AppResult};
use crate::layout::{self, Record, Stored};
use crate::ports::{Expect, Key, StoreError, Write};
use crate::service::UseCases;

/// The path of the confirm page, below the public URL.
pub const REVIEW_LINK_PATH: &str = "/dashboard/r/";

/// The record that a link was used (by its fingerprint; the token itself is not kept).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReviewLinkUse {
    fingerprint: String,
    org_id: OrgId,
    approval_id: ApprovalId,
    key_id: ApiKeyId,
    used_at: DateTime<Utc>,
    /// The link's own expiry: the record is of no use after it.
    expires_at: DateTime<Utc>,
}

fn link_use_key(fingerprint: &str) -> Key {
    Key::new(format!("REVIEWLINK#{fingerprint}"), "REVIEWLINK")
}

impl Record for ReviewLinkUse {
    const NAME: &'static str = "review link";
    fn key(&self) -> Key {
        link_use_key(&self.fingerprint)
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.expires_at.timestamp())
    }
}

impl UseCases {
    /// The review link of a new approval, when the dashboard is configured (a session secret
    /// and a public URL).
    pub fn review_url(&self, approval_id: &ApprovalId, expires_at: DateTime<Utc>) -> Option<String> {
        let secret = self.settings.session_secret.as_ref()?;
        let base = self.settings.public_url.as_ref()?;
        Some(format!("{base}{REVIEW_LINK_PATH}{}", ReviewLink::sign(secret, approval_id, expires_at)))
    }

    /// What a subscriber receives for `event`: the envelope, and for `approval.created` the
    /// approval's `reviewUrl` in `data` (when the dashboard is configured).
    pub(crate) fn webhook_body(&self, event: &Event) -> serde_json::Value {
        let mut body = crate::service::delivery::fanout::envelope(event);
        if event.kind != kinds::APPROVAL_CREATED {
            return body;
        }
        let id = event.data.get("approvalId").and_then(|v| v.as_str()).and_then(ApprovalId::parse);
        let expires = event.data.get("expiresAt").and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok());
        if let (Some(id), Some(expires)) = (id, expires) {
            if let (Some(url), Some(data)) = (self.review_url(&id, expires), body["data"].as_object_mut()) {
                data.insert("reviewUrl".into(), serde_json::Value::String(url));
            }
        }
        body
    }

    /// Whether the link with `fingerprint` has been used.
    pub async fn review_link_used(&self, fingerprint: &str) -> AppResult<bool> {
        Ok(self.reader().read::<ReviewLinkUse>(&link_use_key(fingerprint)).await?.is_some())
    }

    /// Claims a link for one decision by `key`; `false` when it was used already.
    pub async fn claim_review_link(
        &self,
        link: &ReviewLink,
        fingerprint: &str,
        org: &OrgId,
        key: &ApiKeyId,
    ) -> AppResult<bool> {
        let record = ReviewLinkUse {
            fingerprint: fingerprint.to_string(),
            org_id: org.clone(),
            approval_id: link.approval_id.clone(),
            key_id: key.clone(),
            used_at: self.now(),
            expires_at: link.expires_at,
        };
        match self.store().transact(vec![layout::create(&record)?]).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(StoreError::Conflict) => Err(AppError::Contention),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a claimed link back after the decision through it was refused (the reviewer was not
    /// allowed, the note too long...), so the right person can still use it. Best effort.
    pub async fn release_review_link(&self, fingerprint: &str) {
        let stored: Option<Stored<ReviewLinkUse>> = self.reader().read(&link_use_key(fingerprint)).await.ok().flatten();
        if let Some(stored) = stored {
            let delete = Write::Delete { key: stored.value.key(), expect: Expect::Version(stored.version) };
            if let Err(e) = self.store().transact(vec![delete]).await {
                tracing::debug!(error = %e, "could not release a review link");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Duration;
    use serde_json::json;

    use super::*;
    use crate::adapters::sqlite::SqliteStore;
    use crate::domain::secret::ServerSecret;
    use crate::ports::SystemClock;
    use crate::service::{Countersign, Settings};

    fn service(secret: bool, public_url: bool) -> Countersign {
        let settings = Settings {
            session_secret: secret.then(|| Arc::new(ServerSecret::new("links-test-secret-0123456789abcdef").unwrap())),
            public_url: public_url.then(|| "https://approvals.example.com".to_string()),
            ..Settings::default()
        };
        Countersign::new(Arc::new(SqliteStore::in_memory().unwrap()), Arc::new(SystemClock), settings)
    }

    fn event(kind: &str, id: &ApprovalId, expires: DateTime<Utc>) -> Event {
        let data = json!({"approvalId": id, "expiresAt": expires, "status": "PENDING"});
        Event::new(&OrgId::generate(), kind, data, Utc::now())
    }

    #[test]
    fn approval_created_deliveries_carry_a_review_link_that_verifies() {
        let (id, expires) = (ApprovalId::generate(), Utc::now() + Duration::hours(1));
        let s = service(true, true);
        let body = s.webhook_body(&event(kinds::APPROVAL_CREATED, &id, expires));
        let url = body["data"]["reviewUrl"].as_str().expect("reviewUrl");
        let token = url.strip_prefix("https://approvals.example.com/dashboard/r/").expect("path");
        let secret = s.settings.session_secret.as_ref().unwrap();
        let link = ReviewLink::verify(secret, token, Utc::now()).expect("a genuine link");
        assert_eq!((link.approval_id, link.expires_at.timestamp()), (id.clone(), expires.timestamp()));
        assert_eq!(body["type"], kinds::APPROVAL_CREATED);
        // Other events, and a service without a secret or a public URL, carry none.
        assert!(s.webhook_body(&event(kinds::APPROVAL_APPROVED, &id, expires))["data"].get("reviewUrl").is_none());
        for s in [service(false, true), service(true, false)] {
            assert!(s.webhook_body(&event(kinds::APPROVAL_CREATED, &id, expires))["data"].get("reviewUrl").is_none());
        }
    }
}
