"""The scene the notification tests set: an organisation with Slack configured, members mapped to Slack
users, teams with channels, a policy that holds payments; and the Slack side of a click (a
block_actions payload built from what the server posted, signed with slack_sdk)."""

import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass

import httpx
from support import api_call
from slack_sdk.signature import SignatureVerifier

OPERATOR_KEY = "notify-test-operator-key-0123456789"
SESSION_SECRET = "notify-test-session-secret-0123456789abcdef"
EMAIL_FROM = "countersign@example.test"
APPROVE = "countersign_approve"
REJECT = "countersign_reject"
SLACK_TEAM = "T0ACME"
# Every bot token and signing secret configured in this session: the server log may hold none.
SECRETS = []


@dataclass
class Member:
    id: str
    name: str
    email: str
    slack_user: str | None
    key: str | None       # an approvals:read/write key bound to the member


class Org:
    """One organisation: an admin, an agent key (nobody's) that pays, two funded USD wallets, a policy
    holding payments above 1000.00, and Slack configured with its own bot token and signing secret."""

    def __init__(self, server, slack, mailbox, ttl_seconds=None):
        self.base = server.base
        self.fake = slack
        self.mailbox = mailbox
        self.response_urls = []
        self.tag = secrets.token_hex(3).upper()   # Slack ids are upper-case; keeps this org's apart
        created = self.call("POST", "/v1/organizations", OPERATOR_KEY, {"name": f"Notify {self.tag}"})
        self.id = created["id"]
        self.admin = created["adminKey"]["secret"]
        self.agent = self.key("agent", ["payments:write", "payments:read"])
        self.source = self.call("POST", "/v1/wallets", self.admin, {"name": "Operations"})["id"]
        self.payee = self.call("POST", "/v1/wallets", self.admin, {"name": "ACME Supplies"})["id"]
        self.call("POST", f"/v1/wallets/{self.source}/fund", self.admin, {"amount": "100000.00"})
        policy = {"name": "review large", "maxTransactionAmount": "1000.00", "requireHumanApproval": True}
        if ttl_seconds is not None:
            policy["approvalTtlSeconds"] = ttl_seconds
        self.call("POST", f"/v1/wallets/{self.source}/policies", self.admin, policy)
        self.token = f"xoxb-{secrets.randbelow(10**12):012d}-{secrets.token_hex(12)}"
        self.signing_secret = secrets.token_hex(16)
        SECRETS.extend([self.token, self.signing_secret])
        self.default_channel = f"C{self.tag}DEF"
        self.integration = self.call("PUT", "/v1/integrations/slack", self.admin, {
            "botToken": self.token, "signingSecret": self.signing_secret, "defaultChannel": self.default_channel})
        self.interactions_url = self.integration["interactionsUrl"]

    # --- API -----------------------------------------------------------------------------------
    def call(self, method, path, key, body=None, expect=None, params=None):
        return api_call(self.base, method, path, key, body, expect, params)

    def key(self, name, permissions, **extra):
        return self.call("POST", "/v1/api-keys", self.admin, {"name": name, "permissions": permissions, **extra})["secret"]

    def member(self, first_name, slack=True, key=True):
        """A member `<first_name> <tag>` with a mail address of this org's own, mapped to a Slack user
        (`slack`), holding an approvals key bound to them (`key`)."""
        name = f"{first_name} {self.tag}"
        mail = f"{first_name.lower()}.{self.tag.lower()}@example.test"
        member_id = self.call("POST", "/v1/members", self.admin, {"name": name, "email": mail})["id"]
        slack_user = None
        if slack:
            slack_user = f"U{self.tag}{first_name.upper()[:5]}"
            shown = self.call("PATCH", f"/v1/members/{member_id}", self.admin, {"slackUserId": slack_user})
            assert shown["slackUserId"] == slack_user, shown
        secret = self.key(f"{first_name} reviews", ["approvals:read", "approvals:write"], memberId=member_id) \
            if key else None
        return Member(member_id, name, mail, slack_user, secret)

    def team(self, name, members, channel_suffix=None):
        """A team of `members`, posting to channel `C<tag><suffix>` when `channel_suffix` is given."""
        team_id = self.call("POST", "/v1/teams", self.admin,
                            {"name": name, "members": [m.id for m in members]})["id"]
        if channel_suffix is not None:
            channel = f"C{self.tag}{channel_suffix}"
            shown = self.call("PATCH", f"/v1/teams/{team_id}", self.admin, {"slackChannel": channel})
            assert shown["slackChannel"] == channel, shown
        return team_id

    def route_all_to(self, team_id):
        self.call("POST", "/v1/routing-rules", self.admin,
                  {"name": "everything", "priority": 1, "conditions": {}, "assignToTeam": team_id})

    def hold(self, amount="5000.00", key=None, description="Invoice 1042 from ACME Supplies"):
        """A payment held for approval; returns its approval id."""
        body = {"from": self.source, "to": self.payee, "amount": amount, "description": description,
                "agentReasoning": "Monthly supplies invoice, matches the purchase order", "riskScore": 35}
        return self.call("POST", "/v1/payments", key or self.agent, body, expect=202)["approvalId"]

    def approval(self, approval_id):
        return self.call("GET", f"/v1/approvals/{approval_id}", self.admin)

    def payment_of(self, approval_id):
        return self.call("GET", f"/v1/payments/{self.approval(approval_id)['paymentId']}", self.admin)

    def balance(self, wallet):
        return self.call("GET", f"/v1/wallets/{wallet}/balance", self.admin)["balance"]

    def deliveries(self, key=None, **params):
        return self.call("GET", "/v1/notifications/deliveries", key or self.admin, params=params)["data"]

    def pending_untouched(self, approval_id):
        """The approval is still open with no vote: nothing decided it."""
        a = self.approval(approval_id)
        assert (a["status"], a["votes"]) == ("PENDING", []), a
        assert self.payment_of(approval_id)["status"] == "PENDING_APPROVAL"

    # --- what reached Slack (this org's bot token only) ------------------------------------------
    def slack_calls(self, method=None):
        """This org's Web API calls, failed ones too; `auth.test` (a token check the server may make
        when Slack is configured) left out unless asked for."""
        calls = self.fake.calls(method, token=self.token)
        return calls if method else [c for c in calls if c["method"] != "auth.test"]

    def delivered(self, method):
        return [c for c in self.slack_calls(method) if c["status"] == 200 and c["response"]["ok"]]

    def posts_for(self, approval_id):
        """The messages posted (ok) whose buttons carry `approval_id`."""
        return [c for c in self.delivered("chat.postMessage") if button(c["body"], APPROVE, approval_id)]

    def updates_of(self, post):
        ch, ts = post["response"]["channel"], post["response"]["ts"]
        return [c for c in self.delivered("chat.update") if (c["body"]["channel"], c["body"]["ts"]) == (ch, ts)]

    def ephemerals_to(self, user):
        return [c for c in self.delivered("chat.postEphemeral") if c["body"].get("user") == user]

    # --- a click in Slack ------------------------------------------------------------------------
    def click(self, post, user, action=APPROVE, username=None):
        """A signed block_actions request as Slack sends it when `user` clicks `action` on `post`;
        returns (form body, headers) so a test can send it, replay it or spoil it."""
        payload = block_actions(post, user, action, username or user.lower(), self.fake.root)
        self.response_urls.append(payload["response_url"])
        body = form(payload)
        return body, signed_headers(self.signing_secret, body)

    def response_urls_used(self):
        """Calls to the response_url of any click this org made (the spec answers with chat.update
        and chat.postEphemeral instead)."""
        paths = {u.split("/", 3)[3] for u in self.response_urls}
        return [c for c in self.fake.calls("response_url") if c["body"]["_path"].lstrip("/") in paths]

    def send(self, body, headers, url=None):
        return httpx.post(url or self.interactions_url, content=body, headers=headers, timeout=30)


def text_of(body):
    """All the words of a Slack message body (fallback text and blocks), for "does it say …"."""
    return (body.get("text") or "") + " " + json.dumps(body.get("blocks") or [], ensure_ascii=False)


def button(body, action_id, value=None):
    """(block, element) of the button `action_id` (with `value`, when given) in a message body."""
    for block in body.get("blocks") or []:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == action_id and (value is None or element.get("value") == value):
                return block, element
    return None


def block_actions(post, user, action_id, username, slack_root):
    """The interaction payload Slack posts for a button click on the message `post` (a recorded
    chat.postMessage): its channel and ts as Slack answered them, the button as the server built it."""
    channel, ts = post["response"]["channel"], post["response"]["ts"]
    found = button(post["body"], action_id)
    assert found, f"no {action_id} button in {post['body']}"
    block, element = found
    now = f"{time.time():.6f}"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": username, "name": username, "team_id": SLACK_TEAM},
        "api_app_id": "A0COUNTERSIGN",
        "token": "legacy-verification-token",   # deprecated by Slack: a server must not rely on it
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**10)}.{secrets.token_hex(16)}",
        "team": {"id": SLACK_TEAM, "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "subtype": "bot_message", "bot_id": "B0FAKEBOT", "ts": ts,
                    "text": post["body"].get("text", ""), "blocks": post["body"].get("blocks", [])},
        "state": {"values": {}},
        # Pointed at the fake, which records any use of it (the spec updates with chat.update instead).
        "response_url": f"{slack_root}/actions/{SLACK_TEAM}/{secrets.randbelow(10**12)}/{secrets.token_hex(12)}",
        "actions": [{"action_id": action_id, "block_id": block.get("block_id", "actions"),
                     "text": element.get("text"), "value": element.get("value"),
                     "style": element.get("style"), "type": "button", "action_ts": now}],
    }


def form(payload):
    """The body Slack sends: `payload=<url-encoded JSON>`."""
    return urllib.parse.urlencode({"payload": json.dumps(payload, separators=(",", ":"))})


def signed_headers(signing_secret, body, timestamp=None):
    """Slack's request signature (v0, HMAC-SHA256 of `v0:<ts>:<body>`), computed by slack_sdk."""
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded"}


# --- mail ------------------------------------------------------------------------------------------
REVIEW_LINK = re.compile(r"https?://[^\s\"'<>]+/dashboard/r/[^\s\"'<>]+")


def parts(message):
    """(text/plain, text/html) of a received EmailMessage; either may be None."""
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    return (plain.get_content() if plain else None), (html.get_content() if html else None)


def review_links(message):
    plain, _ = parts(message)
    return REVIEW_LINK.findall(plain or "")


def mails_for(mailbox, approval_id, addresses):
    """Messages to any of `addresses` whose review link is `approval_id`'s."""
    return [r for r in mailbox.to_any(addresses)
            if any(f"/dashboard/r/{approval_id}." in link for link in review_links(r["message"]))]
