"""Benchmark: `elfvm layout` (the default table) of a ~1.9 MiB static i386 busybox against
pyelftools' own `readelf.py -l` (its program-header listing) on the same file.

Both are whole commands started the same way (the same Python, a fresh process each time), so
the ratio compares what a user waits for. The runs alternate and the medians are compared; no
absolute time is a goal. Goal (issue 14): ratio <= 1.0.

The busybox: $ELFVM_BUSYBOX_I386, else Debian's busybox-static:i386 (fetched once with
`apt-get download` into ~/.cache/elfvm-bench), else fixtures/bin/hello_static (said so).
pyelftools' readelf.py has no -W (its output is always wide), so `-l` is `readelf -lW`'s listing.
"""

from __future__ import annotations

import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (ROOT, alternate, busybox_i386, compile_bytecode, elfvm_cmd, median,  # noqa: E402
                     print_table, ratio_row)


def find_readelf_py() -> str:
    cand = os.path.join(os.path.dirname(sys.executable), "readelf.py")
    if os.path.exists(cand):
        return cand
    found = shutil.which("readelf.py")
    if not found:
        sys.exit("readelf.py (from pyelftools) not found next to this Python")
    return found


def main(rounds: int = 21) -> list:
    binary, why = busybox_i386()
    what = "a static i386 busybox"
    if not binary:
        binary, what = os.path.join(ROOT, "fixtures", "bin", "hello_static"), f"hello_static ({why})"
    size = os.path.getsize(binary)
    compile_bytecode()
    t = alternate({"elfvm": elfvm_cmd("layout", binary),
                   "readelf": [sys.executable, find_readelf_py(), "-l", binary]}, rounds)
    rows = [ratio_row(f"`layout` (default table) of {what}, {size / (1 << 20):.1f} MiB",
                      median(t["elfvm"]), "pyelftools `readelf.py -l`", median(t["readelf"]), 1.0)]
    print_table("layout", rows, f"medians of {rounds} alternating runs, whole processes")
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 21)
