//! The organisation: members, teams and routing rules, four-eyes on policy changes, API keys and who they are, settings,
//! authentication, dashboard sessions and review links.

pub(crate) mod auth;
pub(crate) mod keys;
pub(crate) mod links;
pub(crate) mod passkeys;
pub(crate) mod people;
pub(crate) mod policy_changes;
pub(crate) mod sessions;
pub(crate) mod settings;
