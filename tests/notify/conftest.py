"""Slack and email notifications (issue 24) against the real `countersign serve` (COUNTERSIGN_BIN), with
two local peers: the fake Slack Web API (tests/peers/fake_slack.py) and an SMTP server (aiosmtpd).

One server and one pair of peers for the session; each test makes its own organisation with its own
bot token, channels and mail addresses, so what a test reads from the peers is its own. A missing
binary or peer fails the suite; nothing is skipped.
"""

import email
import email.policy
import os
import pathlib
import sys
import threading
import time

import pytest
from aiosmtpd.controller import Controller

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))                          # tests/: support
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "peers"))  # tests/peers: fake_slack
sys.path.insert(0, HERE)                                           # notify_org
from fake_slack import start_fake_slack  # noqa: E402
from notify_org import EMAIL_FROM, OPERATOR_KEY, SECRETS, SESSION_SECRET  # noqa: E402
from support import free_port, local_server  # noqa: E402


class Mailbox:
    """An SMTP server on a fixed loopback port that keeps every message it accepts. `stop()` and
    `start()` again on the same port: an outage the server's SMTP URL cannot tell from a restart."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.received = []   # {"to": [addresses], "from", "message": EmailMessage, "at"}
        self.controller = None
        self.start()

    def start(self):
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()
        self.controller = None

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        with self.lock:
            self.received.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from,
                                  "message": message, "at": time.time()})
        return "250 Message accepted for delivery"

    def to(self, address):
        """Messages whose envelope names `address`."""
        with self.lock:
            return [r for r in self.received if address in r["to"]]

    def to_any(self, addresses):
        with self.lock:
            return [r for r in self.received if set(r["to"]) & set(addresses)]


class Server:
    def __init__(self, base, data_dir):
        self.base = base
        self.data_dir = data_dir

    def log(self):
        return pathlib.Path(self.data_dir, "server.log").read_text()


@pytest.fixture(scope="session")
def slack():
    fake = start_fake_slack()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def mailbox():
    box = Mailbox()
    yield box
    if box.controller is not None:
        box.stop()


@pytest.fixture(scope="session")
def server(slack, mailbox):
    env = {
        "COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY,
        "COUNTERSIGN_SESSION_SECRET": SESSION_SECRET,
        "COUNTERSIGN_PUBLIC_URL": None,  # links name the server's own loopback address
        "COUNTERSIGN_SLACK_API_URL": slack.base_url,
        "COUNTERSIGN_SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}",
        "COUNTERSIGN_EMAIL_FROM": EMAIL_FROM,
        # Retries a few hundred milliseconds apart, so an outage of a few calls ends within a test.
        "COUNTERSIGN_WEBHOOK_BACKOFF_BASE_MS": "200",
        # The sweep finds reminders (80 % of the window) and expiries: every second, not every 30.
        "COUNTERSIGN_SWEEP_INTERVAL_SECONDS": "1",
        # The log is checked for secrets: let the server's own crate say as much as it would.
        "RUST_LOG": "info,countersign_core=debug",
    }
    with local_server("countersign-notify-", env, log_to_file=True) as (base, data_dir):
        yield Server(base, data_dir)
    # No bot token and no signing secret, of any organisation the session configured, in the log.
    text = Server(base, data_dir).log()
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"secrets in the server log: {leaked}"
