"""A real webhook receiver for tests: verifies every delivery with the `standardwebhooks` library
(and the wallgent SDK's body signature), records it, and answers as told.

  POST /_control/<name>  {"secret": "whsec_...", "mode": "ok" | "fail" | "hang"}
  POST /hook/<name>      a delivery
  GET  /_received/<name> [{"webhookId", "verified", "simpleVerified", "error", "body", "at"}]

Prints "READY <port>" once listening.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook
from wallgent.webhooks import verify_webhook_signature

STATE = {}
LOCK = threading.Lock()


def endpoint(name):
    with LOCK:
        return STATE.setdefault(name, {"secret": None, "mode": "ok", "received": []})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _reply(self, status, payload=None):
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/_received/"):
            ep = endpoint(self.path.split("/", 2)[2])
            with LOCK:
                return self._reply(200, list(ep["received"]))
        self._reply(404, {})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/_control/"):
            ep = endpoint(self.path.split("/", 2)[2])
            with LOCK:
                ep.update(json.loads(raw))
            return self._reply(200, {"ok": True})
        if not self.path.startswith("/hook/"):
            return self._reply(404, {})
        ep = endpoint(self.path.split("/", 2)[2])
        headers = {k.lower(): v for k, v in self.headers.items()}
        record = {"webhookId": headers.get("webhook-id"), "verified": False, "simpleVerified": False, "error": None, "at": time.time()}
        try:
            record["body"] = Webhook(ep["secret"]).verify(raw, headers)
            record["verified"] = True
        except Exception as e:  # noqa: BLE001 - any verification failure is recorded, not raised
            record["error"] = repr(e)
            record["body"] = json.loads(raw or b"null")
        record["simpleVerified"] = verify_webhook_signature(raw, headers.get("x-countersign-signature", ""), ep["secret"] or "")
        with LOCK:
            ep["received"].append(record)
            mode = ep["mode"]
        if mode == "hang":
            time.sleep(30)
            return self._reply(200, {})
        self._reply(500 if mode == "fail" else 204)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
