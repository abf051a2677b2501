"""Init time of each function binary: from exec to its first poll of the Lambda Runtime API
(`GET /runtime/invocation/next`), under a minimal Runtime API emulator on loopback.

    python3 bench/init_time.py <dir with intake, approvals, expiry, webhooks, init-baseline> [runs]

`init-baseline` builds no SDK client: the difference is what building the clients at init costs.
Prints median and p90 per binary.
"""

import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FIRST_POLL = {}
LOCK = threading.Lock()


class RuntimeApi(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            with LOCK:
                FIRST_POLL["last"] = time.perf_counter()
            time.sleep(5)  # never hand out an event; the process is killed before this returns
        self.send_response(404)
        self.end_headers()


def main():
    directory = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ,
               AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_STREAM_NAME="bench", AWS_LAMBDA_LOG_GROUP_NAME="bench",
               AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               COUNTERSIGN_TABLE="bench", COUNTERSIGN_EVENT_BUS="bench", COUNTERSIGN_ADMIN_KEY="bench-operator-key-0123456789",
               COUNTERSIGN_WEBHOOK_QUEUE_URL="http://127.0.0.1:9/queue/bench", RUST_LOG="error")
    print(f"== init time (exec → first Runtime API poll), {runs} runs each, median / p90")
    for name in ["init-baseline", "intake", "approvals", "expiry", "webhooks"]:
        path = os.path.join(directory, name)
        samples = []
        for _ in range(runs):
            with LOCK:
                FIRST_POLL.pop("last", None)
            started = time.perf_counter()
            proc = subprocess.Popen([path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:
                with LOCK:
                    polled = FIRST_POLL.get("last")
                if polled:
                    break
                if proc.poll() is not None:
                    sys.exit(f"{name} exited with {proc.returncode} before polling")
                time.sleep(0.0002)
            samples.append((polled - started) * 1000)
            proc.kill()
            proc.wait()
        samples.sort()
        print(f"{name:<14} median {statistics.median(samples):6.2f} ms   p90 {samples[int(len(samples) * 0.9) - 1]:6.2f} ms")


if __name__ == "__main__":
    main()
