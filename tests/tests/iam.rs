//! IAM covers every call, and nothing more: each function's inline policy in
//! `infra/template.yaml` grants exactly the IAM actions of the AWS adapters its wiring lists
//! (`countersign_core::config::functions`), each declared by its adapter next to its calls
//! (`IAM_ACTIONS`), on exactly the resources the function's environment points the adapter at.
//!
//! Only the function resources' `Policies` are read: what SAM adds for event sources (the SQS
//! poller's receive and delete, the basic execution role's logs) is not the code's to declare.

use std::collections::{BTreeMap, BTreeSet};

use countersign_core::config::{functions, AwsAdapter, ENV_EVENT_BUS, ENV_QUEUE_URL, ENV_TABLE};
use countersign_tests::template::template;
use serde_yaml_ng::Value;

const ADAPTERS: [AwsAdapter; 3] = [AwsAdapter::DynamoDb, AwsAdapter::EventBridge, AwsAdapter::Sqs];

/// The environment variable that names the resource an adapter talks to.
fn adapter_env(adapter: AwsAdapter) -> &'static str {
    match adapter {
        AwsAdapter::DynamoDb => ENV_TABLE,
        AwsAdapter::EventBridge => ENV_EVENT_BUS,
        AwsAdapter::Sqs => ENV_QUEUE_URL,
    }
}

/// The adapter that declares `action`, if any.
fn adapter_of(action: &str) -> Option<AwsAdapter> {
    ADAPTERS.into_iter().find(|a| a.iam_actions().contains(&action))
}

/// A YAML value's tag (`GetAtt` for `!GetAtt ...`) and the value under it.
fn tagged(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string().trim_start_matches('!').to_string(), &t.value)),
        _ => None,
    }
}

/// One string or a list of strings (`Action`, `Resource` without intrinsics).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        other => panic!("expected a string or a list of strings, got {other:?}"),
    }
}

/// A template resource and the suffix after its ARN.
type Resource = (String, String);

/// A policy resource as (logical id of the template resource, suffix after its ARN): `!GetAtt
/// Table.Arn` is ("Table", ""), `!Sub "${Table.Arn}/index/*"` is ("Table", "/index/*"). Anything
/// else (a literal ARN, a wildcard) is an error: every resource here is one the template defines.
fn resource_ref(v: &Value) -> Result<Resource, String> {
    match tagged(v) {
        Some((tag, Value::String(target))) if tag == "GetAtt" => match target.strip_suffix(".Arn") {
            Some(id) => Ok((id.to_string(), String::new())),
            None => Err(format!("!GetAtt {target} is not an ARN")),
        },
        Some((tag, Value::Sequence(parts))) if tag == "GetAtt" && parts.len() == 2 && parts[1] == "Arn" => {
            Ok((parts[0].as_str().unwrap_or_default().to_string(), String::new()))
        }
        Some((tag, Value::String(text))) if tag == "Sub" => {
            let rest = text.strip_prefix("${").ok_or_else(|| format!("!Sub {text:?} does not start with an ARN"))?;
            let (inner, suffix) = rest.split_once('}').ok_or_else(|| format!("!Sub {text:?} is malformed"))?;
            let id = inner.strip_suffix(".Arn").ok_or_else(|| format!("!Sub {text:?} does not start with an ARN"))?;
            Ok((id.to_string(), suffix.to_string()))
        }
        _ => Err(format!("{v:?} is not scoped to a resource of the template (a wildcard or literal ARN)")),
    }
}

/// The logical id an environment variable refers to (`!Ref X`), the function's own variables
/// overriding the template's Globals.
fn env_ref(template: &Value, function: &Value, name: &str) -> Option<String> {
    let own = &function["Properties"]["Environment"]["Variables"][name];
    let global = &template["Globals"]["Function"]["Environment"]["Variables"][name];
    let value = if own.is_null() { global } else { own };
    match tagged(value) {
        Some((tag, Value::String(id))) if tag == "Ref" => Some(id.clone()),
        _ => None,
    }
}

/// Every resource of the template whose `Type` is `kind`, by logical id.
fn resources_of<'t>(template: &'t Value, kind: &str) -> BTreeMap<String, &'t Value> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().expect("logical id").to_string(), r))
        .collect()
}

/// What one function's inline policies grant: action → resources, and the problems found
/// reading them (unscoped resources, unsupported policy forms, non-Allow statements).
fn grants(function: &Value) -> (BTreeMap<String, BTreeSet<Resource>>, Vec<String>) {
    let mut granted: BTreeMap<String, BTreeSet<Resource>> = BTreeMap::new();
    let mut problems = Vec::new();
    let policies = function["Properties"]["Policies"].as_sequence().cloned().unwrap_or_default();
    for policy in &policies {
        let Some(statements) = policy["Statement"].as_sequence() else {
            // A managed policy or a SAM policy template: its actions are not visible here.
            problems.push(format!("policy {policy:?} is not an inline `Statement` list, so it cannot be checked"));
            continue;
        };
        for statement in statements {
            let sid = statement["Sid"].as_str().unwrap_or("(no Sid)");
            if statement["Effect"].as_str() != Some("Allow") {
                problems.push(format!("statement {sid}: Effect must be Allow"));
                continue;
            }
            if !statement["NotAction"].is_null() || !statement["NotResource"].is_null() {
                problems.push(format!("statement {sid}: NotAction/NotResource grant open-ended sets"));
            }
            let resources: Vec<&Value> = match &statement["Resource"] {
                Value::Null => {
                    problems.push(format!("statement {sid}: no Resource"));
                    Vec::new()
                }
                Value::Sequence(items) => items.iter().collect(),
                one => vec![one],
            };
            let mut scoped = BTreeSet::new();
            for resource in resources {
                match resource_ref(resource) {
                    Ok(r) => {
                        scoped.insert(r);
                    }
                    Err(e) => problems.push(format!("statement {sid}: Resource {e}")),
                }
            }
            for action in strings(&statement["Action"]) {
                granted.entry(action).or_default().extend(scoped.iter().cloned());
            }
        }
    }
    (granted, problems)
}

/// The resources each of an adapter's actions needs: the resource its environment variable names,
/// and for a DynamoDB Query also the table's indexes (the code queries all of them).
fn needed_resources(action: &str, target: &str) -> BTreeSet<Resource> {
    let mut needed = BTreeSet::from([(target.to_string(), String::new())]);
    if action == "dynamodb:Query" {
        needed.insert((target.to_string(), "/index/*".to_string()));
    }
    needed
}

#[test]
fn every_function_policy_grants_exactly_what_its_adapters_call() {
    let template = template();
    let deployed: BTreeMap<String, &Value> = resources_of(&template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, f)| {
            let binary = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} has no Metadata.BuildProperties.Binary"));
            (binary.to_string(), f)
        })
        .collect();
    let wired: BTreeSet<&str> = functions::ALL.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        deployed.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        wired,
        "the template's functions and config::functions::ALL must list the same functions"
    );

    let mut failures = Vec::new();
    for (name, adapters) in functions::ALL {
        let function = deployed[*name];
        let expected: BTreeSet<&str> = adapters.iter().flat_map(|a| a.iam_actions().iter().copied()).collect();
        let (granted, problems) = grants(function);
        let actual: BTreeSet<&str> = granted.keys().map(String::as_str).collect();
        let missing: Vec<&str> = expected.difference(&actual).copied().collect();
        let extra: Vec<&str> = actual.difference(&expected).copied().collect();
        if !missing.is_empty() {
            failures.push(format!("{name}: missing {missing:?} (its code calls them through {adapters:?})"));
        }
        if !extra.is_empty() {
            failures.push(format!("{name}: extra {extra:?} (no adapter it lists, {adapters:?}, calls them)"));
        }
        failures.extend(problems.into_iter().map(|p| format!("{name}: {p}")));
        // Scope: each granted adapter action on exactly the resource that adapter is pointed at.
        for (action, resources) in &granted {
            let Some(adapter) = adapter_of(action) else { continue };
            let Some(target) = env_ref(&template, function, adapter_env(adapter)) else {
                failures.push(format!("{name}: {action} granted, but {} is not a !Ref", adapter_env(adapter)));
                continue;
            };
            let needed = needed_resources(action, &target);
            if *resources != needed {
                failures.push(format!("{name}: {action} is granted on {resources:?}, should be exactly {needed:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "IAM policies in infra/template.yaml differ from the code:\n  {}",
        failures.join("\n  ")
    );
}

/// Source of each AWS adapter, without comments and whitespace, up to its unit tests.
fn adapter_source(adapter: AwsAdapter) -> String {
    let text = match adapter {
        AwsAdapter::DynamoDb => include_str!("../../shared/src/adapters/dynamodb.rs"),
        AwsAdapter::EventBridge => include_str!("../../shared/src/adapters/eventbridge.rs"),
        AwsAdapter::Sqs => include_str!("../../shared/src/adapters/sqs.rs"),
    };
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .flat_map(str::chars)
        .filter(|c| !c.is_whitespace())
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `get_item` → `GetItem`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The IAM actions an adapter's source calls: every `client.<operation>()` on its SDK client, and
/// for DynamoDB transactions the per-item actions of the items it builds.
fn called_actions(adapter: AwsAdapter) -> BTreeSet<String> {
    let source = adapter_source(adapter);
    let service = match adapter {
        AwsAdapter::DynamoDb => "dynamodb",
        AwsAdapter::EventBridge => "events",
        AwsAdapter::Sqs => "sqs",
    };
    let mut actions = BTreeSet::new();
    for (at, _) in source.match_indices("client.") {
        let rest = &source[at + "client.".len()..];
        let op: String = rest.chars().take_while(|c| is_ident(*c)).collect();
        if !op.is_empty() && rest[op.len()..].starts_with("()") {
            actions.insert(op);
        }
    }
    let transact_items = [
        ("Put", "PutItem"),
        ("Delete", "DeleteItem"),
        ("ConditionCheck", "ConditionCheckItem"),
        ("Update", "UpdateItem"),
        ("Get", "GetItem"),
    ];
    let mut iam = BTreeSet::new();
    for op in actions {
        if op == "transact_write_items" || op == "transact_get_items" {
            for (builder, action) in transact_items {
                let pattern = format!("{builder}::builder()");
                let built = source.match_indices(&pattern).any(|(at, _)| !source[..at].ends_with(is_ident));
                if built {
                    iam.insert(format!("{service}:{action}"));
                }
            }
        } else {
            iam.insert(format!("{service}:{}", pascal(&op)));
        }
    }
    iam
}

#[test]
fn each_adapter_declares_exactly_the_actions_its_code_calls() {
    for adapter in ADAPTERS {
        let called = called_actions(adapter);
        assert!(
            !called.is_empty(),
            "{adapter:?}: no `client.<operation>()` call found; has the adapter changed shape?"
        );
        let declared: BTreeSet<String> = adapter.iam_actions().iter().map(|a| a.to_string()).collect();
        assert_eq!(declared, called, "{adapter:?}: IAM_ACTIONS (left) differ from the SDK calls in its source (right)");
    }
}
