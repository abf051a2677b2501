"""The deployed shape, end to end: API Gateway → intake/approvals Lambdas → DynamoDB → outbox →
EventBridge → SQS → webhooks Lambda → a verifying receiver; the schedule-driven expiry Lambda; and
a poison message ending in the queue's dead-letter queue. All real binaries, in ministack."""

import json
import os
import subprocess
import tempfile

import httpx
from support import wait_until

WAIT = 150  # the expiry schedule fires once a minute


def call(stack, method, path, key, body=None):
    res = httpx.request(method, f"{stack['api']}{path}", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return res.status_code, (res.json() if res.content else None)




def test_deployed_stack_end_to_end(stack, receiver):
    status, org = call(stack, "POST", "/v1/organizations", stack["operator"], {"name": "Full stack"})
    assert status == 201, org
    admin = org["adminKey"]["secret"]
    _, agent = call(stack, "POST", "/v1/api-keys", admin, {"name": "agent", "permissions": ["payments:write", "payments:read"]})
    _, reviewer = call(stack, "POST", "/v1/api-keys", admin, {"name": "reviewer", "permissions": ["approvals:read", "approvals:write"]})
    _, source = call(stack, "POST", "/v1/wallets", admin, {"name": "agent"})
    _, vendor = call(stack, "POST", "/v1/wallets", admin, {"name": "vendor"})
    _, quick = call(stack, "POST", "/v1/wallets", admin, {"name": "short window"})
    for wallet in (source, quick):
        status, funded = call(stack, "POST", f"/v1/wallets/{wallet['id']}/fund", admin, {"amount": "10000.00"})
        assert status == 201, funded
    call(stack, "POST", f"/v1/wallets/{source['id']}/policies", admin,
         {"name": "review", "maxTransactionAmount": "1000.00", "requireHumanApproval": True})
    call(stack, "POST", f"/v1/wallets/{quick['id']}/policies", admin,
         {"name": "short", "requireHumanApproval": True, "approvalTtlSeconds": 1})
    status, hook = call(stack, "POST", "/v1/webhooks", admin,
                        {"url": f"{receiver.base}/hook/fullstack", "events": ["approval.approved", "payment.completed", "approval.expired"]})
    assert status == 201, hook
    receiver.endpoint("fullstack").update({"secret": hook["secret"], "mode": "ok"})

    # A short-window approval for the schedule to expire, and a poison message for the queue.
    status, doomed = call(stack, "POST", "/v1/payments", agent["secret"], {"from": quick["id"], "to": vendor["id"], "amount": "5.00"})
    assert status == 202, doomed
    stack["sqs"].send_message(QueueUrl=stack["outputs"]["WebhookQueueUrl"], MessageBody="poison: not an event")

    status, held = call(stack, "POST", "/v1/payments", agent["secret"], {"from": source["id"], "to": vendor["id"], "amount": "5000.00"})
    assert (status, held["status"]) == (202, "PENDING_APPROVAL"), held
    status, decided = call(stack, "POST", f"/v1/approvals/{held['approvalId']}/approve", reviewer["secret"], {"note": "ok"})
    assert (status, decided["status"], decided["payment"]["status"]) == (200, "APPROVED", "COMPLETED"), decided
    _, payment = call(stack, "GET", f"/v1/payments/{held['id']}", agent["secret"])
    assert payment["status"] == "COMPLETED"

    def delivered(kind):
        return [d for d in receiver.endpoint("fullstack")["received"] if d["body"] and d["body"].get("type") == kind]

    for kind in ("approval.approved", "payment.completed"):
        got = wait_until(kind, lambda: delivered(kind), timeout=60)
        assert got[0]["verified"] and got[0]["simpleVerified"], got[0]
        assert got[0]["webhookId"] == got[0]["body"]["id"]

    expired = wait_until("the scheduled expiry", lambda: call(stack, "GET", f"/v1/approvals/{doomed['approvalId']}", reviewer["secret"])[1]["status"] == "EXPIRED", timeout=WAIT)
    assert expired
    wait_until("approval.expired webhook", lambda: delivered("approval.expired"), timeout=60)

    # The scheduled expiry Lambda seals the audit log once entries are 60 s old; the approvals
    # Lambda serves the export, the published keys and a receipt, which verify offline.
    def sealed_export():
        res = httpx.get(f"{stack['api']}/v1/audit-logs/export", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        return res.text if res.status_code == 200 and '"type":"checkpoint"' in res.text else None
    export = wait_until("a checkpoint sealed by the expiry Lambda", sealed_export, timeout=WAIT)
    keys = httpx.get(f"{stack['api']}/.well-known/countersign-keys", timeout=30).json()
    status, receipt = call(stack, "GET", f"/v1/payments/{held['id']}/receipt", admin)
    assert status == 200 and receipt["payment"]["id"] == held["id"], receipt
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: os.path.join(tmp, name) for name in ("export.jsonl", "keys.json", "receipt.json")}
        with open(paths["export.jsonl"], "w") as f:
            f.write(export)
        for name, value in (("keys.json", keys), ("receipt.json", receipt)):
            with open(paths[name], "w") as f:
                json.dump(value, f)
        for tool, file in (("audit", "export.jsonl"), ("receipt", "receipt.json")):
            done = subprocess.run([os.environ["COUNTERSIGN_BIN"], tool, "verify", paths[file], "--key", paths["keys.json"]],
                                  capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, (tool, done.stdout, done.stderr)

    dlq = stack["outputs"]["WebhookDeadLetterQueueUrl"]

    def dead_letters():
        out = stack["sqs"].receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0)
        return [m for m in out.get("Messages", []) if m["Body"].startswith("poison")]

    assert wait_until("the poison message in the dead-letter queue", dead_letters, timeout=WAIT)
