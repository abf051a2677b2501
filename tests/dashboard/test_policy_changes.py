"""Four-eyes on policy changes on the dashboard (docs/api.md, "Four-eyes on policy changes"), in
headless Chromium against the real binary: the pending change with its diff, the requester
offered only Withdraw (and refused if they post an approval anyway), another person approving it
with the page's button, the applied change under its filter."""

import re

from dashboard_api import Org
from playwright.sync_api import expect

PERMS = ["policies:write", "wallets:read", "approvals:read"]


def sign_in(page, server, key, path="/dashboard"):
    page.goto(f"{server}{path}")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()


def person(org, name):
    """A key bound to a new member `name`, that may change policies and sign in."""
    member = org.call("POST", "/v1/members", org.admin, {"name": name, "email": f"{name.lower()}@example.com"})
    return org.key(name, PERMS, memberId=member["id"])


def test_a_pending_policy_change_is_approved_by_another_person_only(server, new_page, screenshots):
    org = Org(server)
    ann, ben = person(org, "Ann"), person(org, "Ben")
    org.call("PATCH", "/v1/settings", org.admin, {"policyChangesNeedApproval": True})
    change = org.call("POST", f"/v1/wallets/{org.source}/policies", ann,
                      {"name": "Cap <img src=x onerror=alert(1)>", "maxTransactionAmount": "250.00"}, expect=202)
    change_id = change["changeId"]

    # Ann asked for it: she sees it with its diff, may withdraw it, and has no Approve button.
    page = new_page()
    sign_in(page, server, ann)
    page.get_by_role("link", name="Policy changes").click()
    expect(page).to_have_url(re.compile(r"/dashboard/policy-changes$"))
    card = page.locator(f"[data-change='{change_id}']")
    expect(card).to_contain_text("policy.create")
    expect(card.get_by_role("row").filter(has_text="maxTransactionAmount")).to_contain_text("250.00")
    expect(card).to_contain_text("another person must approve it")
    expect(card.get_by_role("button", name="Approve and apply")).to_have_count(0)
    expect(card.get_by_role("button", name="Withdraw")).to_have_count(1)
    csrf = card.locator("input[name=csrf]").get_attribute("value")
    forged = page.request.post(f"{server}/dashboard/policy-changes/{change_id}/decide",
                               form={"csrf": csrf, "action": "approve"})
    assert forged.status == 403 and "SELF_APPROVAL_FORBIDDEN" in forged.text(), forged.text()
    assert org.call("GET", f"/v1/policy-changes/{change_id}", org.admin)["status"] == "pending"

    # Ben approves it on the page: applied once, and the list is empty.
    other = new_page()
    sign_in(other, server, ben, "/dashboard/policy-changes")
    card = other.locator(f"[data-change='{change_id}']")
    expect(card.get_by_role("row").filter(has_text="name")).to_contain_text("Cap <img src=x onerror=alert(1)>")
    other.screenshot(path=str(screenshots / "policy-changes.png"), full_page=True)
    card.get_by_role("button", name="Approve and apply").click()
    expect(other).to_have_url(re.compile(r"/dashboard/policy-changes$"))
    expect(other.locator("#no-changes")).to_be_visible()
    applied = org.call("GET", f"/v1/policy-changes/{change_id}", org.admin)
    assert applied["status"] == "applied", applied
    policy = org.call("GET", f"/v1/wallets/{org.source}/policies/{applied['result']}", org.admin)
    assert policy["maxTransactionAmount"] == "250.00", policy

    # Under the Applied filter, decided, with no buttons.
    other.get_by_role("combobox", name="Status").select_option("applied")
    other.get_by_role("button", name="Show").click()
    card = other.locator(f"[data-change='{change_id}']")
    expect(card).to_contain_text("applied by")
    expect(card.get_by_role("button")).to_have_count(0)


def test_the_requester_withdraws_without_javascript(server, new_page):
    org = Org(server)
    ann = person(org, "Ann")
    org.call("PATCH", "/v1/settings", org.admin, {"policyChangesNeedApproval": True})
    team = org.call("POST", "/v1/teams", org.admin, {"name": "Desk"})["id"]
    change = org.call("POST", "/v1/routing-rules", ann, {"name": "to the desk", "assignToTeam": team}, expect=202)
    page = new_page(java_script_enabled=False)
    sign_in(page, server, ann, "/dashboard/policy-changes")
    card = page.locator(f"[data-change='{change['changeId']}']")
    expect(card).to_contain_text("routing_rule.create")
    card.get_by_label("Reason (optional, when rejecting)").fill("wrong team")
    card.get_by_role("button", name="Withdraw").click()
    expect(page.locator("#no-changes")).to_be_visible()
    withdrawn = org.call("GET", f"/v1/policy-changes/{change['changeId']}", org.admin)
    assert (withdrawn["status"], withdrawn["reason"]) == ("rejected", "wrong team"), withdrawn
    assert org.call("GET", "/v1/routing-rules", org.admin)["data"] == []
