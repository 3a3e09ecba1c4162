"""Benchmark: `elfvm simulate-run PROGRAM` against `qemu-i386` (user-mode emulation) and
`--exact-tlb` against valgrind's lackey `--trace-mem=yes`; whole processes, alternating runs,
medians; the ratios are printed, never a time as a goal.

* busybox `echo hi` and `sort /etc/services` (a static i386 busybox: $ELFVM_BUSYBOX_I386 or
  Debian's busybox-static:i386, see harness.busybox_i386) vs qemu-i386: goal <= 10x;
* a static qsort program of ~72M instructions (compiled here with gcc -m32 -static) vs
  qemu-i386: goal <= 5x;
* `simulate-run --exact-tlb` (a reference per access) vs `valgrind --tool=lackey
  --trace-mem=yes --log-file=/dev/null` on the qsort program: goal lackey/elfvm >= 10x.

A last busybox row, measured only, is the floor: a Python process that just imports unicorn,
click, tabulate and pyelftools, against the same qemu-i386 `echo hi` (a run's paging model needs
no numpy: it starts with its kernels as plain Python).

A missing peer (qemu-user, valgrind) skips its rows with the reason. The machine may be shared
(the note under the table gives its cores and load): only medians of alternating runs count.
Usage: bench_emu.py [ROUNDS]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Row, alternate, busybox_i386, cache_dir, compile_bytecode, elfvm_cmd,  # noqa: E402
                     median, print_table, ratio_row, skipped)

QSORT_C = r"""
#include <stdio.h>
#include <stdlib.h>
static int cmp(const void *a, const void *b) { int x = *(const int *)a, y = *(const int *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    int *v = malloc(n * sizeof *v); unsigned seed = 12345, h = 2166136261u;
    for (int i = 0; i < n; i++) { seed = seed * 1103515245u + 12345u; v[i] = seed >> 8; }
    qsort(v, n, sizeof *v, cmp);
    for (int i = 0; i < n; i++) h = (h ^ v[i]) * 16777619u;
    printf("%u\n", h); return 0;
}
"""
QSORT_N = "100000"          # about 72M instructions
EXACT_N = "10000"           # about 6M: lackey takes minutes per 100M


def qsort_program() -> tuple[str, str]:
    d = cache_dir("emu")
    exe = os.path.join(d, "qsort")
    if os.path.exists(exe):
        return exe, ""
    if not shutil.which("gcc"):
        return "", "no gcc"
    src = exe + ".c"
    with open(src, "w") as f:
        f.write(QSORT_C)
    r = subprocess.run(["gcc", "-m32", "-O1", "-static", src, "-o", exe], capture_output=True)
    return (exe, "") if r.returncode == 0 else ("", "gcc -m32 -static failed")


def vs_qemu(work: str, argv: list[str], goal: float, rounds: int) -> Row:
    if not shutil.which("qemu-i386"):
        return skipped(work, "qemu-i386 not installed (apt-get install qemu-user)", f"<= {goal:g}x")
    t = alternate({"elfvm": elfvm_cmd("simulate-run", "-q", *argv), "qemu": ["qemu-i386", *argv]},
                  rounds)
    return ratio_row(work, median(t["elfvm"]), "`qemu-i386`", median(t["qemu"]), goal)


FLOOR_IMPORTS = "unicorn, click, tabulate, elftools.elf.elffile"


def import_floor(bb: str, rounds: int) -> Row:
    """What no `simulate-run PROGRAM` can go below: a Python process that only imports the
    third-party modules every run needs, against qemu-i386's busybox `echo hi`. Measured only:
    it says how much of a row is elfvm's."""
    work = f"floor: `python -c 'import {FLOOR_IMPORTS}'` vs busybox `echo hi`"
    if not shutil.which("qemu-i386"):
        return skipped(work, "qemu-i386 not installed")
    floor = [sys.executable, "-c", f"import {FLOOR_IMPORTS}"]
    t = alternate({"floor": floor, "qemu": ["qemu-i386", bb, "echo", "hi"]}, rounds)
    f, q = median(t["floor"]), median(t["qemu"])
    return Row(work, f"{f:.3f} s", f"`qemu-i386`, {q:.3f} s", f"{f / q:.2f}x", "", None)


def main(rounds: int = 3) -> list[Row]:
    compile_bytecode()
    rows = []
    bb, why = busybox_i386()
    if bb:
        rows.append(vs_qemu("`simulate-run PROGRAM` busybox `echo hi`", [bb, "echo", "hi"], 10, rounds))
        rows.append(vs_qemu("`simulate-run PROGRAM` busybox `sort /etc/services`",
                            [bb, "sort", "/etc/services"], 10, rounds))
        rows.append(import_floor(bb, rounds))
    else:
        rows.append(skipped("`simulate-run PROGRAM` busybox", why, "<= 10x"))
    q, why = qsort_program()
    if not q:
        rows.append(skipped("a 72M-instruction static qsort program", why, "<= 5x"))
    else:
        rows.append(vs_qemu("a 72M-instruction static qsort program", [q, QSORT_N], 5, rounds))
        work = f"`--exact-tlb` against valgrind lackey `--trace-mem=yes` (qsort program, n={EXACT_N})"
        if not shutil.which("valgrind"):
            rows.append(skipped(work, "valgrind not installed", ">= 10x faster"))
        else:
            t = alternate({"elfvm": elfvm_cmd("simulate-run", "-q", "--exact-tlb", q, EXACT_N),
                           "lackey": ["valgrind", "--tool=lackey", "--trace-mem=yes",
                                      "--log-file=/dev/null", q, EXACT_N]}, 1, warm=False)
            e, lk = median(t["elfvm"]), median(t["lackey"])
            rows.append(Row(work, f"{e:.2f} s", f"lackey, {lk:.2f} s", f"{lk / e:.2f}x faster",
                            ">= 10x faster", lk / e >= 10))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print_table("simulate-run PROGRAM (measured only here)", rows,
                f"medians of {rounds} alternating runs, whole processes; {os.cpu_count()} cores, "
                f"load average {load:.1f} at the end")
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
