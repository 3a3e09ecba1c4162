"""Benchmark: `simulate-run PROGRAM` against `valgrind --tool=lackey --trace-mem=yes` (issue 5).

The work: sort a 10,000-line file with fixtures/bin/sortlines (static i386: read, qsort with
strcmp, write), and with an i386 busybox `sort` as well when ELFVM_BUSYBOX_I386 names one.
Each program runs, as a command from a shell would run it:

* `elfvm simulate-run -q PROGRAM FILE` (the default, page-granular mode: faults, the kernel's
  way, and evictions through the trace engine);
* `elfvm simulate-run -q --exact-tlb PROGRAM FILE` (a reference per access, like lackey's);
* `valgrind --tool=lackey --trace-mem=yes --log-file=/dev/null PROGRAM FILE` (lackey writing to
  /dev/null: its fastest case, no disk).

Printed: the ratios lackey / simulate-run (goal: > 1, simulate-run faster), never a time as a
goal. `--lines N` changes the input size (lackey takes minutes on 10,000 lines).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SORTLINES = os.path.join(ROOT, "fixtures", "bin", "sortlines")


def sort_input(path: str, n: int) -> str:
    """n deterministic lines in no particular order (the same generator as the oracle test)."""
    with open(path, "w") as f:
        for i in range(1, n + 1):
            f.write(f"line {(i * 7919) % 10007:05d} {'qwertyuiopasdfghjklzxcvbnm'[i % 20:i % 20 + 6]}\n")
    return path


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.decode()[-300:]}")
    return time.perf_counter() - t


def bench(label: str, argv: list[str], repeat: int) -> None:
    elfvm = [sys.executable, "-m", "elfvm", "simulate-run", "-q"]
    subprocess.run(elfvm + argv, stdout=subprocess.DEVNULL)           # warm: numba's disk cache
    default = statistics.median(timed(elfvm + argv) for _ in range(repeat))
    exact = timed(elfvm + ["--exact-tlb"] + argv)
    print(f"{label}:")
    if shutil.which("valgrind") is None:
        print("  valgrind is not installed: no lackey run to compare with")
        print(f"  simulate-run --exact-tlb / default: {exact / default:.1f}x")
        return
    lackey = timed(["valgrind", "--tool=lackey", "--trace-mem=yes", "--log-file=/dev/null", *argv])
    print(f"  lackey / simulate-run (default):    {lackey / default:6.1f}x  (> 1: simulate-run is faster)")
    print(f"  lackey / simulate-run --exact-tlb:  {lackey / exact:6.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = sort_input(os.path.join(tmp, "lines.txt"), a.lines)
        bench(f"sortlines on {a.lines} lines", [SORTLINES, data], a.repeat)
        bb = os.environ.get("ELFVM_BUSYBOX_I386")
        if bb and os.path.exists(bb):
            bench(f"busybox sort on {a.lines} lines", [bb, "sort", data], a.repeat)
        else:
            print("busybox: skipped (set ELFVM_BUSYBOX_I386 to an i386 busybox to add it)")


if __name__ == "__main__":
    os.chdir(ROOT)
    main()
