"""The curl walkthrough in README.md works as written against the real local server."""

import pathlib
import re
import subprocess

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    start = text.index("### Walkthrough with curl")
    return re.search(r"```sh\n(.*?)```", text[start:], re.S).group(1)


def test_readme_curl_walkthrough(server, operator_key):
    script = walkthrough()
    assert "B=http://127.0.0.1:8080" in script and "OP=local-operator-key-change-me" in script
    script = script.replace("B=http://127.0.0.1:8080", f"B={server}")
    script = script.replace("OP=local-operator-key-change-me", f"OP={operator_key}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines.count("COMPLETED") == 2, run.stdout
    assert '"balance":"4990.00"' in run.stdout
    assert "APPROVAL_NOT_PENDING" in run.stdout
    assert '"action":"approval.approved"' in run.stdout
