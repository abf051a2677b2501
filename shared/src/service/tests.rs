//! Service unit tests on the in-memory embedded store: use cases called directly with domain
//! requests, no HTTP. (The HTTP round trips, both stores and the races are in `tests/`.)

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::adapters::sqlite::SqliteStore;
use crate::domain::event::Event;
use crate::domain::idempotency::IdempotencyKey;
use crate::domain::ids::WalletId;
use crate::domain::ledger::{EntryKind, LedgerEntry};
use crate::domain::money::{Amount, Currency};
use crate::domain::payment::{NewPayment, PaymentOutcome, PaymentStatus};
use crate::domain::policy::PolicyPatch;
use crate::domain::wallet::NewWallet;
use crate::layout::{self, Record as _};
use crate::ports::{BusError, EventBus, Published};

/// A bus that records what it is given (a fake adapter; the real ones have their own tests).
#[derive(Default)]
struct RecordingBus(Mutex<Vec<Event>>);

#[async_trait]
impl EventBus for RecordingBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        let mut seen = self.0.lock().expect("bus");
        seen.extend(events.iter().cloned());
        Ok(Published { accepted: events.iter().map(|e| e.id.clone()).collect(), refused: vec![] })
    }
}

impl RecordingBus {
    fn kinds(&self) -> Vec<String> {
        self.0.lock().expect("bus").iter().map(|e| e.kind.clone()).collect()
    }
}

struct MovableClock(Mutex<DateTime<Utc>>);

impl Clock for MovableClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock")
    }
}

struct World {
    service: Countersign,
    bus: Arc<RecordingBus>,
    clock: Arc<MovableClock>,
    admin: Caller,
    reviewer: Caller,
    from: WalletId,
    to: WalletId,
}

async fn world(funds: &str) -> World {
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let bus = Arc::new(RecordingBus::default());
    let clock = Arc::new(MovableClock(Mutex::new(Utc::now())));
    let wiring = Wiring { bus: bus.clone(), ..Wiring::default() };
    let service = Countersign::new(store, clock.clone(), Settings::default()).with_wiring(wiring);
    let org = service.create_organization(&Caller::Operator, "acme".into()).await.expect("org");
    let admin = Caller::Key(org.admin_key.key);
    let reviewer = NewApiKey {
        name: "r".into(),
        permissions: vec![Permission::ApprovalsWrite],
        wallet_ids: vec![],
        member_id: None,
        budgets: vec![],
    };
    let reviewer = Caller::Key(service.create_api_key(&admin, reviewer).await.expect("key").key);
    let wallet =
        || NewWallet { name: "w".into(), agent_name: None, currency: Currency::USD, metadata: Default::default() };
    let from = service.create_wallet(&admin, wallet()).await.expect("wallet").id;
    let to = service.create_wallet(&admin, wallet()).await.expect("wallet").id;
    let fund = FundRequest { amount: Amount::parse(funds).expect("amount"), idempotency: None };
    service.fund_wallet(&admin, &from, fund).await.expect("fund");
    World { service, bus, clock, admin, reviewer, from, to }
}

impl World {
    fn payment(&self, amount: &str) -> NewPayment {
        NewPayment::new(self.from.clone(), self.to.clone(), Amount::parse(amount).expect("amount"))
    }

    async fn policy(&self, patch: PolicyPatch) {
        let patch = PolicyPatch { name: Some("p".into()), ..patch };
        self.service.create_policy(&self.admin, &self.from, patch).await.expect("policy");
    }

    async fn ledger(&self, wallet: &WalletId) -> Vec<LedgerEntry> {
        let page = PageRequest { limit: 100, after: None };
        self.service.list_transactions(&self.admin, wallet, &page).await.expect("ledger").data
    }
}

fn limit(text: &str) -> Option<Option<Amount>> {
    Some(Some(Amount::parse(text).expect("amount")))
}

#[tokio::test]
async fn held_payment_publishes_the_events_its_plan_carried() {
    let w = world("100.00").await;
    w.policy(PolicyPatch { require_human_approval: Some(true), ..Default::default() }).await;
    let held = w.service.create_payment(&w.admin, w.payment("10.00")).await.expect("intake");
    let PaymentOutcome::Held { payment, approval } = held.outcome else { panic!("not held: {held:?}") };
    assert_eq!((payment.status(), payment.approval_id.as_ref()), (PaymentStatus::PendingApproval, Some(&approval.id)));
    assert_eq!(w.bus.kinds(), ["approval.created"]);
    assert_eq!(w.bus.0.lock().expect("bus")[0].data["approvalId"], approval.id.as_str());
}

#[tokio::test]
async fn both_paths_move_money_through_the_same_ledger_transfer() {
    let w = world("100.00").await;
    let now = w.service.create_payment(&w.admin, w.payment("10.00")).await.expect("intake");
    let PaymentOutcome::Executed { payment: immediate } = now.outcome else { panic!("not executed") };
    w.policy(PolicyPatch { require_review_above: limit("20.00"), ..Default::default() }).await;
    let later = w.service.create_payment(&w.admin, w.payment("30.00")).await.expect("intake");
    let PaymentOutcome::Held { approval, .. } = later.outcome else { panic!("not held") };
    let vote = DecideRequest::new(crate::domain::approval::VoteDecision::Approve, None);
    let decided = w.service.decide_approval(&w.reviewer, &approval.id, vote).await.expect("approve");
    assert_eq!(decided.payment.status(), PaymentStatus::Completed);
    for payment in [&immediate, &decided.payment] {
        let txn = payment.transaction_id().cloned().expect("transaction");
        let lines: Vec<_> = w.ledger(&w.from).await.into_iter().chain(w.ledger(&w.to).await).collect();
        let kinds: Vec<_> = lines.iter().filter(|l| l.transaction_id == txn).map(|l| (l.kind, l.amount)).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(
            kinds.contains(&(EntryKind::Debit, payment.amount)) && kinds.contains(&(EntryKind::Credit, payment.amount))
        );
    }
    assert_eq!(w.service.get_wallet(&w.admin, &w.from).await.expect("wallet").balance().to_wire(), "60.00");
    assert_eq!(w.bus.kinds(), ["payment.completed", "approval.created", "approval.approved", "payment.completed"]);
}

#[tokio::test]
async fn a_denial_is_audited_but_its_idempotency_key_stays_free() {
    let w = world("100.00").await;
    w.policy(PolicyPatch { auto_reject_above: limit("5.00"), ..Default::default() }).await;
    let key = || Some(IdempotencyKey::new("order-1", "same request".into()).expect("key"));
    let request = NewPayment { idempotency: key(), ..w.payment("10.00") };
    let denied = w.service.create_payment(&w.admin, request.clone()).await;
    assert!(matches!(denied, Err(AppError::PolicyDenied { ref rule, .. }) if rule == "autoRejectAbove"), "{denied:?}");
    let page = PageRequest { limit: 10, after: None };
    let filter = AuditFilter { action: Some("payment.denied".into()), resource_type: None };
    assert_eq!(w.service.list_audit_logs(&w.admin, &filter, &page).await.expect("audit").data.len(), 1);

    let policies = w.service.list_policies(&w.admin, &w.from).await.expect("policies");
    w.service.delete_policy(&w.admin, &w.from, &policies[0].id).await.expect("delete");
    let first = w.service.create_payment(&w.admin, request.clone()).await.expect("now allowed");
    assert!(!first.replayed);
    let again = w.service.create_payment(&w.admin, request).await.expect("replay");
    assert!(again.replayed);
    assert_eq!(again.outcome.payment().id, first.outcome.payment().id);
    let other = NewPayment {
        idempotency: Some(IdempotencyKey::new("order-1", "other".into()).expect("key")),
        ..w.payment("1.00")
    };
    assert!(matches!(w.service.create_payment(&w.admin, other).await, Err(AppError::IdempotencyKeyReuse)));
}

#[tokio::test]
async fn the_sweep_expires_through_the_same_commit_loop() {
    let w = world("100.00").await;
    let patch =
        PolicyPatch { require_human_approval: Some(true), approval_ttl_seconds: Some(Some(60)), ..Default::default() };
    w.policy(patch).await;
    let held = w.service.create_payment(&w.admin, w.payment("10.00")).await.expect("intake");
    let PaymentOutcome::Held { payment, .. } = held.outcome else { panic!("not held") };
    assert_eq!(w.service.expire_due(10).await.expect("sweep").expired, 0);
    *w.clock.0.lock().expect("clock") += Duration::seconds(61);
    assert_eq!(w.service.expire_due(10).await.expect("sweep").expired, 1);
    let after = w.service.get_payment(&w.admin, &payment.id).await.expect("payment");
    assert_eq!(after.status(), PaymentStatus::Expired);
    let filter = AuditFilter { action: Some("approval.expired".into()), resource_type: None };
    let page = PageRequest { limit: 10, after: None };
    let audit = w.service.list_audit_logs(&w.admin, &filter, &page).await.expect("audit");
    assert_eq!(audit.data[0].actor, "system");
    assert_eq!(w.bus.kinds(), ["approval.created", "approval.expired"]);
}

/// A webhook endpoint that always answers 500, counting POSTs (a fake adapter).
#[derive(Default)]
struct FailingClient(std::sync::atomic::AtomicUsize);

#[async_trait]
impl crate::ports::WebhookClient for FailingClient {
    async fn check_host(&self, _: &str, _: u16) -> Result<(), crate::domain::ssrf::TargetError> {
        Ok(())
    }
    async fn post(
        &self,
        _: &str,
        _: &crate::domain::webhook::SignedHeaders,
        _: Vec<u8>,
    ) -> Result<crate::ports::HttpOutcome, crate::ports::SendError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(crate::ports::HttpOutcome { status: 500, latency_ms: 1 })
    }
}

/// A queue that keeps what it is sent (a fake adapter).
#[derive(Default)]
struct KeptQueue(Mutex<Vec<crate::ports::QueueMessage>>);

#[async_trait]
impl crate::ports::DeliveryQueue for KeptQueue {
    fn max_delay(&self) -> std::time::Duration {
        std::time::Duration::from_secs(900)
    }
    async fn send(
        &self,
        m: &crate::ports::QueueMessage,
        _: std::time::Duration,
    ) -> Result<(), crate::ports::QueueError> {
        self.0.lock().expect("queue").push(m.clone());
        Ok(())
    }
}

/// A service on an in-memory store whose webhook client fails and whose queue keeps what it is
/// sent, with one organisation subscribed to every event at a public address.
struct Hooked {
    service: Countersign,
    clock: Arc<MovableClock>,
    client: Arc<FailingClient>,
    queue: Arc<KeptQueue>,
    org_id: crate::domain::ids::OrgId,
    url: url::Url,
    hook: crate::domain::webhook::Webhook,
}

async fn hooked() -> Hooked {
    let store = Arc::new(SqliteStore::in_memory().expect("store"));
    let clock = Arc::new(MovableClock(Mutex::new(Utc::now())));
    let (client, queue) = (Arc::new(FailingClient::default()), Arc::new(KeptQueue::default()));
    let wiring = Wiring { client: client.clone(), queue: queue.clone(), ..Wiring::default() };
    let service = Countersign::new(store, clock.clone(), Settings::default()).with_wiring(wiring);
    let org = service.create_organization(&Caller::Operator, "acme".into()).await.expect("org");
    let admin = Caller::Key(org.admin_key.key);
    let url = url::Url::parse("https://93.184.216.34/hook").expect("url");
    let hook = NewWebhook { url: url.clone(), events: vec!["*".into()], enabled: None };
    let hook = service.create_webhook(&admin, hook).await.expect("webhook");
    Hooked { service, clock, client, queue, org_id: org.organization.id, url, hook }
}

#[tokio::test]
async fn duplicate_retry_messages_never_become_parallel_chains() {
    use crate::ports::QueueMessage;
    use std::sync::atomic::Ordering;
    let Hooked { service, clock, client, queue, org_id, .. } = hooked().await;
    let event = Event::new(&org_id, "approval.created", serde_json::json!({}), Utc::now());
    // The event three times at once: one delivery, one first attempt.
    let message = QueueMessage::Event { event };
    let _ = futures::future::join_all((0..3).map(|_| service.handle_message(&message))).await;
    assert_eq!(client.0.load(Ordering::SeqCst), 1);
    // Every message queued for the next attempt names that attempt (duplicates may queue twice).
    let retry = queue.0.lock().expect("queue").clone();
    let for_second = |m: &QueueMessage| matches!(m, QueueMessage::Delivery { attempt: Some(1), .. });
    assert!(!retry.is_empty() && retry.iter().all(for_second), "{retry:?}");
    // All of them, three times over, once due: one second attempt.
    *clock.0.lock().expect("clock") += Duration::hours(1);
    let copies: Vec<&QueueMessage> = retry.iter().cycle().take(retry.len() * 3).collect();
    let _ = futures::future::join_all(copies.into_iter().map(|m| service.handle_message(m))).await;
    assert_eq!(client.0.load(Ordering::SeqCst), 2);
    // And again later: that attempt is answered; the duplicates are dropped.
    for _ in 0..3 {
        service.handle_message(&retry[0]).await.expect("handled");
    }
    assert_eq!(client.0.load(Ordering::SeqCst), 2, "one POST per attempt");
}

/// A bus that refuses events whose data says `"poison": true` and takes the rest.
#[derive(Default)]
struct PickyBus(Mutex<Vec<String>>);

#[async_trait]
impl EventBus for PickyBus {
    async fn publish(&self, events: &[Event]) -> Result<Published, BusError> {
        let mut report = Published::default();
        for e in events {
            if e.data["poison"] == true {
                report.refused.push((e.id.clone(), "ValidationException: malformed detail".into()));
            } else {
                self.0.lock().expect("bus").push(e.kind.clone());
                report.accepted.push(e.id.clone());
            }
        }
        Ok(report)
    }
}

#[derive(Default)]
struct CountedMetrics(Mutex<Vec<(crate::domain::metric::Metric, f64)>>);

impl crate::ports::Metrics for CountedMetrics {
    fn record(&self, metric: crate::domain::metric::Metric, value: f64) {
        self.0.lock().expect("metrics").push((metric, value));
    }
}

#[tokio::test]
async fn a_refused_event_is_parked_and_never_holds_up_the_others() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().expect("store"));
    let clock = Arc::new(MovableClock(Mutex::new(Utc::now())));
    let (bus, metrics) = (Arc::new(PickyBus::default()), Arc::new(CountedMetrics::default()));
    let wiring = Wiring { bus: bus.clone(), metrics: metrics.clone(), ..Wiring::default() };
    let settings = Settings { republish_after: std::time::Duration::ZERO, ..Settings::default() };
    let service = Countersign::new(store.clone(), clock.clone(), settings).with_wiring(wiring);
    let org = crate::domain::ids::OrgId::generate();
    let now = Utc::now() - Duration::minutes(5);
    let poison = Event::new(&org, "payment.completed", serde_json::json!({"poison": true}), now);
    let good: Vec<Event> =
        (0..150).map(|_| Event::new(&org, "payment.completed", serde_json::json!({}), now)).collect();
    let writes: Vec<_> = std::iter::once(&poison).chain(&good).map(|e| layout::create(e).expect("event")).collect();
    for chunk in writes.chunks(50) {
        store.transact(chunk.to_vec()).await.expect("seed");
    }
    let first = service.sweep(None, 100).await.expect("sweep");
    assert_eq!(first.events_republished, 150, "every good event, past the refused one: {first:?}");
    for _ in 1..crate::domain::event::MAX_PUBLISH_FAILURES {
        service.sweep(None, 100).await.expect("sweep");
    }
    let stored = service.reader().read::<Event>(&poison.key()).await.expect("read").expect("kept").value;
    assert_eq!(
        (stored.publish_failures, stored.parked_at.is_some()),
        (crate::domain::event::MAX_PUBLISH_FAILURES, true)
    );
    assert!(stored.last_publish_error.as_deref().is_some_and(|e| e.contains("ValidationException")));
    let parked: Vec<f64> = metrics
        .0
        .lock()
        .expect("metrics")
        .iter()
        .filter(|(m, _)| *m == crate::domain::metric::Metric::OutboxEventsParked)
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(parked, [1.0]);
    // Parked: out of the outbox, the sweep leaves it alone.
    assert_eq!(service.sweep(None, 100).await.expect("sweep").events_republished, 0);
    assert_eq!(bus.0.lock().expect("bus").len(), 150);
}

#[tokio::test]
async fn a_failing_sweep_phase_does_not_stop_the_others() {
    // No queue is wired, so re-queueing the overdue delivery fails; expiry still runs.
    let w = world("100.00").await;
    let patch =
        PolicyPatch { require_human_approval: Some(true), approval_ttl_seconds: Some(Some(60)), ..Default::default() };
    w.policy(patch).await;
    w.service.create_payment(&w.admin, w.payment("10.00")).await.expect("held");
    let org = match &w.admin {
        Caller::Key(k) => k.org_id.clone(),
        Caller::Operator => unreachable!(),
    };
    let now = Utc::now() - Duration::hours(1);
    let delivery = crate::domain::delivery::Delivery {
        id: crate::domain::ids::DeliveryId::generate(),
        org_id: org,
        webhook_id: crate::domain::ids::WebhookId::generate(),
        event: serde_json::json!({}),
        event_id: "evt_x".into(),
        event_type: "payment.completed".into(),
        status: crate::domain::delivery::DeliveryStatus::Pending,
        attempts: 1,
        last_error: None,
        last_status_code: None,
        last_latency_ms: None,
        next_attempt_at: now,
        busy_bounces: 0,
        created_at: now,
        updated_at: now,
        delivered_at: None,
    };
    w.service.store().transact(vec![layout::create(&delivery).expect("delivery")]).await.expect("seed");
    *w.clock.0.lock().expect("clock") += Duration::seconds(61);
    let summary = w.service.sweep(None, 100).await.expect("sweep");
    assert_eq!((summary.phases_failed, summary.approvals_expired), (1, 1), "{summary:?}");
}

/// A delivery whose endpoint stays busy bounces back to the queue, and each bounce moves its
/// next attempt forward: the sweep never takes it for a lost message, so however long the
/// endpoint hangs, one message (not one more per sweep) stands for the delivery.
#[tokio::test]
async fn a_busy_endpoint_bounce_moves_the_next_attempt_so_the_sweep_adds_no_messages() {
    use crate::domain::delivery::Delivery;
    use crate::ports::QueueMessage;
    let Hooked { service, clock, client, queue, org_id, url, hook } = hooked().await;
    // Every slot of the endpoint is held (sends that hang).
    let mut held = Vec::new();
    for _ in 0..delivery::endpoints::SLOTS_PER_ENDPOINT {
        held.push(service.endpoints.slot(&org_id, url.as_str()).await.expect("a free slot"));
    }
    let event = Event::new(&org_id, "approval.created", serde_json::json!({}), Utc::now());
    service.handle_message(&QueueMessage::Event { event: event.clone() }).await.expect("fanned out");
    let id = crate::domain::ids::DeliveryId::for_event(&event.id, &hook.id);
    for round in 0..4 {
        let queued = std::mem::take(&mut *queue.0.lock().expect("queue"));
        assert_eq!(queued.len(), 1, "round {round}: one message stands for the delivery: {queued:?}");
        // Later than any bounce's wait, earlier than a lost message's grace beyond it.
        *clock.0.lock().expect("clock") += Duration::seconds(200);
        for message in &queued {
            service.handle_message(message).await.expect("bounced");
        }
        let stored =
            service.reader().read::<Delivery>(&layout::delivery_key(&id)).await.expect("read").expect("delivery");
        assert!(stored.value.next_attempt_at > service.now(), "round {round}: the bounce moved the next attempt");
        assert_eq!(stored.value.attempts, 0, "round {round}: no attempt made");
        service.requeue_phase(100, &|| true).await.expect("sweep");
    }
    assert_eq!(client.0.load(std::sync::atomic::Ordering::SeqCst), 0, "never sent: the endpoint stayed busy");
    drop(held);
}
