"""Helpers shared by the Python test suites (tests/sdk, tests/fullstack)."""

import importlib.util
import pathlib
import threading
import time
from http.server import ThreadingHTTPServer

RECEIVER = pathlib.Path(__file__).resolve().parent / "receiver" / "receiver.py"


def start_receiver():
    """The verifying webhook receiver (receiver/receiver.py) on a loopback port, in a thread.
    Returns (module, server); `module.base` is its URL, `module.endpoint(name)` its state."""
    spec = importlib.util.spec_from_file_location("webhook_receiver", RECEIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = ThreadingHTTPServer(("127.0.0.1", 0), module.Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    module.base = f"http://127.0.0.1:{server.server_address[1]}"
    return module, server


def wait_until(what, check, timeout=20):
    """Polls `check` until it returns something truthy; fails the test after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
