"""The deployed stack (infra/local-deploy into ministack) and a verifying webhook receiver."""

import os
import sys

import boto3
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import start_receiver  # noqa: E402


@pytest.fixture(scope="session")
def stack():
    for name in ("API_URL", "AWS_ENDPOINT_URL", "COUNTERSIGN_ADMIN_KEY", "STACK_NAME"):
        assert os.environ.get(name), f"{name} must be set (scripts/test deploys the stack and sets it)"
    cfn = boto3.client("cloudformation", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    outputs = cfn.describe_stacks(StackName=os.environ["STACK_NAME"])["Stacks"][0]["Outputs"]
    return {
        "api": os.environ["API_URL"].rstrip("/"),
        "operator": os.environ["COUNTERSIGN_ADMIN_KEY"],
        "outputs": {o["OutputKey"]: o["OutputValue"] for o in outputs},
        "sqs": boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test"),
    }


@pytest.fixture(scope="session")
def receiver():
    module, server = start_receiver()
    yield module
    server.shutdown()
