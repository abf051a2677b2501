"""Init time of each function binary: from exec to its first poll of the Lambda Runtime API
(`GET /runtime/invocation/next`), under a minimal Runtime API emulator on loopback; then, when a
seeded DynamoDB Local table is given, init and the first and second invokes after it, without and
with the store pre-warmed during init (`COUNTERSIGN_PREWARM`, shared/src/config.rs).

    python3 bench/init_time.py <dir with the binaries> [runs] [--seed JSON --endpoint URL] [--figures FILE]

`--seed` is what `countersign-bench make-table` prints: a table with one organization (agent key,
a funded wallet without policy, a recipient), so intake's first invoke is a real payment.

Two floors: `init-baseline` builds no SDK client, `init-baseline-sdk` loads the AWS config and
builds one DynamoDB client (what every function must do). The first section runs the functions
without pre-warming (clients built, nothing sent), as the floors do. The emulator also stands in
for EventBridge (PutEvents accepted), so intake's first invoke includes its publish. Prints
median and p90; with `--figures`, appends tab-separated figure rows for `bench/report.py`.
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
SECTION_INVOKE = "Lambda first invoke after init (DynamoDB Local, loopback: no TLS)"
FUNCTIONS = ["intake", "approvals", "expiry", "webhooks"]


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
        state = self.server.state
        with state.lock:
            if state.first_poll is None:
                state.first_poll = time.perf_counter()
            event = state.events.pop(0) if state.events else None
            if event is not None:
                request_id = f"req-{len(state.sent)}"
                state.sent[request_id] = time.perf_counter()
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
        body = self.rfile.read(length)
        if "PutEvents" in self.headers.get("x-amz-target", ""):
            # EventBridge stand-in: every entry accepted.
            entries = json.loads(body or b"{}").get("Entries", [])
            answer = json.dumps({"FailedEntryCount": 0,
                                 "Entries": [{"EventId": f"bench-{i}"} for i in range(len(entries))]}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/x-amz-json-1.1")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
            return
        parts = self.path.split("/")
        # /2018-06-01/runtime/invocation/{id}/response | /error
        if len(parts) >= 6 and parts[3] == "invocation":
            with self.server.state.lock:
                self.server.state.done[parts[4]] = (time.perf_counter(), parts[5], body)
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a function killed mid-poll resets its connection: expected


def start_emulator(events):
    """One emulator per run, so that a killed process's last poll cannot take the next run's event."""
    server = QuietServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    server.state = Emulator()
    server.state.reset(events)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server


def environment(table, endpoint):
    env = dict(os.environ,
               AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench",
               # DynamoDB Local keeps tables per access key: the one the table was made with.
               AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               COUNTERSIGN_TABLE=table or "bench", COUNTERSIGN_EVENT_BUS="bench",
               COUNTERSIGN_ADMIN_KEY="bench-operator-key-0123456789",
               COUNTERSIGN_WEBHOOK_QUEUE_URL="http://127.0.0.1:9/queue/bench", RUST_LOG="error",
               COUNTERSIGN_PREWARM="0")
    if endpoint:
        env["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint
    return env


def run_once(path, env, events, timeout=20.0):
    """Starts the binary, feeds it `events`; returns (init ms, [invoke ms...])."""
    server = start_emulator(events)
    state = server.state
    port = server.server_address[1]
    # The emulator also stands in for EventBridge.
    env = dict(env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", AWS_ENDPOINT_URL_EVENTBRIDGE=f"http://127.0.0.1:{port}")
    log = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        while True:
            with state.lock:
                polled = state.first_poll
                answered = len(state.done)
            if polled and answered >= len(events):
                break
            if proc.poll() is not None:
                log.seek(0)
                sys.exit(f"{path} exited with {proc.returncode}: {log.read()[-2000:].decode(errors='replace')}")
            if time.perf_counter() - started > timeout:
                sys.exit(f"{path}: no answer within {timeout} s")
            time.sleep(0.0002)
        with state.lock:
            invokes = []
            for request_id, sent in sorted(state.sent.items()):
                done, kind, body = state.done[request_id]
                status = json.loads(body or b"{}").get("statusCode", 200) if kind == "response" else None
                if kind != "response" or not isinstance(status, int) or status >= 300:
                    log.seek(0)
                    sys.exit(f"{path}: invocation {request_id} answered with {kind} {body[:500]!r}: "
                             f"{log.read()[-2000:].decode(errors='replace')}")
                invokes.append((done - sent) * 1000)
        return (polled - started) * 1000, invokes
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()
        server.server_close()


def summary(samples):
    samples = sorted(samples)
    return statistics.median(samples), samples[max(int(len(samples) * 0.9) - 1, 0)]


def event(path, **changes):
    with open(os.path.join(EVENTS, path)) as f:
        data = json.load(f)
    for key, value in changes.items():
        data[key] = value
    return json.dumps(data)


def first_invoke_cases(seed):
    """Per function: an event that reaches DynamoDB, and what it does."""
    with open(os.path.join(EVENTS, "intake", "create-payment.json")) as f:
        payment = json.load(f)
    payment["headers"]["authorization"] = f"Bearer {seed['agentKey']}"
    payment["headers"].pop("content-length", None)
    payment["body"] = json.dumps({"from": seed["hotWallet"], "to": seed["toWallet"], "amount": "1.00"})
    return [("intake", json.dumps(payment), "POST /v1/payments, auto-executed (+ PutEvents)"),
            ("approvals", event("approvals/health-deep.json"), "GET /health?deep=1 (one GetItem)"),
            ("expiry", event("expiry/scheduled.json"), "scheduled sweep, nothing due"),
            ("webhooks", event("webhooks/sqs-event.json"), "SQS batch, one event, no subscribers")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("runs", nargs="?", type=int, default=20)
    parser.add_argument("--seed", help="JSON printed by `countersign-bench make-table`")
    parser.add_argument("--endpoint")
    parser.add_argument("--figures")
    args = parser.parse_args()
    rows = []
    print(f"== init time (exec → first Runtime API poll), {args.runs} runs each, median / p90")
    env = environment(None, None)
    medians = {}
    names = ["init-baseline", "init-baseline-sdk"] + FUNCTIONS
    # Round robin, each round in a rotated order: the machine is shared, and its load drifts over
    # a run; binaries measured one block after another would each see another machine, so a
    # function and its floor would not be compared on the same one.
    samples = {name: [] for name in names}
    for round_ in range(args.runs):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            samples[name].append(run_once(os.path.join(args.directory, name), env, [])[0])
    for name in names:
        median, p90 = summary(samples[name])
        medians[name] = median
        ratio = f"   {median / medians['init-baseline-sdk']:.2f}x one-client" if name in FUNCTIONS else ""
        print(f"{name:<18} median {median:6.2f} ms   p90 {p90:6.2f} ms{ratio}")
    bare, sdk = medians["init-baseline"], medians["init-baseline-sdk"]
    rows.append((SECTION_INIT, "bare function (builds no SDK client) init median", bare, "ms", "", "", ""))
    rows.append((SECTION_INIT, "one-SDK-client function init median", sdk, "ms", "", "bare function", bare))
    for name in FUNCTIONS:
        rows.append((SECTION_INIT, f"{name} init median", medians[name], "ms", "<= 1.2x floor", "one-SDK-client function", sdk))
        rows.append((SECTION_INIT, f"{name} init median vs bare", medians[name], "ms", "", "bare function", bare))

    if args.seed and args.endpoint:
        seed = json.loads(args.seed)
        print(f"== against DynamoDB Local: init, first and second invoke, {args.runs} runs each, median"
              " (without / with the store pre-warmed during init)")
        for name, event_json, what in first_invoke_cases(seed):
            figures = {}
            for prewarm in ("0", "1"):
                env = dict(environment(seed["table"], args.endpoint), COUNTERSIGN_PREWARM=prewarm)
                inits, firsts, seconds = [], [], []
                for _ in range(args.runs):
                    init, invokes = run_once(os.path.join(args.directory, name), env, [event_json, event_json])
                    inits.append(init)
                    firsts.append(invokes[0])
                    seconds.append(invokes[1])
                sums = [i + f for i, f in zip(inits, firsts)]
                figures[prewarm] = [summary(x)[0] for x in (inits, firsts, seconds, sums)]
                init, first, second, total = figures[prewarm]
                label = "pre-warmed" if prewarm == "1" else "no pre-warm"
                print(f"{name:<10} {label:<12} init {init:6.2f} ms   first {first:7.2f} ms   second {second:6.2f} ms"
                      f"   init + first {total:7.2f} ms   ({what})")
            (init0, first0, second0, sum0), (init1, first1, second1, sum1) = figures["0"], figures["1"]
            rows.append((SECTION_INVOKE, f"{name} first invoke, no pre-warm: {what}", first0, "ms", "", "second invoke", second0))
            rows.append((SECTION_INVOKE, f"{name} init + first invoke, no pre-warm", sum0, "ms", "",
                         "one-SDK-client init + second invoke", sdk + second0))
            rows.append((SECTION_INVOKE, f"{name} init, pre-warmed", init1, "ms", "", "init, no pre-warm", init0))
            rows.append((SECTION_INVOKE, f"{name} first invoke, pre-warmed", first1, "ms", "", "second invoke", second1))
            rows.append((SECTION_INVOKE, f"{name} init + first invoke, pre-warmed", sum1, "ms", "< no pre-warm",
                         "init + first invoke, no pre-warm", sum0))
    if args.figures:
        with open(args.figures, "a") as out:
            for row in rows:
                out.write("\t".join(str(x) for x in row) + "\n")


if __name__ == "__main__":
    main()
