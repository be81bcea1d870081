"""The report of a benchmark run: one JSON line per scenario row as it is measured,
the machine it ran on, the Markdown report and ``.jsonl`` in ``bench/results/``,
and the Markdown's place in docs/benchmarks.md."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from servers import RESULTS, ROOT

if TYPE_CHECKING:
    from scenarios import Plan

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- bench:begin (written by bench/run.py; edit outside these markers) -->"
END = "<!-- bench:end -->"

BASELINES = ("raw-asgi", "websockets")
LABELS = {
    "duorelay": "duorelay",
    "raw-asgi": "raw ASGI on Hypercorn trio",
    "websockets": "python-websockets",
    "duorelay-proposed": "duorelay + proposed changes",
    "raw-asgi-bare": "raw ASGI, no keepalive",
    "raw-asgi-gc": "raw ASGI with duorelay's GC settings",
    "websockets-uvloop": "python-websockets on uvloop",
}

# (metric key, label, higher is better, decimals)
HEADLINES: dict[str, list[tuple[str, str, bool, int]]] = {
    "pingpong": [
        ("frames_per_s", "relayed frames/s", True, 0),
        ("p50_ms", "p50 round trip, ms", False, 2),
        ("p99_ms", "p99 round trip, ms", False, 2),
        ("p999_ms", "p99.9 round trip, ms", False, 2),
        ("server_cpu_us_per_frame", "server CPU per frame, us", False, 1),
    ],
    "stream": [
        ("frames_per_s", "frames/s", True, 0),
        ("mb_per_s", "MB/s", True, 1),
        ("server_cpu_us_per_frame", "server CPU per frame, us", False, 1),
    ],
    "idle": [
        ("rss_per_conn_kb", "server RSS per connection, KB", False, 1),
        ("setup_per_s", "connection set-up, conns/s", True, 0),
    ],
    "fleet": [
        ("delivered_per_s", "delivered frames/s", True, 0),
        ("p50_ms", "p50 one-way latency, ms", False, 2),
        ("p99_ms", "p99 one-way latency, ms", False, 2),
        ("p999_ms", "p99.9 one-way latency, ms", False, 2),
        ("server_cpu_pct", "server CPU, %", False, 0),
        ("lost", "frames not delivered after the drain", False, 0),
    ],
}

DETAILS: dict[str, list[tuple[str, str, int]]] = {
    "pingpong": [
        ("frames_per_s", "frames/s", 0),
        ("p50_ms", "p50 ms", 2),
        ("p99_ms", "p99 ms", 2),
        ("p999_ms", "p99.9 ms", 2),
        ("server_cpu_pct", "server CPU %", 0),
        ("server_cpu_us_per_frame", "server us/frame", 1),
        ("client_cpu_pct", "load-gen CPU %", 0),
        ("other_cpu_pct", "other CPU %", 0),
        ("runs", "frames/s of each run", 0),
    ],
    "stream": [
        ("frames_per_s", "frames/s", 0),
        ("mb_per_s", "MB/s", 1),
        ("frames_checked", "frames checked", 0),
        ("lost", "lost", 0),
        ("server_cpu_pct", "server CPU %", 0),
        ("server_cpu_us_per_frame", "server us/frame", 1),
        ("client_cpu_pct", "load-gen CPU %", 0),
        ("other_cpu_pct", "other CPU %", 0),
        ("runs", "frames/s of each run", 0),
    ],
    "idle": [
        ("connections", "connections", 0),
        ("rss_per_conn_kb", "RSS/conn KB", 1),
        ("rss_before_mb", "RSS before MB", 1),
        ("rss_after_mb", "RSS after MB", 1),
        ("setup_per_s", "set-up conns/s", 0),
        ("handshake_s", "join check s", 2),
        ("settle_s", "busy after joins s", 1),
        ("idle_cpu_pct", "idle CPU %", 1),
        ("other_cpu_pct", "other CPU %", 0),
    ],
    "fleet": [
        ("offered_per_s", "offered frames/s", 0),
        ("delivered_per_s", "delivered frames/s", 0),
        ("p50_ms", "p50 ms", 2),
        ("p99_ms", "p99 ms", 2),
        ("p999_ms", "p99.9 ms", 2),
        ("max_ms", "max ms", 1),
        ("server_cpu_pct", "server CPU %", 0),
        ("client_cpu_pct", "load-gen CPU %", 0),
        ("other_cpu_pct", "other CPU %", 0),
        ("sent", "frames sent", 0),
        ("lost", "lost", 0),
        ("send_late_p99_ms", "send late p99 ms", 1),
        ("rss_mb", "RSS MB", 1),
    ],
}


@dataclass
class Row:
    """One scenario variant: every server's figures."""

    scenario: str
    variant: str
    params: dict[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)


def size_label(size: int) -> str:
    if size >= 1024 and size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} B"


def _number(value: Any, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, list):
        return ", ".join(_number(item, decimals) for item in value)
    if isinstance(value, int | float):
        if decimals == 0:
            return f"{value:,.0f}"
        return f"{value:,.{decimals}f}"
    return str(value)


def _ratio(a: Any, b: Any) -> float | None:
    if not isinstance(a, int | float) or not isinstance(b, int | float):
        return None
    if b == 0 or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def ratios(row: Row) -> dict[str, dict[str, float | None]]:
    """duorelay's headline figures divided by each baseline's."""
    ours = row.results.get("duorelay", {})
    out: dict[str, dict[str, float | None]] = {}
    for baseline in BASELINES:
        theirs = row.results.get(baseline)
        if theirs is None:
            continue
        out[f"duorelay/{baseline}"] = {
            key: _ratio(ours.get(key), theirs.get(key)) for key, *_ in HEADLINES[row.scenario]
        }
    return out


def target(row: Row, key: str) -> tuple[str, str]:
    """(target text, verdict) for a headline figure, or ("", "")."""
    ours = row.results.get("duorelay", {})
    if "failed" in ours:
        return "", "failed"
    if row.scenario == "pingpong" and key == "frames_per_s":
        ratio = _ratio(ours.get(key), row.results.get("raw-asgi", {}).get(key))
        if ratio is None:
            return ">= 0.9x raw ASGI", "-"
        return ">= 0.9x raw ASGI", "met" if ratio >= 0.9 else "**missed**"
    if row.scenario == "idle" and key == "rss_per_conn_kb":
        return "<= 20 KB", "met" if ours.get(key, math.inf) <= 20 else "**missed**"
    if row.scenario == "fleet" and key == "p99_ms":
        return "<= 20 ms", "met" if ours.get(key, math.inf) <= 20 else "**missed**"
    if row.scenario == "fleet" and key == "lost":
        clean = ours.get("lost") == 0 and not ours.get("errors")
        return "0, no errors", "met" if clean else "**missed**"
    return "", ""


def _errors(results: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for server, figures in results.items():
        if "failed" in figures:
            lines.append(f"{server}: FAILED: {figures['failed']}")
        for error, count in sorted(figures.get("errors", {}).items()):
            lines.append(f"{server}: {error} x{count}")
    return lines


def render(
    rows: list[Row],
    *,
    plan: Plan,
    machine: dict[str, Any],
    command: str,
    wall_seconds: float,
    date: str,
    profiles: list[dict[str, Any]],
    memory: list[dict[str, Any]],
) -> str:
    servers = [name for name in LABELS if any(name in row.results for row in rows)]
    baselines = [name for name in BASELINES if name in servers]
    out: list[str] = []
    add = out.append
    versions = machine["versions"]
    add(
        f"Run: {date}, `{command}` ({'quick' if plan.quick else 'full'} run), "
        f"wall time {wall_seconds / 60:.1f} min, commit {machine['commit']}."
    )
    add("")
    add(
        f"Machine: {machine['nproc']} cores ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB, Linux {machine['kernel']}, Python {machine['python']}; "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
        + "."
    )
    add("")
    add(
        f"Load generator: {plan.workers} processes of picows on uvloop, the two seats of a "
        "room in different processes; the server and the load generator share the "
        f"{machine['nproc']} cores, so throughput figures come with the server's CPU per frame. "
        "Each server is a fresh process per scenario; duorelay runs as `python -m duorelay` "
        "with the rate limit and connection cap lifted "
        "(`DUORELAY_MAX_RATE=1000000 DUORELAY_MAX_BURST=1000000 "
        "DUORELAY_MAX_CONNECTIONS=100000 DUORELAY_MAX_CONNECTIONS_PER_ADDRESS=100000`), "
        "everything else default."
    )
    add("")
    add(
        f"Windows: pingpong {plan.pingpong_seconds:g} s after {plan.pingpong_warm:g} s warm-up; "
        f"stream {plan.stream_seconds:g} s ({plan.stream_rooms} rooms); idle "
        f"{2 * plan.idle_rooms:,} connections; fleet {plan.fleet_seconds:g} s after "
        f"{plan.fleet_warm:g} s, {plan.fleet_rate:g} frame/s per connection "
        f"({2 * plan.idle_rooms * plan.fleet_rate:,.0f} frames/s offered)."
        + (
            f" Pingpong and stream ran {plan.repeats} times per server, interleaved; "
            "the median run (by frames/s) is shown."
            if plan.repeats > 1
            else ""
        )
    )
    add("")
    add("### Summary")
    add("")
    head = ["scenario", "figure"] + [LABELS[s] for s in servers]
    head += [f"duorelay / {LABELS[b]}" for b in baselines] + ["target", "verdict"]
    add("| " + " | ".join(head) + " |")
    add("|" + "---|" * len(head))
    for row in rows:
        ratio = ratios(row)
        for key, label, _higher, decimals in HEADLINES[row.scenario]:
            cells = [f"{row.scenario} {row.variant}", label]
            for server in servers:
                figures = row.results.get(server, {})
                cells.append(
                    "failed" if "failed" in figures else _number(figures.get(key), decimals)
                )
            for baseline in baselines:
                value = ratio.get(f"duorelay/{baseline}", {}).get(key)
                cells.append("-" if value is None else f"{value:.2f}x")
            cells.extend(target(row, key))
            add("| " + " | ".join(cells) + " |")
    add("")
    add(
        "Ratios are duorelay's figure divided by the baseline's: above 1 is better for "
        "throughput and set-up rate, below 1 is better for latency, CPU and memory."
    )
    add("")
    for scenario in ("pingpong", "stream", "idle", "fleet"):
        mine = [row for row in rows if row.scenario == scenario]
        if not mine:
            continue
        add(f"### {scenario}: details")
        add("")
        columns = DETAILS[scenario]
        add("| variant | server | " + " | ".join(label for _, label, _ in columns) + " |")
        add("|" + "---|" * (len(columns) + 2))
        errors: list[str] = []
        for row in mine:
            for server in servers:
                figures = row.results.get(server)
                if figures is None:
                    continue
                if "failed" in figures:
                    cells = ["failed"] * len(columns)
                else:
                    cells = [_number(figures.get(key), decimals) for key, _, decimals in columns]
                add(f"| {row.variant} | {server} | " + " | ".join(cells) + " |")
            errors += [f"{row.variant}: {line}" for line in _errors(row.results)]
        add("")
        if errors:
            add("Errors seen by the load generator:")
            add("")
            out.extend(f"- {line}" for line in errors)
            add("")
    if profiles:
        out.extend(render_profiles(profiles))
    if memory:
        out.extend(render_memory(memory))
    return "\n".join(out).rstrip() + "\n"


def render_profiles(profiles: list[dict[str, Any]]) -> list[str]:
    """Where the time goes, per server: share of busy samples and CPU us per frame."""
    rooms = profiles[0]["rooms"]
    out = [
        f"### Profile: pingpong, {rooms} rooms, under py-spy --native",
        "",
        "Self time charged to the package of the innermost Python frame (C calls, system "
        "calls included, count for their Python caller); a sample inside CPython's cyclic "
        "garbage collector counts as GC. CPU per frame is the server's CPU time under the "
        "profiler divided by the frames relayed (the profiler slows the server down).",
        "",
    ]
    head = ["where (self time)"]
    for p in profiles:
        head += [f"{p['server']} share", f"{p['server']} us/frame"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "---|" * len(head))
    names: list[str] = []
    for p in profiles:
        names += [name for name, _ in p["categories"] if name not in names]
    for name in names:
        cells = [name]
        for p in profiles:
            share = dict(p["categories"]).get(name, 0.0)
            cells += [f"{share:.1f}%", f"{share / 100 * p['cpu_us_per_frame']:.1f}"]
        out.append("| " + " | ".join(cells) + " |")
    cells = ["total"]
    for p in profiles:
        cells += ["100%", f"{p['cpu_us_per_frame']:.1f}"]
    out.append("| " + " | ".join(cells) + " |")
    out.append("")
    out.append(
        "Under the profiler: "
        + "; ".join(
            f"{p['server']} {p['frames_per_s']:,.0f} relayed frames/s, {p['samples']:,} samples "
            f"(`{p['raw_file']}`, not committed)"
            for p in profiles
        )
        + "."
    )
    out.append("")
    for p in profiles:
        out += [f"{p['server']}: functions with the most self time", ""]
        out += ["| function | share |", "|---|---|"]
        out += [f"| `{name}` | {share}% |" for name, share in p["top_self"]]
        out.append("")
    ours = next((p for p in profiles if p["server"] == "duorelay"), None)
    if ours:
        out += ["duorelay: our lines, inclusive (share of samples passing through)", ""]
        out += ["| line | share |", "|---|---|"]
        out += [f"| `{name}` | {share}% |" for name, share in ours["ours_lines_inclusive"]]
        out.append("")
    return out


def render_memory(memory: list[dict[str, Any]]) -> list[str]:
    """KB per idle connection by the package that allocated it (tracemalloc)."""
    connections = memory[0]["connections"]
    out = [
        f"### Memory of an idle connection ({connections:,} connections, tracemalloc)",
        "",
        "Python heap growth per joined idle connection, charged to the package of the file "
        "that allocated each block (one frame per allocation). RSS under tracemalloc is "
        "inflated by its own bookkeeping; the idle scenario above gives the real RSS.",
        "",
    ]
    names: list[str] = []
    for m in memory:
        names += [name for name, _ in m["packages"] if name not in names]
    out.append("| package | " + " | ".join(f"{m['server']} KB/conn" for m in memory) + " |")
    out.append("|" + "---|" * (len(memory) + 1))
    for name in names:
        cells = [f"{dict(m['packages']).get(name, 0.0):.1f}" for m in memory]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out.append(
        "| total Python heap | "
        + " | ".join(f"{m['traced_kb_per_conn']:.1f}" for m in memory)
        + " |"
    )
    out.append("")
    return out


def update_docs(path: Path, text: str) -> None:
    """Put ``text`` between the markers of ``path`` (creating the file if needed)."""
    block = f"{BEGIN}\n\n{text}\n{END}"
    if path.exists():
        current = path.read_text()
        if BEGIN in current and END in current:
            before, rest = current.split(BEGIN, 1)
            _, after = rest.split(END, 1)
            path.write_text(before + block + after)
            return
        path.write_text(current.rstrip() + "\n\n" + block + "\n")
        return
    path.write_text(
        "# Benchmarks\n\nThe latest results of `nox -s bench` (see bench/run.py).\n\n"
        "## Latest results\n\n" + block + "\n"
    )


def _json_line(row: Row) -> str:
    line = {
        "scenario": row.scenario,
        "variant": row.variant,
        "params": row.params,
        "results": row.results,
        "ratios": ratios(row),
    }
    return json.dumps(line, default=_json_default)


def emit(row: Row) -> None:
    """Print the row's JSON line (all servers' figures and duorelay's ratios)."""
    print(_json_line(row), flush=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(type(value))


def machine() -> dict[str, Any]:
    cpu_model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in (
        "duorelay",
        "trio",
        "hypercorn",
        "quart",
        "quart-trio",
        "wsproto",
        "h11",
        "websockets",
        "picows",
        "uvloop",
        "psutil",
        "py-spy",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "-"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit + (" (src/ modified)" if dirty else ""),
    }


def command_line(script: str, nox_flag: str = "") -> str:
    """How this run was started, for its report: ``nox -s bench -- NOX_FLAG ARGS``
    in a nox session, else ``python SCRIPT ARGS``."""
    args = shlex.join(sys.argv[1:])
    if os.environ.get("NOX_CURRENT_SESSION"):
        given = " ".join(part for part in (nox_flag, args) if part)
        return "nox -s bench" + (f" -- {given}" if given else "")
    return shlex.join(["python", script, *sys.argv[1:]])


def publish(text: str, name: str) -> Path:
    """Write the Markdown ``text`` to ``bench/results/<name>.md`` and print it;
    returns its path."""
    out = RESULTS / f"{name}.md"
    out.write_text(text)
    print(text)
    return out


def save(rows: list[Row], text: str, name: str) -> Path:
    """Write the Markdown ``text`` to ``bench/results/<name>.md`` and every row's JSON
    line to ``<name>.jsonl``; returns the Markdown's path."""
    out = RESULTS / f"{name}.md"
    out.write_text(text)
    (RESULTS / f"{name}.jsonl").write_text("".join(_json_line(row) + "\n" for row in rows))
    return out
