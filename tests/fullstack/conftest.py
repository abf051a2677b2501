"""The deployed stack (infra/local-deploy into ministack) and a verifying webhook receiver."""

import importlib.util
import os
import pathlib
import threading
from http.server import ThreadingHTTPServer

import boto3
import pytest

RECEIVER = pathlib.Path(__file__).resolve().parents[1] / "receiver" / "receiver.py"


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
    spec = importlib.util.spec_from_file_location("receiver", RECEIVER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    server = ThreadingHTTPServer(("127.0.0.1", 0), module.Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    module.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield module
    server.shutdown()
