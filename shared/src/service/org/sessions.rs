//! Dashboard sessions (docs/api.md, "Dashboard sessions and review links"). Signing in with an API key stores a session record under the
//! SHA-256 of a random session id; the browser holds only that id (in a cookie the door signs),
//! never the key. Every request reads the session and the key again, so revoking the key or
//! signing out ends the session at once, wherever its cookie went. Sessions last 12 hours.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::domain::audit::Actor;
use crate::domain::ids::{ApiKeyId, OrgId};
use crate::domain::org::ApiKey;
use crate::domain::permission::Permission;
use crate::engine::plan::Tx;
use crate::error::{AppError, AppResult};
use crate::layout::{api_key_key, Record, Stored};
use crate::ports::{Expect, Key, Write};
use crate::service::{require, Caller, Countersign, UseCases};

/// How long a session lasts, from sign-in (not extended by use).
pub const SESSION_HOURS: i64 = 12;

/// A session's id as the browser holds it: 32 random bytes, base64url. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

impl SessionId {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SessionId(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A session id in the shape this server makes (43 base64url characters).
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == 43 && URL_SAFE_NO_PAD.decode(text).is_ok_and(|b| b.len() == 32);
        ok.then(|| SessionId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the store keeps: the id's hash, so a copy of the table holds no live session.
    fn stored_name(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }
}

/// A session as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DashboardSession {
    id_hash: String,
    org_id: OrgId,
    key_id: ApiKeyId,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

fn session_key(id_hash: &str) -> Key {
    Key::new(format!("SESSION#{id_hash}"), "SESSION")
}

impl Record for DashboardSession {
    const NAME: &'static str = "session";
    fn key(&self) -> Key {
        session_key(&self.id_hash)
    }
    fn expires_at_epoch(&self) -> Option<i64> {
        Some(self.expires_at.timestamp())
    }
}

/// A new session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: SessionId,
    pub key: ApiKey,
    pub expires_at: DateTime<Utc>,
}

impl UseCases {
    /// The caller behind a session: its key, read again now. A revoked key ends the session.
    pub async fn session_caller(&self, session: &SessionId) -> AppResult<Caller> {
        let stored = self.reader().read::<DashboardSession>(&session_key(&session.stored_name())).await?;
        let Some(stored) = stored.filter(|s| self.now() < s.value.expires_at) else {
            return Err(AppError::Unauthorized);
        };
        let key = self.reader().read::<ApiKey>(&api_key_key(&stored.value.key_id)).await?.map(|k| k.value);
        match key {
            Some(key) if key.frozen_at.is_some() && key.revoked_at.is_none() => Err(AppError::KeyFrozen),
            Some(key) if key.revoked_at.is_none() && key.org_id == stored.value.org_id => Ok(Caller::Key(key)),
            Some(key) if key.revoked_at.is_some() => {
                self.forget(&stored).await;
                Err(AppError::ApiKeyRevoked)
            }
            _ => {
                self.forget(&stored).await;
                Err(AppError::Unauthorized)
            }
        }
    }

    /// Ends a session (signing out). Ending one that is gone already is no error.
    pub async fn sign_out(&self, session: &SessionId) -> AppResult<()> {
        if let Some(stored) = self.reader().read::<DashboardSession>(&session_key(&session.stored_name())).await? {
            self.forget(&stored).await;
        }
        Ok(())
    }

    /// Deletes a session record; best effort (it expires by TTL anyway).
    async fn forget(&self, stored: &Stored<DashboardSession>) {
        let delete = Write::Delete { key: stored.value.key(), expect: Expect::Version(stored.version) };
        if let Err(e) = self.store().transact(vec![delete]).await {
            tracing::debug!(error = %e, "session delete failed; it expires by itself");
        }
    }
}

impl Countersign {
    /// Signs in with an API key's secret: the key must be active and able to read approvals.
    /// The operator key cannot sign in (it only creates organisations).
    pub async fn sign_in(&self, secret: &str) -> AppResult<SignedIn> {
        let caller = self.authenticate(Some(secret)).await?;
        let key = caller.key().map_err(|_| AppError::OperatorOnly)?.clone();
        require(&key, Permission::ApprovalsRead)?;
        let session = SessionId::generate();
        let expires_at = self.now() + Duration::hours(SESSION_HOURS);
        let r = self.reader();
        self.engine
            .commit(&r, || async {
                let mut tx = Tx::new(&key.org_id, Actor::Key(key.id.clone()), self.now());
                tx.create(&DashboardSession {
                    id_hash: session.stored_name(),
                    org_id: key.org_id.clone(),
                    key_id: key.id.clone(),
                    created_at: tx.now(),
                    expires_at,
                })?;
                tx.audit("dashboard.signed_in", "api_key", key.id.as_str(), json!({"expiresAt": expires_at}))?;
                Ok(tx.done(()))
            })
            .await?;
        Ok(SignedIn { session, key, expires_at })
    }
}
