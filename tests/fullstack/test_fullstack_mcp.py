"""MCP on the deployed shape: the official `mcp` SDK client over Streamable HTTP through API
Gateway to the approvals Lambda (stateless, one JSON body per POST): a held payment, approved by
a second key while the first waits in wait_for_decision."""

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend():
    return "asyncio"


def rest(stack, path, key, body):
    res = httpx.post(f"{stack['api']}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert res.status_code == 201, res.text
    return res.json()


def client(stack, key):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return http, Client(streamable_http_client(f"{stack['api']}/mcp", http_client=http))


def result(call):
    assert not call.is_error, call.content
    return call.structured_content


async def test_mcp_on_the_approvals_lambda(stack):
    res = httpx.post(f"{stack['api']}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30,
                     headers={"Accept": "application/json, text/event-stream"})
    assert res.status_code == 401 and res.json()["error"]["code"] == "UNAUTHORIZED"
    admin = rest(stack, "/v1/organizations", stack["operator"], {"name": "MCP full stack"})["adminKey"]["secret"]
    agent = rest(stack, "/v1/api-keys", admin, {"name": "agent", "permissions": [
        "payments:write", "approvals:read", "approvals:write"]})["secret"]
    reviewer = rest(stack, "/v1/api-keys", admin, {"name": "reviewer", "permissions": [
        "approvals:read", "approvals:write"]})["secret"]
    source = rest(stack, "/v1/wallets", admin, {"name": "agent"})["id"]
    vendor = rest(stack, "/v1/wallets", admin, {"name": "vendor"})["id"]
    rest(stack, f"/v1/wallets/{source}/fund", admin, {"amount": "3000.00"})
    rest(stack, f"/v1/wallets/{source}/policies", admin,
         {"name": "review", "maxTransactionAmount": "1000.00", "requireHumanApproval": True})

    agent_http, agent_client = client(stack, agent)
    reviewer_http, reviewer_client = client(stack, reviewer)
    async with agent_http, reviewer_http, agent_client as pays, reviewer_client as reviews:
        assert len((await pays.list_tools()).tools) == 12
        held = result(await pays.call_tool("request_payment", {"from": source, "to": vendor, "amount": "2000.00"}))
        assert held["held"] is True and held["payment"]["status"] == "PENDING_APPROVAL"
        approval = held["approval"]["id"]
        own = await pays.call_tool("decide_approval", {"approval_id": approval, "decision": "approve"})
        assert own.is_error and own.content[0].text.startswith("SELF_APPROVAL_FORBIDDEN")
        waited = {}

        async def wait():
            waited.update(result(await pays.call_tool("wait_for_decision",
                                                      {"approval_id": approval, "timeout_seconds": 20})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(1)
            decided = result(await reviews.call_tool("decide_approval",
                                                     {"approval_id": approval, "decision": "approve"}))
            assert decided["payment"]["status"] == "COMPLETED"
        assert waited["pending"] is False and waited["payment"]["status"] == "COMPLETED"
