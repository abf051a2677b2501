"""The reviewer dashboard as a person uses it, in headless Chromium against the real binary: sign in,
decide (approve, reject, modify, escalate) under the API's rules, live refresh, keyboard
shortcuts, review links from webhooks, and the security properties a browser can show (inert XSS,
CSRF refusals, revocation signing out, accessible names)."""

import re
import time

import httpx
from dashboard_api import Org
from playwright.sync_api import expect
from support import wait_until

XSS_DESCRIPTION = "<script>alert(1)</script>"
XSS_METADATA = '"><img src=x onerror=alert(1)>'


def sign_in(page, server, key, path="/dashboard"):
    page.goto(f"{server}{path}")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()


def open_item(page, name):
    page.get_by_role("link", name=name).click()
    expect(page.locator("#status")).to_be_visible()


def test_sign_in_see_a_held_payment_approve_it_and_the_balance_moves_once(server, page, screenshots):
    org = Org(server)
    approval_id = org.hold()
    org.hold(amount="1800.00", description="Team offsite venue deposit", urgency="low")
    org.review("Refund order 881 ($120.00) to the customer's card")
    sign_in(page, server, org.reviewer)
    row = page.get_by_role("link", name=re.compile(r"5000\.00 USD — Invoice 1042 from ACME Supplies"))
    expect(row).to_be_visible()
    expect(page.get_by_role("row").filter(has=row)).to_contain_text("left")
    expect(page.get_by_role("row").filter(has=row)).to_contain_text("high")
    page.screenshot(path=str(screenshots / "queue.png"), full_page=True)

    open_item(page, "5000.00 USD — Invoice 1042 from ACME Supplies")
    for text in ["Operations (", "ACME Supplies (", "Monthly supplies invoice", "0.82", "35",
                 "maxTransactionAmount", "amount 5000.00 USD is above maxTransactionAmount 1000.00",
                 "0 of 1 approvals needed", "payment.held"]:
        expect(page.locator("main")).to_contain_text(text)
    page.screenshot(path=str(screenshots / "detail.png"), full_page=True)

    csrf = page.locator("form[data-decide] input[name=csrf]").get_attribute("value")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#status")).to_have_text("APPROVED")
    expect(page.get_by_role("status")).to_contain_text("Your approval was recorded.")
    expect(page.locator("main")).to_contain_text("approval.approved")
    assert (org.balance(org.source), org.balance(org.payee)) == ("5000.00", "5000.00")

    # The same form sent again (a double click, a resubmitted page), or the API: refused.
    again = page.request.post(f"{server}/dashboard/approvals/{approval_id}/decide",
                              form={"csrf": csrf, "action": "approve"})
    assert again.status == 409 and "APPROVAL_NOT_PENDING" in again.text()
    org.call("POST", f"/v1/approvals/{approval_id}/approve", org.reviewer, {}, expect=409)
    assert (org.balance(org.source), org.balance(org.payee)) == ("5000.00", "5000.00")
    assert org.payment(org.approval(approval_id)["paymentId"])["status"] == "COMPLETED"


def test_reject_with_a_note(server, page):
    org = Org(server)
    approval_id = org.hold()
    sign_in(page, server, org.reviewer)
    open_item(page, re.compile("5000.00 USD"))
    page.get_by_label("Note").fill("Duplicate of invoice 1041")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator("#status")).to_have_text("REJECTED")
    expect(page.locator("main")).to_contain_text("Duplicate of invoice 1041")
    approval = org.approval(approval_id)
    assert approval["status"] == "REJECTED" and approval["votes"][0]["note"] == "Duplicate of invoice 1041"
    assert org.payment(approval["paymentId"])["status"] == "REJECTED"
    assert org.balance(org.source) == "10000.00"


def test_modify_to_a_lower_amount(server, page):
    org = Org(server)
    approval_id = org.hold()
    sign_in(page, server, org.reviewer)
    open_item(page, re.compile("5000.00 USD"))
    page.get_by_label("Amount").fill("1200.00")
    page.get_by_label("Note").fill("Only the delivered items")
    page.get_by_role("button", name="Modify").click()
    expect(page.locator("#status")).to_have_text("APPROVED")
    expect(page.locator("main")).to_contain_text("Amount asked for")
    expect(page.locator("main")).to_contain_text("5000.00 USD")
    payment = org.payment(org.approval(approval_id)["paymentId"])
    assert (payment["status"], payment["amount"]) == ("COMPLETED", "1200.00")
    assert (org.balance(org.source), org.balance(org.payee)) == ("8800.00", "1200.00")


def test_a_reviewer_outside_the_assigned_team_sees_the_refusal(server, page):
    org = Org(server)
    alice = org.call("POST", "/v1/members", org.admin, {"name": "Alice Treasury", "email": "alice@example.com"})["id"]
    bob = org.call("POST", "/v1/members", org.admin, {"name": "Bob Sales", "email": "bob@example.com"})["id"]
    team = org.call("POST", "/v1/teams", org.admin, {"name": "Treasury", "members": [alice]})["id"]
    org.call("POST", "/v1/routing-rules", org.admin,
             {"name": "all to treasury", "priority": 1, "conditions": {}, "assignToTeam": team})
    approval_id = org.hold()
    bob_key = org.key("Bob", ["approvals:read", "approvals:write"], memberId=bob)
    alice_key = org.key("Alice", ["approvals:read", "approvals:write"], memberId=alice)

    sign_in(page, server, bob_key)
    open_item(page, re.compile("5000.00 USD"))
    expect(page.locator("main")).to_contain_text("Treasury (")
    page.get_by_label("Note").fill("looks fine to me")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("alert")).to_contain_text("NOT_ASSIGNED")
    expect(page.locator("#status")).to_have_text("PENDING")
    expect(page.get_by_label("Note")).to_have_value("looks fine to me")
    assert org.approval(approval_id)["votes"] == []

    # Filtering by team shows it; the team's member decides it.
    page.goto(f"{server}/dashboard")
    page.get_by_label("Team").select_option(label="Treasury")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name=re.compile("5000.00 USD"))).to_be_visible()
    page.context.clear_cookies()
    sign_in(page, server, alice_key)
    open_item(page, re.compile("5000.00 USD"))
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#status")).to_have_text("APPROVED")
    expect(page.locator("main")).to_contain_text("Alice Treasury")


def test_escalate_hands_it_to_another_team(server, page):
    org = Org(server)
    first = org.call("POST", "/v1/teams", org.admin, {"name": "Tier one", "members": []})["id"]
    second = org.call("POST", "/v1/teams", org.admin, {"name": "Controllers", "members": []})["id"]
    org.call("POST", "/v1/routing-rules", org.admin,
             {"name": "tier one", "priority": 1, "conditions": {}, "assignToTeam": first})
    approval_id = org.hold()
    sign_in(page, server, org.admin)
    open_item(page, re.compile("5000.00 USD"))
    page.get_by_label("Escalate to").select_option(label="Controllers")
    page.get_by_label("Note").fill("Above my limit")
    page.get_by_role("button", name="Escalate").click()
    expect(page.locator("#status")).to_have_text("ESCALATED")
    expect(page.locator("main")).to_contain_text("Controllers (")
    assert org.approval(approval_id)["assignedTeam"] == second


def test_a_revoked_key_is_signed_out_at_once(server, page):
    org = Org(server)
    org.hold()
    sign_in(page, server, org.reviewer)
    expect(page.get_by_role("link", name=re.compile("5000.00 USD"))).to_be_visible()
    org.revoke(org.reviewer)
    page.reload()
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?.*ended=revoked"))
    expect(page.get_by_role("status")).to_contain_text("revoked")
    page.get_by_label("API key").fill(org.reviewer)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("revoked")


def test_sign_out(server, page):
    org = Org(server)
    sign_in(page, server, org.reviewer)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You have signed out.")
    page.goto(f"{server}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))


def test_the_xss_strings_stay_inert(server, page):
    org = Org(server)
    org.hold(description=XSS_DESCRIPTION, metadata={"ref": XSS_METADATA, XSS_METADATA: "key"},
             agentReasoning=XSS_METADATA)
    org.review(XSS_DESCRIPTION, task_type="payment", metadata={"x": XSS_METADATA})
    sign_in(page, server, org.reviewer)
    link = page.get_by_role("link", name=f"5000.00 USD — {XSS_DESCRIPTION}")
    expect(link).to_be_visible()
    expect(page.get_by_role("link", name=f"payment: {XSS_DESCRIPTION}")).to_be_visible()

    def inert():
        page.wait_for_timeout(300)
        assert page.locator("img").count() == 0, "an injected element rendered"
        sources = page.eval_on_selector_all("script", "all => all.map(s => s.getAttribute('src') || '')")
        assert sources and all(src.startswith("/dashboard/static/") for src in sources), \
            f"only the dashboard's own scripts: {sources}"
        assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    inert()
    link.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"5000.00 USD — {XSS_DESCRIPTION}")
    expect(page.locator("main")).to_contain_text(XSS_METADATA)
    inert()
    page.goto(f"{server}/dashboard")
    page.get_by_role("link", name=f"payment: {XSS_DESCRIPTION}").click()
    expect(page.locator(".proposed")).to_have_text(XSS_DESCRIPTION)
    inert()
    # Injected through the URL too: the sign-in page's `next`, a filter, a review link.
    page.goto(f"{server}/dashboard/sign-in?next=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E")
    inert()
    page.goto(f"{server}/dashboard/r/{XSS_METADATA}")
    inert()
    # (the `page` fixture fails the test if any dialog opened)


def test_forms_without_a_csrf_token_are_refused(server, page):
    org = Org(server)
    approval_id = org.hold()
    sign_in(page, server, org.reviewer)
    # The browser's own cookies, but no token (as a cross-site form or a script elsewhere would).
    res = page.request.post(f"{server}/dashboard/approvals/{approval_id}/decide", form={"action": "approve"})
    assert res.status == 403 and res.headers["content-type"].startswith("text/html")
    assert "security token" in res.text()
    res = page.request.post(f"{server}/dashboard/approvals/{approval_id}/decide",
                            form={"action": "approve", "csrf": "forged"})
    assert res.status == 403
    res = page.request.post(f"{server}/dashboard/sign-out", form={})
    assert res.status == 403
    assert org.approval(approval_id)["votes"] == []
    page.goto(f"{server}/dashboard")
    expect(page.get_by_text("Signed in as")).to_be_visible()


def test_bad_input_gives_readable_pages(server, page):
    org = Org(server)
    org.hold()
    sign_in(page, server, org.reviewer)
    open_item(page, re.compile("5000.00 USD"))
    page.get_by_label("Amount").fill("twelve hundred")
    page.get_by_role("button", name="Modify").click()
    expect(page.get_by_role("alert")).to_contain_text("INVALID_AMOUNT")
    expect(page.get_by_label("Amount")).to_have_value("twelve hundred")
    page.get_by_label("Amount").fill("9000.00")
    page.get_by_role("button", name="Modify").click()
    expect(page.get_by_role("alert")).to_contain_text("at most the amount asked for")
    res = page.goto(f"{server}/dashboard/approvals/apr_01J00000000000000000000000")
    assert res.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    res = page.goto(f"{server}/dashboard?urgency=whenever")
    assert res.status == 400
    expect(page.get_by_role("alert")).to_contain_text("urgency")


def test_the_key_sees_only_what_it_may(server, page):
    org = Org(server)
    other_wallet = org.wallet("Marketing")
    org.call("POST", f"/v1/wallets/{other_wallet}/fund", org.admin, {"amount": "9000.00"})
    org.policy(other_wallet, {"name": "review", "maxTransactionAmount": "10.00", "requireHumanApproval": True})
    org.hold()
    hidden = org.call("POST", "/v1/payments", org.agent, {"from": other_wallet, "to": org.payee, "amount": "777.00",
                                                           "description": "Conference booth"}, expect=202)
    bound = org.key("Ops reviewer", ["approvals:read", "approvals:write"], walletIds=[org.source])
    stranger = Org(server)
    sign_in(page, server, bound)
    expect(page.get_by_role("link", name=re.compile("5000.00 USD"))).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("777.00 USD"))).to_have_count(0)
    assert page.goto(f"{server}/dashboard/approvals/{hidden['approvalId']}").status == 403
    page.context.clear_cookies()
    sign_in(page, server, stranger.reviewer)
    expect(page.get_by_role("link", name=re.compile("USD"))).to_have_count(0)
    assert page.goto(f"{server}/dashboard/approvals/{hidden['approvalId']}").status == 404


def test_new_approvals_appear_without_a_reload_and_the_keys_work(server, page):
    org = Org(server)
    sign_in(page, server, org.reviewer)
    expect(page.get_by_text("Nothing to show")).to_be_visible()
    page.evaluate("window.__stayed = true")
    org.hold(amount="2500.00", description="Live one", urgency="critical")
    expect(page.get_by_role("link", name="2500.00 USD — Live one")).to_be_visible(timeout=10_000)
    org.hold(amount="1500.00", description="Second one", urgency="low")
    expect(page.get_by_role("link", name="1500.00 USD — Second one")).to_be_visible(timeout=10_000)
    assert page.evaluate("window.__stayed") is True, "the page was not reloaded"

    rows = page.locator("#queue [data-row]")
    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class(re.compile("selected"))
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile("selected"))
    page.keyboard.press("k")
    expect(rows.nth(0)).to_have_class(re.compile("selected"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("2500.00 USD — Live one")
    page.keyboard.press("a")
    expect(page.locator("#status")).to_have_text("APPROVED")
    page.keyboard.press("u")
    expect(page.get_by_role("heading", name="Approvals queue")).to_be_visible()
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("1500.00 USD — Second one")
    page.get_by_label("Note").click()
    page.keyboard.type("ar")  # typing in a field is text, not shortcuts
    expect(page.locator("#status")).to_have_text("PENDING")
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("r")
    expect(page.locator("#status")).to_have_text("REJECTED")
    expect(page.locator("main")).to_contain_text("ar")


def test_every_page_works_without_javascript(server, new_page):
    org = Org(server)
    approval_id = org.hold()
    page = new_page(java_script_enabled=False)
    sign_in(page, server, org.reviewer)
    open_item(page, re.compile("5000.00 USD"))
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#status")).to_have_text("APPROVED")
    assert org.approval(approval_id)["status"] == "APPROVED"


def test_reviews_share_the_queue_with_their_proposed_action(server, page):
    org = Org(server)
    review_id = org.review("Refund order 881 ($120.00) to the customer's card")
    modified = org.review("Delete the customer's account", task_type="account")
    sign_in(page, server, org.reviewer)
    open_item(page, "refund: Refund order 881 ($120.00) to the customer's card")
    expect(page.locator(".proposed")).to_have_text("Refund order 881 ($120.00) to the customer's card")
    page.get_by_label("Note").fill("Confirmed the double charge")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#status")).to_have_text("APPROVED")
    decision = org.call("GET", f"/reviews/{review_id}/decision", org.reviewer)
    assert (decision["decision_type"], decision["notes"]) == ("approve", "Confirmed the double charge")

    page.goto(f"{server}/dashboard")
    open_item(page, "account: Delete the customer's account")
    page.get_by_label("Modified action").fill("Deactivate the account instead")
    page.get_by_role("button", name="Modify").click()
    expect(page.locator("#status")).to_have_text("MODIFIED")
    decision = org.call("GET", f"/reviews/{modified}/decision", org.reviewer)
    assert decision["modified_action"] == "Deactivate the account instead"

    # Escalating a review needs a team: refused without one. A review has no chain, so only an
    # admin names the team (issue 21): the reviewer is refused, the admin hands it on.
    escalated = org.review("Issue a 30% goodwill credit", task_type="credit")
    legal = org.call("POST", "/v1/teams", org.admin, {"name": "Legal", "members": []})["id"]
    page.goto(f"{server}/dashboard")
    open_item(page, "credit: Issue a 30% goodwill credit")
    page.get_by_role("button", name="Escalate").click()
    expect(page.get_by_role("alert")).to_contain_text("Escalate to")
    page.get_by_label("Escalate to").select_option(label="Legal")
    page.get_by_role("button", name="Escalate").click()
    expect(page.get_by_role("alert")).to_contain_text("admin key names the team")
    expect(page.locator("#status")).to_have_text("PENDING")
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, server, org.admin)
    open_item(page, "credit: Issue a 30% goodwill credit")
    page.get_by_label("Escalate to").select_option(label="Legal")
    page.get_by_role("button", name="Escalate").click()
    expect(page.locator("#status")).to_have_text("ESCALATED")
    assert org.call("GET", f"/reviews/{escalated}", org.reviewer)["assigned_team_id"] == legal


def test_review_links_from_webhooks_open_a_confirm_page_and_decide_once(server, page, receiver):
    org = Org(server)
    hook = org.call("POST", "/v1/webhooks", org.admin, {"url": f"{receiver.base}/hook/dash", "events": ["approval.created"]})
    httpx.post(f"{receiver.base}/_control/dash", json={"secret": hook["secret"]})
    approval_id = org.hold()

    def delivered():
        got = httpx.get(f"{receiver.base}/_received/dash").json()
        return [r for r in got if r["body"] and r["body"]["data"].get("approvalId") == approval_id]
    delivery = wait_until("the approval.created webhook", delivered)[0]
    assert delivery["verified"], delivery
    url = delivery["body"]["data"]["reviewUrl"]
    assert url.startswith(f"{server}/dashboard/r/{approval_id}.")

    # A link scanner (no cookies) fetches it: it gets the sign-in redirect, nothing is decided.
    for _ in range(3):
        res = httpx.get(url, follow_redirects=True)
        assert res.status_code == 200 and "Sign in" in res.text
    assert org.approval(approval_id)["status"] == "PENDING"

    page.goto(url)
    page.get_by_label("API key").fill(org.reviewer)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Confirm your decision")).to_be_visible()
    expect(page.locator("main")).to_contain_text("5000.00 USD")
    assert org.approval(approval_id)["status"] == "PENDING", "opening the link decided nothing"
    page.get_by_label("Note").fill("Approved from the mail link")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Your approval was recorded.")
    expect(page.locator("#status")).to_have_text("APPROVED")
    page.goto(url)
    expect(page.get_by_text("This link has been used")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    assert (org.balance(org.source), org.balance(org.payee)) == ("5000.00", "5000.00")


def test_a_link_clicked_in_another_site_finds_the_session(server, page):
    """Mail and chat are other sites: on that first navigation the browser withholds the
    SameSite=Strict cookie; the dashboard reloads the address once from its own page, which sends it."""
    org = Org(server)
    approval_id = org.hold()
    target = f"{server}/dashboard/approvals/{approval_id}"
    page.route("http://mail.example/**", lambda route: route.fulfill(
        status=200, content_type="text/html",
        body=f'<!doctype html><title>Inbox</title><a id="open" href="{target}">Review the payment</a>'))
    sign_in(page, server, org.reviewer)
    page.goto("http://mail.example/inbox")
    page.click("#open")
    expect(page.locator("#status")).to_have_text("PENDING")
    expect(page).to_have_url(target)
    # Not signed in at all: one hop, then the sign-in page (no loop).
    page.context.clear_cookies()
    page.goto("http://mail.example/inbox")
    page.click("#open")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next="))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_every_control_has_an_accessible_name(server, page):
    org = Org(server)
    org.hold()
    org.review("Send the renewal quote to the customer", task_type="email")
    page.goto(f"{server}/dashboard/sign-in")
    pages = ["sign-in"]
    unnamed = re.compile(r"^\s*- (button|textbox|combobox|link|checkbox|radio)(\s*\[[^\]]*\])?:?\s*$", re.M)

    def check(where):
        snapshot = page.locator("body").aria_snapshot()
        assert not unnamed.search(snapshot), f"{where}: a control without a name\n{snapshot}"
    check("sign-in")
    expect(page.get_by_role("textbox", name="API key")).to_have_count(1)
    expect(page.get_by_role("button", name="Sign in")).to_have_count(1)
    page.get_by_label("API key").fill(org.reviewer)
    page.get_by_role("button", name="Sign in").click()
    check("queue")
    for name in ["Status", "Team", "Wallet", "Urgency"]:
        expect(page.get_by_role("combobox", name=name)).to_have_count(1)
    expect(page.get_by_role("button", name="Filter")).to_have_count(1)
    expect(page.get_by_role("button", name="Sign out")).to_have_count(1)
    open_item(page, re.compile("5000.00 USD"))
    check("approval")
    for name in ["Approve", "Reject", "Escalate", "Modify"]:
        expect(page.get_by_role("button", name=name, exact=True)).to_have_count(1)
    for name in ["Note", "Amount"]:
        expect(page.get_by_role("textbox", name=name, exact=True)).to_have_count(1)
    expect(page.get_by_role("combobox", name="Escalate to")).to_have_count(1)
    page.goto(f"{server}/dashboard")
    open_item(page, re.compile("email: Send the renewal quote"))
    check("review")
    expect(page.get_by_role("textbox", name="Modified action")).to_have_count(1)
    pages.append("review")


def test_approve_selected_decides_each_and_shows_the_results(server, page, screenshots):
    org = Org(server)
    first = org.hold(amount="1500.00", description="Printer toner")
    second = org.hold(amount="2500.00", description="Desk chairs")
    left = org.hold(amount="3500.00", description="Not selected")
    sign_in(page, server, org.reviewer)
    page.get_by_role("checkbox", name=re.compile("1500.00 USD — Printer toner")).check()
    page.get_by_role("checkbox", name=re.compile("2500.00 USD — Desk chairs")).check()
    page.get_by_label("Note for the selected").fill("Month-end batch")
    page.get_by_role("button", name="Approve selected").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bulk approve: 2 decided, 0 refused")
    results = page.locator("#bulk-results [data-result]")
    expect(results).to_have_count(2)
    for n, approval_id in enumerate([first, second]):
        expect(results.nth(n)).to_contain_text(approval_id)
        expect(results.nth(n)).to_contain_text("ok")
        expect(results.nth(n)).to_contain_text("APPROVED")
    page.screenshot(path=str(screenshots / "bulk.png"), full_page=True)
    for approval_id in [first, second]:
        approval = org.approval(approval_id)
        assert approval["status"] == "APPROVED" and approval["votes"][0]["note"] == "Month-end batch", approval
        assert org.payment(approval["paymentId"])["status"] == "COMPLETED"
    assert org.approval(left)["status"] == "PENDING"
    assert (org.balance(org.source), org.balance(org.payee)) == ("6000.00", "4000.00")

    # The same form again: each row refused as a single decision would be, nothing moves twice.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    again = page.request.post(f"{server}/dashboard/approvals/bulk",
                              form={"csrf": csrf, "action": "approve", "ids": first})
    assert again.status == 200 and "APPROVAL_NOT_PENDING" in again.text() and "0 decided, 1 refused" in again.text()
    without_token = page.request.post(f"{server}/dashboard/approvals/bulk", form={"action": "approve", "ids": left})
    assert without_token.status == 403
    assert org.approval(left)["status"] == "PENDING"
    assert (org.balance(org.source), org.balance(org.payee)) == ("6000.00", "4000.00")


def test_the_detail_page_shows_comments_and_adds_one(server, page):
    org = Org(server)
    approval_id = org.hold()
    org.call("POST", f"/v1/approvals/{approval_id}/comments", org.agent,
             {"body": "Invoice attached to PO 7731 <b>bold?</b>"}, expect=201)
    sign_in(page, server, org.reviewer)
    open_item(page, re.compile("5000.00 USD"))
    comments = page.locator("#comments")
    expect(comments).to_contain_text("Invoice attached to PO 7731 <b>bold?</b>")
    expect(comments.locator("b")).to_have_count(0)
    expect(comments).to_contain_text(f"key {org.key_id(org.agent)}")
    page.get_by_label("Comment").fill("Checked the PO, fine.\nApproving tomorrow.")
    page.get_by_role("button", name="Add comment").click()
    expect(comments).to_contain_text("Checked the PO, fine.")
    expect(page.locator("#status")).to_have_text("PENDING")
    listed = org.call("GET", f"/v1/approvals/{approval_id}/comments", org.agent)["data"]
    assert [c["body"] for c in listed] == ["Invoice attached to PO 7731 <b>bold?</b>",
                                           "Checked the PO, fine.\nApproving tomorrow."], listed
    assert listed[1]["author"]["keyId"] == org.key_id(org.reviewer)
    # A blank comment (past the browser's own check) is refused on the page.
    csrf = page.locator("form[data-comment] input[name=csrf]").get_attribute("value")
    blank = page.request.post(f"{server}/dashboard/approvals/{approval_id}/comments", form={"csrf": csrf, "body": " "})
    assert blank.status == 400 and "VALIDATION_ERROR" in blank.text()
    assert len(org.call("GET", f"/v1/approvals/{approval_id}/comments", org.agent)["data"]) == 2
