"""Deploys infra/template.yaml into an emulator (ministack) at AWS_ENDPOINT_URL.

The function zips built by cargo-lambda are uploaded to the emulator's S3 and each function's
CodeUri is pointed at its zip; the stack is created from the SAM template itself (the emulator
applies the transform with aws-sam-translator). For the emulator only, every function also gets
AWS_ENDPOINT_URL in its environment, so the functions reach the emulator however it was started.
Then it checks that the deployed API reaches its table (`GET /health?deep=1`) and exits non-zero
with a clear message if not. Prints API_URL=<base url> last.
"""

import json
import os
import pathlib
import re
import secrets
import sys
import time
import urllib.error
import urllib.request

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "template.yaml"
FUNCTIONS = ["intake", "approvals", "expiry", "webhooks"]


def client(service):
    return boto3.client(
        service,
        endpoint_url=os.environ["AWS_ENDPOINT_URL"],
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    )


def template_with_code(bucket: str) -> str:
    """The template with every function's `CodeUri: ..` pointing at its uploaded zip."""
    text = TEMPLATE.read_text()
    for name in FUNCTIONS:
        pattern = re.compile(rf"(Binary: {name}\n(?:.*\n)*?\s+CodeUri: )\.\.\n")
        text, count = pattern.subn(rf"\1s3://{bucket}/{name}.zip\n", text, count=1)
        if count != 1:
            sys.exit(f"no CodeUri found for function {name}")
    return text


def with_function_endpoint(text: str, endpoint: str) -> str:
    """The template with `AWS_ENDPOINT_URL: <endpoint>` added to every function's environment
    (Globals). ministack passes its own AWS_ENDPOINT_URL to the functions it runs only when it was
    started with one; without it the functions' SDK would call real AWS. Never used for AWS."""
    pattern = re.compile(r"(\nGlobals:\n  Function:\n(?:    .*\n)*?    Environment:\n      Variables:\n)")
    text, count = pattern.subn(lambda m: f"{m.group(1)}        AWS_ENDPOINT_URL: {json.dumps(endpoint)}\n", text, count=1)
    if count != 1:
        sys.exit("no Globals.Function.Environment.Variables found in the template")
    return text


def wait_for_emulator(endpoint: str, wait_seconds: float = 60) -> None:
    """Waits until ministack answers its health check (it may have just been started with `&`)."""
    deadline = time.time() + wait_seconds
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/_ministack/health", timeout=2) as res:
                if res.status == 200:
                    return
        except OSError:
            pass
        if time.time() >= deadline:
            sys.exit(f"local-deploy: no emulator answers at AWS_ENDPOINT_URL={endpoint} (is ministack running there?)")
        time.sleep(0.2)


def check_health(api_url: str, endpoint: str, wait_seconds: float = 20) -> None:
    """`GET <api_url>/health?deep=1` must answer 200: the approvals function reads its table once.
    Retries for `wait_seconds` (first invocations start the functions), then exits with a message."""
    url = f"{api_url}/health?deep=1"
    deadline = time.time() + wait_seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as res:
                status, body = res.status, res.read().decode(errors="replace")
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read().decode(errors="replace")
        except OSError as e:
            status, body = None, str(e)
        if status == 200:
            return
        if time.time() >= deadline:
            answer = f"answered {status}: {body.strip()}" if status else f"failed: {body}"
            sys.exit(
                "local-deploy: the deployed API cannot reach its DynamoDB table.\n"
                f"  GET {url} {answer}\n"
                f"  The functions call the emulator at AWS_ENDPOINT_URL={endpoint} (set in their environment\n"
                "  by infra/deploy.py): check that ministack is still running there and reachable from this\n"
                "  machine; the functions' logs are in ministack's output."
            )
        time.sleep(1)


def main():
    stack = os.environ.get("STACK_NAME", "countersign-local")
    endpoint = os.environ["AWS_ENDPOINT_URL"].rstrip("/")
    zips = pathlib.Path(os.environ.get("LAMBDA_ZIP_DIR", ROOT / "target" / "lambda"))
    bucket = f"{stack}-artifacts"
    wait_for_emulator(endpoint)
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    for name in FUNCTIONS:
        s3.upload_file(str(zips / name / "bootstrap.zip"), bucket, f"{name}.zip")
    parameters = {
        "Stage": os.environ.get("STAGE", "local"),
        "OperatorKey": os.environ["COUNTERSIGN_ADMIN_KEY"],
        # The dashboard's signing secret: the caller's, else a fresh one per deployment.
        "SessionSecret": os.environ.get("COUNTERSIGN_SESSION_SECRET") or secrets.token_urlsafe(32),
        # The audit signing key: the caller's, else a fresh Ed25519 seed per deployment.
        "SigningKey": os.environ.get("COUNTERSIGN_SIGNING_KEY") or secrets.token_urlsafe(32),
        # Seals Slack secrets: the caller's, else a fresh key per deployment.
        "EncryptionKey": os.environ.get("COUNTERSIGN_ENCRYPTION_KEY") or secrets.token_urlsafe(32),
        "AllowPrivateWebhooks": "true",
        "DeletionProtection": "false",
        "WebhookBackoffBaseMs": os.environ.get("WEBHOOK_BACKOFF_BASE_MS", "60000"),
        "WebhookMaxAttempts": os.environ.get("WEBHOOK_MAX_ATTEMPTS", "12"),
        "WebhookQueueVisibilitySeconds": os.environ.get("WEBHOOK_QUEUE_VISIBILITY_SECONDS", "180"),
        "WebhookQueueMaxReceiveCount": os.environ.get("WEBHOOK_QUEUE_MAX_RECEIVE_COUNT", "5"),
    }
    # Slack's Web API and SMTP, when the caller names them (the full-stack test's local peers).
    for env, name in [("COUNTERSIGN_SLACK_API_URL", "SlackApiUrl"), ("COUNTERSIGN_SMTP_URL", "SmtpUrl"),
                      ("COUNTERSIGN_EMAIL_FROM", "EmailFrom")]:
        if os.environ.get(env):
            parameters[name] = os.environ[env]
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName=stack,
        TemplateBody=with_function_endpoint(template_with_code(bucket), endpoint),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.time() + 300
    while True:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = described["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            break
        if "FAILED" in status or "ROLLBACK" in status or time.time() > deadline:
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}" for e in events if "FAILED" in e["ResourceStatus"]]
            sys.exit(f"stack {stack} ended {status}: {reasons}")
        time.sleep(1)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    for key, value in sorted(outputs.items()):
        print(f"{key}={value}")
    api_id = cfn.describe_stack_resource(StackName=stack, LogicalResourceId="HttpApi")["StackResourceDetail"]["PhysicalResourceId"]
    api_url = f"{endpoint}/_aws/execute-api/{api_id}/$default"
    check_health(api_url, endpoint)
    print(f"API_URL={api_url}")


if __name__ == "__main__":
    main()
