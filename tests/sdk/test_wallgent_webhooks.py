"""The wallgent 0.3.0 SDK's webhooks resource (incl. the DLQ) against Countersign, and its
`verify_webhook_signature` on what Countersign sends."""


from support import wait_until
from wallgent import Wallgent




def test_webhooks_and_dead_letters_through_the_sdk(server, admin_key, receiver):
    client = Wallgent(api_key=admin_key, base_url=f"{server}/v1")
    source = client.wallets.create("agent")
    vendor = client.wallets.create("vendor")
    client.wallets.fund(source["id"], "1000.00")
    client.policies.create(source["id"], "hold all", require_human_approval=True)

    hook = client.webhooks.create(f"{receiver.base}/hook/sdk", ["approval.created"])
    assert hook["secret"].startswith("whsec_") and hook["enabled"] is True
    receiver.endpoint("sdk").update({"secret": hook["secret"], "mode": "ok"})
    assert [h["id"] for h in client.webhooks.list()] == [hook["id"]]
    assert "secret" not in client.webhooks.retrieve(hook["id"])
    assert client.webhooks.update(hook["id"], enabled=False)["enabled"] is False
    assert client.webhooks.update(hook["id"], enabled=True)["enabled"] is True
    tested = client.webhooks.test(hook["id"])
    assert tested["delivered"] is True and tested["statusCode"] == 204

    held = client.payments.send(source["id"], to_wallet_id=vendor["id"], amount="25.00")
    delivered = wait_until("approval.created delivery", lambda: [
        d for d in receiver.endpoint("sdk")["received"] if d["body"] and d["body"]["type"] == "approval.created"])
    assert delivered[0]["body"]["data"]["approvalId"] == held["approvalId"]
    assert delivered[0]["simpleVerified"], "wallgent's verify_webhook_signature accepts X-Countersign-Signature"
    assert delivered[0]["verified"], "standardwebhooks accepts the Standard Webhooks headers"

    # A receiver that refuses: one attempt (server configured so), then the DLQ.
    failing = client.webhooks.create(f"{receiver.base}/hook/refuses", ["approval.created"])
    receiver.endpoint("refuses").update({"secret": failing["secret"], "mode": "fail"})
    client.payments.send(source["id"], to_wallet_id=vendor["id"], amount="26.00")
    entries = wait_until("a dead letter", lambda: client.webhooks.list_dlq()["data"])
    entry = entries[0]
    assert entry["webhookId"] == failing["id"] and entry["status"] == "FAILED" and entry["attempts"] == 1
    event_id = entry["event"]["id"]

    receiver.endpoint("refuses")["mode"] = "ok"
    assert client.webhooks.retry_dlq(entry["id"])["status"] == "PENDING"
    # The refused attempt and the replay both carry the event id as webhook-id.
    wait_until("the replay", lambda: len([d for d in receiver.endpoint("refuses")["received"] if d["webhookId"] == event_id]) == 2)
    assert client.webhooks.list_dlq(limit=10, offset=0)["data"] == []

    receiver.endpoint("refuses")["mode"] = "fail"
    client.payments.send(source["id"], to_wallet_id=vendor["id"], amount="27.00")
    entry = wait_until("another dead letter", lambda: client.webhooks.list_dlq()["data"])[0]
    assert client.webhooks.discard_dlq(entry["id"])["status"] == "DISCARDED"
    assert client.webhooks.list_dlq()["data"] == []

    client.webhooks.delete(failing["id"])
    assert [h["id"] for h in client.webhooks.list()] == [hook["id"]]
