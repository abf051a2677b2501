"""The agent's controls through MCP (docs/api.md, "Agent controls"), with the official `mcp` SDK over
Streamable HTTP and stdio: `get_budget` shows what the key may still spend, `why_denied` explains
a refusal with the arguments the agent sent (budgets and freezes included) and writes nothing, and a
frozen key is refused before any tool runs."""

import httpx
import pytest
from mcp_support import TRANSPORTS, error_code, structured

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend():
    return "asyncio"


def budgeted_agent(org, budgets):
    status, body = org.rest("POST", "/v1/api-keys", org.admin, {
        "name": "budgeted agent", "permissions": ["payments:write", "payments:read"], "budgets": budgets})
    assert status == 201, body
    return body["secret"], body["id"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_get_budget_shows_what_the_key_may_still_spend(transport, org, connect):
    agent, _ = budgeted_agent(org, [{"window": "day", "limit": "50.00", "currency": "USD", "onExceed": "deny"}])
    async with connect(transport, agent) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"get_budget", "why_denied"} <= tools
        paid = structured(await client.call_tool("request_payment",
                                                 {"from": org.source, "to": org.payee, "amount": "20.00"}))
        assert paid["held"] is False
        budget = structured(await client.call_tool("get_budget", {}))["budgets"]
        assert [(b["window"], b["limit"], b["spent"], b["reserved"], b["remaining"]) for b in budget] == [
            ("day", "50.00", "20.00", "0.00", "30.00")]
        assert budget[0]["resetsAt"].endswith("T00:00:00Z")
        over = await client.call_tool("request_payment", {"from": org.source, "to": org.payee, "amount": "31.00"})
        assert error_code(over) == "BUDGET_EXCEEDED"
        wrong = await client.call_tool("get_budget", {"key": "someone else's"})
        assert error_code(wrong) == "VALIDATION_ERROR"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_why_denied_names_the_rule_its_limit_and_what_would_pass(transport, org, connect):
    agent, _ = budgeted_agent(org, [{"window": "month", "limit": "300.00", "currency": "USD", "onExceed": "deny"}])
    status, _ = org.rest("POST", f"/v1/wallets/{org.source}/policies", org.admin,
                         {"name": "ceiling", "autoRejectAbove": "2000.00"})
    assert status == 201
    async with connect(transport, agent) as client:
        async def why(amount):
            return structured(await client.call_tool("why_denied",
                                                     {"from": org.source, "to": org.payee, "amount": amount}))

        before = org.rest("GET", f"/v1/wallets/{org.source}/balance", org.admin)[1]["balance"]
        denied = await why("2500.00")
        assert (denied["outcome"], denied["rule"], denied["limit"]) == ("DENY", "autoRejectAbove", "2000.00")
        assert denied["executesUpTo"] == "300.00", denied
        assert denied["wouldPass"] == "at most 300.00 USD executes at once"
        assert denied["policyId"].startswith("pol_")
        over_budget = await why("400.00")
        assert (over_budget["outcome"], over_budget["rule"], over_budget["limit"]) == ("DENY", "budget", "300.00")
        assert [b["remaining"] for b in over_budget["budgets"]] == ["300.00"]
        fine = await why("250.00")
        assert (fine["outcome"], fine["wouldPass"]) == ("EXECUTE", "250.00 USD executes at once")
        # Asked, not paid: nothing moved, nothing was spent.
        assert org.rest("GET", f"/v1/wallets/{org.source}/balance", org.admin)[1]["balance"] == before
        assert structured(await client.call_tool("get_budget", {}))["budgets"][0]["spent"] == "0.00"

        # A frozen wallet is named; a malformed amount is refused as on REST.
        status, _ = org.rest("POST", f"/v1/wallets/{org.payee}/freeze", org.admin, {})
        assert status == 200
        frozen = await why("10.00")
        assert (frozen["outcome"], frozen["rule"], frozen["executesUpTo"]) == ("DENY", "walletFrozen", None)
        org.rest("POST", f"/v1/wallets/{org.payee}/unfreeze", org.admin, {})
        bad = await client.call_tool("why_denied", {"from": org.source, "to": org.payee, "amount": 10})
        assert error_code(bad) == "INVALID_AMOUNT"


async def test_a_frozen_key_is_refused_before_any_tool_runs(org, connect):
    agent, key_id = budgeted_agent(org, [])
    status, _ = org.rest("POST", f"/v1/api-keys/{key_id}/freeze", org.admin, {})
    assert status == 200
    res = httpx.post(f"{org.base}/mcp", headers={"Authorization": f"Bearer {agent}",
                                                 "Accept": "application/json, text/event-stream"},
                     json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "get_budget", "arguments": {}}})
    assert res.status_code == 403 and res.json()["error"]["code"] == "KEY_FROZEN", res.text
