"""A local fake of Slack's Web API, answering as slack.com/api does, for the notification tests.

Importable (tests in this process):

    fake = start_fake_slack()
    fake.base_url                       # http://127.0.0.1:<port>/api (COUNTERSIGN_SLACK_API_URL)
    fake.calls("chat.postMessage")      # every call, failed ones too: method, token, body, at, status, response
    fake.fail_next(2, status=503)       # the next 2 calls answer HTTP 503
    fake.rate_limit_next(1, retry_after=2)   # HTTP 429 with Retry-After: 2
    fake.error_next(1, "channel_not_found")  # HTTP 200 {"ok": false, "error": "channel_not_found"}
    fake.reset(); fake.stop()

A fault can be narrowed to calls of one `method` and/or bot `token`, so that one test's outage does
not land on another organisation's deliveries sharing the fake.

Runnable (for a full stack whose Lambdas run in other processes):

    python fake_slack.py --port 0       # prints PORT=<n> once listening
    GET  /_fake/calls[?method=chat.update]
    POST /_fake/fail  {"n": 2, "status": 503}  |  {"n": 1, "status": 429, "retryAfter": 2}
                      |  {"n": 1, "error": "channel_not_found"}   (optional "method", "token")
    POST /_fake/reset

Web API methods: chat.postMessage, chat.update, chat.postEphemeral, auth.test; JSON or form bodies
(form `blocks`/`attachments` are JSON strings, as Slack takes them); the bot token from
`Authorization: Bearer xoxb-…` (or a `token` field). Anything POSTed outside /api/ and /_fake/
(a `response_url`) is recorded as method "response_url" and answered `ok`.
"""

import argparse
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METHODS = ("chat.postMessage", "chat.update", "chat.postEphemeral", "auth.test")
# Form fields Slack decodes as JSON when a client sends them url-encoded.
JSON_FIELDS = ("blocks", "attachments", "metadata")
BOT = {"team": "Acme", "team_id": "T0FAKESLACK", "user": "countersign", "user_id": "U0FAKEBOT",
       "bot_id": "B0FAKEBOT", "url": "https://acme.slack.com/"}


class FakeSlack:
    """The state behind one fake: recorded calls, queued faults, the messages it holds."""

    def __init__(self, tokens=None):
        # None: any `xoxb-` token is valid; a collection: only those.
        self.tokens = set(tokens) if tokens is not None else None
        self.lock = threading.Lock()
        self._calls = []
        self._faults = []      # [{"kind", "status", "retry_after", "error", "method", "token"}], in order
        self._messages = {}    # (channel, ts) -> message as it now stands
        self._last_ts = 0      # microseconds of the last ts handed out: each one unique, increasing
        self.server = None
        self.base_url = None
        self.root = None

    # --- control -----------------------------------------------------------------------------
    def calls(self, method=None, token=None):
        with self.lock:
            return [dict(c) for c in self._calls
                    if (method is None or c["method"] == method) and (token is None or c["token"] == token)]

    def messages(self):
        """The messages posted so far, as updated since: {(channel, ts): {"text", "blocks", ...}}."""
        with self.lock:
            return {k: dict(v) for k, v in self._messages.items()}

    def _queue(self, n, fault, method, token):
        with self.lock:
            self._faults.extend(dict(fault, method=method, token=token) for _ in range(n))

    def fail_next(self, n, status=503, method=None, token=None):
        self._queue(n, {"kind": "status", "status": status}, method, token)

    def rate_limit_next(self, n, retry_after=1, method=None, token=None):
        self._queue(n, {"kind": "status", "status": 429, "retry_after": retry_after}, method, token)

    def error_next(self, n, error="channel_not_found", method=None, token=None):
        self._queue(n, {"kind": "error", "error": error}, method, token)

    def reset(self):
        with self.lock:
            self._calls.clear()
            self._faults.clear()
            self._messages.clear()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # --- serving -------------------------------------------------------------------------------
    def serve(self, host="127.0.0.1", port=0):
        fake = self

        class Handler(_Handler):
            pass
        Handler.fake = fake
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.root = f"http://{shown}:{self.port}"
        self.base_url = f"{self.root}/api"
        return self

    def _take_fault(self, method, token):
        with self.lock:
            for i, f in enumerate(self._faults):
                if (f["method"] in (None, method)) and (f["token"] in (None, token)):
                    return self._faults.pop(i)
        return None

    def _next_ts(self):
        # Slack's ts: "<seconds>.<microseconds>", unique within a channel; here unique overall.
        with self.lock:
            now = int(time.time() * 1_000_000)
            self._last_ts = max(now, self._last_ts + 1)
            return f"{self._last_ts // 1_000_000}.{self._last_ts % 1_000_000:06d}"

    def _auth_error(self, token):
        if not token:
            return "not_authed"
        if not token.startswith("xoxb-") or (self.tokens is not None and token not in self.tokens):
            return "invalid_auth"
        return None

    def answer(self, method, token, body):
        """What Slack answers a well-formed, authorised call: (HTTP status, JSON, extra headers)."""
        if method not in METHODS:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        error = self._auth_error(token)
        if error:
            return 200, {"ok": False, "error": error}, {}
        if method == "auth.test":
            return 200, {"ok": True, **BOT}, {}
        channel = body.get("channel")
        if not channel:
            return 200, {"ok": False, "error": "channel_not_found"}, {}
        if method in ("chat.postMessage", "chat.postEphemeral") and not (body.get("text") or body.get("blocks")):
            return 200, {"ok": False, "error": "no_text"}, {}
        if method == "chat.postMessage":
            ts = self._next_ts()
            message = {"type": "message", "user": BOT["user_id"], "bot_id": BOT["bot_id"], "ts": ts,
                       "text": body.get("text", ""), "blocks": body.get("blocks", [])}
            with self.lock:
                self._messages[(channel, ts)] = message
            return 200, {"ok": True, "channel": channel, "ts": ts, "message": message}, {}
        if method == "chat.update":
            ts = body.get("ts")
            with self.lock:
                message = self._messages.get((channel, ts))
                if message is None:
                    return 200, {"ok": False, "error": "message_not_found"}, {}
                message.update(text=body.get("text", ""), blocks=body.get("blocks", []), edited={"ts": ts})
                return 200, {"ok": True, "channel": channel, "ts": ts, "text": message["text"],
                             "message": dict(message)}, {}
        # chat.postEphemeral
        if not body.get("user"):
            return 200, {"ok": False, "error": "user_not_found"}, {}
        return 200, {"ok": True, "message_ts": self._next_ts()}, {}

    def record(self, method, token, body, status, response):
        with self.lock:
            self._calls.append({"method": method, "token": token, "body": body, "at": time.time(),
                                "status": status, "response": response})


def parse_body(raw, content_type, query):
    """A call's arguments: the query string, then a form or JSON body over it (Slack takes all three)."""
    args = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
    if not raw:
        return args
    if content_type.startswith("application/json"):
        parsed = json.loads(raw)
        if not isinstance(parsed, dict):
            raise ValueError("a JSON body must be an object")
        args.update(parsed)
        return args
    for name, values in urllib.parse.parse_qs(raw.decode(), keep_blank_values=True).items():
        value = values[-1]
        if name in JSON_FIELDS:
            try:
                value = json.loads(value)
            except ValueError:
                pass
        args[name] = value
    return args


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake = None  # set per server

    def log_message(self, *args):
        pass

    def _reply(self, status, payload, headers=None):
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _read(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/_fake/calls":
            method = urllib.parse.parse_qs(query).get("method", [None])[0]
            return self._reply(200, self.fake.calls(method))
        if path.startswith("/api/"):
            return self._api(path[len("/api/"):], b"", query)
        self._reply(404, {"ok": False, "error": "not_found"})

    def do_POST(self):
        path, _, query = self.path.partition("?")
        raw = self._read()
        if path == "/_fake/fail":
            order = json.loads(raw or b"{}")
            n, method, token = int(order.get("n", 1)), order.get("method"), order.get("token")
            if "error" in order:
                self.fake.error_next(n, order["error"], method=method, token=token)
            elif int(order.get("status", 503)) == 429:
                self.fake.rate_limit_next(n, int(order.get("retryAfter", 1)), method=method, token=token)
            else:
                self.fake.fail_next(n, int(order.get("status", 503)), method=method, token=token)
            return self._reply(200, {"ok": True})
        if path == "/_fake/reset":
            self.fake.reset()
            return self._reply(200, {"ok": True})
        if path.startswith("/api/"):
            return self._api(path[len("/api/"):], raw, query)
        # A response_url: recorded, so a test sees whether anything used it.
        try:
            body = parse_body(raw, self.headers.get("Content-Type", ""), query)
        except ValueError:
            body = {"raw": raw.decode(errors="replace")}
        self.fake.record("response_url", None, dict(body, _path=path), 200, {"ok": True})
        self._reply(200, {"ok": True})

    def _api(self, method, raw, query):
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer "):].strip() if auth.startswith("Bearer ") else None
        try:
            body = parse_body(raw, self.headers.get("Content-Type", ""), query)
        except ValueError:
            # Slack answers a body it cannot read with 200 and ok:false.
            body = {"raw": raw.decode(errors="replace")}
            response = {"ok": False, "error": "invalid_json"}
            self.fake.record(method, token, body, 200, response)
            return self._reply(200, response)
        token = token or body.get("token")
        fault = self.fake._take_fault(method, token)
        if fault and fault["kind"] == "status":
            status = fault["status"]
            headers = {"Retry-After": str(fault["retry_after"])} if status == 429 else {}
            response = {"ok": False, "error": "ratelimited"} if status == 429 else None
            self.fake.record(method, token, body, status, response)
            return self._reply(status, response, headers)
        if fault:
            response = {"ok": False, "error": fault["error"]}
            self.fake.record(method, token, body, 200, response)
            return self._reply(200, response)
        status, response, headers = self.fake.answer(method, token, body)
        self.fake.record(method, token, body, status, response)
        self._reply(status, response, headers)


def start_fake_slack(host="127.0.0.1", port=0, tokens=None):
    """A fake on `host:port` (0: a free port), serving in a daemon thread."""
    return FakeSlack(tokens=tokens).serve(host, port)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args()
    fake = start_fake_slack(options.host, options.port)
    print(f"PORT={fake.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
