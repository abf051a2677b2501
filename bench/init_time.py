"""Init time of each function binary: from exec to its first poll of the Lambda Runtime API
(`GET /runtime/invocation/next`), under a minimal Runtime API emulator on loopback; then, when a
DynamoDB Local table is given, the first invoke after init and the one after it (the first pays
the connection set-up to DynamoDB).

    python3 bench/init_time.py <dir with the binaries> [runs] [--table NAME --endpoint URL] [--figures FILE]

Two floors: `init-baseline` builds no SDK client, `init-baseline-sdk` loads the AWS config and
builds one DynamoDB client (what every function must do). Prints median and p90 per binary;
with `--figures`, appends tab-separated figure rows for `bench/report.py`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
EVENTS = os.path.join(HERE, "..", "events")
SECTION_INIT = "Lambda init (exec to first Runtime API poll, this machine)"
SECTION_INVOKE = "Lambda first invoke after init (DynamoDB Local)"


class Emulator:
    """Hands out the queued events one per poll, records when each was handed out and answered."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset([])

    def reset(self, events):
        with self.lock:
            self.first_poll = None
            self.events = list(events)
            self.sent = {}
            self.done = {}


STATE = Emulator()


class RuntimeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer: no 40 ms Nagle / delayed-ACK stall between headers and body.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def do_GET(self):
        if not self.path.endswith("/runtime/invocation/next"):
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        with STATE.lock:
            if STATE.first_poll is None:
                STATE.first_poll = time.perf_counter()
            event = STATE.events.pop(0) if STATE.events else None
            if event is not None:
                request_id = f"req-{len(STATE.sent)}"
                STATE.sent[request_id] = time.perf_counter()
        if event is None:
            time.sleep(5)  # no more events; the process is killed before this returns
            self.send_response(404)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        body = event.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("lambda-runtime-aws-request-id", request_id)
        self.send_header("lambda-runtime-deadline-ms", str(int(time.time() * 1000) + 60_000))
        self.send_header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        parts = self.path.split("/")
        # /2018-06-01/runtime/invocation/{id}/response | /error
        if len(parts) >= 6 and parts[3] == "invocation":
            with STATE.lock:
                STATE.done[parts[4]] = (time.perf_counter(), parts[5])
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a function killed mid-poll resets its connection: expected


def start_emulator():
    server = QuietServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def environment(port, table, endpoint):
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}",
               AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench",
               # DynamoDB Local keeps tables per access key: the one the table was made with.
               AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               COUNTERSIGN_TABLE=table or "bench", COUNTERSIGN_EVENT_BUS="bench",
               COUNTERSIGN_ADMIN_KEY="bench-operator-key-0123456789",
               COUNTERSIGN_WEBHOOK_QUEUE_URL="http://127.0.0.1:9/queue/bench", RUST_LOG="error")
    if endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    return env


def run_once(path, env, events, timeout=20.0):
    """Starts the binary, feeds it `events`; returns (init ms, [invoke ms...])."""
    STATE.reset(events)
    log = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        while True:
            with STATE.lock:
                polled = STATE.first_poll
                answered = len(STATE.done)
            if polled and answered >= len(events):
                break
            if proc.poll() is not None:
                sys.exit(f"{path} exited with {proc.returncode}")
            if time.perf_counter() - started > timeout:
                sys.exit(f"{path}: no answer within {timeout} s")
            time.sleep(0.0002)
        with STATE.lock:
            invokes = []
            for request_id, sent in sorted(STATE.sent.items()):
                done, kind = STATE.done[request_id]
                if kind != "response":
                    log.seek(0)
                    sys.exit(f"{path}: invocation {request_id} answered with {kind}: {log.read()[-2000:].decode(errors='replace')}")
                invokes.append((done - sent) * 1000)
        return (polled - started) * 1000, invokes
    finally:
        proc.kill()
        proc.wait()


def summary(samples):
    samples = sorted(samples)
    return statistics.median(samples), samples[max(int(len(samples) * 0.9) - 1, 0)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("runs", nargs="?", type=int, default=20)
    parser.add_argument("--table")
    parser.add_argument("--endpoint")
    parser.add_argument("--figures")
    args = parser.parse_args()
    server = start_emulator()
    rows = []
    print(f"== init time (exec → first Runtime API poll), {args.runs} runs each, median / p90")
    env = environment(server.server_address[1], None, None)
    medians = {}
    for name in ["init-baseline", "init-baseline-sdk", "intake", "approvals", "expiry", "webhooks"]:
        samples = [run_once(os.path.join(args.directory, name), env, [])[0] for _ in range(args.runs)]
        median, p90 = summary(samples)
        medians[name] = median
        print(f"{name:<18} median {median:6.2f} ms   p90 {p90:6.2f} ms")
    bare, sdk = medians["init-baseline"], medians["init-baseline-sdk"]
    rows.append((SECTION_INIT, "bare function (builds no SDK client) init median", bare, "ms", "", "", ""))
    rows.append((SECTION_INIT, "one-SDK-client function init median", sdk, "ms", "", "bare function", bare))
    for name in ["intake", "approvals", "expiry", "webhooks"]:
        rows.append((SECTION_INIT, f"{name} init median", medians[name], "ms", "<= 1.2x one-client", "one-SDK-client function", sdk))
        rows.append((SECTION_INIT, f"{name} init median vs bare", medians[name], "ms", "", "bare function", bare))

    if args.table and args.endpoint:
        env = environment(server.server_address[1], args.table, args.endpoint)
        with open(os.path.join(EVENTS, "approvals", "health-deep.json")) as f:
            deep = json.dumps(json.load(f))
        with open(os.path.join(EVENTS, "expiry", "scheduled.json")) as f:
            scheduled = json.dumps(json.load(f))
        cases = [("intake", deep, "GET /health?deep=1 (one GetItem)"),
                 ("approvals", deep, "GET /health?deep=1 (one GetItem)"),
                 ("expiry", scheduled, "scheduled sweep, empty table")]
        print(f"== first and second invoke after init against DynamoDB Local, {args.runs} runs each, median")
        for name, event, what in cases:
            firsts, seconds = [], []
            for _ in range(args.runs):
                _, invokes = run_once(os.path.join(args.directory, name), env, [event, event])
                firsts.append(invokes[0])
                seconds.append(invokes[1])
            first, _ = summary(firsts)
            second, _ = summary(seconds)
            print(f"{name:<10} {what:<36} first {first:7.2f} ms   second {second:7.2f} ms")
            rows.append((SECTION_INVOKE, f"{name} first invoke: {what}", first, "ms", "", "second invoke", second))
    if args.figures:
        with open(args.figures, "a") as out:
            for row in rows:
                out.write("\t".join(str(x) for x in row) + "\n")


if __name__ == "__main__":
    main()
