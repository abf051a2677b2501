"""Helpers shared by the Python test suites (tests/sdk, tests/mcp, tests/dashboard, tests/fullstack)."""

import contextlib
import importlib.util
import os
import pathlib
import socket
import subprocess
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer

import httpx

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


def api_call(base, method, path, key, body=None, expect=None, params=None):
    """One API call with a bearer key; asserts the status `expect` (else any 4xx/5xx fails the
    test); returns the JSON body (None when empty)."""
    res = httpx.request(method, f"{base}{path}", json=body, params=params,
                        headers={"Authorization": f"Bearer {key}"}, timeout=30)
    if expect is not None:
        assert res.status_code == expect, f"{method} {path}: {res.status_code} {res.text}"
    elif res.status_code >= 400:
        raise AssertionError(f"{method} {path}: {res.status_code} {res.text}")
    return res.json() if res.content else None


def wait_until(what, check, timeout=20):
    """Polls `check` until it returns something truthy; fails the test after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_server(prefix, env, log_to_file=False):
    """`countersign serve` (the binary at COUNTERSIGN_BIN) on a free loopback port with a fresh data
    dir and `env` over the environment (a `None` value removes the variable); yields
    (base URL, data dir) once /health answers, and stops it afterwards. With `log_to_file`, its
    output goes to `<data dir>/server.log`."""
    binary = os.environ.get("COUNTERSIGN_BIN")
    assert binary and os.path.exists(binary), "COUNTERSIGN_BIN must point at the built countersign binary"
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix=prefix)
    full_env = dict(os.environ, RUST_LOG="warn")
    for name, value in env.items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    with contextlib.ExitStack() as stack:
        output = {}
        if log_to_file:
            log = stack.enter_context(open(os.path.join(data_dir, "server.log"), "w"))
            output = {"stdout": log, "stderr": subprocess.STDOUT}
        command = [binary, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir]
        proc = subprocess.Popen(command, env=full_env, **output)
        # The server names itself `localhost` in links (passkeys need a host name): so do we.
        base = f"http://localhost:{port}"
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
        try:
            yield base, data_dir
        finally:
            proc.terminate()
            proc.wait(timeout=10)
