"""PID 1 of a sandbox's namespaces: runs one program at a time, each in a fresh process and directory.

Started by :class:`coe.codebench.sandbox.Sandbox` inside new user, mount,
network and PID namespaces (every mount but its working directory read-only).
Standard library only: it runs with ``python -I -S``. Frames on stdin/stdout are
a 4-byte big-endian length and a JSON object; a request is ``{"program",
"stdin", "timeout", "memory_mb", "file_mb", "open_files"}``, a reply
``{"returncode", "stdout", "stderr", "timed_out", "seconds"}``.

After every program it kills every other process in the namespace (so nothing
the program spawned, detached or not, outlives it) and empties the working
directory (so nothing it wrote reaches the next program).
"""

import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

_MB = 1 << 20
_CAP = 1 << 20  # at most 1 MiB of each output goes back


def _read_frame(stream):
    header = stream.read(4)
    if len(header) < 4:
        return None
    return json.loads(stream.read(struct.unpack(">I", header)[0]))


def _write_frame(stream, data) -> None:
    body = json.dumps(data).encode()
    stream.write(struct.pack(">I", len(body)) + body)
    stream.flush()


def _limits(request):
    def apply() -> None:
        cpu = int(request["timeout"]) + 1
        resource.setrlimit(resource.RLIMIT_AS, (request["memory_mb"] * _MB,) * 2)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (request["file_mb"] * _MB,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (request["open_files"],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _kill_everything_else() -> None:
    """SIGKILL every process in the namespace but this one, and reap them all."""
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _empty(directory: str) -> None:
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def _drain(stream, sink: list) -> None:
    sink.append(stream.read())
    stream.close()


def _feed(stream, data: bytes) -> None:
    try:
        stream.write(data)
    except BrokenPipeError:  # the program did not read all its input
        pass
    finally:
        try:
            stream.close()
        except BrokenPipeError:
            pass


def run_program(request, home: str, cleanup):
    """Run one program in ``home/run``. It is done when its own process exits; ``cleanup(pid)`` then kills
    whatever it left running (here: everything else in the namespace; outside one: its process group).

    Also used, without namespaces, by :class:`coe.codebench.sandbox.Sandbox` itself.
    """
    work = os.path.join(home, "run")
    os.mkdir(work)
    with open(os.path.join(work, "main.py"), "w", encoding="utf-8") as fh:
        fh.write(request["program"])
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": work, "PYTHONHASHSEED": "0"}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-I", "-B", "-S", "main.py"], cwd=work, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=_limits(request))  # fmt: skip
    out, err = [], []
    threads = [threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
               threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
               threading.Thread(target=_feed, args=(proc.stdin, request["stdin"].encode()), daemon=True)]  # fmt: skip
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        proc.wait(timeout=2 * request["timeout"] + 1)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    seconds = time.perf_counter() - start
    cleanup(proc.pid)  # closes the pipes leftover processes held, so the readers finish
    for thread in threads:
        thread.join(timeout=5)  # a detached process that escaped cleanup (no namespaces) cannot hold us
    return {"returncode": proc.returncode, "stdout": (out[0] if out else b"")[:_CAP].decode(errors="replace"),
            "stderr": (err[0] if err else b"")[-_CAP:].decode(errors="replace"), "timed_out": timed_out,
            "seconds": seconds}  # fmt: skip


def main() -> None:
    home = os.getcwd()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while (request := _read_frame(stdin)) is not None:
        try:
            reply = run_program(request, home, lambda pid: _kill_everything_else())
        except OSError as exc:
            reply = {"error": repr(exc)}
            _kill_everything_else()
        _empty(home)
        _write_frame(stdout, reply)


if __name__ == "__main__":
    main()
