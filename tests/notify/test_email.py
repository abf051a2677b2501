"""Email: one message to each member of the assigned team (else to every member who can approve), with
the amount, currency and payee in the subject, plain text and HTML, and the review link, whose GET
only shows a page; an SMTP outage delays the mail and loses nothing."""

import httpx
import pytest

from notify_org import EMAIL_FROM, Org, mails_for, parts, review_links
from support import wait_until


@pytest.fixture()
def org(server, slack, mailbox):
    return Org(server, slack, mailbox)


def delivered(org, approval_id, count):
    """The email delivery records of `approval_id`, once `count` of them are DELIVERED."""
    records = org.deliveries(channel="email", kind="request", approvalId=approval_id)
    return records if len([d for d in records if d["status"] == "DELIVERED"]) >= count else None


def treasury(org):
    """Alice and Bob in Treasury (which gets every approval); Carol, who can approve, outside it."""
    alice, bob, carol = org.member("Alice"), org.member("Bob"), org.member("Carol")
    org.route_all_to(org.team("Treasury", [alice, bob], channel_suffix="TRE"))
    return alice, bob, carol


def test_each_member_of_the_assigned_team_gets_one_email(org, server):
    alice, bob, carol = treasury(org)
    approval_id = org.hold()
    mails = wait_until("both emails", lambda: len(mails_for(org.mailbox, approval_id, [alice.email, bob.email])) >= 2
                       and mails_for(org.mailbox, approval_id, [alice.email, bob.email]))
    assert sorted(m["to"] for m in mails) == sorted([[alice.email], [bob.email]])

    for received in mails:
        message = received["message"]
        assert received["from"] == EMAIL_FROM and EMAIL_FROM in message["From"]
        assert received["to"][0] in message["To"]
        subject = message["Subject"]
        for fact in ("5000.00", "USD", org.payee):
            assert fact in subject, f"{fact!r} missing from the subject {subject!r}"
        assert "\r" not in subject and "\n" not in subject
        assert message.is_multipart()
        types = [p.get_content_type() for p in message.walk() if not p.is_multipart()]
        assert "text/plain" in types and "text/html" in types, types
        plain, html = parts(message)
        [link] = review_links(message)
        assert link.startswith(f"{server.base}/dashboard/r/{approval_id}."), link
        assert link in html, "the HTML part carries the same link"
        assert "Invoice 1042 from ACME Supplies" in plain and "Invoice 1042 from ACME Supplies" in html
        # Nothing unescaped from the payment into the HTML: the description has no markup, so only
        # the template's own tags are there; a script tag would be ours to explain.
        assert "<script" not in html.lower()

    records = wait_until("the delivered email records", lambda: delivered(org, approval_id, 2))
    assert sorted(d["recipient"] for d in records) == sorted([alice.email, bob.email])
    assert {d["memberId"] for d in records} == {alice.id, bob.id}
    assert {d["kind"] for d in records} == {"request"}
    # Nothing else: Carol (not in the team) got nothing, nor did anyone get a second copy.
    assert org.mailbox.to(carol.email) == []
    assert len(org.mailbox.to(alice.email)) == 1 and len(org.mailbox.to(bob.email)) == 1


def test_without_a_team_every_member_who_can_approve_is_mailed(org):
    """No routing rule: Slack gets the default channel, mail goes to each member holding an
    approvals:write key; a member without one gets none."""
    alice, bob = org.member("Alice"), org.member("Bob")
    nokey = org.member("Nokey", key=False)
    approval_id = org.hold()
    wait_until("both emails", lambda: len(mails_for(org.mailbox, approval_id, [alice.email, bob.email])) == 2)
    post = wait_until("the Slack message", lambda: org.posts_for(approval_id))[0]
    assert post["body"]["channel"] == org.default_channel
    records = wait_until("the delivered email records", lambda: delivered(org, approval_id, 2))
    assert sorted(d["recipient"] for d in records) == sorted([alice.email, bob.email])
    assert org.mailbox.to(nokey.email) == []


def test_a_link_scanner_decides_nothing(org, server):
    alice, bob, _ = treasury(org)
    approval_id = org.hold()
    [mail] = wait_until("Alice's email", lambda: mails_for(org.mailbox, approval_id, [alice.email]))
    [link] = review_links(mail["message"])

    # What mail scanners and previews do: fetch it, with no cookies, more than once, GET and HEAD.
    for _ in range(3):
        res = httpx.get(link, follow_redirects=True, timeout=30)
        assert res.status_code == 200 and "Sign in" in res.text, (res.status_code, res.text[:300])
        head = httpx.head(link, follow_redirects=True, timeout=30)
        assert head.status_code < 500, head.status_code
    org.pending_untouched(approval_id)


def test_an_smtp_outage_delays_the_mail_and_loses_nothing(org):
    alice, bob, _ = treasury(org)
    org.mailbox.stop()
    try:
        approval_id = org.hold()
        # The server tries, fails, and keeps the delivery with the error and a next attempt.
        waiting = wait_until("the email deliveries to fail once", lambda: [
            d for d in org.deliveries(channel="email", kind="request", approvalId=approval_id)
            if d["status"] == "PENDING" and d["attempts"] >= 1 and d["lastError"] and d["nextAttemptAt"]])
        assert {d["recipient"] for d in waiting} <= {alice.email, bob.email}
        # Let it fail more than once before the server comes back.
        wait_until("a second attempt", lambda: any(
            d["attempts"] >= 2 for d in org.deliveries(channel="email", kind="request", approvalId=approval_id)))
    finally:
        org.mailbox.start()

    mails = wait_until("both emails after the outage", lambda: len(
        mails_for(org.mailbox, approval_id, [alice.email, bob.email])) >= 2
        and mails_for(org.mailbox, approval_id, [alice.email, bob.email]), timeout=30)
    assert sorted(m["to"] for m in mails) == sorted([[alice.email], [bob.email]])
    records = wait_until("both records delivered", lambda: delivered(org, approval_id, 2))
    assert all(d["attempts"] > 1 for d in records), records
    assert len(org.deliveries(channel="email", kind="request", approvalId=approval_id)) == 2
