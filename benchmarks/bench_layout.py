"""Benchmark: `elfvm layout --format maps` against pyelftools' own `readelf.py -l` (its
program-header listing) on the same static binary, run side by side, interleaved.

Both are whole commands started the same way (the same Python, a fresh process each time), so
the ratio compares what a user waits for. The machine is noisy: the runs are interleaved and
the medians compared; no absolute time is asserted anywhere. Goal: ratio <= 1.0.

pyelftools' readelf.py has no -W (its output is always wide), so `-l` is the same listing
`readelf -lW` gives.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def find_readelf_py() -> str:
    cand = os.path.join(os.path.dirname(sys.executable), "readelf.py")
    if os.path.exists(cand):
        return cand
    found = shutil.which("readelf.py")
    if not found:
        sys.exit("readelf.py (from pyelftools) not found next to this Python")
    return found


def timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def main(rounds: int = 25) -> float:
    binary = os.path.join(ROOT, "fixtures", "bin", "hello_static")
    script = os.path.join(os.path.dirname(sys.executable), "elfvm")
    elfvm_cmd = [sys.executable, script, "layout", "--format", "maps", "--env-clear", binary]
    readelf_cmd = [sys.executable, find_readelf_py(), "-l", binary]
    # An installed package has its bytecode compiled (pip does it); an editable checkout under
    # PYTHONDONTWRITEBYTECODE would recompile elfvm on every start, so compile it once here.
    subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(ROOT, "elfvm")], check=True)
    timed(elfvm_cmd), timed(readelf_cmd)          # warm the page cache
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(timed(elfvm_cmd))
        theirs.append(timed(readelf_cmd))
    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = a / b
    print(f"elfvm layout --format maps : median {a * 1000:7.1f} ms over {rounds} runs")
    print(f"readelf.py -l (pyelftools) : median {b * 1000:7.1f} ms over {rounds} runs")
    print(f"ratio elfvm/readelf.py     : {ratio:.2f}  (goal <= 1.00) {'OK' if ratio <= 1.0 else 'OVER'}")
    return ratio


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 25)
