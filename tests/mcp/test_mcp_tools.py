"""The MCP tools (docs/api.md, "MCP details") through the official `mcp` Python SDK, over Streamable HTTP and over
stdio (`countersign mcp --url`), against the real binary: a held payment decided by a second key
while the first waits, the self-approval refusal, and API error codes as tool errors."""

import os
import subprocess

import anyio
import httpx
import pytest
from mcp_support import TRANSPORTS, error_code, structured

pytestmark = pytest.mark.anyio

TOOLS = {"request_payment", "request_review", "get_approval", "wait_for_decision", "list_pending_approvals",
         "decide_approval", "escalate_approval", "request_refund", "get_budget", "why_denied",
         "add_comment", "list_comments"}


@pytest.fixture()
def anyio_backend():
    return "asyncio"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tools_are_listed_with_schemas_and_descriptions(transport, mode, org, connect):
    async with connect(transport, org.agent, mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 60, tool.name
            assert tool.input_schema["type"] == "object", tool.name
            assert tool.input_schema.get("additionalProperties") is False, tool.name
        pay = tools["request_payment"].input_schema
        assert set(pay["required"]) == {"from", "to", "amount"}
        assert pay["properties"]["amount"]["type"] == "string"
        assert "decimal string" in pay["properties"]["amount"]["description"]
        assert "202" in tools["request_payment"].description
        wait = tools["wait_for_decision"].input_schema["properties"]["timeout_seconds"]
        assert wait["maximum"] == 25
        assert set(tools["decide_approval"].input_schema["required"]) == {"approval_id", "decision"}
        assert set(tools["add_comment"].input_schema["required"]) == {"approval_id", "body"}
        assert tools["list_comments"].input_schema["required"] == ["approval_id"]
        assert client.server_info.name == "countersign"
        assert "wait_for_decision" in client.instructions
        read = await client.call_tool("get_approval", {"approval_id": "apr_nothing"})
        assert error_code(read) == "APPROVAL_NOT_FOUND"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_held_payment_is_approved_by_a_second_key_while_the_first_waits(transport, org, connect):
    async with connect(transport, org.agent) as agent, connect(transport, org.reviewer) as reviewer:
        asked = structured(await agent.call_tool("request_payment", {
            "from": org.source, "to": org.payee, "amount": "1500.00", "description": "GPU cluster, March",
            "agent_reasoning": "quarterly invoice", "risk_score": 20, "urgency": "high",
            "idempotency_key": f"mcp-{transport}-{org.source}"}))
        assert asked["held"] is True and asked["replayed"] is False
        payment, approval = asked["payment"], asked["approval"]
        assert payment["status"] == "PENDING_APPROVAL" and payment["amount"] == "1500.00"
        assert payment["approvalId"] == approval["id"] and approval["status"] == "PENDING"

        # The same idempotency key and arguments replay the first answer: no second payment.
        again = structured(await agent.call_tool("request_payment", {
            "from": org.source, "to": org.payee, "amount": "1500.00", "description": "GPU cluster, March",
            "agent_reasoning": "quarterly invoice", "risk_score": 20, "urgency": "high",
            "idempotency_key": f"mcp-{transport}-{org.source}"}))
        assert again["replayed"] is True and again["payment"]["id"] == payment["id"]

        # The requesting key may decide approvals in general, but never its own request.
        refused = await agent.call_tool("decide_approval", {"approval_id": approval["id"], "decision": "approve"})
        assert error_code(refused) == "SELF_APPROVAL_FORBIDDEN"
        status, body = org.rest("POST", f"/v1/approvals/{approval['id']}/approve", org.agent, {})
        assert (status, body["error"]["code"]) == (403, "SELF_APPROVAL_FORBIDDEN")

        now = structured(await agent.call_tool("wait_for_decision",
                                               {"approval_id": approval["id"], "timeout_seconds": 0}))
        assert now["pending"] is True and now["status"] == "PENDING" and now["decision"] is None

        listed = structured(await reviewer.call_tool("list_pending_approvals", {"wallet_id": org.source}))
        assert [a["id"] for a in listed["approvals"]] == [approval["id"]] and listed["has_more"] is False
        read = structured(await reviewer.call_tool("get_approval", {"approval_id": approval["id"]}))
        assert read["transactionDetails"]["amount"] == "1500.00" and read["paymentId"] == payment["id"]

        waited = {}

        async def wait():
            waited.update(structured(await agent.call_tool(
                "wait_for_decision", {"approval_id": approval["id"], "timeout_seconds": 20})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(0.5)  # the wait is under way before the decision
            decided = structured(await reviewer.call_tool("decide_approval", {
                "approval_id": approval["id"], "decision": "approve", "note": "invoice checked"}))
            assert decided["approval"]["status"] == "APPROVED"
            assert decided["payment"]["status"] == "COMPLETED"

        assert waited["pending"] is False and waited["status"] == "APPROVED"
        assert waited["payment"]["status"] == "COMPLETED" and waited["payment"]["id"] == payment["id"]
        assert waited["decision"]["decision_type"] == "approve" and waited["decision"]["notes"] == "invoice checked"
        assert structured(await reviewer.call_tool("list_pending_approvals", {}))["approvals"] == []
        status, wallet = org.rest("GET", f"/v1/wallets/{org.source}/balance", org.admin)
        assert wallet["balance"] == "3500.00"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_small_payment_executes_and_a_rejected_one_never_does(transport, org, connect):
    async with connect(transport, org.agent) as agent, connect(transport, org.reviewer) as reviewer:
        paid = structured(await agent.call_tool("request_payment",
                                                {"from": org.source, "to": org.payee, "amount": "12.50"}))
        assert paid["held"] is False and paid["payment"]["status"] == "COMPLETED" and "approval" not in paid
        held = structured(await agent.call_tool("request_payment",
                                                {"from": org.source, "to": org.payee, "amount": "2000.00"}))
        approval_id = held["approval"]["id"]
        decided = structured(await reviewer.call_tool("decide_approval",
                                                      {"approval_id": approval_id, "decision": "reject"}))
        assert decided["payment"]["status"] == "REJECTED"
        again = await reviewer.call_tool("decide_approval", {"approval_id": approval_id, "decision": "approve"})
        assert error_code(again) == "APPROVAL_NOT_PENDING"
        waited = structured(await agent.call_tool("wait_for_decision", {"approval_id": approval_id}))
        assert waited["pending"] is False and waited["status"] == "REJECTED"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_errors_are_tool_errors_with_the_api_code(transport, org, connect):
    pay = {"from": org.source, "to": org.payee}
    async with connect(transport, org.agent) as agent, connect(transport, org.reviewer) as reviewer:
        assert error_code(await agent.call_tool("request_payment", {**pay, "amount": "12.345"})) == "INVALID_AMOUNT"
        assert error_code(await agent.call_tool("request_payment", {**pay, "amount": 12})) == "INVALID_AMOUNT"
        assert error_code(await agent.call_tool("request_payment", {**pay, "amount": "9000.00"})) \
            == "INSUFFICIENT_FUNDS"
        bad_risk = await agent.call_tool("request_payment", {**pay, "amount": "1.00", "risk_score": 101})
        assert error_code(bad_risk) == "VALIDATION_ERROR"
        assert bad_risk.structured_content["error"]["details"]["field"] == "risk_score"
        unknown = await agent.call_tool("request_payment", {**pay, "amount": "1.00", "tip": "5"})
        assert error_code(unknown) == "VALIDATION_ERROR"
        assert unknown.structured_content["error"]["details"]["field"] == "tip"
        missing = await agent.call_tool("request_payment", {"from": org.source, "amount": "1.00"})
        assert error_code(missing) == "VALIDATION_ERROR"
        assert missing.structured_content["error"]["details"]["field"] == "to"
        # The key lacks payments:write: refused before its arguments are looked at, as on REST.
        assert error_code(await reviewer.call_tool("request_payment", {"amount": "x"})) == "PERMISSION_DENIED"
        assert error_code(await agent.call_tool("get_approval", {"approval_id": "apr_nothing"})) \
            == "APPROVAL_NOT_FOUND"
        assert error_code(await agent.call_tool("wait_for_decision",
                                                {"approval_id": "apr_nothing", "timeout_seconds": 0})) \
            == "APPROVAL_NOT_FOUND"
        held = structured(await agent.call_tool("request_payment", {**pay, "amount": "1500.00"}))
        too_long = await agent.call_tool("wait_for_decision",
                                         {"approval_id": held["approval"]["id"], "timeout_seconds": 26})
        assert error_code(too_long) == "VALIDATION_ERROR"
        assert too_long.structured_content["error"]["details"]["field"] == "timeout_seconds"
        maybe = await reviewer.call_tool("decide_approval",
                                         {"approval_id": held["approval"]["id"], "decision": "maybe"})
        assert error_code(maybe) == "VALIDATION_ERROR"
        assert error_code(await reviewer.call_tool("escalate_approval", {"approval_id": held["approval"]["id"]})) \
            == "NO_ESCALATION_TARGET"
        refund = await agent.call_tool("request_refund", {"payment_id": held["payment"]["id"]})
        assert error_code(refund) == "PAYMENT_NOT_REFUNDABLE"
        assert error_code(await reviewer.call_tool("request_refund", {"payment_id": "pay_x"})) == "PERMISSION_DENIED"
        bad_id = await agent.call_tool("request_refund", {"payment_id": "pay_x"})
        assert error_code(bad_id) == "VALIDATION_ERROR"
        assert bad_id.structured_content["error"]["details"]["field"] == "payment_id"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refunds_execute_or_wait_for_a_second_key(transport, org, connect):
    # Refund rules sit on the payee's wallet: above 100.00 a human decides.
    status, body = org.rest("POST", f"/v1/wallets/{org.payee}/policies", org.admin,
                            {"name": "refunds", "appliesTo": ["refund"], "requireReviewAbove": "100.00"})
    assert status == 201, body
    async with connect(transport, org.agent) as agent, connect(transport, org.reviewer) as reviewer:
        paid = structured(await agent.call_tool("request_payment",
                                                {"from": org.source, "to": org.payee, "amount": "500.00"}))
        payment_id = paid["payment"]["id"]
        small = structured(await agent.call_tool("request_refund", {
            "payment_id": payment_id, "amount": "50.00", "reason": "one seat cancelled",
            "idempotency_key": f"refund-{transport}-{payment_id}"}))
        assert small["held"] is False and small["refund"]["status"] == "approved"
        assert small["refund"]["amount"] == "50.00" and small["refund"]["to"] == org.source
        again = structured(await agent.call_tool("request_refund", {
            "payment_id": payment_id, "amount": "50.00", "reason": "one seat cancelled",
            "idempotency_key": f"refund-{transport}-{payment_id}"}))
        assert again["replayed"] is True and again["refund"]["id"] == small["refund"]["id"]

        rest = structured(await agent.call_tool("request_refund", {"payment_id": payment_id, "risk_score": 10}))
        assert rest["held"] is True and rest["refund"]["status"] == "pending"
        assert rest["refund"]["amount"] == "450.00"
        approval = rest["approval"]["id"]
        own = await agent.call_tool("decide_approval", {"approval_id": approval, "decision": "approve"})
        assert error_code(own) == "SELF_APPROVAL_FORBIDDEN"
        over = await agent.call_tool("request_refund", {"payment_id": payment_id, "amount": "0.01"})
        assert error_code(over) == "REFUND_EXCEEDS_PAYMENT"

        decided = structured(await reviewer.call_tool("decide_approval",
                                                      {"approval_id": approval, "decision": "approve"}))
        assert decided["refund"]["status"] == "approved" and decided["payment"]["status"] == "COMPLETED"
        waited = structured(await agent.call_tool("wait_for_decision", {"approval_id": approval}))
        assert waited["pending"] is False and waited["status"] == "APPROVED"
        assert waited["refund"]["id"] == rest["refund"]["id"] and waited["refund"]["status"] == "approved"
        status, wallet = org.rest("GET", f"/v1/wallets/{org.source}/balance", org.admin)
        assert wallet["balance"] == "5000.00"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_review_is_requested_and_its_decision_awaited(transport, org, connect):
    async with connect(transport, org.agent) as agent:
        review = structured(await agent.call_tool("request_review", {
            "task_type": "email", "proposed_action": "Send the renewal notice to 4,000 customers",
            "confidence_score": 0.7, "urgency": "low"}))
        assert review["status"] == "pending" and review["id"].startswith("rev_")
        status, decision = org.rest("POST", f"/reviews/{review['id']}/decide", org.reviewer,
                                    {"decision_type": "modify", "modified_action": "Send it to 100 first"})
        assert status == 200, decision
        waited = structured(await agent.call_tool("wait_for_decision", {"approval_id": review["id"]}))
        assert waited["pending"] is False and waited["status"] == "modified"
        assert waited["decision"]["modified_action"] == "Send it to 100 first"
        assert waited["review"]["id"] == review["id"]
        blank = await agent.call_tool("request_review", {"task_type": "email", "proposed_action": "  "})
        assert error_code(blank) == "VALIDATION_ERROR"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_agent_and_a_reviewer_talk_in_comments(transport, org, connect):
    async with connect(transport, org.agent) as agent, connect(transport, org.reviewer) as reviewer:
        held = structured(await agent.call_tool("request_payment", {
            "from": org.source, "to": org.payee, "amount": "1500.00", "description": "Annual licence"}))
        approval = held["approval"]["id"]
        asked = structured(await reviewer.call_tool("add_comment", {
            "approval_id": approval, "body": "Is this the renewal or a new seat?"}))
        assert asked["id"].startswith("cmt_") and asked["approvalId"] == approval
        assert asked["body"] == "Is this the renewal or a new seat?" and asked["author"]["keyId"].startswith("key_")
        answered = structured(await agent.call_tool("add_comment", {
            "approval_id": approval, "body": "  The renewal: contract 77.  "}))
        assert answered["body"] == "The renewal: contract 77."
        listed = structured(await agent.call_tool("list_comments", {"approval_id": approval}))
        assert [c["body"] for c in listed["comments"]] == [asked["body"], answered["body"]]
        assert listed["has_more"] is False
        # The same errors as REST: a blank comment, an unknown approval.
        blank = await agent.call_tool("add_comment", {"approval_id": approval, "body": " "})
        assert error_code(blank) == "VALIDATION_ERROR"
        assert blank.structured_content["error"]["details"]["field"] == "body"
        assert error_code(await reviewer.call_tool("list_comments", {"approval_id": "apr_nothing"})) \
            == "APPROVAL_NOT_FOUND"
    # A key that neither requested it nor reviews: no such approval, as for another organisation.
    status, other = org.rest("POST", "/v1/api-keys", org.admin, {"name": "other", "permissions": ["payments:read"]})
    assert status == 201, other
    async with connect(transport, other["secret"]) as outsider:
        refused = await outsider.call_tool("list_comments", {"approval_id": approval})
        assert error_code(refused) == "APPROVAL_NOT_FOUND"
    status, via_rest = org.rest("GET", f"/v1/approvals/{approval}/comments", org.reviewer)
    assert status == 200 and len(via_rest["data"]) == 2, via_rest


def test_http_without_a_key_is_a_401_and_answers_are_plain_json(server, org):
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "get_approval", "arguments": {"approval_id": "apr_nothing"}}}
    accept = {"Accept": "application/json, text/event-stream"}
    res = httpx.post(f"{server}/mcp", json=call, headers=accept)
    assert res.status_code == 401 and res.json()["error"]["code"] == "UNAUTHORIZED"
    res = httpx.post(f"{server}/mcp", json=call, headers={**accept, "Authorization": "Bearer cs_nope"})
    assert res.status_code == 401 and res.json()["error"]["code"] == "UNAUTHORIZED"
    # Stateless: a bare tools/call, no session, answered as one JSON body (what Lambda can serve).
    res = httpx.post(f"{server}/mcp", json=call, headers={**accept, "Authorization": f"Bearer {org.agent}"})
    assert res.status_code == 200 and res.headers["content-type"].startswith("application/json")
    assert "mcp-session-id" not in res.headers
    result = res.json()["result"]
    assert result["isError"] is True and result["content"][0]["text"].startswith("APPROVAL_NOT_FOUND")
    # No stream to open and no session to end.
    assert httpx.get(f"{server}/mcp", headers={**accept, "Authorization": f"Bearer {org.agent}"}).status_code == 405


def test_stdio_without_a_good_key_exits_with_the_reason(server, binary):
    env = {"PATH": os.environ.get("PATH", "")}
    done = subprocess.run([binary, "mcp", "--url", server], env=env, input="", capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 1 and "COUNTERSIGN_API_KEY" in done.stderr and done.stdout == ""
    done = subprocess.run([binary, "mcp", "--url", server], env={**env, "COUNTERSIGN_API_KEY": "cs_nope"},
                          input="", capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "UNAUTHORIZED" in done.stderr and done.stdout == ""
