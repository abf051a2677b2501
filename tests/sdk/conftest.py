"""Starts the real `countersign` binary on a free loopback port with a fresh data dir."""

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import start_receiver  # noqa: E402

OPERATOR_KEY = "sdk-test-operator-key-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("COUNTERSIGN_BIN")
    assert binary and os.path.exists(binary), "COUNTERSIGN_BIN must point at the built countersign binary"
    port = _free_port()
    data_dir = tempfile.mkdtemp(prefix="countersign-sdk-")
    # Loopback webhooks allowed and one attempt per delivery, so the DLQ is reached at once.
    env = dict(os.environ, COUNTERSIGN_ADMIN_KEY=OPERATOR_KEY, RUST_LOG="warn",
               COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS="true", COUNTERSIGN_WEBHOOK_MAX_ATTEMPTS="1",
               COUNTERSIGN_SWEEP_INTERVAL_SECONDS="1")
    proc = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 20
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "countersign exited during start-up"
        assert time.time() < deadline, "countersign did not become healthy"
        time.sleep(0.1)
    yield base
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture()
def operator_key():
    return OPERATOR_KEY


@pytest.fixture()
def admin_key(server):
    res = httpx.post(
        f"{server}/v1/organizations",
        json={"name": "SDK test org"},
        headers={"Authorization": f"Bearer {OPERATOR_KEY}"},
    )
    assert res.status_code == 201, res.text
    return res.json()["adminKey"]["secret"]


@pytest.fixture(scope="session")
def receiver():
    """The verifying webhook receiver on a loopback port."""
    module, server = start_receiver()
    yield module
    server.shutdown()
