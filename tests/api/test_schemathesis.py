"""schemathesis against the real `countersign` binary (local server, fresh data dir): every
operation of `GET /openapi.json`, a bounded number of generated requests each, with an admin key
of a fresh organisation. No response may be a 5xx, and every response must match the document
(status code, content type, schema)."""

import os
import subprocess
import sys

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import local_server  # noqa: E402

OPERATOR_KEY = "schemathesis-operator-key-0123456789"
EXAMPLES_PER_OPERATION = os.environ.get("COUNTERSIGN_FUZZ_EXAMPLES", "25")


def test_generated_requests_never_get_a_5xx_and_match_the_document(tmp_path):
    with local_server("countersign-fuzz-", {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY}) as (base, _data_dir):
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
