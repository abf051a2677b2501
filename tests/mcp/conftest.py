"""The real `countersign` binary on a free loopback port, an organisation with an agent key and a
reviewer key, and MCP clients (the official `mcp` SDK) over Streamable HTTP and over stdio
(`countersign mcp --url`)."""

import os
import sys
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import local_server  # noqa: E402

OPERATOR_KEY = "mcp-test-operator-key-0123456789"


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("COUNTERSIGN_BIN")
    assert path and os.path.exists(path), "COUNTERSIGN_BIN must point at the built countersign binary"
    return path


@pytest.fixture(scope="session")
def server(binary):
    with local_server("countersign-mcp-", {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY}) as (base, _):
        yield base


@dataclass
class Org:
    base: str
    admin: str
    agent: str
    reviewer: str
    source: str
    payee: str

    def rest(self, method, path, key, body=None):
        res = httpx.request(method, f"{self.base}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
        return res.status_code, res.json()


@pytest.fixture()
def org(server):
    """A fresh organisation: an agent key (pays, reads and may decide approvals: so that only the
    self-approval rule stops it), a reviewer key, two USD wallets, the first funded with 5000.00
    and held by a policy above 1000.00."""
    def post(path, key, body):
        res = httpx.post(f"{server}{path}", json=body, headers={"Authorization": f"Bearer {key}"})
        assert res.status_code == 201, res.text
        return res.json()

    admin = post("/v1/organizations", OPERATOR_KEY, {"name": "MCP test org"})["adminKey"]["secret"]
    agent = post("/v1/api-keys", admin, {"name": "agent", "permissions": [
        "payments:write", "payments:read", "approvals:read", "approvals:write", "reviews:write",
        "refunds:write"]})["secret"]
    reviewer = post("/v1/api-keys", admin, {"name": "reviewer", "permissions": [
        "approvals:read", "approvals:write"]})["secret"]
    source = post("/v1/wallets", admin, {"name": "ops", "currency": "USD"})["id"]
    payee = post("/v1/wallets", admin, {"name": "vendor", "currency": "USD"})["id"]
    post(f"/v1/wallets/{source}/fund", admin, {"amount": "5000.00"})
    post(f"/v1/wallets/{source}/policies", admin,
         {"name": "review large", "maxTransactionAmount": "1000.00", "requireHumanApproval": True})
    return Org(server, admin, agent, reviewer, source, payee)


@pytest.fixture()
def connect(server, binary):
    """`connect(transport, key, mode)`: an entered `mcp.Client` acting as `key`; `mode` "auto" (the
    SDK's default: `server/discover`, protocol 2026-07-28) or "legacy" (the `initialize` handshake
    older clients use)."""
    @asynccontextmanager
    async def open_client(transport, key, mode="auto"):
        if transport == "http":
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
            transport = streamable_http_client(f"{server}/mcp", http_client=http)
            async with http, Client(transport, mode=mode) as client:
                yield client
        else:
            params = StdioServerParameters(command=binary, args=["mcp", "--url", server],
                                           env={"COUNTERSIGN_API_KEY": key, "PATH": os.environ.get("PATH", "")})
            async with Client(params, mode=mode) as client:
                yield client
    return open_client
