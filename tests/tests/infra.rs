//! What `infra/template.yaml` must keep for operations: no event is dropped between the bus and
//! the webhook queue unseen, every dead-letter queue raises an alarm, and parked outbox events do.

use std::collections::BTreeSet;

use countersign_tests::template::template;
use serde_yaml_ng::Value;

/// The logical id under `!GetAtt X.Arn` / `!GetAtt X.QueueName` or `!Ref X`.
fn target(v: &Value) -> Option<String> {
    let Value::Tagged(t) = v else { return None };
    let text = t.value.as_str()?;
    Some(text.split('.').next().unwrap_or(text).to_string())
}

fn resources<'t>(template: &'t Value, kind: &str) -> Vec<(String, &'t Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("logical id").to_string(), r))
        .collect()
}

/// Queues with an alarm when messages are visible in them.
fn alarmed_queues(template: &Value) -> BTreeSet<String> {
    resources(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .filter(|(_, a)| {
            let p = &a["Properties"];
            p["Namespace"].as_str() == Some("AWS/SQS")
                && p["MetricName"].as_str() == Some("ApproximateNumberOfMessagesVisible")
        })
        .flat_map(|(_, a)| {
            a["Properties"]["Dimensions"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|d| (d["Name"].as_str() == Some("QueueName")).then(|| target(&d["Value"])).flatten())
        })
        .collect()
}

#[test]
fn bus_rule_targets_retry_and_dead_letter_to_an_alarmed_queue_only_the_rule_may_use() {
    let template = template();
    let rules = resources(&template, "AWS::Events::Rule");
    assert!(!rules.is_empty(), "no bus rule");
    let alarmed = alarmed_queues(&template);
    for (rule, r) in rules {
        for t in r["Properties"]["Targets"].as_sequence().expect("Targets") {
            let id = t["Id"].as_str().unwrap_or("?");
            let retry = &t["RetryPolicy"];
            assert!(
                retry["MaximumRetryAttempts"].as_u64().is_some()
                    && retry["MaximumEventAgeInSeconds"].as_u64().is_some(),
                "{rule} target {id}: RetryPolicy with MaximumRetryAttempts and MaximumEventAgeInSeconds"
            );
            let dlq = target(&t["DeadLetterConfig"]["Arn"])
                .unwrap_or_else(|| panic!("{rule} target {id}: DeadLetterConfig.Arn must be a queue of the template"));
            assert_eq!(template["Resources"][&dlq]["Type"].as_str(), Some("AWS::SQS::Queue"), "{rule} target {id}");
            assert!(alarmed.contains(&dlq), "{rule} target {id}: no depth alarm on its dead-letter queue {dlq}");
            // EventBridge needs a queue policy to send there; only this rule may.
            let allowed = resources(&template, "AWS::SQS::QueuePolicy").into_iter().any(|(_, p)| {
                let p = &p["Properties"];
                let queues: Vec<_> = p["Queues"].as_sequence().into_iter().flatten().filter_map(target).collect();
                queues.contains(&dlq)
                    && p["PolicyDocument"]["Statement"].as_sequence().into_iter().flatten().any(|s| {
                        s["Effect"].as_str() == Some("Allow")
                            && s["Principal"]["Service"].as_str() == Some("events.amazonaws.com")
                            && s["Action"].as_str() == Some("sqs:SendMessage")
                            && target(&s["Resource"]).as_deref() == Some(dlq.as_str())
                            && target(&s["Condition"]["ArnEquals"]["aws:SourceArn"]).as_deref() == Some(rule.as_str())
                    })
            });
            assert!(allowed, "{rule} target {id}: {dlq} needs a queue policy letting only this rule send to it");
        }
    }
}

#[test]
fn every_dead_letter_queue_has_a_depth_alarm() {
    let template = template();
    let alarmed = alarmed_queues(&template);
    for (id, q) in resources(&template, "AWS::SQS::Queue") {
        if let Some(dlq) = target(&q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) {
            assert!(alarmed.contains(&dlq), "{id}'s dead-letter queue {dlq} has no depth alarm");
        }
    }
}

#[test]
fn parked_outbox_events_and_failed_notifications_raise_alarms() {
    let template = template();
    for metric in ["OutboxEventsParked", "NotificationsFailed"] {
        let alarm = resources(&template, "AWS::CloudWatch::Alarm")
            .into_iter()
            .map(|(_, a)| &a["Properties"])
            .find(|p| p["Namespace"].as_str() == Some("Countersign") && p["MetricName"].as_str() == Some(metric))
            .unwrap_or_else(|| panic!("an alarm on Countersign/{metric}"));
        // Emitted with `"Dimensions": [[]]`: the alarm must not filter on any dimension.
        assert!(alarm["Dimensions"].is_null(), "{metric}: the metric has no dimensions");
        assert_eq!(
            (alarm["Statistic"].as_str(), alarm["Period"].as_u64(), alarm["Threshold"].as_u64()),
            (Some("Sum"), Some(300), Some(1)),
            "{metric}"
        );
        assert_eq!(alarm["ComparisonOperator"].as_str(), Some("GreaterThanOrEqualToThreshold"), "{metric}");
    }
}

#[test]
fn the_dashboard_routes_to_approvals_with_a_secret_that_never_echoes() {
    let template = template();
    let routes = resources(&template, "AWS::ApiGatewayV2::Route");
    for key in ["ANY /dashboard", "ANY /dashboard/{proxy+}", "POST /integrations/slack/interactions"] {
        let (id, route) = routes
            .iter()
            .find(|(_, r)| r["Properties"]["RouteKey"].as_str() == Some(key))
            .unwrap_or_else(|| panic!("no route {key}"));
        let Value::Tagged(t) = &route["Properties"]["Target"] else { panic!("{id}: Target is not !Sub") };
        assert_eq!(t.value.as_str(), Some("integrations/${ApprovalsIntegration}"), "{id}");
    }
    let secret = &template["Parameters"]["SessionSecret"];
    assert_eq!((secret["NoEcho"].as_bool(), secret["MinLength"].as_u64()), (Some(true), Some(32)));
    // The functions that sign or check dashboard tokens get it; no other function does.
    for (function, wanted) in
        [("ApprovalsFunction", true), ("WebhooksFunction", true), ("IntakeFunction", false), ("ExpiryFunction", false)]
    {
        let variables = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        let got = target(&variables["COUNTERSIGN_SESSION_SECRET"]);
        assert_eq!(got.as_deref() == Some("SessionSecret"), wanted, "{function}: {got:?}");
        // Intake answers /reviews decisions that need a passkey with the dashboard's URL.
        let links = wanted || function == "IntakeFunction";
        assert_eq!(variables["COUNTERSIGN_PUBLIC_URL"].is_null(), !links, "{function}");
    }
    let signing = &template["Parameters"]["SigningKey"];
    assert_eq!((signing["NoEcho"].as_bool(), signing["MinLength"].as_u64()), (Some(true), Some(43)));
    // Receipts (approvals) and sealing (expiry) sign; no other function holds the key.
    for (function, wanted) in
        [("ApprovalsFunction", true), ("ExpiryFunction", true), ("IntakeFunction", false), ("WebhooksFunction", false)]
    {
        let variables = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        let got = target(&variables["COUNTERSIGN_SIGNING_KEY"]);
        assert_eq!(got.as_deref() == Some("SigningKey"), wanted, "{function}: {got:?}");
    }
    assert!(template["Globals"]["Function"]["Environment"]["Variables"]["COUNTERSIGN_SESSION_SECRET"].is_null());
    // Slack and email secrets: NoEcho parameters, held only by the functions that use them.
    for name in ["EncryptionKey", "SmtpUrl"] {
        assert_eq!(template["Parameters"][name]["NoEcho"].as_bool(), Some(true), "{name}");
    }
    assert_eq!(template["Parameters"]["EncryptionKey"]["MinLength"].as_u64(), Some(43));
    // Approvals seals the Slack secrets and answers clicks; webhooks opens the token to post.
    for (function, encryption, smtp) in [
        ("ApprovalsFunction", true, false),
        ("WebhooksFunction", true, true),
        ("IntakeFunction", false, false),
        ("ExpiryFunction", false, false),
    ] {
        let variables = &template["Resources"][function]["Properties"]["Environment"]["Variables"];
        let got = target(&variables["COUNTERSIGN_ENCRYPTION_KEY"]);
        assert_eq!(got.as_deref() == Some("EncryptionKey"), encryption, "{function}: {got:?}");
        assert_eq!(!variables["COUNTERSIGN_SMTP_URL"].is_null(), smtp, "{function}");
    }
    let globals = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert!(globals["COUNTERSIGN_ENCRYPTION_KEY"].is_null() && globals["COUNTERSIGN_SMTP_URL"].is_null());
}
