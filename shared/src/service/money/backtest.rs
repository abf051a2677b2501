//! `POST /v1/wallets/{id}/policies/backtest`: a draft policy tried on the wallet's past
//! payments (the replay is `domain::backtest`). Reads only: the wallet, its policies, and its
//! payments from the payer's byWallet index, a key range per status (payment ids are ULIDs, so
//! ids made in a time window are a range of sort keys), at most `MAX_PAYMENTS` from the window
//! and as many again from before it (the day's spend, the trailing hour); writes nothing.

use chrono::{DateTime, Duration, Utc};
use ulid::Ulid;

use crate::domain::backtest::{
    draft_field, enforced, limits_in_play, replay, with_draft, Backtest, PastPayment, Window, MAX_PAYMENTS,
};
use crate::domain::ids::{OrgId, PaymentId, PolicyId, WalletId};
use crate::domain::input::InputError;
use crate::domain::payment::{Payment, PaymentStatus};
use crate::domain::permission::Permission;
use crate::domain::policy::{Policy, PolicyPatch};
use crate::engine::Reader;
use crate::error::{AppError, AppResult};
use crate::layout::by_wallet_partition;
use crate::ports::{Index, Query};
use crate::service::{require, Caller, UseCases};

/// What a backtest asks: the draft (fields as `POST …/policies` takes them; `name` optional),
/// the policy it stands in for, and the window.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestRequest {
    pub draft: PolicyPatch,
    pub replace: Option<PolicyId>,
    pub window: Window,
}

/// Every status a payment can be in: its byWallet sort keys start with one.
const STATUSES: [PaymentStatus; 5] = [
    PaymentStatus::Completed,
    PaymentStatus::PendingApproval,
    PaymentStatus::Rejected,
    PaymentStatus::Expired,
    PaymentStatus::Failed,
];

impl UseCases {
    pub async fn backtest_policies(
        &self,
        caller: &Caller,
        wallet_id: &WalletId,
        request: BacktestRequest,
    ) -> AppResult<Backtest> {
        let caller = caller.key()?;
        require(caller, Permission::WalletsRead)?;
        let r = self.reader();
        let wallet = r.owned_wallet(caller, wallet_id).await?.value;
        r.ensure_teams(&caller.org_id, request.draft.escalation_chain.as_deref().unwrap_or_default()).await?;
        let stored = r.wallet_policies(wallet_id).await?.list;
        if let Some(id) = &request.replace {
            if !stored.iter().any(|p| &p.id == id) {
                return Err(AppError::NotFound("policy"));
            }
        }
        let name = request.draft.name.clone().unwrap_or_else(|| "draft".into());
        let mut draft = Policy::unrestricted(caller.org_id.clone(), wallet_id.clone(), name, self.now());
        draft.apply(&request.draft, wallet.currency(), self.now()).map_err(|e| {
            let field = draft_field(e.field());
            e.for_field(field)
        })?;
        // The question is what the draft would do enforced, even one drafted as a shadow.
        draft.mode = crate::domain::policy::PolicyMode::Enforce;
        let draft_id = draft.id.clone();
        let current = enforced(&stored);
        let proposed = enforced(&with_draft(&stored, draft, request.replace.as_ref()));
        let (daily, hourly) = {
            let (a, b) = (limits_in_play(&current), limits_in_play(&proposed));
            (a.0 || b.0, a.1 || b.1)
        };
        let window = request.window;
        let history_from = window.history_from(daily, hourly);
        let mut payments = Vec::new();
        if history_from < window.since {
            let earlier = payments_between(&r, &caller.org_id, wallet_id, history_from, window.since).await?;
            if earlier.len() > MAX_PAYMENTS {
                let message = format!(
                    "more than {MAX_PAYMENTS} payments between {history_from} and since (replayed for the day's \
                     spend and the trailing hour): start the window at a quieter time"
                );
                return Err(InputError::invalid("since", message).into());
            }
            payments.extend(earlier);
        }
        let within = payments_between(&r, &caller.org_id, wallet_id, window.since, window.until).await?;
        if within.len() > MAX_PAYMENTS {
            let message = format!(
                "more than {MAX_PAYMENTS} payments from since to until: a backtest replays at most \
                 {MAX_PAYMENTS}; narrow the window"
            );
            return Err(InputError::invalid("since", message).into());
        }
        payments.extend(within);
        let past = payments.iter().map(PastPayment::of).collect();
        Ok(replay(&current, &proposed, &draft_id, past, window.since))
    }
}

/// The wallet's payments made at or after `from` and before `until`, up to `MAX_PAYMENTS` + 1
/// (one more tells the window holds too many): one key range per status, oldest first.
async fn payments_between(
    r: &Reader,
    org: &OrgId,
    wallet: &WalletId,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> AppResult<Vec<Payment>> {
    let (low, high) = id_range(from, until);
    let mut out: Vec<Payment> = Vec::new();
    for status in STATUSES {
        let room = MAX_PAYMENTS + 1 - out.len();
        if room == 0 {
            break;
        }
        let mut q = Query::new(Index::ByWallet, by_wallet_partition(org, wallet, "PAYMENT"), room);
        q.newest_first = false;
        q.sk_at_least = Some(format!("{}#{low}", status.as_str()));
        q.sk_at_most = Some(format!("{}#{high}", status.as_str()));
        out.extend(r.all_of::<Payment>(q).await?);
    }
    Ok(out)
}

/// The lowest and highest payment ids made at or after `from` and before `until` (a ULID's
/// first 48 bits are its millisecond).
fn id_range(from: DateTime<Utc>, until: DateTime<Utc>) -> (String, String) {
    let ms = |t: DateTime<Utc>| u64::try_from(t.timestamp_millis()).unwrap_or(0);
    let low = Ulid::from_parts(ms(from), 0);
    let high = Ulid::from_parts(ms(until - Duration::milliseconds(1)), u128::MAX);
    (format!("{}{low}", PaymentId::PREFIX), format!("{}{high}", PaymentId::PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_id_range_holds_exactly_the_ids_made_in_the_window() {
        let from = Utc.with_ymd_and_hms(2026, 11, 2, 0, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap();
        let (low, high) = id_range(from, until);
        let inside = |t: DateTime<Utc>| {
            let id = PaymentId::generate_at(t);
            (low.as_str()..=high.as_str()).contains(&id.as_str())
        };
        assert!(inside(from));
        assert!(inside(until - Duration::milliseconds(1)));
        assert!(!inside(from - Duration::milliseconds(1)));
        assert!(!inside(until));
    }
}
