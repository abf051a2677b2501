"""Helpers of the MCP tests (a module of its own: tests/sdk has a conftest too)."""

TRANSPORTS = ["http", "stdio"]


def structured(result):
    """A successful tool result's JSON."""
    assert not result.is_error, result.content
    return result.structured_content


def error_code(result):
    """A tool error's API code, read from its text as an agent would."""
    assert result.is_error, result.structured_content
    text = result.content[0].text
    code = text.split(":", 1)[0]
    assert result.structured_content["error"]["code"] == code, result.structured_content
    return code
