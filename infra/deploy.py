"""Deploys infra/template.yaml into an emulator (ministack) at AWS_ENDPOINT_URL.

The function zips built by cargo-lambda are uploaded to the emulator's S3 and each function's
CodeUri is pointed at its zip; the stack is created from the SAM template itself (the emulator
applies the transform with aws-sam-translator). Prints API_URL=<base url> last.
"""

import os
import pathlib
import re
import sys
import time

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


def main():
    stack = os.environ.get("STACK_NAME", "countersign-local")
    zips = pathlib.Path(os.environ.get("LAMBDA_ZIP_DIR", ROOT / "target" / "lambda"))
    bucket = f"{stack}-artifacts"
    s3 = client("s3")
    s3.create_bucket(Bucket=bucket)
    for name in FUNCTIONS:
        s3.upload_file(str(zips / name / "bootstrap.zip"), bucket, f"{name}.zip")
    parameters = {
        "Stage": os.environ.get("STAGE", "local"),
        "OperatorKey": os.environ["COUNTERSIGN_ADMIN_KEY"],
        "AllowPrivateWebhooks": "true",
        "DeletionProtection": "false",
        "WebhookBackoffBaseMs": os.environ.get("WEBHOOK_BACKOFF_BASE_MS", "60000"),
        "WebhookMaxAttempts": os.environ.get("WEBHOOK_MAX_ATTEMPTS", "12"),
        "WebhookQueueVisibilitySeconds": os.environ.get("WEBHOOK_QUEUE_VISIBILITY_SECONDS", "180"),
        "WebhookQueueMaxReceiveCount": os.environ.get("WEBHOOK_QUEUE_MAX_RECEIVE_COUNT", "5"),
    }
    cfn = client("cloudformation")
    cfn.create_stack(
        StackName=stack,
        TemplateBody=template_with_code(bucket),
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
    print(f"API_URL={os.environ['AWS_ENDPOINT_URL'].rstrip('/')}/_aws/execute-api/{api_id}/$default")


if __name__ == "__main__":
    main()
