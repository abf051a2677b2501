"""Starts the real `countersign` binary on a free loopback port with a fresh data dir."""

import os
import sys

import httpx
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import local_server, start_receiver  # noqa: E402

OPERATOR_KEY = "sdk-test-operator-key-0123456789"


@pytest.fixture(scope="session")
def server():
    # Loopback webhooks allowed and one attempt per delivery, so the DLQ is reached at once.
    env = {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY, "COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS": "true",
           "COUNTERSIGN_WEBHOOK_MAX_ATTEMPTS": "1", "COUNTERSIGN_SWEEP_INTERVAL_SECONDS": "1"}
    with local_server("countersign-sdk-", env) as (base, _):
        yield base


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
