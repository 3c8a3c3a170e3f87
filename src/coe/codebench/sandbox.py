"""Run untrusted Python in a fresh, isolated subprocess.

Every run is a new ``python -I -B -S`` process (standard library only, as the
benchmarks assume; no site-packages) in an empty working directory, with
a scrubbed environment, a new session, rlimits (address space, CPU time, file
size, open files) and a wall-clock backstop that kills its process group.

Where the kernel allows it (unprivileged user namespaces), runs happen inside
new user, mount, network and PID namespaces (``unshare``): every mount but the
working directory is read-only, the network is empty, and the parent's
processes and environment are out of sight. Setting namespaces up costs more
than running a small program, so each worker thread keeps one namespace alive,
whose PID 1 (:mod:`coe.codebench.jail_server`) starts every program as a fresh
process, then kills every other process in the namespace (double-forked and
``setsid`` ones included) and empties the working directory before the next.
Without namespaces coe warns once, loudly, and runs with the rlimits alone.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from coe.codebench.jail_server import run_program

__all__ = ["Limits", "RunResult", "Sandbox", "namespaces_available"]

log = logging.getLogger(__name__)

# Inside the namespaces: keep the working directory writable, make every other mount read-only, then become
# the given command (the jail server, PID 1 of the namespace).
_JAIL = (
    'mount --bind "$0" "$0" && '
    'awk \'{print $2}\' /proc/self/mounts | while read m; do '
    '[ "$m" = "$0" ] || [ "$m" = /proc ] || mount -o remount,bind,ro "$m" 2>/dev/null || true; done; '
    'cd "$0" && exec "$@"'
)
_SERVER = str(Path(__file__).with_name("jail_server.py"))
_UNSHARE = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--kill-child", "--mount-proc"]


@dataclass(frozen=True)
class Limits:
    """Per-run limits. ``timeout_s`` is CPU time; the wall-clock backstop is twice that plus a second."""

    timeout_s: float = 6.0
    memory_mb: int = 1024
    file_mb: int = 32
    open_files: int = 256


@dataclass(frozen=True)
class RunResult:
    """How a run ended: ``status`` is ok, error, timeout or memory."""

    status: str
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


@functools.cache
def namespaces_available() -> bool:
    """Whether ``unshare`` can give this process user, mount, network and PID namespaces."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run([*_UNSHARE, "sh", "-c", _JAIL, tempfile.gettempdir(), "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


@functools.cache
def _warn_unisolated() -> None:
    log.warning(
        "SANDBOX WITHOUT NAMESPACES: this kernel does not allow unprivileged user namespaces, so generated code runs "
        "with rlimits only: it can read and write your files, reach the network, and leave detached processes behind. "
        "Grade untrusted code on a machine or container where `unshare --user --net --pid` works."
    )


class Sandbox:
    """Runs programs under :class:`Limits`, isolated where the kernel allows. Safe to share between threads."""

    def __init__(self, limits: Limits = Limits(), isolate: bool | None = None) -> None:
        self.limits = limits
        self.isolated = namespaces_available() if isolate is None else isolate
        if not self.isolated:
            _warn_unisolated()
        self._local = threading.local()
        self._jails: list[_Jail] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _close_jails, self._jails)  # at garbage collection or exit, if close() was not called

    def run(self, program: str, stdin: str = "") -> RunResult:
        """Run ``program`` (Python source) with ``stdin``; nothing it writes outside its directory survives."""
        if not self.isolated:
            return self._run_unisolated(program, stdin)
        jail = getattr(self._local, "jail", None)
        if jail is None or not jail.alive():
            jail = self._local.jail = _Jail()
            with self._lock:
                self._jails.append(jail)
        reply = jail.request(self._request(program, stdin), deadline=4 * self.limits.timeout_s + 10)
        if reply is None or "error" in reply:
            raise OSError(f"the sandbox failed: {reply.get('error') if reply else 'no reply'}")
        status = _status(reply["returncode"], reply["stderr"], reply["timed_out"])
        return RunResult(status, reply["returncode"], reply["stdout"], reply["stderr"], reply["seconds"])

    def close(self) -> None:
        """Stop every worker's namespace."""
        with self._lock:
            _close_jails(self._jails)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, program: str, stdin: str) -> dict:
        return {"program": program, "stdin": stdin, "timeout": self.limits.timeout_s, "memory_mb": self.limits.memory_mb,
                "file_mb": self.limits.file_mb, "open_files": self.limits.open_files}  # fmt: skip

    def _run_unisolated(self, program: str, stdin: str) -> RunResult:
        home = tempfile.mkdtemp(prefix="coe-sandbox-")
        try:
            reply = run_program(self._request(program, stdin), home, _kill_group)
        finally:
            shutil.rmtree(home, ignore_errors=True)
        status = _status(reply["returncode"], reply["stderr"], reply["timed_out"])
        return RunResult(status, reply["returncode"], reply["stdout"], reply["stderr"], reply["seconds"])


class _Jail:
    """One namespace with its jail server, and the pipe to it."""

    def __init__(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix="coe-sandbox-")
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen([*_UNSHARE, "sh", "-c", _JAIL, self.workdir, sys.executable, "-I", "-B", "-S", _SERVER],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True)  # fmt: skip

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, request: dict, deadline: float) -> dict | None:
        """Send one program; the reply, or None if the server died or missed the deadline (it is then stopped)."""
        body = json.dumps(request).encode()
        try:
            self.proc.stdin.write(struct.pack(">I", len(body)) + body)
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], deadline)
            header = self.proc.stdout.read(4) if ready else b""
            if len(header) < 4:
                self.close()
                return None
            return json.loads(self.proc.stdout.read(struct.unpack(">I", header)[0]))
        except (BrokenPipeError, OSError, ValueError):
            self.close()
            return None

    def close(self) -> None:
        _kill_group(self.proc.pid)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:  # a broken pipe to a server that died
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def _close_jails(jails: list[_Jail]) -> None:
    for jail in jails:
        jail.close()
    jails.clear()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _status(returncode: int | None, stderr: str, timed_out: bool) -> str:
    if timed_out or returncode in (-signal.SIGXCPU, -signal.SIGKILL, 128 + signal.SIGXCPU, 128 + signal.SIGKILL):
        return "timeout"
    if "MemoryError" in stderr or "Cannot allocate memory" in stderr:
        return "memory"
    return "ok" if returncode == 0 else "error"
