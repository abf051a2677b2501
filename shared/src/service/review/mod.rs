//! Reviews (Humancheck-compatible), the dashboard's queue of what awaits a reviewer, and the
//! long-poll slots a blocking review holds.

pub(crate) mod dashboard_queue;
pub(crate) mod reviews;
pub(crate) mod waits;
