"""Passkey step-up in a real browser: Chromium's virtual authenticator (Chrome DevTools Protocol,
`WebAuthn.addVirtualAuthenticator`) stands in for a security key. A reviewer registers a passkey on
/dashboard/passkeys, is refused step-up through REST, approves on the dashboard (the page runs the
ceremony over the challenge the server computed), and the payment's receipt verifies offline with
`countersign receipt verify`; a tampered receipt does not."""

import json
import os
import re
import subprocess
import tempfile

from playwright.sync_api import expect

from dashboard_api import Org
from test_dashboard import sign_in


def virtual_authenticator(page):
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    made = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, made["authenticatorId"]


def verify(receipt, keys):
    binary = os.environ["COUNTERSIGN_BIN"]
    with tempfile.TemporaryDirectory() as tmp:
        receipt_file, keys_file = os.path.join(tmp, "receipt.json"), os.path.join(tmp, "keys.json")
        with open(receipt_file, "w") as f:
            json.dump(receipt, f)
        with open(keys_file, "w") as f:
            json.dump(keys, f)
        return subprocess.run([binary, "receipt", "verify", receipt_file, "--key", keys_file],
                              capture_output=True, text=True, timeout=60)


def test_a_passkey_registered_on_the_dashboard_signs_the_approval_and_the_receipt_proves_it(server, page):
    org = Org(server)
    org.policy(org.source, {"name": "passkey above 1000", "stepUpAbove": "1000.00"})
    approval_id = org.hold("5000.00")

    # Not through the API: it answers with the page where the passkey is used, and decides nothing.
    res = org.call("POST", f"/v1/approvals/{approval_id}/approve", org.reviewer, {}, expect=403)
    assert res["error"]["code"] == "STEP_UP_REQUIRED", res
    assert res["error"]["details"]["url"] == f"{server}/dashboard/approvals/{approval_id}", res
    assert org.approval(approval_id)["status"] == "PENDING"

    cdp, authenticator = virtual_authenticator(page)
    sign_in(page, server, org.reviewer)
    page.get_by_role("link", name="Passkeys").click()
    expect(page.get_by_role("heading", name="Your passkeys")).to_be_visible()
    page.get_by_label("Name").fill("Laptop key")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#passkeys")).to_contain_text("Laptop key")
    assert len(cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]) == 1

    # Still refused through REST: a registered passkey is no bearer token.
    res = org.call("POST", f"/v1/approvals/{approval_id}/approve", org.reviewer, {}, expect=403)
    assert res["error"]["code"] == "STEP_UP_REQUIRED", res

    page.goto(f"{server}/dashboard/approvals/{approval_id}")
    expect(page.locator("#step-up-notice")).to_contain_text("1000.00 USD")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#status")).to_have_text("APPROVED")
    expect(page.locator(".votes")).to_contain_text("with passkey")

    approval = org.approval(approval_id)
    vote = approval["votes"][0]
    assert vote["passkey"]["decision"] == "approve" and vote["passkey"]["amount"] == "5000.00", vote
    payment = org.payment(approval["paymentId"])
    assert payment["status"] == "COMPLETED", payment
    sign_count = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"][0]["signCount"]
    assert sign_count >= 1, "the authenticator signed"

    receipt = org.call("GET", f"/v1/payments/{payment['id']}/receipt", org.admin)
    keys = org.call("GET", "/.well-known/countersign-keys", org.admin)
    done = verify(receipt, keys)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 of 1 votes signed with a passkey" in done.stdout, done.stdout

    forged = json.loads(json.dumps(receipt))
    forged["approval"]["votes"][0]["passkey"]["amount"] = "50.00"
    done = verify(forged, keys)
    assert done.returncode == 1 and "FAILED" in done.stderr, done.stdout + done.stderr
    assert re.search(r"hash|signature", done.stderr), done.stderr
