//! Load from `wrk` (as the figures in issue 12 were measured: 16 connections, 2 threads), with
//! Lua scripts that count 5xx apart from other non-2xx answers, keep the approval ids a held
//! intake returns, and approve a list of ids once each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const CONNECTIONS: usize = 16;
const THREADS: usize = 2;

/// What one wrk run measured.
pub struct WrkRun {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub server_errors: u64,
    pub other_non_2xx: u64,
    /// Threads of an approve run that ran out of ids before the end.
    pub ran_out: u64,
    /// What the run cost the server, per request (set by the caller, who knows the server).
    pub server: Option<ServerCost>,
}

/// The server's CPU time and the bytes it wrote to storage, per request of a run.
#[derive(Clone, Copy, Debug)]
pub struct ServerCost {
    pub cpu_us: f64,
    pub disk_kb: f64,
}

const COMMON: &str = r#"
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  server_errors = 0
  other = 0
  ran_out = 0
  start(args)
end
function response(status, headers, body)
  if status >= 500 then server_errors = server_errors + 1 elseif status >= 300 then other = other + 1 end
  answered(status, body)
end
function done(summary, latency, requests)
  local e, o, r = 0, 0, 0
  for _, t in ipairs(threads) do e = e + t:get("server_errors"); o = o + t:get("other"); r = r + t:get("ran_out") end
  io.write(string.format("WRK requests=%d duration_us=%d p50_us=%d p99_us=%d server_errors=%d other=%d ran_out=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e, o, r))
end
"#;

/// The same POST every time; with an output path, each 202's `approvalId` is kept (one file
/// per thread: `<path>.<thread>`).
const POST_SAME: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
function start(args)
  if args[1] then
    kept = io.open(args[1] .. "." .. id, "w")
    kept:setvbuf("line")
  end
end
function answered(status, body)
  if kept and status == 202 then
    local approval = body:match('"approvalId":"([^"]+)"')
    if approval then kept:write(approval, "\n") end
  end
end
"#;

/// `POST /v1/approvals/{id}/approve` for the ids in the file `args[1]`, each once, dealt
/// round-robin to the threads; a thread whose ids run out stops (and says so: the run's rate
/// then undercounts, so the caller supplies more ids than the run can use).
const APPROVE_EACH: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "{}"
function start(args)
  ids = {}
  local n, stride = 0, tonumber(args[2])
  for line in io.lines(args[1]) do
    if n % stride == id then ids[#ids + 1] = line end
    n = n + 1
  end
  next_id = 1
end
function request()
  if next_id > #ids then
    ran_out = 1
    wrk.thread:stop()
    next_id = #ids
  end
  local path = "/v1/approvals/" .. ids[next_id] .. "/approve"
  next_id = next_id + 1
  return wrk.format(nil, path)
end
function answered(status, body) end
"#;

pub enum Script<'a> {
    Get,
    PostSame { body: &'a str, key: &'a str, keep_ids: Option<&'a Path> },
    ApproveEach { key: &'a str, ids: &'a Path },
}

pub fn available() -> bool {
    Command::new("wrk").arg("--version").output().is_ok()
}

/// Runs wrk against `url` for `duration` (an approve run ends when its ids do).
pub fn run(dir: &Path, url: &str, script: Script<'_>, duration: Duration) -> WrkRun {
    let (lua, args): (String, Vec<String>) = match &script {
        Script::Get => (format!("{COMMON}\nfunction start(args) end\nfunction answered(s, b) end\n"), vec![]),
        Script::PostSame { body, key, keep_ids } => (
            format!(
                "{COMMON}{POST_SAME}\nwrk.body = [==[{body}]==]\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n"
            ),
            keep_ids.map(|p| vec![p.display().to_string()]).unwrap_or_default(),
        ),
        Script::ApproveEach { key, ids } => (
            format!("{COMMON}{APPROVE_EACH}\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n"),
            vec![ids.display().to_string(), THREADS.to_string()],
        ),
    };
    let script_path: PathBuf = dir.join(format!("script-{}.lua", ulid::Ulid::new()));
    std::fs::write(&script_path, lua).expect("write wrk script");
    let output = Command::new("wrk")
        .args(["-t", &THREADS.to_string(), "-c", &CONNECTIONS.to_string()])
        .args(["-d", &format!("{}s", duration.as_secs().max(1)), "--timeout", "10s", "-s"])
        .arg(&script_path)
        .arg(url)
        .arg("--")
        .args(&args)
        .output()
        .expect("run wrk (bench/run installs it)");
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.starts_with("WRK ")).unwrap_or_else(|| panic!("wrk said: {text}"));
    let field = |name: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let requests = field("requests");
    WrkRun {
        rate: requests / (field("duration_us") / 1e6),
        p50_ms: field("p50_us") / 1e3,
        p99_ms: field("p99_us") / 1e3,
        requests: requests as u64,
        server_errors: field("server_errors") as u64,
        other_non_2xx: field("other") as u64,
        ran_out: field("ran_out") as u64,
        server: None,
    }
}

/// Gathers the ids the threads of `PostSame { keep_ids }` runs kept into one file (adding to
/// what it holds); returns how many it holds.
pub fn gather_ids(path: &Path) -> usize {
    let mut all: Vec<String> =
        std::fs::read_to_string(path).map(|t| t.lines().map(str::to_string).collect()).unwrap_or_default();
    for thread in 0..THREADS {
        let part = PathBuf::from(format!("{}.{thread}", path.display()));
        if let Ok(text) = std::fs::read_to_string(&part) {
            all.extend(text.lines().map(str::to_string));
        }
        let _ = std::fs::remove_file(part);
    }
    std::fs::write(path, all.join("\n") + "\n").expect("write ids");
    all.len()
}
