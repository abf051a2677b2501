//! CloudWatch metrics from Lambda without an API call: Embedded Metric Format lines on stdout,
//! which CloudWatch Logs turns into metrics in the namespace `Countersign`. Each line carries the
//! metric's unit and its one dimension, if any (a dimension set of that one key, its value a
//! root member); a metric without one gets the empty dimension set, as the spec allows.

use serde_json::{json, Map, Value};

use crate::domain::metric::Metric;
use crate::ports::Metrics;

pub const NAMESPACE: &str = "Countersign";

pub struct EmfMetrics;

/// One EMF log line for `metric` = `value`; `None` for a value JSON cannot carry (NaN, infinite).
pub fn line(metric: Metric, value: f64, timestamp_ms: i64) -> Option<String> {
    let number = number(value)?;
    let dimension_set: Vec<&str> = metric.dimension().map(|(name, _)| name).into_iter().collect();
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimension_set],
                "Metrics": [{"Name": metric.name(), "Unit": metric.unit().as_str()}]
            }]
        }),
    );
    if let Some((name, value)) = metric.dimension() {
        root.insert(name.into(), Value::String(value.into()));
    }
    root.insert(metric.name().into(), number);
    Some(Value::Object(root).to_string())
}

/// Whole values as integers (counts read as counts in the logs), others as they are.
fn number(value: f64) -> Option<Value> {
    if !value.is_finite() {
        return None;
    }
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        // Exact: integers this small convert without loss.
        return Some(json!(value as i64));
    }
    serde_json::Number::from_f64(value).map(Value::Number)
}

impl Metrics for EmfMetrics {
    fn record(&self, metric: Metric, value: f64) {
        match line(metric, value, chrono::Utc::now().timestamp_millis()) {
            // Stdout is the function's log stream; this line is the metric.
            Some(line) => println!("{line}"),
            None => tracing::warn!(metric = metric.name(), value, "metric value not recorded: not a finite number"),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::domain::metric::{Metric, Outcome};

    fn parse(metric: Metric, value: f64) -> serde_json::Value {
        serde_json::from_str(&super::line(metric, value, 1).expect("a line")).expect("JSON")
    }

    #[test]
    fn lines_carry_the_unit_and_the_dimension_as_the_embedded_metric_format_says() {
        let v = parse(Metric::Decisions(Outcome::Held), 1.0);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 1);
        assert_eq!(directive["Namespace"], "Countersign");
        assert_eq!(directive["Metrics"], serde_json::json!([{"Name": "Decisions", "Unit": "Count"}]));
        // The dimension set names the key; its value is a string member of the root.
        assert_eq!(directive["Dimensions"], serde_json::json!([["Outcome"]]));
        assert_eq!((v["Outcome"].as_str(), v["Decisions"].as_i64()), (Some("held"), Some(1)));

        let v = parse(Metric::TimeToDecision, 12.5);
        let directive = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Metrics"], serde_json::json!([{"Name": "TimeToDecision", "Unit": "Seconds"}]));
        assert_eq!(directive["Dimensions"], serde_json::json!([[]]));
        assert_eq!(v["TimeToDecision"].as_f64(), Some(12.5));
        assert!(v.get("Outcome").is_none());

        let v = parse(Metric::IntakeLatency, 7.0);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"], "Milliseconds");
        assert_eq!(v["IntakeLatency"].as_u64(), Some(7));
    }

    #[test]
    fn values_json_cannot_carry_make_no_line() {
        assert!(super::line(Metric::IntakeLatency, f64::NAN, 1).is_none());
        assert!(super::line(Metric::IntakeLatency, f64::INFINITY, 1).is_none());
    }
}
