"""infra/deploy.py's emulator-only pieces: the functions' endpoint and the deep health check that
makes infra/local-deploy fail clearly when the deployed API cannot reach its table."""

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from readme_blocks import ROOT

spec = importlib.util.spec_from_file_location("deploy", ROOT / "infra" / "deploy.py")
deploy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(deploy)


def test_every_function_gets_the_emulator_endpoint():
    text = deploy.with_function_endpoint(deploy.template_with_code("bucket"), "http://127.0.0.1:4566")
    globals_env = text[text.index("\nGlobals:"):text.index("\nResources:")]
    assert '        AWS_ENDPOINT_URL: "http://127.0.0.1:4566"\n' in globals_env
    assert text.count("AWS_ENDPOINT_URL") == 1
    assert "AWS_ENDPOINT_URL" not in (ROOT / "infra" / "template.yaml").read_text(), "never in the AWS template"


class Api:
    """A stand-in API Gateway answering /health?deep=1 with a fixed status."""

    def __init__(self, status, body):
        outer = self
        self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_aws/execute-api/abc/$default"

    def close(self):
        self.server.shutdown()


def test_health_check_passes_on_a_reachable_store():
    api = Api(200, {"status": "ok", "store": "ok"})
    try:
        deploy.check_health(api.url, "http://127.0.0.1:4566", wait_seconds=0)
        assert api.requests == ["/_aws/execute-api/abc/$default/health?deep=1"]
    finally:
        api.close()


def test_health_check_fails_clearly_when_the_api_cannot_reach_its_table():
    unavailable = {"error": {"code": "SERVICE_UNAVAILABLE", "message": "temporarily unavailable; retry shortly",
                             "details": {}}}
    api = Api(503, unavailable)
    try:
        with pytest.raises(SystemExit) as exit_:
            deploy.check_health(api.url, "http://127.0.0.1:4566", wait_seconds=1.5)
        message = str(exit_.value.code)
        assert message.startswith("local-deploy: the deployed API cannot reach its DynamoDB table.")
        assert f"GET {api.url}/health?deep=1 answered 503" in message and "SERVICE_UNAVAILABLE" in message
        assert "AWS_ENDPOINT_URL=http://127.0.0.1:4566" in message
        assert len(api.requests) >= 2, "retried before giving up"
    finally:
        api.close()


def test_deploy_waits_for_the_emulator_and_says_when_none_answers():
    with pytest.raises(SystemExit) as exit_:
        deploy.wait_for_emulator("http://127.0.0.1:9", wait_seconds=0.5)
    assert "no emulator answers at AWS_ENDPOINT_URL=http://127.0.0.1:9" in str(exit_.value.code)
