"""Review statistics on the dashboard (`/dashboard/stats`) in headless Chromium against the real
binary: reached from the header, a server-drawn SVG bar chart of decisions by outcome, a table
whose rubber-stamp reviewer row is highlighted, regrouping, a readable 400 for bad input, and the
same strict Content-Security-Policy as every dashboard page."""

import re

from dashboard_api import Org
from playwright.sync_api import expect

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


def sign_in(page, server, key):
    page.goto(f"{server}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()


def test_statistics_chart_the_decisions_and_flag_a_rubber_stamp(server, page, screenshots):
    org = Org(server, funds="1000000.00")
    speedy = org.key("Speedy reviewer", ["approvals:read", "approvals:write"])
    # Twenty approvals, each approved the moment it is held: a rubber stamp.
    for _ in range(20):
        org.call("POST", f"/v1/approvals/{org.hold()}/approve", speedy, {})
    # The finance reviewer rejects one and approves a lower amount on another: not one.
    org.call("POST", f"/v1/approvals/{org.hold()}/reject", org.reviewer, {"reason": "duplicate"})
    org.call("POST", f"/v1/approvals/{org.hold()}/modify", org.reviewer, {"amount": "1200.00"})

    sign_in(page, server, org.reviewer)
    # The header links only what the key may open: a reviewer reads approvals, not wallets.
    expect(page.get_by_role("link", name="Policy changes")).to_have_count(0)
    page.get_by_role("link", name="Statistics").click()
    expect(page).to_have_url(re.compile(r"/dashboard/stats$"))
    expect(page.get_by_role("heading", name="Review statistics")).to_be_visible()
    expect(page.locator("#window")).to_contain_text("by reviewer")

    chart = page.locator("svg#stats-chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("role", "img")
    bars = chart.locator("g.bar")
    expect(bars).to_have_count(2)
    # The busiest first: twenty approvals in one segment; then a rejection and a modification.
    expect(bars.nth(0)).to_contain_text("Speedy reviewer")
    expect(bars.nth(0).locator("rect")).to_have_count(1)
    expect(bars.nth(0).locator("rect title")).to_have_text(re.compile(r"20 approved$"))
    expect(bars.nth(1).locator("rect")).to_have_count(2)
    assert float(bars.nth(0).locator("rect").get_attribute("width")) > 0

    flagged = page.locator("#stats-table tbody tr.rubber-stamp")
    expect(flagged).to_have_count(1)
    expect(flagged).to_contain_text("Speedy reviewer")
    expect(flagged).to_contain_text("Rubber stamp")
    expect(flagged.locator("td[data-label=Decided]")).to_have_text("20")
    careful = page.locator("#stats-table tbody tr").filter(has_text="Finance reviewer")
    expect(careful).to_have_count(1)
    expect(careful).not_to_have_class(re.compile("rubber-stamp"))
    expect(careful.locator("td[data-label=Modified]")).to_have_text("1")
    page.screenshot(path=str(screenshots / "stats.png"), full_page=True)

    # The page keeps the dashboard's strict headers: no inline script or style was needed.
    response = page.request.get(f"{server}/dashboard/stats")
    assert response.status == 200
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text() and "style=" not in response.text()

    # Grouped by team: the same 22 decisions, no reviewer to flag.
    page.get_by_label("Group").select_option("team")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#window")).to_contain_text("by team")
    expect(page.locator("#stats-table tbody tr.rubber-stamp")).to_have_count(0)
    expect(page.locator("#stats-table tbody td[data-label=Decided]")).to_have_text(["22"])

    # A window with nothing in it, and bad input as a readable page.
    page.goto(f"{server}/dashboard/stats?since=2020-01-01&until=2020-02-01")
    expect(page.locator("#no-decisions")).to_be_visible()
    bad = page.goto(f"{server}/dashboard/stats?since=yesterday")
    assert bad.status == 400
    expect(page.locator("main")).to_contain_text("VALIDATION_ERROR")


def test_the_header_links_only_pages_the_key_may_open(server, page):
    org = Org(server)
    sign_in(page, server, org.reviewer)
    expect(page.get_by_role("link", name="Statistics")).to_be_visible()
    expect(page.get_by_role("link", name="Policy changes")).to_have_count(0)
    # The page itself still answers 403 to a key without wallets:read.
    assert page.goto(f"{server}/dashboard/policy-changes").status == 403
    page.goto(f"{server}/dashboard")
    page.get_by_role("button", name="Sign out").click()
    watcher = org.key("Watcher", ["approvals:read", "wallets:read"])
    sign_in(page, server, watcher)
    expect(page.get_by_role("link", name="Policy changes")).to_be_visible()


def test_statistics_need_a_signed_in_reviewer(server, page):
    page.goto(f"{server}/dashboard/stats")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))
