"""py-spy on a running relay, and a summary of where its time goes.

``record`` attaches ``py-spy record`` to a server process for a number of
seconds and writes py-spy's raw (collapsed stack) format; ``summarize`` reads
it and attributes every sample to the package of its innermost Python frame
(self time: ours, Quart, Hypercorn, wsproto, trio, SQLAlchemy, the standard
library; with ``--native``, a sample inside CPython's cyclic garbage collector
counts as GC whatever Python frame triggered it, and one whose innermost frame
is ``fdatasync`` or a lock wait counts as waiting),
lists the functions with the most self time, and the share of samples whose
stack passes through each of our functions (inclusive time).

Other time in C (a ``send`` system call, a regex, the interpreter itself) is
charged to the innermost Python frame. It samples active threads
only, so the shares are of the time the server was busy, not of wall time.

Standalone: ``python bench/pyspy_profile.py FILE.pyspy.txt`` prints a summary.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<func>.*) \((?P<path>.*):(?P<line>\d+)\)$")
NATIVE = re.compile(r"^(?P<func>.*) \((?P<path>[^:]*)\)$")
RATE = 100  # samples/s; --native unwinding costs more per sample than Python-only
GC = "cyclic GC (CPython gc_collect)"
SYSCALLS = "socket send/recv and epoll system calls"
SYSCALL_FUNCS = re.compile(r"^(sock_|pyepoll_|__libc_|__GI___|send|recv|epoll_)")
# Native frames in which a thread waits (py-spy may count it as active): a disk
# flush (SQLite's commit), or a worker thread waiting for work on a lock.
WAITS = (
    (re.compile(r"^(fdatasync|fsync)$"), "waiting: fdatasync (SQLite commit)"),
    (
        re.compile(r"^(PyThread_acquire_lock_timed|pthread_cond_timedwait|sem_wait)$"),
        "waiting: on a lock (idle worker threads)",
    ),
)

CATEGORIES = (
    ("<attrs generated methods trio.", "trio"),
    ("<attrs generated methods outcome.", "trio"),
    ("/src/duorelay/", "duorelay (ours)"),
    ("/site-packages/duorelay/", "duorelay (ours)"),
    ("/bench/baselines/", "baseline app"),
    ("/quart_trio/", "Quart"),
    ("/quart/", "Quart"),
    ("/werkzeug/", "Quart"),
    ("/hypercorn/", "Hypercorn"),
    ("/sqlalchemy/", "SQLAlchemy"),
    ("/alembic/", "SQLAlchemy"),
    ("/sqlite3/", "sqlite3"),
    ("/wsproto/", "wsproto"),
    ("/h11/", "h11"),
    ("/trio/", "trio"),
    ("/outcome/", "trio"),
    ("/sniffio/", "trio"),
    ("/logging/", "stdlib logging"),
    ("/websockets/", "websockets"),
    ("/asyncio/", "asyncio"),
)


def py_spy() -> str | None:
    """The py-spy executable: next to this interpreter, or on ``PATH``."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def record(pid: int, output: Path, start: float, seconds: float) -> Path | None:
    """Record ``seconds`` of ``pid`` from ``start`` (``time.monotonic``).

    Returns ``output``, or ``None`` if py-spy is missing or may not attach
    (ptrace refused): then the profile is skipped, not the benchmark.
    """
    executable = py_spy()
    if executable is None:
        return None
    delay = start - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    base = [executable, "record", "--pid", str(pid), "--format", "raw", "--full-filenames"]
    base += ["--native", "--rate", str(RATE), "--duration", str(round(seconds))]
    base += ["--output", str(output)]
    for extra in ([], ["--nonblocking"]):
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode == 0 and output.exists():
            return output
        print(f"py-spy {' '.join(extra)} failed: {done.stderr.strip()[-400:]}", file=sys.stderr)
    return None


def is_python(path: str) -> bool:
    """Whether a frame's file is Python source (``<string>``, ``<frozen ...>`` too)."""
    return path.endswith(".py") or path.startswith("<")


def category(path: str) -> str:
    for marker, name in CATEGORIES:
        if marker in path:
            return name
    if "/lib/python3" in path or path.startswith("<frozen"):
        return "other stdlib"
    return "other"


def short(path: str, root: Path | None = None) -> str:
    """``src/duorelay/session.py`` for ours, ``hypercorn/protocol/ws_stream.py`` for others."""
    if root is not None and path.startswith(str(root) + "/"):
        return path[len(str(root)) + 1 :]
    for anchor in ("/site-packages/", "/lib/python3.11/", "/lib/python3.13/"):
        if anchor in path:
            return path.split(anchor, 1)[1]
    return path


def parse(raw: Path) -> list[tuple[list[tuple[str, str, int]], int]]:
    """Samples as (frames outermost first: (func, path, line)), count)."""
    samples = []
    for text in raw.read_text().splitlines():
        stack, _, count = text.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = []
        for item in stack.split(";"):
            match = FRAME.match(item)
            if match and is_python(match["path"]):
                frames.append((match["func"], match["path"], int(match["line"])))
                continue
            if match:  # a C frame with its source line, from --native
                frames.append((match["func"], match["path"], -1))
                continue
            native = NATIVE.match(item)
            if native:  # a C frame from --native: (func, library, -1)
                frames.append((native["func"], native["path"], -1))
            else:
                frames.append((item, "?", -1))
        samples.append((frames, int(count)))
    return samples


def summarize(raw: Path, root: Path | None = None, top: int = 15) -> dict[str, Any]:
    samples = parse(raw)
    total = sum(count for _, count in samples) or 1
    by_category: Counter[str] = Counter()
    self_functions: Counter[str] = Counter()
    ours_self_lines: Counter[str] = Counter()
    ours_inclusive: Counter[str] = Counter()
    ours_lines_inclusive: Counter[str] = Counter()
    for frames, count in samples:
        python = [frame for frame in frames if frame[2] >= 0]
        native = frames[frames.index(python[-1]) + 1 :] if python else frames
        wait = next(
            (name for regex, name in WAITS if any(regex.match(f[0]) for f in native)), None
        )
        if any(frame[0] in ("gc_collect_main", "gc_collect_with_callback") for frame in frames):
            by_category[GC] += count
            self_functions[GC] += count
        elif wait is not None:
            by_category[wait] += count
            self_functions[wait] += count
        elif python and any(
            SYSCALL_FUNCS.match(frame[0]) for frame in frames[frames.index(python[-1]) + 1 :]
        ):
            by_category[SYSCALLS] += count
            func, path, line = python[-1]
            self_functions[f"{func} ({short(path, root)}): system call"] += count
        elif python:
            func, path, line = python[-1]
            # Generated code (dataclass and attrs __init__) counts for its caller's package.
            owner = next(
                (frame[1] for frame in reversed(python) if not frame[1].startswith("<")), path
            )
            by_category[category(owner)] += count
            self_functions[f"{func} ({short(path, root)})"] += count
            if category(path) == "duorelay (ours)":
                ours_self_lines[f"{short(path, root)}:{line} {func}"] += count
        else:
            by_category["native, no Python frame"] += count
        seen_funcs, seen_lines = set(), set()
        for func, path, line in frames:
            if line < 0 or category(path) != "duorelay (ours)":
                continue
            seen_funcs.add(f"{func} ({short(path, root)})")
            seen_lines.add(f"{short(path, root)}:{line} {func}")
        for name in seen_funcs:
            ours_inclusive[name] += count
        for name in seen_lines:
            ours_lines_inclusive[name] += count

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(name, round(100 * count / total, 1)) for name, count in counter.most_common(n)]

    return {
        "samples": total,
        "categories": shares(by_category, 20),
        "top_self": shares(self_functions, top),
        "ours_self_lines": shares(ours_self_lines, top),
        "ours_inclusive": shares(ours_inclusive, top),
        "ours_lines_inclusive": shares(ours_lines_inclusive, 25),
    }


if __name__ == "__main__":
    print(json.dumps(summarize(Path(sys.argv[1]), Path.cwd()), indent=1))
