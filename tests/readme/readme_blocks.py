"""Helpers to run README.md's fenced ```sh blocks as written, in a fresh shell (tests/readme).

A block is found by the heading above it; only values that must change on a shared machine are
substituted (ports, and placeholders the README asks the reader to fill in), each checked to be in
the block. `pip install` lines are not run: instead the packages they name must be installed in
the venv running these tests, whose bin/ is first on the blocks' PATH (scripts/test installs them
from tests/requirements.txt). Each block runs in its own process group, so whatever it leaves in
the background (ministack, `cargo lambda watch`) is stopped after the test.
"""

import importlib.metadata
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

# What scripts/test (or CI) exports for its own tools and tests; a reader's fresh shell has none.
_SCRIPT_PREFIXES = ("AWS_", "COUNTERSIGN_", "WEBHOOK_", "MINISTACK_")
_SCRIPT_NAMES = {"STACK_NAME", "API_URL", "STAGE", "LOCAL_DEPLOY_PROFILE", "PYTHON", "LAMBDA_ZIP_DIR",
                 "BIND_HOST", "GATEWAY_PORT", "LOCALSTACK_HOSTNAME"}


def sh_blocks():
    """Every ```sh block of the README as {(heading, n): code}, n counting the blocks under one
    heading from 0."""
    blocks, heading, fence, code = {}, None, None, []
    for line in README.read_text().splitlines(keepends=True):
        if fence is None:
            if line.startswith("```"):
                fence = line[3:].strip()
                code = []
            elif re.match(r"#{1,6} ", line):
                heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            if fence == "sh":
                n = sum(1 for (h, _) in blocks if h == heading)
                blocks[(heading, n)] = "".join(code)
            fence = None
        else:
            code.append(line)
    return blocks


def block(heading, n=0):
    blocks = sh_blocks()
    assert (heading, n) in blocks, f"README has no sh block {n} under '{heading}'"
    return blocks[(heading, n)]


def substitute(code, replacements):
    """Replaces each value, which must occur in the block (else the README changed under the test)."""
    for old, new in replacements.items():
        assert old in code, f"the README block no longer contains {old!r}:\n{code}"
        code = code.replace(old, str(new))
    return code


def without_pip_installs(code):
    """The block with its `pip install` lines commented out, after checking that every package they
    name is installed here (at the pinned version, where one is pinned)."""
    lines = []
    for line in code.splitlines(keepends=True):
        if line.startswith("pip install "):
            for requirement in line.split()[2:]:
                assert not requirement.startswith("-"), f"pip option {requirement} in a README block"
                name, _, pinned = requirement.partition("==")
                try:
                    installed = importlib.metadata.version(name)
                except importlib.metadata.PackageNotFoundError:
                    pytest.fail(f"README installs {name}, which the test venv lacks: add it to tests/requirements.txt")
                assert not pinned or installed == pinned, f"README pins {requirement}, the test venv has {installed}"
            line = f"# (installed by scripts/test) {line}"
        lines.append(line)
    return "".join(lines)


def shell_env():
    """A reader's fresh shell: none of scripts/test's variables; the venv's bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRIPT_PREFIXES) and k not in _SCRIPT_NAMES}
    venv_bin = os.path.dirname(sys.executable)
    assert os.path.exists(os.path.join(venv_bin, "ministack")), f"{venv_bin} is not the test venv"
    env["PATH"] = venv_bin + os.pathsep + env["PATH"]
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Shell:
    """One block run with `bash -euo pipefail` from the repository root, in its own process group;
    stdout and stderr go to files (background jobs may keep writing after bash exits)."""

    def __init__(self, code):
        self.code = code
        self.out = tempfile.NamedTemporaryFile(prefix="readme-out-", suffix=".log", delete=False)
        self.err = tempfile.NamedTemporaryFile(prefix="readme-err-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", code], cwd=ROOT, env=shell_env(),
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err,
                                     start_new_session=True)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"README block did not finish in {timeout} s\n{self.report()}")

    def stdout(self):
        return pathlib.Path(self.out.name).read_text(errors="replace")

    def stderr(self):
        return pathlib.Path(self.err.name).read_text(errors="replace")

    def report(self):
        return f"--- block\n{self.code}\n--- stdout\n{self.stdout()[-6000:]}\n--- stderr\n{self.stderr()[-6000:]}"

    def _group_alive(self):
        self.proc.poll()  # reaps bash, so an exited leader does not count as alive
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except ProcessLookupError:
            return False

    def stop(self):
        """Stops the block and everything it started (its process group): TERM, then KILL."""
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            if not self._group_alive():
                return
            os.killpg(self.proc.pid, sig)
            deadline = time.time() + grace
            while time.time() < deadline and self._group_alive():
                time.sleep(0.1)
