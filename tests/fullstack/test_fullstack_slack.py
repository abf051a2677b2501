"""Slack on the deployed shape: an approval created through API Gateway reaches a fake of Slack's
Web API through the outbox, EventBridge, SQS and the webhooks Lambda; a click signed as Slack
signs it (the official slack_sdk) comes back through API Gateway to the approvals Lambda, decides
the payment once, and the message is updated. scripts/test starts the fake (FAKE_SLACK_URL) and
deploys the functions pointed at it."""

import json
import os
import secrets
import time
import urllib.parse

import httpx
from slack_sdk.signature import SignatureVerifier
from support import wait_until

WAIT = 120


def call(stack, method, path, key, body=None):
    res = httpx.request(method, f"{stack['api']}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return res.status_code, (res.json() if res.content else None)


def fake_calls(method):
    base = os.environ.get("FAKE_SLACK_URL")
    assert base, "FAKE_SLACK_URL must be set (scripts/test starts the fake Slack before deploying)"
    return httpx.get(f"{base}/_fake/calls", params={"method": method}, timeout=10).json()


def test_a_deployed_approval_reaches_slack_and_a_click_decides_it(stack):
    status, org = call(stack, "POST", "/v1/organizations", stack["operator"], {"name": "Slack full stack"})
    assert status == 201, org
    admin = org["adminKey"]["secret"]
    _, settings = call(stack, "GET", "/v1/settings", admin)
    org_id = settings["orgId"]
    token, secret, channel = f"xoxb-fullstack-{secrets.token_hex(8)}", secrets.token_hex(16), f"C0FS{secrets.token_hex(4).upper()}"

    status, integration = call(stack, "PUT", "/v1/integrations/slack", admin,
                               {"botToken": token, "signingSecret": secret, "defaultChannel": channel})
    assert status == 200 and integration["configured"] is True, integration
    assert token not in json.dumps(integration) and secret not in json.dumps(integration)

    status, rita = call(stack, "POST", "/v1/members", admin, {"name": "Rita Reviewer", "email": "rita@example.test"})
    assert status == 201, rita
    status, linked = call(stack, "PATCH", f"/v1/members/{rita['id']}", admin, {"slackUserId": "U0RITAFS"})
    assert (status, linked.get("slackUserId")) == (200, "U0RITAFS"), linked
    status, key = call(stack, "POST", "/v1/api-keys", admin,
                       {"name": "rita", "permissions": ["approvals:read", "approvals:write"], "memberId": rita["id"]})
    assert status == 201, key
    _, agent = call(stack, "POST", "/v1/api-keys", admin, {"name": "agent", "permissions": ["payments:write", "payments:read"]})
    _, source = call(stack, "POST", "/v1/wallets", admin, {"name": "agent"})
    _, vendor = call(stack, "POST", "/v1/wallets", admin, {"name": "vendor"})
    status, funded = call(stack, "POST", f"/v1/wallets/{source['id']}/fund", admin, {"amount": "10000.00"})
    assert status == 201, funded
    call(stack, "POST", f"/v1/wallets/{source['id']}/policies", admin, {"name": "review", "requireReviewAbove": "100.00"})

    status, held = call(stack, "POST", "/v1/payments", agent["secret"],
                        {"from": source["id"], "to": vendor["id"], "amount": "750.00", "description": "Full-stack invoice"})
    assert status == 202, held
    approval_id = held["approvalId"]

    def the_post():
        return [c for c in fake_calls("chat.postMessage") if approval_id in json.dumps(c["body"]) and c["status"] == 200]

    [post] = wait_until("the message in Slack", the_post, timeout=WAIT)
    assert post["token"] == token and post["body"]["channel"] == channel, post
    assert "750.00" in json.dumps(post["body"]) and "Full-stack invoice" in json.dumps(post["body"])

    payload = {
        "type": "block_actions", "user": {"id": "U0RITAFS", "username": "rita", "team_id": "T0FS"},
        "team": {"id": "T0FS"}, "api_app_id": "A0FS", "channel": {"id": channel},
        "container": {"type": "message", "message_ts": post["response"]["ts"], "channel_id": channel},
        "message": {"ts": post["response"]["ts"], "text": post["body"].get("text", "")},
        "actions": [{"action_id": "countersign_approve", "block_id": "decide", "value": approval_id,
                     "type": "button", "action_ts": str(time.time())}],
    }
    body = "payload=" + urllib.parse.quote(json.dumps(payload))
    timestamp = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": timestamp, "Content-Type": "application/x-www-form-urlencoded",
               "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)}
    url = f"{stack['api']}/integrations/slack/interactions?org={org_id}"
    forged = dict(headers, **{"X-Slack-Signature": SignatureVerifier("not-the-secret").generate_signature(
        timestamp=timestamp, body=body)})
    assert httpx.post(url, content=body, headers=forged, timeout=30).status_code == 401
    _, still = call(stack, "GET", f"/v1/approvals/{approval_id}", admin)
    assert still["status"] == "PENDING" and still["votes"] == [], still

    res = httpx.post(url, content=body, headers=headers, timeout=30)
    assert res.status_code == 200, res.text
    _, decided = call(stack, "GET", f"/v1/approvals/{approval_id}", admin)
    assert decided["status"] == "APPROVED" and len(decided["votes"]) == 1, decided
    _, payment = call(stack, "GET", f"/v1/payments/{held['id']}", admin)
    assert payment["status"] == "COMPLETED", payment
    _, balance = call(stack, "GET", f"/v1/wallets/{source['id']}/balance", admin)
    assert balance["balance"] == "9250.00", balance

    # The message says who decided; once, whichever function claimed the update.
    updates = wait_until("the updated message", lambda: [
        c for c in fake_calls("chat.update") if c["body"].get("ts") == post["response"]["ts"] and c["status"] == 200],
        timeout=WAIT)
    assert "Rita Reviewer" in json.dumps(updates[0]["body"]) and "countersign_approve" not in json.dumps(updates[0]["body"])
    records = wait_until("the delivery log", lambda: [
        d for d in call(stack, "GET", f"/v1/notifications/deliveries?approvalId={approval_id}&channel=slack", admin)[1]["data"]
        if d["kind"] == "outcome" and d["status"] == "DELIVERED"], timeout=WAIT)
    assert records[0]["slackTs"] == post["response"]["ts"], records
    time.sleep(2)
    again = [c for c in fake_calls("chat.update") if c["body"].get("ts") == post["response"]["ts"]]
    assert len(again) == 1, again
