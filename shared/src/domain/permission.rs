//! API key permissions (scopes). `admin` grants everything.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, utoipa::ToSchema)]
pub enum Permission {
    #[serde(rename = "wallets:read")]
    WalletsRead,
    #[serde(rename = "wallets:write")]
    WalletsWrite,
    /// Funding creates money: its own permission, apart from managing wallets.
    #[serde(rename = "wallets:fund")]
    WalletsFund,
    #[serde(rename = "payments:read")]
    PaymentsRead,
    #[serde(rename = "payments:write")]
    PaymentsWrite,
    #[serde(rename = "approvals:read")]
    ApprovalsRead,
    #[serde(rename = "approvals:write")]
    ApprovalsWrite,
    #[serde(rename = "policies:write")]
    PoliciesWrite,
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
    #[serde(rename = "api_keys:write")]
    ApiKeysWrite,
    #[serde(rename = "audit:read")]
    AuditRead,
    /// Members and teams.
    #[serde(rename = "members:write")]
    MembersWrite,
    /// Ask for reviews (`POST /reviews`).
    #[serde(rename = "reviews:write")]
    ReviewsWrite,
    /// Ask for refunds (`POST /v1/refunds`).
    #[serde(rename = "refunds:write")]
    RefundsWrite,
    #[serde(rename = "admin")]
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::WalletsRead => "wallets:read",
            Permission::WalletsWrite => "wallets:write",
            Permission::WalletsFund => "wallets:fund",
            Permission::PaymentsRead => "payments:read",
            Permission::PaymentsWrite => "payments:write",
            Permission::ApprovalsRead => "approvals:read",
            Permission::ApprovalsWrite => "approvals:write",
            Permission::PoliciesWrite => "policies:write",
            Permission::WebhooksWrite => "webhooks:write",
            Permission::ApiKeysWrite => "api_keys:write",
            Permission::AuditRead => "audit:read",
            Permission::MembersWrite => "members:write",
            Permission::ReviewsWrite => "reviews:write",
            Permission::RefundsWrite => "refunds:write",
            Permission::Admin => "admin",
        }
    }
}

/// True when `granted` allows `needed`.
pub fn allows(granted: &[Permission], needed: Permission) -> bool {
    granted.iter().any(|p| *p == Permission::Admin || *p == needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_allows_everything_and_scopes_only_themselves() {
        assert!(allows(&[Permission::Admin], Permission::AuditRead));
        assert!(allows(&[Permission::PaymentsRead], Permission::PaymentsRead));
        assert!(!allows(&[Permission::PaymentsRead], Permission::PaymentsWrite));
        assert!(!allows(&[], Permission::WalletsRead));
    }

    #[test]
    fn wire_names_round_trip() {
        let p: Permission = serde_json::from_str("\"api_keys:write\"").unwrap();
        assert_eq!(p, Permission::ApiKeysWrite);
        assert_eq!(p.as_str(), "api_keys:write");
    }
}
