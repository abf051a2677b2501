"""The fake Slack (tests/peers/fake_slack.py) against Slack's own client, slack_sdk's WebClient: if the
official client reads its answers as Slack's, the server's adapter is tested against something real
enough. Runs without the countersign server."""

import json
import os
import subprocess
import sys

import httpx
import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from fake_slack import start_fake_slack

TOKEN = "xoxb-1111-2222-fakeslacktest"
BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*5000.00 USD* to wal_x"}},
          {"type": "actions", "elements": [{"type": "button", "action_id": "countersign_approve",
                                            "text": {"type": "plain_text", "text": "Approve"}, "value": "apr_1"}]}]


@pytest.fixture()
def fake():
    f = start_fake_slack()
    yield f
    f.stop()


def client(fake, token=TOKEN):
    # slack_sdk joins base_url and the method name: the trailing slash matters.
    return WebClient(token=token, base_url=fake.base_url + "/")


def test_post_update_and_ephemeral_answer_as_slack_does(fake):
    web = client(fake)
    posted = web.chat_postMessage(channel="C0TREASURY", text="Approval needed", blocks=BLOCKS)
    assert posted["ok"] and posted["channel"] == "C0TREASURY"
    assert posted["message"]["blocks"] == BLOCKS
    ts = posted["ts"]
    seconds, micros = ts.split(".")
    assert seconds.isdigit() and len(micros) == 6 and micros.isdigit(), ts

    updated = web.chat_update(channel="C0TREASURY", ts=ts, text="✅ Approved by Alice", blocks=[])
    assert (updated["ok"], updated["channel"], updated["ts"], updated["text"]) == \
        (True, "C0TREASURY", ts, "✅ Approved by Alice")
    assert fake.messages()[("C0TREASURY", ts)]["text"] == "✅ Approved by Alice"

    ephemeral = web.chat_postEphemeral(channel="C0TREASURY", user="U0CAROL", text="You are not in the team")
    assert ephemeral["ok"] and ephemeral["message_ts"]

    calls = fake.calls()
    assert [c["method"] for c in calls] == ["chat.postMessage", "chat.update", "chat.postEphemeral"]
    assert all(c["token"] == TOKEN and c["status"] == 200 for c in calls)
    assert calls[0]["body"]["blocks"] == BLOCKS and calls[0]["body"]["channel"] == "C0TREASURY"
    assert calls[2]["body"]["user"] == "U0CAROL"
    assert [c["method"] for c in fake.calls("chat.update")] == ["chat.update"]
    assert calls[0]["at"] <= calls[1]["at"] <= calls[2]["at"]


def test_every_ts_is_unique(fake):
    web = client(fake)
    stamps = [web.chat_postMessage(channel="C0X", text=str(i))["ts"] for i in range(50)]
    assert len(set(stamps)) == 50
    assert stamps == sorted(stamps, key=lambda s: tuple(map(int, s.split("."))))


def test_update_of_a_message_it_never_posted_is_message_not_found(fake):
    web = client(fake)
    ts = web.chat_postMessage(channel="C0A", text="hi")["ts"]
    with pytest.raises(SlackApiError) as wrong_channel:
        web.chat_update(channel="C0B", ts=ts, text="moved?")
    assert wrong_channel.value.response["error"] == "message_not_found"


def test_rate_limit_is_429_with_retry_after_then_it_recovers(fake):
    web = client(fake)
    fake.rate_limit_next(1, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        web.chat_postMessage(channel="C0X", text="hello")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] in ("7", ["7"])
    assert web.chat_postMessage(channel="C0X", text="hello")["ok"]
    assert [(c["method"], c["status"]) for c in fake.calls()] == [("chat.postMessage", 429), ("chat.postMessage", 200)]


def test_outage_and_api_errors_are_recorded_with_what_was_answered(fake):
    web = client(fake)
    fake.fail_next(2, status=503)
    fake.error_next(1, "channel_not_found")
    for _ in range(2):
        with pytest.raises(SlackApiError) as down:
            web.chat_postMessage(channel="C0X", text="hello")
        assert down.value.response.status_code == 503
    with pytest.raises(SlackApiError) as missing:
        web.chat_postMessage(channel="C0X", text="hello")
    assert (missing.value.response.status_code, missing.value.response["error"]) == (200, "channel_not_found")
    assert web.chat_postMessage(channel="C0X", text="hello")["ok"]
    assert [c["status"] for c in fake.calls()] == [503, 503, 200, 200]
    assert [c["response"] and c["response"]["ok"] for c in fake.calls()] == [None, None, False, True]


def test_faults_can_be_narrowed_to_one_token_and_method(fake):
    other = client(fake, "xoxb-other-org")
    fake.fail_next(1, status=503, method="chat.postMessage", token=TOKEN)
    assert other.chat_postMessage(channel="C0X", text="not mine")["ok"]
    assert client(fake).chat_postEphemeral(channel="C0X", user="U0A", text="not this method")["ok"]
    with pytest.raises(SlackApiError):
        client(fake).chat_postMessage(channel="C0X", text="this one")
    assert client(fake).chat_postMessage(channel="C0X", text="this one")["ok"]


def test_auth_as_slack_checks_it(fake):
    with pytest.raises(SlackApiError) as none:
        WebClient(base_url=fake.base_url + "/").chat_postMessage(channel="C0X", text="hi")
    assert none.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as user_token:
        client(fake, "xoxp-a-user-token").chat_postMessage(channel="C0X", text="hi")
    assert user_token.value.response["error"] == "invalid_auth"
    assert client(fake).auth_test()["bot_id"]
    with pytest.raises(SlackApiError) as unknown:
        client(fake).api_call("chat.scheduleMessage", json={"channel": "C0X", "text": "hi"})
    assert unknown.value.response["error"] == "unknown_method"
    assert [c["response"]["error"] for c in fake.calls() if not c["response"]["ok"]] == \
        ["not_authed", "invalid_auth", "unknown_method"]


def test_form_bodies_and_token_fields_are_read_like_json(fake):
    web = WebClient(base_url=fake.base_url + "/")
    res = web.api_call("chat.postMessage", data={"token": TOKEN, "channel": "C0F", "text": "form",
                                                 "blocks": json.dumps(BLOCKS)})
    assert res["ok"]
    call = fake.calls("chat.postMessage")[0]
    assert (call["token"], call["body"]["blocks"], call["body"]["text"]) == (TOKEN, BLOCKS, "form")


def test_reset_forgets_calls_faults_and_messages(fake):
    web = client(fake)
    web.chat_postMessage(channel="C0X", text="hi")
    fake.fail_next(3)
    fake.reset()
    assert fake.calls() == [] and fake.messages() == {}
    assert web.chat_postMessage(channel="C0X", text="hi")["ok"]


def test_as_a_script_with_control_endpoints():
    """The mode the full-stack test uses: another process, driven over HTTP."""
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers", "fake_slack.py")
    proc = subprocess.Popen([sys.executable, script, "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("PORT="), line
        root = f"http://127.0.0.1:{int(line[len('PORT='):])}"
        web = WebClient(token=TOKEN, base_url=f"{root}/api/")
        assert httpx.post(f"{root}/_fake/fail", json={"n": 1, "status": 503}).json() == {"ok": True}
        with pytest.raises(SlackApiError):
            web.chat_postMessage(channel="C0S", text="down")
        httpx.post(f"{root}/_fake/fail", json={"n": 1, "status": 429, "retryAfter": 3})
        with pytest.raises(SlackApiError) as limited:
            web.chat_postMessage(channel="C0S", text="limited")
        assert limited.value.response.status_code == 429
        ts = web.chat_postMessage(channel="C0S", text="up")["ts"]
        web.chat_update(channel="C0S", ts=ts, text="done")
        calls = httpx.get(f"{root}/_fake/calls").json()
        assert [(c["method"], c["status"]) for c in calls] == \
            [("chat.postMessage", 503), ("chat.postMessage", 429), ("chat.postMessage", 200), ("chat.update", 200)]
        assert [c["body"]["ts"] for c in httpx.get(f"{root}/_fake/calls?method=chat.update").json()] == [ts]
        httpx.post(f"{root}/_fake/reset")
        assert httpx.get(f"{root}/_fake/calls").json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)
