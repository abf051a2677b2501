//! Bulk decisions (docs/api.md, "Bulk decisions"): up to `MAX_BULK_IDS` approvals decided one
//! by one through `decide_approval`, each with every rule it has on its own (team assignment,
//! separation of duties, quorum, step-up, payload binding). One refusal never stops the rest.

use futures::stream::{self, StreamExt};

use crate::domain::ids::ApprovalId;
use crate::domain::permission::Permission;
use crate::error::AppResult;
use crate::service::money::approvals::{DecideRequest, Decided};
use crate::service::{require, Caller, UseCases};

/// The most approvals one bulk request decides.
pub const MAX_BULK_IDS: usize = 100;
/// Decisions in flight at once for one bulk request.
const BULK_CONCURRENCY: usize = 4;

/// One id's outcome, in the order the ids were given.
#[derive(Debug)]
pub struct BulkOutcome {
    pub id: ApprovalId,
    pub result: AppResult<Decided>,
}

impl UseCases {
    /// `POST /v1/approvals/bulk`: the same vote on each of `ids`. A few are decided at once; an id
    /// given again is decided after its first time, so it gets the answer a second request
    /// would (ALREADY_VOTED, APPROVAL_NOT_PENDING).
    pub async fn decide_approvals(
        &self,
        caller: &Caller,
        ids: &[ApprovalId],
        request: &DecideRequest,
    ) -> AppResult<Vec<BulkOutcome>> {
        require(caller.key()?, Permission::ApprovalsWrite)?;
        let (mut firsts, mut again) = (Vec::new(), Vec::new());
        for (at, id) in ids.iter().enumerate() {
            if ids[..at].contains(id) {
                again.push((at, id.clone()));
            } else {
                firsts.push((at, id.clone()));
            }
        }
        let decide = |(at, id): (usize, ApprovalId)| async move {
            let result = self.decide_approval(caller, &id, request.clone()).await;
            (at, BulkOutcome { id, result })
        };
        let mut outcomes: Vec<(usize, BulkOutcome)> =
            stream::iter(firsts).map(decide).buffer_unordered(BULK_CONCURRENCY).collect().await;
        for repeat in again {
            outcomes.push(decide(repeat).await);
        }
        outcomes.sort_by_key(|(at, _)| *at);
        Ok(outcomes.into_iter().map(|(_, outcome)| outcome).collect())
    }
}
