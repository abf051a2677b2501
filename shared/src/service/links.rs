//! Review links: `approval.created` webhooks carry `reviewUrl`, a signed link to a confirm page
//! (`domain::review_link`). A link decides at most once: the decision through it first claims
//! the link with a conditional create, so of two concurrent uses exactly one goes ahead.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::{self, Record, Stored};
use super::Countersign;
use crate::domain::event::{kinds, Event};
use crate::domain::ids::{ApiKeyId, ApprovalId, OrgId};
use crate::domain::review_link::ReviewLink;
use crate::error::{AppError, AppResult};
use crate::ports::{Expect, Key, StoreError, Write};

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

impl Countersign {
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
        let mut body = super::fanout::envelope(event);
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
        Ok(self.read::<ReviewLinkUse>(&link_use_key(fingerprint)).await?.is_some())
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
        match self.store.transact(vec![records::create(&record)?]).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed) => Ok(false),
            Err(StoreError::Conflict) => Err(AppError::Contention),
            Err(e) => Err(e.into()),
        }
    }

    /// Gives a claimed link back after the decision through it was refused (the reviewer was not
    /// allowed, the note too long...), so the right person can still use it. Best effort.
    pub async fn release_review_link(&self, fingerprint: &str) {
        let stored: Option<Stored<ReviewLinkUse>> = self.read(&link_use_key(fingerprint)).await.ok().flatten();
        if let Some(stored) = stored {
            let delete = Write::Delete { key: stored.value.key(), expect: Expect::Version(stored.version) };
            if let Err(e) = self.store.transact(vec![delete]).await {
                tracing::debug!(error = %e, "could not release a review link");
            }
        }
    }
}
