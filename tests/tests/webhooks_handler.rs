//! The webhooks Lambda's SQS batch handler on a real service, fed the `events/webhooks/` fixtures.
//! (Tests that need no service stay beside the handler, in `functions/webhooks/src/handler.rs`.)

use aws_lambda_events::sqs::SqsEvent;
use countersign_tests::{Backend, TestApp};
use countersign_webhooks::handler::handle;

fn fixture(text: &str) -> SqsEvent {
    serde_json::from_str(text).expect("fixture")
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_batch_failure_reports_only_the_poison_message() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = handle(&app.service, fixture(include_str!("../../events/webhooks/sqs-partial-failure.json"))).await;
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.as_str()).collect();
    assert_eq!(failed, ["059f36b4-87a3-44ab-83d2-661971766003"]);
}
