"""The reviewer dashboard in a real browser: Debian's Chromium driven by Playwright, against the real
`countersign` binary (COUNTERSIGN_BIN) on a free loopback port with a fresh data dir.

Playwright's own browser download is not used (nor reachable): the browser is /usr/bin/chromium,
which scripts/test installs. A missing browser or binary fails the suite; nothing is skipped.
"""

import os
import pathlib
import sys

import httpx
import pytest
from playwright.sync_api import sync_playwright

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dashboard_api import OPERATOR_KEY, SESSION_SECRET  # noqa: E402
from support import local_server, start_receiver  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "target" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def server():
    env = {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY, "COUNTERSIGN_SESSION_SECRET": SESSION_SECRET,
           "COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS": "true",
           "COUNTERSIGN_PUBLIC_URL": None}  # the server's own loopback address is the default
    with local_server("countersign-dashboard-", env, log_to_file=True) as (base, data_dir):
        yield base
    # Nothing secret reaches the log: no API key, no session secret.
    text = pathlib.Path(data_dir, "server.log").read_text()
    assert "csk_" not in text and SESSION_SECRET not in text, text


@pytest.fixture(scope="session")
def browser():
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: scripts/test installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser context and page that fails the test on any JavaScript dialog (the XSS
    canary) or page error."""

    def __init__(self, browser, **options):
        self.context = browser.new_context(viewport={"width": 1200, "height": 800}, **options)
        self.page = self.context.new_page()
        self.dialogs = []
        self.errors = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture()
def new_page(browser):
    made = []

    def make(**options):
        p = Page(browser, **options)
        made.append(p)
        return p.page

    yield make
    for p in made:
        assert p.dialogs == [], f"a dialog opened: {p.dialogs}"
        assert p.errors == [], f"page errors: {p.errors}"
        p.context.close()


@pytest.fixture()
def page(new_page):
    return new_page()


@pytest.fixture(scope="session")
def receiver():
    module, srv = start_receiver()
    yield module
    srv.shutdown()


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
