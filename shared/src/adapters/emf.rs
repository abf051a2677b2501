//! CloudWatch metrics from Lambda without an API call: Embedded Metric Format lines on stdout,
//! which CloudWatch Logs turns into metrics (namespace `Countersign`, no dimensions).

use serde_json::json;

use crate::ports::Metrics;

pub const NAMESPACE: &str = "Countersign";

pub struct EmfMetrics;

/// One EMF log line for `name` = `value`.
pub fn line(name: &str, value: u64, timestamp_ms: i64) -> String {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [[]], "Metrics": [{"Name": name, "Unit": "Count"}]}]
        },
        name: value
    })
    .to_string()
}

impl Metrics for EmfMetrics {
    fn count(&self, name: &'static str, value: u64) {
        // Stdout is the function's log stream; this line is the metric.
        println!("{}", line(name, value, chrono::Utc::now().timestamp_millis()));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_follow_the_embedded_metric_format() {
        let v: serde_json::Value = serde_json::from_str(&super::line("OutboxEventsParked", 2, 1)).unwrap();
        assert_eq!(v["OutboxEventsParked"], 2);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Countersign");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "OutboxEventsParked");
    }
}
