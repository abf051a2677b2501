"""A typed Python client generated from `GET /openapi.json` (openapi-python-client) drives the README
walkthrough against the real `countersign` binary: the operator creates an organisation, its
admin key mints an agent key and a reviewer key bound to another person, two wallets, funding, a
policy that holds payments above 1000.00, a held payment, the reviewer's approval, the payment
completed. Every step goes through the generated functions and models only; each answer must parse
into its generated model with no field the document does not describe. Generation must succeed
without warnings, and the walkthrough's operations must return models (not dicts or Any). The
document's examples must validate against their own schemas.

openapi-python-client pins an older httpx than the test venv, so it lives in its own venv
(scripts/test installs tests/api/requirements-generator.txt there; COUNTERSIGN_OPENAPI_GENERATOR
names its executable). The generated package only needs httpx, attrs and python-dateutil, which the
test venv has."""

import datetime
import importlib
import json
import os
import subprocess
import sys
import typing

import attrs
import httpx
import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import local_server  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OPERATOR_KEY = "openapi-client-operator-key-0123456789"
PACKAGE = "countersign_generated_client"

# module (under `api`) -> the model its success answers must parse into
WALKTHROUGH = {
    "keys.post_v1_organizations": "OrganizationCreated",
    "keys.post_v1_api_keys": "ApiKey",
    "people.post_v1_members": "Member",
    "wallets.post_v1_wallets": "Wallet",
    "wallets.post_v1_wallets_id_fund": "Funding",
    "wallets.get_v1_wallets_id_balance": "Balance",
    "policies.post_v1_wallets_id_policies": "Policy",
    "payments.post_v1_payments": "Payment",
    "payments.get_v1_payments_id": "Payment",
    "approvals.get_v1_approvals": "ApprovalPage",
    "approvals.post_v1_approvals_id_approve": "DecidedApproval",
}


def generator():
    path = os.environ.get("COUNTERSIGN_OPENAPI_GENERATOR") or os.path.join(
        ROOT, ".tools", "gen-venv", "bin", "openapi-python-client")
    assert os.path.exists(path), f"openapi-python-client not installed at {path} (scripts/test installs it)"
    return path


def generate(document_path, out_dir):
    """Runs the generator on the document; returns the imported package."""
    tool = generator()
    env = dict(os.environ, PATH=os.path.dirname(tool) + os.pathsep + os.environ.get("PATH", ""))
    target = os.path.join(out_dir, PACKAGE)
    # The audit export is JSON Lines, a media type the generator does not know: read it as text
    # (the README gives the same config).
    config = os.path.join(out_dir, "config.yml")
    with open(config, "w") as f:
        f.write("content_type_overrides:\n  application/x-ndjson: text/plain\n")
    run = subprocess.run(
        [tool, "generate", "--path", document_path, "--meta", "none", "--output-path", target, "--config", config],
        capture_output=True, text=True, timeout=300, env=env, cwd=out_dir)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    # It generates what it can and warns about the rest (a skipped operation or schema).
    assert "Warning" not in output and "Unable to" not in output, output
    sys.path.insert(0, out_dir)
    return importlib.import_module(PACKAGE)


def operation(package, name):
    return importlib.import_module(f"{package.__name__}.api.{name}")


def answer_models(package, module):
    """The classes `sync` may return, from its type hints."""
    hints = typing.get_type_hints(module.sync)
    ret = hints["return"]
    return [t for t in (typing.get_args(ret) or (ret,)) if t is not type(None)]


def assert_fully_described(model, where="body"):
    """A parsed answer kept nothing in `additional_properties` that the schema lacks (free-form
    objects such as `metadata`, which declare no fields, aside)."""
    if isinstance(model, list):
        for i, item in enumerate(model):
            assert_fully_described(item, f"{where}[{i}]")
        return
    if not attrs.has(type(model)):
        return
    declared = [f.name for f in attrs.fields(type(model)) if f.name != "additional_properties"]
    if declared:
        assert model.additional_properties == {}, f"{where}: undescribed fields {model.additional_properties}"
    for name in declared:
        assert_fully_described(getattr(model, name), f"{where}.{name}")


def test_the_generated_client_runs_the_walkthrough(tmp_path):
    with local_server("countersign-openapi-client-", {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY}) as (base, _):
        document = httpx.get(f"{base}/openapi.json")
        assert document.status_code == 200
        document_path = tmp_path / "openapi.json"
        document_path.write_text(document.text)
        cs = generate(str(document_path), str(tmp_path))
        models = importlib.import_module(f"{cs.__name__}.models")
        api = {name: operation(cs, name) for name in WALKTHROUGH}

        # The walkthrough's operations answer typed models, not dicts or Any.
        for name, model_name in WALKTHROUGH.items():
            returned = answer_models(cs, api[name])
            assert typing.Any not in returned and dict not in returned, (name, returned)
            assert getattr(models, model_name) in returned, (name, model_name, returned)
            assert all(attrs.has(t) for t in returned), (name, returned)

        def parsed(response, status, model_name):
            assert response.status_code == status, (response.status_code, response.content)
            model = response.parsed
            assert isinstance(model, getattr(models, model_name)), type(model)
            assert_fully_described(model, model_name)
            return model

        def client(token):
            return cs.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

        operator = client(OPERATOR_KEY)

        # 1. The operator creates an organisation; its first admin key is shown once.
        org = parsed(api["keys.post_v1_organizations"].sync_detailed(
            client=operator, body=models.OrganizationBody(name="Acme")), 201, "OrganizationCreated")
        assert org.name == "Acme" and org.id.startswith("org_")
        assert org.admin_key.permissions == [models.Permission.ADMIN]
        admin = client(org.admin_key.secret)

        # 2. Keys for the agent (pays) and for a reviewer (approves). The reviewer's key is bound
        #    to a member, Fiona: a person other than the agent's key, which the admin minted
        #    unbound (a person of its own). The submitter's person may never approve.
        fiona = parsed(api["people.post_v1_members"].sync_detailed(
            client=admin, body=models.MemberBody(name="Fiona", email="fiona@acme.example")), 201, "Member")
        agent_key = parsed(api["keys.post_v1_api_keys"].sync_detailed(client=admin, body=models.ApiKeyBody(
            name="agent", permissions=["payments:write", "payments:read"])), 201, "ApiKey")
        reviewer_key = parsed(api["keys.post_v1_api_keys"].sync_detailed(client=admin, body=models.ApiKeyBody(
            name="reviewer", permissions=["approvals:read", "approvals:write"], member_id=fiona.id)), 201, "ApiKey")
        assert reviewer_key.member_id == fiona.id and agent_key.member_id is None
        assert agent_key.secret and reviewer_key.secret
        agent, reviewer = client(agent_key.secret), client(reviewer_key.secret)

        # 3. Two wallets; fund the agent's.
        payer = parsed(api["wallets.post_v1_wallets"].sync_detailed(
            client=admin, body=models.WalletBody(name="agent")), 201, "Wallet")
        payee = parsed(api["wallets.post_v1_wallets"].sync_detailed(
            client=admin, body=models.WalletBody(name="ACME Corp")), 201, "Wallet")
        assert payer.balance == "0.00" and payer.currency == "USD"
        funded = parsed(api["wallets.post_v1_wallets_id_fund"].sync_detailed(
            id=payer.id, client=admin, body=models.FundBody(amount="10000.00")), 201, "Funding")
        assert funded.new_balance == "10000.00" and funded.wallet_id == payer.id

        # 4. A policy: payments above 1000.00 need a human.
        policy = parsed(api["policies.post_v1_wallets_id_policies"].sync_detailed(
            id=payer.id, client=admin, body=models.PolicyBody(
                name="Large payment review", max_transaction_amount="1000.00", require_human_approval=True)),
            201, "Policy")
        assert policy.max_transaction_amount == "1000.00" and policy.wallet_id == payer.id

        # 5. A small payment executes at once (201); a large one is held (202) with an approvalId.
        pay = api["payments.post_v1_payments"]
        small = parsed(pay.sync_detailed(client=agent, body=models.PaymentBody(
            from_=payer.id, to=payee.id, amount="10.00")), 201, "Payment")
        assert small.status == models.PaymentStatus.COMPLETED and small.transaction_id
        held = parsed(pay.sync_detailed(client=agent, body=models.PaymentBody(
            from_=payer.id, to=payee.id, amount="5000.00", description="Large vendor payment",
            idempotency_key="invoice-1042")), 202, "Payment")
        assert held.status == models.PaymentStatus.PENDING_APPROVAL
        assert held.decision.outcome == models.Outcome.HOLD and held.decision.rule == "maxTransactionAmount"
        assert held.approval_id.startswith("apr_") and held.amount == "5000.00" and held.currency == "USD"

        # 6. The reviewer lists pending approvals and approves; the payment executes.
        pending = parsed(api["approvals.get_v1_approvals"].sync_detailed(
            client=reviewer, status="PENDING"), 200, "ApprovalPage")
        assert [a.id for a in pending.data] == [held.approval_id] and pending.has_more is False
        assert pending.data[0].status == models.ApprovalStatus.PENDING
        assert pending.data[0].transaction_details.amount == "5000.00"
        approve = api["approvals.post_v1_approvals_id_approve"]
        decided = parsed(approve.sync_detailed(
            id=held.approval_id, client=reviewer, body=models.ApprovalDecideBody(note="vendor verified")),
            200, "DecidedApproval")
        assert decided.status == models.ApprovalStatus.APPROVED
        assert decided.payment.status == models.PaymentStatus.COMPLETED and decided.payment.id == held.id
        assert [(v.person, v.decision) for v in decided.votes] == [(fiona.id, models.VoteDecision.APPROVE)]
        payment = parsed(api["payments.get_v1_payments_id"].sync_detailed(
            id=held.id, client=agent), 200, "Payment")
        assert payment.status == models.PaymentStatus.COMPLETED and payment.transaction_id
        balance = parsed(api["wallets.get_v1_wallets_id_balance"].sync_detailed(
            id=payer.id, client=admin), 200, "Balance")
        assert balance.balance == "4990.00"

        # 7. Approving again is refused, as the typed error envelope.
        again = approve.sync_detailed(id=held.approval_id, client=reviewer, body=models.ApprovalDecideBody())
        assert again.status_code == 409 and isinstance(again.parsed, models.ErrorBody), again.content


def properties(doc, ref):
    """The property names of the schema at `ref` (through `allOf`)."""
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    names = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        names |= properties(doc, part["$ref"]) if "$ref" in part else set(part.get("properties", {}))
    return names


def test_the_examples_match_their_schemas():
    """Every `example` on a request or response body validates against that body's schema."""
    with local_server("countersign-openapi-examples-", {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY}) as (base, _):
        doc = httpx.get(f"{base}/openapi.json").json()
    registry = Registry().with_resource(
        "urn:countersign", Resource.from_contents(doc, default_specification=DRAFT202012))
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            bodies = [("request", op.get("requestBody", {}))] + list(op["responses"].items())
            for what, body in bodies:
                content = body.get("content", {}).get("application/json", {})
                if "example" not in content:
                    continue
                schema = content["schema"]
                target = schema["$ref"] if "$ref" in schema else None
                assert target, (method, path, what)
                validator = jsonschema.Draft202012Validator(
                    {"$ref": "urn:countersign" + target}, registry=registry,
                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
                errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(content["example"])]
                assert not errors, (method, path, what, errors)
                # Response schemas allow more fields; an example's must all be described.
                described = properties(doc, target)
                assert set(content["example"]) <= described, (method, path, what, set(content["example"]) - described)
                checked += 1
    assert checked >= 15, checked


def strict(doc):
    """The document with undescribed fields refused: `unevaluatedProperties: false` on every
    described object. A schema flattened into another (`allOf`, e.g. `Approval` in
    `DecidedApproval`) keeps its open form there, and everywhere else is referenced through a
    closed copy (`ApprovalStrict`). Free-form objects (`metadata`, `details`, `event`) stay open."""
    schemas = {name: dict(schema) for name, schema in doc["components"]["schemas"].items()}
    flattened = {part["$ref"].rsplit("/", 1)[-1]
                 for schema in schemas.values() for part in schema.get("allOf", []) if "$ref" in part}
    for name, schema in schemas.items():
        if name not in flattened and ("properties" in schema or "allOf" in schema):
            schema["unevaluatedProperties"] = False
    for name in flattened:
        schemas[name + "Strict"] = {"allOf": [{"$ref": f"#/components/schemas/{name}"}],
                                    "unevaluatedProperties": False}

    def rewrite(node, part_of_all_of=False):
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key == "$ref" and not part_of_all_of and value.rsplit("/", 1)[-1] in flattened:
                out[key] = value + "Strict"
            elif key == "allOf":
                out[key] = [rewrite(part, part_of_all_of=True) for part in value]
            else:
                out[key] = rewrite(value)
        return out

    return rewrite(dict(doc, components=dict(doc["components"], schemas=schemas)))


def test_a_tour_of_the_api_answers_exactly_what_the_document_describes():
    """Most operations once, with real data (a review, a refund, a webhook, people and rules):
    each success answer validates against its response schema with no undescribed field."""
    # Slack's Web API at a closed local port: the tour connects Slack last, and reaches nothing.
    env = {"COUNTERSIGN_ADMIN_KEY": OPERATOR_KEY, "COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS": "true",
           "COUNTERSIGN_SLACK_API_URL": "http://127.0.0.1:9/api"}
    with local_server("countersign-openapi-tour-", env) as (base, _):
        doc = strict(httpx.get(f"{base}/openapi.json").json())
        registry = Registry().with_resource(
            "urn:countersign", Resource.from_contents(doc, default_specification=DRAFT202012))
        seen = set()

        def call(method, path, key, template, status, body=None, params=None):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            response = httpx.request(method, f"{base}{path}", json=body, params=params, timeout=30, headers=headers)
            assert response.status_code == status, (method, path, response.status_code, response.text)
            pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in [
                "#", "paths", template, method.lower(), "responses", str(status), "content", "application/json", "schema"])
            validator = jsonschema.Draft202012Validator(
                {"$ref": "urn:countersign" + pointer}, registry=registry,
                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(response.json())]
            assert not errors, (method, template, status, errors, response.text[:2000])
            seen.add((method.lower(), template))
            return response.json()

        call("GET", "/health", "", "/health", 200)
        org = call("POST", "/v1/organizations", OPERATOR_KEY, "/v1/organizations", 201, {"name": "Tour"})
        admin = org["adminKey"]["secret"]
        member = call("POST", "/v1/members", admin, "/v1/members", 201, {"name": "Rita", "email": "rita@tour.example"})
        call("GET", "/v1/members", admin, "/v1/members", 200)
        team = call("POST", "/v1/teams", admin, "/v1/teams", 201, {"name": "Desk", "members": [member["id"]]})
        call("GET", "/v1/teams", admin, "/v1/teams", 200)
        call("PATCH", f"/v1/teams/{team['id']}", admin, "/v1/teams/{id}", 200, {"name": "Finance desk"})
        call("GET", "/v1/settings", admin, "/v1/settings", 200)
        call("PATCH", "/v1/settings", admin, "/v1/settings", 200, {"defaultTeam": team["id"]})
        rule = call("POST", "/v1/routing-rules", admin, "/v1/routing-rules", 201, {
            "name": "risky", "priority": 5, "conditions": {"riskScore": {"operator": ">", "value": 70}},
            "assignToTeam": team["id"]})
        call("GET", "/v1/routing-rules", admin, "/v1/routing-rules", 200)
        call("PATCH", f"/v1/routing-rules/{rule['id']}", admin, "/v1/routing-rules/{id}", 200, {"priority": 6})
        other = call("POST", "/routing-rules", admin, "/routing-rules", 201, {
            "name": "critical", "conditions": {"urgency": {"operator": "=", "value": "critical"}},
            "assign_to_team_id": team["id"]})
        call("GET", "/routing-rules", admin, "/routing-rules", 200)
        call("PATCH", f"/routing-rules/{other['id']}", admin, "/routing-rules/{id}", 200, {"is_active": False})
        call("DELETE", f"/routing-rules/{other['id']}", admin, "/routing-rules/{id}", 200)
        call("DELETE", f"/v1/routing-rules/{rule['id']}", admin, "/v1/routing-rules/{id}", 200)

        agent = call("POST", "/v1/api-keys", admin, "/v1/api-keys", 201, {
            "name": "agent", "permissions": ["payments:write", "payments:read", "refunds:write", "reviews:write"]})
        rita = call("POST", "/v1/api-keys", admin, "/v1/api-keys", 201, {
            "name": "rita", "permissions": ["approvals:read", "approvals:write"], "memberId": member["id"]})
        call("GET", "/v1/api-keys", admin, "/v1/api-keys", 200)
        call("GET", f"/v1/api-keys/{agent['id']}", admin, "/v1/api-keys/{id}", 200)
        call("PATCH", f"/v1/api-keys/{agent['id']}", admin, "/v1/api-keys/{id}", 200, {"name": "procurement agent"})
        spare = call("POST", "/v1/api-keys", admin, "/v1/api-keys", 201, {"name": "spare", "permissions": ["audit:read"]})
        call("DELETE", f"/v1/api-keys/{spare['id']}", admin, "/v1/api-keys/{id}", 200)

        payer = call("POST", "/v1/wallets", admin, "/v1/wallets", 201, {"name": "payer", "metadata": {"a": 1}})
        payee = call("POST", "/v1/wallets", admin, "/v1/wallets", 201, {"name": "payee", "agentName": "bot"})
        call("GET", "/v1/wallets", admin, "/v1/wallets", 200)
        call("GET", f"/v1/wallets/{payer['id']}", admin, "/v1/wallets/{id}", 200)
        call("PATCH", f"/v1/wallets/{payer['id']}", admin, "/v1/wallets/{id}", 200, {"agentName": "buyer"})
        call("POST", f"/v1/wallets/{payer['id']}/fund", admin, "/v1/wallets/{id}/fund", 201, {"amount": "900.00"})
        call("GET", f"/v1/wallets/{payer['id']}/balance", admin, "/v1/wallets/{id}/balance", 200)
        policy = call("POST", f"/v1/wallets/{payer['id']}/policies", admin, "/v1/wallets/{id}/policies", 201, {
            "name": "review", "requireReviewAbove": "100.00", "appliesTo": ["payment", "refund"],
            "maxPaymentsPerHour": 50, "approvalTtlSeconds": 3600})
        call("GET", f"/v1/wallets/{payer['id']}/policies", admin, "/v1/wallets/{id}/policies", 200)
        call("GET", f"/v1/wallets/{payer['id']}/policies/{policy['id']}", admin, "/v1/wallets/{id}/policies/{pid}", 200)
        call("PATCH", f"/v1/wallets/{payer['id']}/policies/{policy['id']}", admin,
             "/v1/wallets/{id}/policies/{pid}", 200, {"riskScoreThreshold": 90})
        call("POST", f"/v1/wallets/{payer['id']}/policies/evaluate", admin, "/v1/wallets/{id}/policies/evaluate",
             200, {"amount": "500.00", "riskScore": 12})
        # A shadow policy: never enforced, recorded on each payment (`shadowDecisions`), counted.
        shadow = call("POST", f"/v1/wallets/{payer['id']}/policies", admin, "/v1/wallets/{id}/policies", 201, {
            "name": "ceiling", "mode": "shadow", "maxTransactionAmount": "30.00"})
        assert shadow["mode"] == "shadow", shadow

        # Payments: executed, held then modified, held then rejected, held then escalated.
        pay = {"from": payer["id"], "to": payee["id"], "riskScore": 10, "confidenceScore": 0.8,
               "urgency": "high", "agentReasoning": "renewal", "metadata": {"po": "7"}}
        executed = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 201, dict(pay, amount="50.00"))
        held = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 202, dict(pay, amount="200.00"))
        assert [d["outcome"] for d in executed["shadowDecisions"] + held["shadowDecisions"]] == ["DENY", "DENY"], held
        stats = call("GET", f"/v1/wallets/{payer['id']}/policies/{shadow['id']}/shadow-stats", admin,
                     "/v1/wallets/{id}/policies/{pid}/shadow-stats", 200)
        assert (stats["evaluated"], stats["wouldHave"]["denied"], stats["differed"]) == (2, 2, 2), stats
        assert held["policyVersions"] == [{"policyId": policy["id"], "version": 2}], held
        call("GET", "/v1/payments", admin, "/v1/payments", 200)
        call("GET", f"/v1/payments/{executed['id']}", admin, "/v1/payments/{id}", 200)
        call("GET", "/v1/approvals", rita["secret"], "/v1/approvals", 200)
        call("GET", f"/v1/approvals/{held['approvalId']}", rita["secret"], "/v1/approvals/{id}", 200)
        call("GET", "/reviews", rita["secret"], "/reviews", 200)
        call("GET", f"/reviews/{held['approvalId']}", rita["secret"], "/reviews/{id}", 200)
        call("POST", f"/v1/approvals/{held['approvalId']}/modify", rita["secret"], "/v1/approvals/{id}/modify", 200,
             {"amount": "150.00", "note": "capped"})
        held = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 202, dict(pay, amount="120.00"))
        call("POST", f"/v1/approvals/{held['approvalId']}/reject", rita["secret"], "/v1/approvals/{id}/reject", 200,
             {"reason": "duplicate"})
        # Backtest: a draft cap replayed over the payments just made (50.00 executed, 200.00 and
        # 120.00 held, above the policy's 100.00), beside the current policies; written nowhere.
        since = executed["createdAt"]
        until = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).isoformat()
        tried = call("POST", f"/v1/wallets/{payer['id']}/policies/backtest", admin,
                     "/v1/wallets/{id}/policies/backtest", 200,
                     {"policy": {"name": "cap", "maxTransactionAmount": "150.00"}, "since": since, "until": until})
        assert tried["payments"] == 3 and tried["after"]["denied"] == 1, tried
        assert tried["changed"][0]["rule"] == "maxTransactionAmount" and tried["changedTotal"] == 1, tried
        # Comments (the reviewer, then the requesting agent) and a bulk decision over two held payments.
        call("POST", f"/v1/approvals/{held['approvalId']}/comments", rita["secret"],
             "/v1/approvals/{id}/comments", 201, {"body": "Why twice this month?"})
        call("POST", f"/v1/approvals/{held['approvalId']}/comments", agent["secret"],
             "/v1/approvals/{id}/comments", 201, {"body": "The first one was rejected as a duplicate."})
        listed = call("GET", f"/v1/approvals/{held['approvalId']}/comments", agent["secret"],
                      "/v1/approvals/{id}/comments", 200, params={"limit": 1})
        assert listed["hasMore"] is True and listed["data"][0]["body"] == "Why twice this month?", listed
        bulk = [call("POST", "/v1/payments", agent["secret"], "/v1/payments", 202, dict(pay, amount=amount))
                for amount in ["101.00", "102.00"]]
        decided = call("POST", "/v1/approvals/bulk", rita["secret"], "/v1/approvals/bulk", 200, {
            "decision": "reject", "note": "batch", "ids": [bulk[0]["approvalId"], "apr_01J00000000000000000000000",
                                                           bulk[1]["approvalId"]]})
        assert [r["ok"] for r in decided["results"]] == [True, False, True], decided
        assert decided["results"][1]["error"]["code"] == "APPROVAL_NOT_FOUND", decided
        held = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 202, dict(pay, amount="130.00"))
        call("POST", f"/reviews/{held['approvalId']}/decide", rita["secret"], "/reviews/{id}/decide", 200,
             {"decision_type": "approve", "notes": "ok"})
        call("GET", f"/reviews/{held['approvalId']}/decision", rita["secret"], "/reviews/{id}/decision", 200)

        # Agent controls: approving with alwaysAllow (the rule in the answer), the wallet's allow
        # rules (one deleted), a budgeted key and its budgets, a key and a wallet frozen and unfrozen.
        allowing = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 202, dict(pay, amount="110.00"))
        allowed = call("POST", f"/v1/approvals/{allowing['approvalId']}/approve", rita["secret"],
                       "/v1/approvals/{id}/approve", 200,
                       {"note": "a known vendor", "alwaysAllow": {"maxAmount": "150.00", "expiresInDays": 90}})
        assert allowed["allowRule"]["maxAmount"] == "150.00", allowed
        rules = call("GET", f"/v1/wallets/{payer['id']}/allow-rules", admin, "/v1/wallets/{id}/allow-rules", 200)
        assert [r["hits"] for r in rules["data"]] == [0], rules
        call("DELETE", f"/v1/wallets/{payer['id']}/allow-rules/{rules['data'][0]['id']}", admin,
             "/v1/wallets/{id}/allow-rules/{rid}", 200)
        budgeted = call("POST", "/v1/api-keys", admin, "/v1/api-keys", 201, {
            "name": "budgeted", "permissions": ["payments:write"],
            "budgets": [{"window": "week", "limit": "500.00", "currency": "USD", "onExceed": "deny"}]})
        call("GET", f"/v1/api-keys/{budgeted['id']}/budgets", budgeted["secret"], "/v1/api-keys/{id}/budgets", 200)
        call("POST", f"/v1/api-keys/{budgeted['id']}/freeze", admin, "/v1/api-keys/{id}/freeze", 200)
        call("POST", f"/v1/api-keys/{budgeted['id']}/unfreeze", admin, "/v1/api-keys/{id}/unfreeze", 200)
        call("POST", f"/v1/wallets/{payee['id']}/freeze", admin, "/v1/wallets/{id}/freeze", 200)
        call("POST", f"/v1/wallets/{payee['id']}/unfreeze", admin, "/v1/wallets/{id}/unfreeze", 200)

        # Refunds (the payee's policies decide them): executed, then held.
        call("POST", f"/v1/wallets/{payee['id']}/policies", admin, "/v1/wallets/{id}/policies", 201,
             {"name": "refund watch", "mode": "shadow", "appliesTo": ["refund"], "autoRejectAbove": "1.00"})
        refund = call("POST", "/v1/refunds", agent["secret"], "/v1/refunds", 201,
                      {"paymentId": executed["id"], "amount": "5.00", "reason": "partial"})
        assert refund["shadowDecisions"][0]["rule"] == "autoRejectAbove", refund
        call("POST", f"/v1/wallets/{payee['id']}/policies", admin, "/v1/wallets/{id}/policies", 201,
             {"name": "refunds need a human", "requireHumanApproval": True, "appliesTo": ["refund"]})
        held_refund = call("POST", "/v1/refunds", agent["secret"], "/v1/refunds", 202,
                           {"paymentId": held["id"], "reason": "cancelled"})
        call("GET", "/v1/refunds", admin, "/v1/refunds", 200)
        call("GET", f"/v1/refunds/{held_refund['id']}", admin, "/v1/refunds/{id}", 200)
        call("POST", f"/v1/approvals/{held_refund['approvalId']}/approve", rita["secret"],
             "/v1/approvals/{id}/approve", 200, {"note": "refund ok"})
        call("GET", f"/v1/wallets/{payer['id']}/transactions", admin, "/v1/wallets/{id}/transactions", 200)

        # Reviews of other actions: created, escalated, decided, its decision read.
        review = call("POST", "/reviews", agent["secret"], "/reviews", 201, {
            "task_type": "email", "proposed_action": "send the quarterly report", "urgency": "low",
            "confidence_score": 0.5, "metadata": {"to": "board"}, "framework": "custom"})
        call("GET", f"/reviews/{review['id']}/decision", agent["secret"], "/reviews/{id}/decision", 200)
        second = call("POST", "/v1/teams", admin, "/v1/teams", 201, {"name": "Managers", "members": [member["id"]]})
        call("POST", f"/reviews/{review['id']}/escalate", admin, "/reviews/{id}/escalate", 200,
             {"to_team_id": second["id"], "notes": "needs a manager"})
        call("POST", f"/reviews/{review['id']}/decide", rita["secret"], "/reviews/{id}/decide", 200,
             {"decision_type": "modify", "modified_action": "send it next week"})
        held = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 202, dict(pay, amount="110.00"))
        call("POST", f"/v1/approvals/{held['approvalId']}/escalate", admin, "/v1/approvals/{id}/escalate", 200,
             {"toTeam": second["id"], "note": "over the desk's limit"})

        # Review statistics over the decisions above: Rita's modify, reject, two bulk rejects, the
        # /reviews approval, the alwaysAllow approval and the refund's; the admin's escalation.
        stats = call("GET", "/v1/stats/approvals", rita["secret"], "/v1/stats/approvals", 200,
                     params={"groupBy": "reviewer"})
        ritas = next(g for g in stats["groups"] if g["key"] == member["id"])
        assert (ritas["name"], ritas["decided"], ritas["approved"], ritas["rejected"], ritas["modified"],
                ritas["rubberStamp"]) == ("Rita", 7, 3, 3, 1, False), stats
        assert stats["groupBy"] == "reviewer", stats
        by_agent = call("GET", "/v1/stats/approvals", rita["secret"], "/v1/stats/approvals", 200,
                        params={"groupBy": "agent", "since": "2020-01-01", "until": "2020-03-01"})
        assert by_agent["groups"] == [], by_agent

        # Webhooks (a local target: allowed by COUNTERSIGN_ALLOW_PRIVATE_WEBHOOKS).
        hook = call("POST", "/v1/webhooks", admin, "/v1/webhooks", 201,
                    {"url": "http://127.0.0.1:9/hook", "events": ["*"]})
        call("GET", "/v1/webhooks", admin, "/v1/webhooks", 200)
        call("GET", f"/v1/webhooks/{hook['id']}", admin, "/v1/webhooks/{id}", 200)
        call("PATCH", f"/v1/webhooks/{hook['id']}", admin, "/v1/webhooks/{id}", 200, {"enabled": True})
        call("POST", f"/v1/webhooks/{hook['id']}/test", admin, "/v1/webhooks/{id}/test", 200)
        call("POST", "/v1/payments", agent["secret"], "/v1/payments", 201, dict(pay, amount="20.00"))
        call("GET", f"/v1/webhooks/{hook['id']}/deliveries", admin, "/v1/webhooks/{id}/deliveries", 200)
        call("GET", "/v1/webhooks/dlq", admin, "/v1/webhooks/dlq", 200)
        call("DELETE", f"/v1/webhooks/{hook['id']}", admin, "/v1/webhooks/{id}", 200)

        call("GET", "/v1/audit-logs", admin, "/v1/audit-logs", 200)
        keys = call("GET", "/.well-known/countersign-keys", "", "/.well-known/countersign-keys", 200)
        assert keys["keys"][0]["crv"] == "Ed25519", keys
        paid = call("POST", "/v1/payments", agent["secret"], "/v1/payments", 201, dict(pay, amount="21.00"))
        receipt = call("GET", f"/v1/payments/{paid['id']}/receipt", admin, "/v1/payments/{id}/receipt", 200)
        assert receipt["payment"]["id"] == paid["id"], receipt
        # The export is JSON Lines (described as text): each line one JSON object.
        export = httpx.get(f"{base}/v1/audit-logs/export", headers={"Authorization": f"Bearer {admin}"}, timeout=30)
        described = doc["paths"]["/v1/audit-logs/export"]["get"]["responses"]["200"]["content"]
        assert export.status_code == 200 and export.headers["content-type"] in described, export.headers
        assert all(isinstance(json.loads(line), dict) for line in export.text.splitlines()), export.text[:500]
        seen.add(("get", "/v1/audit-logs/export"))
        call("DELETE", f"/v1/wallets/{payer['id']}/policies/{policy['id']}", admin,
             "/v1/wallets/{id}/policies/{pid}", 200)
        # Its versions outlive it: created, changed once, deleted.
        versions = call("GET", f"/v1/wallets/{payer['id']}/policies/{policy['id']}/versions", admin,
                        "/v1/wallets/{id}/policies/{pid}/versions", 200, params={"limit": 10})
        assert [(v["version"], v["deleted"]) for v in versions["data"]] == [(1, False), (2, False), (3, True)], versions
        last = call("GET", f"/v1/wallets/{payer['id']}/policies/{policy['id']}/versions/3", admin,
                    "/v1/wallets/{id}/policies/{pid}/versions/{n}", 200)
        assert last["deleted"] is True and last["policy"]["riskScoreThreshold"] == 90, last

        # Four-eyes on policy changes: on, a policy change and a routing-rule change wait (202);
        # another admin approves one, the requester withdraws the other; turning it off waits too.
        call("PATCH", "/v1/settings", admin, "/v1/settings", 200, {"policyChangesNeedApproval": True})
        # Another human: an admin key bound to Rita (an unbound key the admin mints answers for the admin).
        second = call("POST", "/v1/api-keys", admin, "/v1/api-keys", 201,
                      {"name": "second admin", "permissions": ["admin"], "memberId": member["id"]})
        waiting = call("POST", f"/v1/wallets/{payer['id']}/policies", admin, "/v1/wallets/{id}/policies", 202,
                       {"name": "Four-eyes", "maxTransactionAmount": "900.00"})
        assert waiting["status"] == "pending" and waiting["changeId"].startswith("chg_"), waiting
        listed = call("GET", "/v1/policy-changes", admin, "/v1/policy-changes", 200, params={"status": "pending"})
        assert [c["id"] for c in listed["data"]] == [waiting["changeId"]], listed
        call("GET", f"/v1/policy-changes/{waiting['changeId']}", admin, "/v1/policy-changes/{id}", 200)
        applied = call("POST", f"/v1/policy-changes/{waiting['changeId']}/approve", second["secret"],
                       "/v1/policy-changes/{id}/approve", 200, {})
        assert applied["status"] == "applied" and applied["result"].startswith("pol_"), applied
        call("PATCH", f"/v1/wallets/{payer['id']}/policies/{applied['result']}", admin,
             "/v1/wallets/{id}/policies/{pid}", 202, {"enabled": False})
        call("DELETE", f"/v1/wallets/{payer['id']}/policies/{applied['result']}", admin,
             "/v1/wallets/{id}/policies/{pid}", 202)
        for path, template in [("/v1/routing-rules", "/v1/routing-rules"), ("/routing-rules", "/routing-rules")]:
            rule_change = call("POST", path, admin, template, 202,
                               {"name": "Four-eyes rule", "conditions": {}, "assignToTeam": team["id"]})
            made = call("POST", f"/v1/policy-changes/{rule_change['changeId']}/approve", second["secret"],
                        "/v1/policy-changes/{id}/approve", 200)
            call("PATCH", f"{path}/{made['result']}", admin, template + "/{id}", 202, {"priority": 1})
            call("DELETE", f"{path}/{made['result']}", admin, template + "/{id}", 202)
        pending = call("GET", "/v1/policy-changes", admin, "/v1/policy-changes", 200, params={"status": "pending"})
        for change in pending["data"]:
            withdrawn = call("POST", f"/v1/policy-changes/{change['id']}/reject", admin,
                             "/v1/policy-changes/{id}/reject", 200, {"reason": "tour"})
            assert withdrawn["status"] == "rejected", withdrawn
        off = call("PATCH", "/v1/settings", admin, "/v1/settings", 202, {"policyChangesNeedApproval": False})
        call("POST", f"/v1/policy-changes/{off['changeId']}/approve", second["secret"], "/v1/policy-changes/{id}/approve", 200)

        # Slack and email: the integration, a member's Slack user, the notification log, and Slack's
        # click endpoint, unsigned here (the error envelope; signed clicks: tests/notify).
        slack = call("PUT", "/v1/integrations/slack", admin, "/v1/integrations/slack", 200, {
            "botToken": "xoxb-tour-token", "signingSecret": "0123456789abcdef0123456789abcdef",
            "defaultChannel": "C0TOUR"})
        assert slack["configured"] is True and "xoxb" not in json.dumps(slack), slack
        call("GET", "/v1/integrations/slack", admin, "/v1/integrations/slack", 200)
        linked = call("PATCH", f"/v1/members/{member['id']}", admin, "/v1/members/{id}", 200, {"slackUserId": "U0TOUR"})
        assert linked["slackUserId"] == "U0TOUR", linked
        call("GET", "/v1/notifications/deliveries", admin, "/v1/notifications/deliveries", 200)
        unsigned = httpx.post(f"{base}/integrations/slack/interactions", params={"org": org["id"]},
                              content="payload=%7B%7D", timeout=30,
                              headers={"content-type": "application/x-www-form-urlencoded"})
        envelope = jsonschema.Draft202012Validator(
            {"$ref": "urn:countersign#/components/schemas/ErrorBody"}, registry=registry)
        errors = [e.message for e in envelope.iter_errors(unsigned.json())]
        assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "UNAUTHORIZED", unsigned.text
        assert not errors, errors
        seen.add(("post", "/integrations/slack/interactions"))
        call("DELETE", "/v1/integrations/slack", admin, "/v1/integrations/slack", 200)

        # Every JSON operation but the dead-letter retry and discard (a dead letter takes the
        # delivery's whole retry schedule) and this document itself.
        left = {(m, p) for p, item in doc["paths"].items() for m in item} - seen
        assert left == {("post", "/v1/webhooks/dlq/{id}/retry"), ("post", "/v1/webhooks/dlq/{id}/discard"),
                        ("get", "/openapi.json")}, left
