"""Reminders: at about 80 % of an approval's window, if it is still pending with the same team, Slack
and email say so again; an approval decided before that point gets none. Windows of 20 s (a policy's
approvalTtlSeconds), the server sweeping every second."""

from datetime import datetime

from notify_org import APPROVE, Org, button, mails_for, text_of
from support import wait_until

WINDOW = 20


def reminder_posts(org, approval_id):
    return [p for p in org.posts_for(approval_id) if "Reminder" in text_of(p["body"])]


def reminder_mails(org, approval_id, addresses):
    return [m for m in mails_for(org.mailbox, approval_id, addresses) if m["message"]["Subject"].startswith("Reminder")]


def test_a_pending_approval_is_reminded_once_and_a_decided_one_not_at_all(server, slack, mailbox):
    org = Org(server, slack, mailbox, ttl_seconds=WINDOW)
    alice, bob = org.member("Alice"), org.member("Bob")
    org.route_all_to(org.team("Treasury", [alice, bob], channel_suffix="TRE"))
    team = [alice.email, bob.email]

    # Decided at once: its 80 % point comes and goes while nothing is pending.
    decided = org.hold(amount="2000.00")
    org.call("POST", f"/v1/approvals/{decided}/approve", alice.key, {"note": "fine"})
    # Held after it, so its 80 % point comes later: once it is reminded, the first one's has passed.
    pending = org.hold(amount="3000.00")
    expires_at = datetime.fromisoformat(org.approval(pending)["expiresAt"].replace("Z", "+00:00")).timestamp()

    [post] = wait_until("the Slack reminder", lambda: reminder_posts(org, pending), timeout=WINDOW + 15)
    assert post["body"]["channel"] == f"C{org.tag}TRE"
    assert button(post["body"], APPROVE, pending), "the reminder can still be acted on"
    mails = wait_until("the reminder emails", lambda: len(reminder_mails(org, pending, team)) >= 2
                       and reminder_mails(org, pending, team), timeout=WINDOW + 15)
    assert sorted(m["to"][0] for m in mails) == sorted(team)
    for m in mails:
        subject = m["message"]["Subject"]
        assert "3000.00" in subject and "USD" in subject and org.payee in subject, subject
    # It reminds before the window closes (the point of a reminder), not after.
    assert post["at"] < expires_at and all(m["at"] < expires_at for m in mails)
    kinds = [d["kind"] for d in org.deliveries(approvalId=pending)]
    assert kinds.count("reminder") == 3, kinds   # one Slack, two emails

    # The decided one: its request and its outcome, and no reminder anywhere.
    assert reminder_posts(org, decided) == [] and len(org.posts_for(decided)) == 1
    assert reminder_mails(org, decided, team) == [] and len(mails_for(org.mailbox, decided, team)) == 2
    # Its reminders were planned with it and never sent: discarded once their time came.
    reminders = [d for d in org.deliveries(approvalId=decided) if d["kind"] == "reminder"]
    assert reminders and all(d["status"] in ("PENDING", "DISCARDED") for d in reminders), reminders

    # When the window closes, every message posted about it says it expired, and no second
    # reminder came in between.
    wait_until("the expiry", lambda: org.approval(pending)["status"] == "EXPIRED", timeout=WINDOW + 15)
    for message in org.posts_for(pending):
        [update] = wait_until("the expired update", lambda: org.updates_of(message))
        assert "Expired" in text_of(update["body"]), text_of(update["body"])
    assert len(reminder_posts(org, pending)) == 1 and len(reminder_mails(org, pending, team)) == 2
    assert len(org.posts_for(pending)) == 2   # the request and the reminder
