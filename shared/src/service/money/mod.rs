//! Money: payments and refunds decided by policy, held approvals and their decisions, the one
//! execution both share, wallets and their policies.

pub(crate) mod allow_rules;
pub(crate) mod approvals;
pub(crate) mod backtest;
pub(crate) mod budgets;
pub(crate) mod bulk;
pub(crate) mod comments;
pub(crate) mod decide;
pub(crate) mod execution;
pub(crate) mod freeze;
pub(crate) mod in_place;
pub(crate) mod intake;
pub(crate) mod payments;
pub(crate) mod policies;
pub(crate) mod refunds;
pub(crate) mod shadow;
pub(crate) mod step_up;
pub(crate) mod wallets;
pub(crate) mod why;
