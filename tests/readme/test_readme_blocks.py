"""README.md's sh blocks work as written: each runs here in a fresh shell from the repository root,
with only ports (and the README's own placeholders) substituted; see readme_blocks.py."""

import json
import sys
import re
import subprocess
import time

import httpx
import pytest
from readme_blocks import ROOT, Shell, block, free_port, sh_blocks, substitute, without_pip_installs

OPERATOR_KEY = "local-operator-key-change-me"  # the README's own

# Blocks run by a test below.
RUN = {
    ("Quick start", 0),
    ("Run it locally", 0),
    ("Walkthrough with curl", 0),
    ("Reviewer workflow with curl", 0),
    ("Comments and bulk decisions with curl", 0),
    ("Try the deployed shape locally", 0),
    ("Lambda functions", 0),
    ("Verifiable decisions: passkeys, a sealed audit log, receipts", 0),
    ("Slack and email: reviewers reached where they work", 0),
}
# Blocks not run, each with the reason. A new block must be run by a test or listed here.
NOT_RUN = {
    ("Test", 0): "the test command itself",
    ("Benchmarks", 0): "benchmarks are not tests: release builds and minutes of load",
    ("Deploy to AWS", 0): "needs an AWS account; `sam validate --lint` checks the template in scripts/test",
    ("Lambda functions", 1): "release arm64 cross-build for AWS (minutes, as `sam build`); scripts/test builds the "
                             "same packages for this machine in infra/local-deploy, and their names are checked below",
}


def test_every_sh_block_is_run_or_listed_with_a_reason():
    found = set(sh_blocks())
    assert not RUN & set(NOT_RUN)
    assert found == RUN | set(NOT_RUN), (
        f"README sh blocks without a test: {sorted(found - RUN - set(NOT_RUN))}; "
        f"listed but gone: {sorted((RUN | set(NOT_RUN)) - found)}")


def test_release_build_block_names_the_workspace_functions():
    code = block("Lambda functions", 1)
    named = {word for line in code.splitlines() if line.startswith("cargo lambda build")
             for flag, word in zip(line.split(), line.split()[1:]) if flag == "-p"}
    metadata = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"], cwd=ROOT,
                                         check=True, capture_output=True, text=True).stdout)
    lambdas = {p["name"] for p in metadata["packages"] if p["manifest_path"].startswith(str(ROOT / "functions"))
               and p["name"] != "countersign-local"}
    assert named == lambdas == {"countersign-intake", "countersign-approvals", "countersign-expiry",
                                "countersign-webhooks"}


def wait_http_ok(url, shell, timeout):
    """Polls `url` until it answers 200 while `shell` is running; returns the JSON body."""
    deadline = time.time() + timeout
    while True:
        try:
            res = httpx.get(url, timeout=2)
            if res.status_code == 200:
                return res.json()
        except httpx.HTTPError:
            pass
        if shell.proc.poll() is not None:
            pytest.fail(f"the README block exited ({shell.proc.returncode}) before {url} answered\n{shell.report()}")
        if time.time() > deadline:
            pytest.fail(f"{url} did not answer 200 in {timeout} s\n{shell.report()}")
        time.sleep(0.2)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def wait_printed(shell, pattern, timeout):
    """The first match of `pattern` (a line) in what the block printed, waiting while it runs."""
    deadline = time.time() + timeout
    while True:
        found = re.search(pattern, shell.stdout(), re.M)
        if found:
            return found.group(1)
        if shell.proc.poll() is not None:
            pytest.fail(f"the README block exited ({shell.proc.returncode}) before printing {pattern}\n{shell.report()}")
        if time.time() > deadline:
            pytest.fail(f"the README block printed no {pattern} in {timeout} s\n{shell.report()}")
        time.sleep(0.2)


def test_quick_start_ends_signed_in_on_the_dashboard(tmp_path):
    # The quick start as written, on a free port and a fresh data directory (the README's own
    # ./.countersign may hold an organisation from another block): the command, then the printed
    # link opened in Chromium and "Sign in" pressed, lands on the signed-in queue with the demo's
    # held payment.
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = Shell(substitute(block("Quick start"), {
        "127.0.0.1:8080": f"127.0.0.1:{port}", "serve --demo": f"serve --demo --data-dir {tmp_path / 'data'}"}))
    try:
        link = wait_printed(server, r"^Sign-in link: (http://\S+)$", timeout=600)
        key = wait_printed(server, r"^Admin API key: (csk_\S+)$", timeout=5)
        assert link.startswith(f"http://localhost:{port}/dashboard/start/"), link
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(link)
                page.click("#start-sign-in")
                page.wait_for_selector(".who")
                assert page.url.rstrip("/").endswith("/dashboard"), page.url
                text = page.inner_text("body")
                assert "Signed in as" in text, text
                assert "5000.00" in text, text  # the demo's held payment, in the queue
            finally:
                browser.close()
        # The printed key works on the API.
        res = httpx.get(f"http://127.0.0.1:{port}/v1/wallets", headers={"Authorization": f"Bearer {key}"})
        assert res.status_code == 200 and len(res.json()["data"]) == 2, res.text
        # An auditor checks the demo's held payment from its receipt and the published keys alone.
        payments = httpx.get(f"http://127.0.0.1:{port}/v1/payments", headers={"Authorization": f"Bearer {key}"})
        payment = payments.json()["data"][0]["id"]
        auditor = Shell(substitute(block("Verifiable decisions: passkeys, a sealed audit log, receipts"), {
            "B=http://127.0.0.1:8080": f"B=http://127.0.0.1:{port}", "KEY=csk_your_key": f"KEY={key}",
            "PAYMENT=pay_the_payment": f"PAYMENT={payment}", "receipt.json": str(tmp_path / "receipt.json"),
            "keys.json": str(tmp_path / "keys.json")}))
        assert auditor.wait(timeout=300) == 0, auditor.report()
        assert f"OK: receipt for {payment}" in auditor.stdout(), auditor.report()
    finally:
        server.stop()


def test_run_it_locally_then_the_curl_walkthrough():
    # The server block as written (it keeps its data in ./.countersign, as the README says), on a
    # free port instead of 8080; `cargo run` finds the binary scripts/test already built.
    port = free_port()
    server = Shell(substitute(block("Run it locally"), {"127.0.0.1:8080": f"127.0.0.1:{port}"}))
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_http_ok(f"{base}/health", server, timeout=600) == {"status": "ok"}
        assert httpx.get(f"{base}/health?deep=1").json() == {"status": "ok", "store": "ok"}
        walkthrough = Shell(substitute(block("Walkthrough with curl"), {"B=http://127.0.0.1:8080": f"B={base}"}))
        assert walkthrough.wait(timeout=120) == 0, walkthrough.report()
        out = walkthrough.stdout()
        assert out.splitlines().count("COMPLETED") == 2, out
        assert '"balance":"4990.00"' in out
        assert "APPROVAL_NOT_PENDING" in out
        assert '"action":"approval.approved"' in out
        reviewers = Shell(substitute(block("Reviewer workflow with curl"), {"B=http://127.0.0.1:8080": f"B={base}"}))
        assert reviewers.wait(timeout=120) == 0, reviewers.report()
        out = reviewers.stdout().splitlines()
        assert any(line.startswith("Pay 5000.00 USD from wal_") and line.endswith(": Licence renewal") for line in out), out
        assert "Fiona" in out and '{"walletId"' in "".join(out) and '"balance":"6000.00"' in "".join(out), out
        assert out[-4:-1] == ["ESCALATED", "NOT_ASSIGNED", "COMPLETED"], out
        decision = json.loads(out[-1])
        assert (decision["decision_type"], decision["notes"]) == ("reject", "supplier not verified"), out
        talk = Shell(substitute(block("Comments and bulk decisions with curl"), {"B=http://127.0.0.1:8080": f"B={base}"}))
        assert talk.wait(timeout=120) == 0, talk.report()
        out = talk.stdout().splitlines()
        assert out[0].startswith("key_") and out[1] == "Order 5521: toner.", out
        results = json.loads(out[2])["results"]
        assert [r["ok"] for r in results] == [True, True, False, True], out
        assert results[2]["error"]["code"] == "APPROVAL_NOT_FOUND", out
        assert '"balance":"610.00"' in out[3], out
    finally:
        server.stop()


@pytest.fixture(scope="module")
def readme_stack():
    """The "Try the deployed shape locally" block as written: ministack started as the README
    starts it (so without an AWS_ENDPOINT_URL of its own), then infra/local-deploy, on a free port
    instead of 4566. The emulator it left running is stopped after this module."""
    port = free_port()
    code = substitute(without_pip_installs(block("Try the deployed shape locally")),
                      {"GATEWAY_PORT=4566": f"GATEWAY_PORT={port}", "http://127.0.0.1:4566": f"http://127.0.0.1:{port}"})
    shell = Shell(code)
    try:
        assert shell.wait(timeout=900) == 0, shell.report()
        # KEY=value lines: the stack's outputs, then API_URL (ministack's log shares the stdout).
        outputs = dict(re.findall(r"^([A-Za-z_]+)=(\S+)$", shell.stdout(), re.M))
        assert "API_URL" in outputs and "TableName" in outputs, shell.report()
        yield {"port": port, "api": outputs["API_URL"], "table": outputs["TableName"], "shell": shell}
    finally:
        shell.stop()


def test_try_the_deployed_shape_locally(readme_stack):
    api = readme_stack["api"]
    # local-deploy has already checked this; the stack answers through API Gateway with its table.
    res = httpx.get(f"{api}/health?deep=1", timeout=30)
    assert (res.status_code, res.json()) == (200, {"status": "ok", "store": "ok"})
    res = httpx.post(f"{api}/v1/organizations", json={"name": "README"}, timeout=30,
                     headers={"Authorization": f"Bearer {OPERATOR_KEY}"})
    assert res.status_code == 201, res.text
    assert res.json()["adminKey"]["secret"]


def test_lambda_functions_watch_and_invoke(readme_stack):
    watch_port = free_port()  # instead of cargo lambda's default 9000
    code = substitute(without_pip_installs(block("Lambda functions")), {
        "http://127.0.0.1:4566": f"http://127.0.0.1:{readme_stack['port']}",
        "<TableName output>": readme_stack["table"],
        "-P 9000": f"-P {watch_port}",
        "http://127.0.0.1:9000/": f"http://127.0.0.1:{watch_port}/",
    })
    shell = Shell(code)
    try:
        assert shell.wait(timeout=600) == 0, shell.report()
        lines = [json.loads(line) for line in shell.stdout().splitlines() if line.startswith("{")]
        # The functions' metrics are JSON lines on stdout too (CloudWatch EMF, keyed `_aws`).
        metrics = [line for line in lines if "_aws" in line]
        replies = [line for line in lines if "_aws" not in line]
        assert len(replies) == 4, shell.report()
        assert {name for m in metrics for name in m if name != "_aws"} >= {"OutboxUnpublishedAge", "DeliveriesPending"}
        approvals, intake, expiry, webhooks = replies
        assert (approvals["statusCode"], json.loads(approvals["body"])) == (200, {"status": "ok", "store": "ok"})
        # 401, not 503: the key lookup read the table and found no such key.
        assert (intake["statusCode"], json.loads(intake["body"])["error"]["code"]) == (401, "UNAUTHORIZED")
        assert expiry["approvalsExpired"] == 0 and expiry["outOfTime"] is False, expiry
        assert webhooks == {"batchItemFailures": []}
    finally:
        shell.stop()


def test_the_slack_setup_block_connects_slack_and_links_a_team_and_a_member():
    # The block as written against a local server, with a real team and member for its placeholders.
    sys.path.insert(0, str(ROOT / "tests"))
    from support import local_server  # noqa: E402
    operator = "readme-slack-operator-key-0123456789"
    with local_server("countersign-readme-slack-", {"COUNTERSIGN_ADMIN_KEY": operator}) as (base, _):
        made = httpx.post(f"{base}/v1/organizations", json={"name": "Readme"},
                          headers={"Authorization": f"Bearer {operator}"}).json()
        admin = made["adminKey"]["secret"]
        auth = {"Authorization": f"Bearer {admin}"}
        member = httpx.post(f"{base}/v1/members", json={"name": "Fiona", "email": "fiona@example.test"},
                            headers=auth).json()["id"]
        team = httpx.post(f"{base}/v1/teams", json={"name": "Finance", "members": [member]}, headers=auth).json()["id"]
        setup = Shell(substitute(block("Slack and email: reviewers reached where they work"), {
            "B=http://127.0.0.1:8080": f"B={base}", "ADMIN=csk_your_admin_key": f"ADMIN={admin}",
            "TEAM=team_the_team": f"TEAM={team}", "MEMBER=mem_the_member": f"MEMBER={member}"}))
        assert setup.wait(timeout=60) == 0, setup.report()
        out = setup.stdout()
        assert '"configured":true' in out and "xoxb-your-bot-token" not in out, setup.report()
        assert '"slackChannel":"C0FINANCE01"' in out and '"slackUserId":"U0FIONA001"' in out, setup.report()
        shown = httpx.get(f"{base}/v1/integrations/slack", headers=auth).json()
        assert shown["configured"] is True and shown["interactionsUrl"].endswith(
            f"/integrations/slack/interactions?org={made['id']}"), shown
