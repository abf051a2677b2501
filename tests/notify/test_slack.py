"""Slack: a held payment posts to the assigned team's channel with Approve/Reject buttons; a click is a
vote by the member mapped to the clicking Slack user, after the request's signature is checked; the
message is updated with the outcome; refusals answer the clicker alone; an outage delays, loses nothing.

Every test asserts what must happen and that nothing else did: each waits for the thing it expects
(no sleeps), then counts this organisation's calls on the fake Slack."""

import time
from types import SimpleNamespace

import httpx
import pytest

from notify_org import APPROVE, REJECT, Org, button, mails_for, signed_headers, text_of
from support import wait_until


@pytest.fixture()
def scene(server, slack, mailbox):
    """Treasury (Alice, Bob, Dave; channel C<tag>TRE) gets every approval. Carol is a mapped member with
    an approvals key outside the team. Dave also pays, through a key bound to him."""
    org = Org(server, slack, mailbox)
    alice, bob, carol = org.member("Alice"), org.member("Bob"), org.member("Carol")
    dave = org.member("Dave")
    dave.pay_key = org.key("Dave pays", ["payments:write", "payments:read"], memberId=dave.id)
    treasury = org.team("Treasury", [alice, bob, dave], channel_suffix="TRE")
    org.route_all_to(treasury)
    return SimpleNamespace(org=org, alice=alice, bob=bob, carol=carol, dave=dave, treasury=treasury,
                           channel=f"C{org.tag}TRE", server=server)


def the_post(org, approval_id):
    """Waits for the one request message of `approval_id` and returns the recorded call."""
    return wait_until(f"the Slack message of {approval_id}", lambda: org.posts_for(approval_id))[0]


def updated(org, post, count=1):
    return wait_until("the message's update", lambda: len(org.updates_of(post)) >= count and org.updates_of(post))


def test_a_held_payment_is_posted_to_the_team_channel_with_buttons(scene):
    org = scene.org
    approval_id = org.hold()
    post = the_post(org, approval_id)
    assert post["body"]["channel"] == scene.channel
    words = text_of(post["body"])
    for fact in ("5000.00", "USD", org.payee, "Invoice 1042 from ACME Supplies", "Treasury"):
        assert fact in words, f"{fact!r} missing from the message: {words}"
    _, approve = button(post["body"], APPROVE, approval_id)
    _, reject = button(post["body"], REJECT, approval_id)
    assert (approve.get("style"), reject.get("style")) == ("primary", "danger")
    # The delivery record names the message Slack made.
    [record] = wait_until("the delivery record", lambda: [d for d in org.deliveries(channel="slack", kind="request", approvalId=approval_id)
                                                          if d["status"] == "DELIVERED"])
    assert (record["kind"], record["recipient"], record["slackTs"]) == ("request", scene.channel, post["response"]["ts"])
    # Nothing else: one message, to the team's channel, none to the default channel, no update.
    assert [c["method"] for c in org.slack_calls()] == ["chat.postMessage"]


def test_unsigned_stale_forged_or_misaddressed_clicks_are_refused(scene, server, slack, mailbox):
    org = scene.org
    approval_id = org.hold()
    post = the_post(org, approval_id)
    body, good = org.click(post, scene.alice.slack_user)
    other = Org(server, slack, mailbox)

    refused = {
        "a wrong signature": {**good, "X-Slack-Signature": "v0=" + "0" * 64},
        "a signature with another secret": signed_headers("not-the-signing-secret", body),
        "a signature 6 minutes old": signed_headers(org.signing_secret, body, timestamp=time.time() - 360),
        "a signature 6 minutes ahead": signed_headers(org.signing_secret, body, timestamp=time.time() + 360),
        "no signature": {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "a malformed signature": {**good, "X-Slack-Signature": "sha256=nonsense"},
        "another organisation's secret": signed_headers(other.signing_secret, body),
    }
    for why, headers in refused.items():
        res = org.send(body, headers)
        assert res.status_code == 401, f"{why}: {res.status_code} {res.text}"
        assert "error" in res.json(), f"{why}: {res.text}"
    # Signed rightly for this organisation, but sent to another's URL, or to no organisation's.
    unknown = org.interactions_url.replace(org.id, "org_" + "0" * 26)   # a well-formed id no org has
    for url in (other.interactions_url, unknown):
        res = org.send(body, signed_headers(org.signing_secret, body), url=url)
        assert res.status_code == 401, f"{url}: {res.status_code} {res.text}"
    # A body changed after signing (another button) fails too.
    tampered = body.replace(APPROVE, REJECT)
    assert tampered != body
    assert org.send(tampered, good).status_code == 401

    org.pending_untouched(approval_id)
    assert org.slack_calls("chat.update") == [] and org.slack_calls("chat.postEphemeral") == []
    assert other.slack_calls() == []

    # The same click, signed now, is a vote: the refusals above were about the signature alone.
    assert org.send(body, signed_headers(org.signing_secret, body)).status_code == 200
    updated(org, post)
    assert org.approval(approval_id)["status"] == "APPROVED"
    assert len(org.slack_calls("chat.update")) == 1


def test_a_team_member_approves_from_slack(scene):
    org, alice = scene.org, scene.alice
    approval_id = org.hold()
    post = the_post(org, approval_id)
    res = org.send(*org.click(post, alice.slack_user))
    assert (res.status_code, res.text) == (200, ""), res.text   # Slack wants a quick, empty 200

    # The vote is made within the request: decided by the time Slack has its answer.
    approval = org.approval(approval_id)
    assert approval["status"] == "APPROVED"
    assert [(v["person"], v["decision"]) for v in approval["votes"]] == [(alice.id, "approve")]
    assert org.payment_of(approval_id)["status"] == "COMPLETED"
    assert (org.balance(org.source), org.balance(org.payee)) == ("95000.00", "5000.00")

    [update] = updated(org, post)
    assert (update["body"]["channel"], update["body"]["ts"]) == (post["response"]["channel"], post["response"]["ts"])
    words = text_of(update["body"])
    assert "Approved" in words and alice.name in words, words
    assert button(update["body"], APPROVE) is None and button(update["body"], REJECT) is None, "buttons left"
    wait_until("the outcome delivery", lambda: [d for d in org.deliveries(channel="slack", approvalId=approval_id)
                                                if d["kind"] == "outcome" and d["status"] == "DELIVERED"])
    # Nothing else: one post, one update, no private answers, the response_url unused.
    assert [c["method"] for c in org.slack_calls()] == ["chat.postMessage", "chat.update"]
    assert org.response_urls_used() == []


def test_a_reject_click_rejects(scene):
    org, bob = scene.org, scene.bob
    approval_id = org.hold()
    post = the_post(org, approval_id)
    assert org.send(*org.click(post, bob.slack_user, REJECT)).status_code == 200

    approval = org.approval(approval_id)
    assert approval["status"] == "REJECTED"
    assert [(v["person"], v["decision"]) for v in approval["votes"]] == [(bob.id, "reject")]
    assert org.payment_of(approval_id)["status"] == "REJECTED"
    assert (org.balance(org.source), org.balance(org.payee)) == ("100000.00", "0.00")
    [update] = updated(org, post)
    words = text_of(update["body"])
    assert "Rejected" in words and bob.name in words, words
    assert [c["method"] for c in org.slack_calls()] == ["chat.postMessage", "chat.update"]


@pytest.mark.parametrize("who", ["outsider", "unmapped", "submitter"])
def test_a_click_that_is_not_a_vote_answers_the_clicker_alone(scene, who):
    """Carol is mapped but not in the team; a Slack user nobody mapped; Dave is in the team but
    submitted the payment himself (through his own key)."""
    org = scene.org
    if who == "submitter":
        approval_id = org.hold(key=scene.dave.pay_key)
        assert org.approval(approval_id)["createdByPerson"] == scene.dave.id
        user = scene.dave.slack_user
    else:
        approval_id = org.hold()
        user = scene.carol.slack_user if who == "outsider" else f"U{org.tag}NOBODY"
    post = the_post(org, approval_id)
    res = org.send(*org.click(post, user))
    assert res.status_code == 200, res.text

    [answer] = wait_until(f"a private answer to {user}", lambda: org.ephemerals_to(user))
    assert answer["body"]["channel"] == post["response"]["channel"]
    assert answer["body"].get("text"), answer
    org.pending_untouched(approval_id)
    assert [c["method"] for c in org.slack_calls()] == ["chat.postMessage", "chat.postEphemeral"]

    # A member of the team can still decide it: the refusal changed nothing.
    decider = scene.alice
    assert org.send(*org.click(post, decider.slack_user)).status_code == 200
    assert org.approval(approval_id)["status"] == "APPROVED"
    updated(org, post)


def test_a_replayed_click_decides_once(scene):
    org, alice = scene.org, scene.alice
    approval_id = org.hold()
    post = the_post(org, approval_id)
    body, headers = org.click(post, alice.slack_user)
    first = org.send(body, headers)
    second = org.send(body, headers)   # the very same signed request, as an attacker or a retry sends it
    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)

    [answer] = wait_until("the private answer to the replay", lambda: org.ephemerals_to(alice.slack_user))
    assert answer["body"]["channel"] == post["response"]["channel"]
    updated(org, post)
    approval = org.approval(approval_id)
    assert approval["status"] == "APPROVED" and len(approval["votes"]) == 1
    assert (org.balance(org.source), org.balance(org.payee)) == ("95000.00", "5000.00")
    assert sorted(c["method"] for c in org.slack_calls()) == ["chat.postEphemeral", "chat.postMessage", "chat.update"]


def test_escalation_posts_to_the_next_team_and_mails_its_members(scene):
    org, alice = scene.org, scene.alice
    erin, frank = org.member("Erin"), org.member("Frank")
    controllers = org.team("Controllers", [erin, frank], channel_suffix="CTL")
    approval_id = org.hold()
    first = the_post(org, approval_id)
    treasury_mail = [scene.alice.email, scene.bob.email, scene.dave.email]
    wait_until("Treasury's emails", lambda: len(mails_for(org.mailbox, approval_id, treasury_mail)) == 3)

    org.call("POST", f"/v1/approvals/{approval_id}/escalate", org.admin,
             {"toTeam": controllers, "note": "Above Treasury's limit"})
    assert org.approval(approval_id)["assignedTeam"] == controllers

    second = wait_until("the message to Controllers",
                        lambda: [p for p in org.posts_for(approval_id) if p["body"]["channel"] == f"C{org.tag}CTL"])[0]
    assert "Escalated" in text_of(second["body"]), text_of(second["body"])
    mails = wait_until("the Controllers' emails",
                       lambda: len(mails_for(org.mailbox, approval_id, [erin.email, frank.email])) >= 2
                       and mails_for(org.mailbox, approval_id, [erin.email, frank.email]))
    assert sorted(m["to"][0] for m in mails) == sorted([erin.email, frank.email])
    assert all(m["message"]["Subject"].startswith("Escalated") for m in mails), [m["message"]["Subject"] for m in mails]

    # The old message's buttons no longer decide: Treasury does not hold it now.
    assert org.send(*org.click(first, alice.slack_user)).status_code == 200
    wait_until("the private answer to Alice", lambda: org.ephemerals_to(alice.slack_user))
    escalated = org.approval(approval_id)
    assert (escalated["status"], escalated["votes"]) == ("ESCALATED", []), escalated

    # Erin decides it from the new message; both messages then say so.
    assert org.send(*org.click(second, erin.slack_user)).status_code == 200
    assert org.approval(approval_id)["status"] == "APPROVED"
    for post in (first, second):
        [update] = updated(org, post)
        assert "Approved" in text_of(update["body"]) and erin.name in text_of(update["body"])
    # Nothing else: two posts (Treasury, Controllers), one private answer, two updates; Treasury
    # mailed once each at creation, Controllers once each at escalation.
    assert [p["body"]["channel"] for p in org.posts_for(approval_id)] == [scene.channel, f"C{org.tag}CTL"]
    assert len(org.slack_calls("chat.postEphemeral")) == 1 and len(org.slack_calls("chat.update")) == 2
    assert len(mails_for(org.mailbox, approval_id, treasury_mail)) == 3
    assert len(mails_for(org.mailbox, approval_id, [erin.email, frank.email])) == 2
    assert org.mailbox.to(scene.carol.email) == []


def test_a_slack_outage_delays_the_message_and_loses_nothing(scene):
    org = scene.org
    # This org's next posts: two 503s, then a 429 asking for 2 s. Other orgs' calls are not touched.
    org.fake.fail_next(2, status=503, method="chat.postMessage", token=org.token)
    org.fake.rate_limit_next(1, retry_after=2, method="chat.postMessage", token=org.token)
    approval_id = org.hold()

    # While Slack refuses, the delivery waits with the error recorded.
    wait_until("the 429", lambda: any(c["status"] == 429 for c in org.slack_calls("chat.postMessage")))
    waiting = wait_until("the pending delivery", lambda: [
        d for d in org.deliveries(channel="slack", kind="request", approvalId=approval_id)
        if d["status"] == "PENDING" and d["attempts"] >= 2 and d["lastError"]])
    assert waiting[0]["nextAttemptAt"], waiting

    post = wait_until("the message after the outage", lambda: org.posts_for(approval_id), timeout=30)[0]
    calls = org.slack_calls("chat.postMessage")
    assert [c["status"] for c in calls] == [503, 503, 429, 200]
    # Retry-After honoured: no call again before the 2 s it asked for (backoff alone would be < 1.1 s).
    assert calls[3]["at"] - calls[2]["at"] >= 1.9, calls[3]["at"] - calls[2]["at"]
    assert post["body"]["channel"] == scene.channel

    [record] = wait_until("the delivered record", lambda: [
        d for d in org.deliveries(channel="slack", kind="request", approvalId=approval_id) if d["status"] == "DELIVERED"])
    assert record["attempts"] > 1 and record["slackTs"] == post["response"]["ts"], record
    assert len(org.deliveries(channel="slack", kind="request", approvalId=approval_id)) == 1
    # The approval itself was never held up: still pending, and the message decides it.
    org.pending_untouched(approval_id)
    assert org.send(*org.click(post, scene.alice.slack_user)).status_code == 200
    updated(org, post)


def test_the_integration_never_shows_its_secrets(scene, server):
    org = scene.org
    # Use both secrets first (a post with the token, a verified click with the signing secret), so
    # every path that handles them has run before the log is read.
    approval_id = org.hold()
    post = the_post(org, approval_id)
    assert org.send(*org.click(post, scene.alice.slack_user)).status_code == 200
    updated(org, post)

    for res in (httpx.get(f"{server.base}/v1/integrations/slack", headers={"Authorization": f"Bearer {org.admin}"}),
                httpx.put(f"{server.base}/v1/integrations/slack", headers={"Authorization": f"Bearer {org.admin}"},
                          json={"botToken": org.token, "signingSecret": org.signing_secret,
                                "defaultChannel": org.default_channel}),
                httpx.get(f"{server.base}/v1/members", headers={"Authorization": f"Bearer {org.admin}"}),
                httpx.get(f"{server.base}/v1/notifications/deliveries", headers={"Authorization": f"Bearer {org.admin}"})):
        assert res.status_code == 200, res.text
        assert org.token not in res.text and org.signing_secret not in res.text, res.text
    shown = org.call("GET", "/v1/integrations/slack", org.admin)
    assert (shown["provider"], shown["configured"], shown["defaultChannel"]) == ("slack", True, org.default_channel)
    assert shown["interactionsUrl"] == f"{server.base}/integrations/slack/interactions?org={org.id}"
    assert org.token not in str(org.integration) and org.signing_secret not in str(org.integration)
    log = server.log()
    assert org.token not in log and org.signing_secret not in log
    # Only an admin configures it.
    assert org.call("GET", "/v1/integrations/slack", org.agent, expect=403)
    assert org.call("PUT", "/v1/integrations/slack", scene.alice.key,
                    {"botToken": "xoxb-1-stolen", "signingSecret": "x" * 32, "defaultChannel": "C0X"}, expect=403)

    # Removed: nothing more is posted, and a click can no longer be verified.
    assert org.call("DELETE", "/v1/integrations/slack", org.admin) == {"provider": "slack", "configured": False}
    assert org.call("GET", "/v1/integrations/slack", org.admin) == {"provider": "slack", "configured": False}
    later = org.hold()
    wait_until("the email of the later approval", lambda: mails_for(org.mailbox, later, [scene.alice.email]))
    assert org.posts_for(later) == []
    # A record of a Slack message it could not send (DISCARDED) would be honest; one to send is not.
    assert [d for d in org.deliveries(channel="slack", approvalId=later) if d["status"] != "DISCARDED"] == []
    assert org.send(*org.click(post, scene.alice.slack_user)).status_code == 401


def test_another_organisation_sees_none_of_these_deliveries(scene, server, slack, mailbox):
    org = scene.org
    approval_id = org.hold()
    the_post(org, approval_id)
    mine = wait_until("this org's deliveries", lambda: org.deliveries(approvalId=approval_id))
    assert {d["channel"] for d in mine} >= {"slack"}

    other = Org(server, slack, mailbox)
    other_approval = other.hold()
    wait_until("the other org's delivery", lambda: other.deliveries(approvalId=other_approval))
    seen = {d["id"] for d in other.deliveries()} | {d["id"] for d in other.deliveries(channel="slack")}
    assert seen and not seen & {d["id"] for d in mine}
    res = httpx.get(f"{server.base}/v1/notifications/deliveries", params={"approvalId": approval_id},
                    headers={"Authorization": f"Bearer {other.admin}"})
    assert res.status_code == 404 or (res.status_code == 200 and res.json()["data"] == []), res.text
    # And a reviewer key (not an admin) sees no delivery list at all.
    assert org.call("GET", "/v1/notifications/deliveries", scene.alice.key, expect=403)


def test_a_review_reaches_the_team_and_a_click_decides_it(scene):
    """Reviews (POST /reviews, any action an agent wants checked) go out like held payments: a message to
    the routed team's channel; a click is the member's decision through /reviews' rules (the requester's
    person may not approve it); the message then shows the outcome."""
    org = scene.org
    requester = org.key("asks", ["reviews:write"], memberId=scene.dave.id)
    review = org.call("POST", "/reviews", requester, {
        "task_type": "refund", "proposed_action": "Refund order 7731 in full", "urgency": "high",
        "agent_reasoning": "Customer received a damaged item"}, expect=201)
    review_id = review["id"]
    post = the_post(org, review_id)
    assert post["body"]["channel"] == scene.channel
    words = text_of(post["body"])
    assert "Refund order 7731 in full" in words and "Customer received a damaged item" in words, words

    # The requester's person is refused, privately; nothing is decided.
    assert org.send(*org.click(post, scene.dave.slack_user)).status_code == 200
    wait_until("the private answer to Dave", lambda: org.ephemerals_to(scene.dave.slack_user))
    assert org.call("GET", f"/reviews/{review_id}", org.admin)["status"] == "pending"

    # Bob rejects it from Slack: the decision is his, and the message says so.
    assert org.send(*org.click(post, scene.bob.slack_user, action=REJECT)).status_code == 200
    decided = org.call("GET", f"/reviews/{review_id}", org.admin)
    assert decided["status"] == "rejected" and decided["decision"]["reviewer_name"] == scene.bob.name, decided
    [update] = updated(org, post)
    assert "Rejected" in text_of(update["body"]) and scene.bob.name in text_of(update["body"])
    records = org.deliveries(channel="slack", reviewId=review_id)
    assert {d["kind"] for d in records} >= {"request", "outcome"}, records
