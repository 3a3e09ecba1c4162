"""Shared by the benchmarks: whole processes, run alternately, medians, ratios, one table.

Every timing here is a whole process started the way a user starts it (a fresh interpreter,
`elfvm ...` through its console script), so start-up, imports, JIT cache loads and output are all
paid. The machine may be shared: the runs of the two sides alternate (A B A B ...) after a warm-up
round, and the medians are compared. No absolute time is a goal anywhere, only ratios.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers.py")
CACHE = os.environ.get("ELFVM_BENCH_CACHE",
                       os.path.join(os.path.expanduser("~"), ".cache", "elfvm-bench"))


def elfvm_cmd(*args: str) -> list[str]:
    """`elfvm ARGS` as the console script pip installs runs it."""
    script = os.path.join(os.path.dirname(sys.executable), "elfvm")
    if os.path.exists(script):
        return [sys.executable, script, *args]
    return [sys.executable, "-m", "elfvm", *args]


def peer_cmd(*args: str) -> list[str]:
    """One of the plain-Python peers of benchmarks/harness/peers.py, as its own process."""
    return [sys.executable, PEERS, *args]


def compile_bytecode() -> None:
    """An installed package has its bytecode compiled (pip does it); compile the checkout once so
    no run pays for it. First: this Python must run this checkout's elfvm (see check_interpreter)."""
    check_interpreter()
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "elfvm")],
                   check=True)


def check_interpreter() -> None:
    """The benchmarks time `elfvm` as this Python runs it. Another interpreter's installation (a
    global `pip install -e` of an older tree, say) would be timed instead of this checkout: refuse
    that in one line. An import through a meta-path finder (setuptools' editable finder, consulted
    on every import of the process) is timed as such: said on stderr."""
    probe = ("import sys, elfvm; print(elfvm.__file__); "
             "print(any('editable' in type(f).__name__.lower() or 'editable' in getattr(f, '__name__', '').lower()"
             " for f in sys.meta_path))")
    r = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True)
    lines = r.stdout.split()
    where = lines[0] if r.returncode == 0 and lines else None
    if where is None or not os.path.abspath(where).startswith(os.path.join(ROOT, "elfvm") + os.sep):
        raise SystemExit(f"benchmarks: {sys.executable} imports elfvm from {where or 'nowhere'}, not "
                         f"from {ROOT}: run `make bench` (the checkout's .venv)")
    if lines[1:] == ["True"]:
        print(f"benchmarks: note: {sys.executable} imports elfvm through an editable-install finder "
              f"(consulted on every import): `make bench` times the checkout's .venv", file=sys.stderr)


@dataclass
class Run:
    seconds: float
    maxrss_kb: int
    returncode: int
    stdout: bytes


def run(cmd: list[str], *, capture: bool = False, check: bool = True, stdin=None) -> Run:
    """One whole process: wall time, its peak RSS (getrusage of the child) and exit status."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stderr=subprocess.PIPE, stdin=stdin if stdin is not None else subprocess.DEVNULL)
    out = b""
    if capture:
        out = p.stdout.read()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    dt = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if check and p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {err.decode(errors='replace')[-400:]}")
    return Run(dt, ru.ru_maxrss, p.returncode, out)


def alternate(cmds: dict[str, list[str]], rounds: int, *, warm: bool = True) -> dict[str, list[float]]:
    """Run every command once per round, in turn (A B C A B C ...): seconds of each run."""
    if warm:
        for c in cmds.values():
            run(c)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(rounds):
        for k, c in cmds.items():
            times[k].append(run(c).seconds)
    return times


def median(xs) -> float:
    return statistics.median(xs)


@dataclass
class Row:
    work: str
    elfvm: str
    peer: str
    ratio: str
    goal: str
    ok: bool | None          # None: measured only, or skipped


def ratio_row(work: str, ours: float, peer_name: str, theirs: float, goal: float, *,
              unit: str = "s") -> Row:
    r = ours / theirs
    return Row(work, f"{ours:.3f} {unit}", f"{peer_name}, {theirs:.3f} {unit}", f"{r:.2f}x",
               f"<= {goal:g}x", r <= goal)


def skipped(work: str, why: str, goal: str = "") -> Row:
    return Row(work, "-", f"skipped: {why}", "-", goal, None)


def print_table(title: str, rows: list[Row], note: str = "") -> None:
    print(f"\n{title}" + (f"  ({note})" if note else ""))
    print("| work | elfvm | peer | ratio | goal | |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        mark = {True: "OK", False: "OVER", None: ""}[r.ok]
        print(f"| {r.work} | {r.elfvm} | {r.peer} | {r.ratio} | {r.goal} | {mark} |")
    sys.stdout.flush()


def cache_dir(*parts: str) -> str:
    d = os.path.join(CACHE, *parts)
    os.makedirs(d, exist_ok=True)
    return d


def busybox_i386() -> tuple[str, str]:
    """(path, '') of a static i386 busybox, or ('', why not): $ELFVM_BUSYBOX_I386, else the Debian
    package busybox-static:i386 fetched once with `apt-get download` into the bench cache."""
    env = os.environ.get("ELFVM_BUSYBOX_I386")
    if env:
        return (env, "") if os.path.exists(env) else ("", f"ELFVM_BUSYBOX_I386={env} does not exist")
    d = cache_dir("busybox-i386")
    exe = os.path.join(d, "bin", "busybox")
    if os.path.exists(exe):
        return exe, ""
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return "", "no apt-get/dpkg-deb to fetch busybox-static:i386 (set ELFVM_BUSYBOX_I386)"
    r = subprocess.run(["apt-get", "download", "busybox-static:i386"], cwd=d, capture_output=True)
    debs = [f for f in os.listdir(d) if f.endswith(".deb")]
    if r.returncode != 0 or not debs:
        return "", ("apt-get download busybox-static:i386 failed (as root: dpkg --add-architecture "
                    "i386 && apt-get update; or set ELFVM_BUSYBOX_I386)")
    subprocess.run(["dpkg-deb", "-x", os.path.join(d, debs[0]), d], check=True)
    return (exe, "") if os.path.exists(exe) else ("", "the busybox-static:i386 package has no bin/busybox")
