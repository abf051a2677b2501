"""schemathesis against the real `countersign` binary (local server, fresh data dir): every
operation of `GET /openapi.json`, a bounded number of generated requests each, with an admin key
of a fresh organisation. No response may be a 5xx, and every response must match the document
(status code, content type, schema)."""

import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx

OPERATOR_KEY = "schemathesis-operator-key-0123456789"
EXAMPLES_PER_OPERATION = os.environ.get("COUNTERSIGN_FUZZ_EXAMPLES", "25")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_generated_requests_never_get_a_5xx_and_match_the_document(tmp_path):
    binary = os.environ.get("COUNTERSIGN_BIN")
    assert binary and os.path.exists(binary), "COUNTERSIGN_BIN must point at the built countersign binary"
    port = _free_port()
    env = dict(os.environ, COUNTERSIGN_ADMIN_KEY=OPERATOR_KEY, RUST_LOG="warn")
    data_dir = tempfile.mkdtemp(prefix="countersign-fuzz-")
    proc = subprocess.Popen([binary, "serve", "--addr", f"127.0.0.1:{port}", "--data-dir", data_dir], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.time() < deadline, "countersign did not start"
            time.sleep(0.1)
        org = httpx.post(f"{base}/v1/organizations", json={"name": "fuzz"},
                         headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
        assert org.status_code == 201, org.text
        admin = org.json()["adminKey"]["secret"]
        schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
        report = tmp_path / "junit.xml"
        run = subprocess.run(
            [schemathesis, "run", f"{base}/openapi.json",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_schema_conformance",
             "--max-examples", EXAMPLES_PER_OPERATION, "--seed", "7",
             "--phases", "examples,coverage,fuzzing",
             "-H", f"Authorization: Bearer {admin}",
             "--request-timeout", "10",
             "--report", "junit", "--report-junit-path", str(report)],
            capture_output=True, text=True, timeout=900, cwd=tmp_path)
        print(run.stdout[-6000:])
        assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
        # A run that tested nothing proves nothing: every operation of the document was exercised.
        operations = len(httpx.get(f"{base}/openapi.json").json()["paths"])
        tested = report.read_text().count("<testcase ")
        assert operations >= 40 and tested >= operations, (operations, tested)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
