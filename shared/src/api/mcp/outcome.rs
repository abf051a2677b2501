//! A tool's outcome as an MCP tool result: the JSON it returns, or the REST error envelope with
//! `isError: true` and the API error code first in the text, so an agent sees the same codes as
//! a REST client.

use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::Value;

use crate::error::{AppError, AppResult};

/// REST names of fields whose tool argument is spelled in snake_case: errors name the argument.
const ARGUMENT_NAMES: [(&str, &str); 7] = [
    ("agentReasoning", "agent_reasoning"),
    ("confidenceScore", "confidence_score"),
    ("riskScore", "risk_score"),
    ("idempotencyKey", "idempotency_key"),
    ("walletId", "wallet_id"),
    ("toTeam", "to_team_id"),
    ("paymentId", "payment_id"),
];

fn argument_name(text: &str) -> String {
    ARGUMENT_NAMES.iter().fold(text.to_string(), |text, (rest, tool)| text.replace(rest, tool))
}

pub fn tool_result(outcome: AppResult<Value>) -> CallToolResult {
    match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(error) => tool_error(&error),
    }
}

/// `CODE: message` as text, and `{"error": {code, message, details}}` as structured content.
pub fn tool_error(error: &AppError) -> CallToolResult {
    let (status, mut body) = error.envelope();
    if status.is_server_error() {
        // Internal text goes to the log, never to the client.
        tracing::error!(error = %error, code = %body.error.code, "tool call failed");
    } else {
        tracing::debug!(code = %body.error.code, "tool call refused");
    }
    body.error.message = argument_name(&body.error.message);
    if let Some(field) = body.error.details.get_mut("field") {
        if let Some(name) = field.as_str() {
            *field = Value::from(argument_name(name));
        }
    }
    let text = format!("{}: {}", body.error.code, body.error.message);
    let mut result = CallToolResult::structured_error(serde_json::to_value(&body).unwrap_or(Value::Null));
    result.content = vec![ContentBlock::text(text)];
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::input::InputError;

    #[test]
    fn errors_carry_the_api_code_and_name_the_tool_argument() {
        let result = tool_error(&InputError::invalid("riskScore", "must be a number from 0 to 100").into());
        assert_eq!(result.is_error, Some(true));
        let text = result.content[0].as_text().map(|t| t.text.clone()).unwrap_or_default();
        assert!(text.starts_with("VALIDATION_ERROR: "), "{text}");
        assert!(text.contains("risk_score") && !text.contains("riskScore"), "{text}");
        let structured = result.structured_content.unwrap_or_default();
        assert_eq!(structured["error"]["details"]["field"], "risk_score");
        assert_eq!(structured["error"]["code"], "VALIDATION_ERROR");
    }
}
