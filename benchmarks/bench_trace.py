"""Benchmark: `elfvm simulate-run --trace` (LRU, 64 frames, 64-entry TLB), whole processes.

Side by side, alternating runs, medians (never an absolute time as a goal), each a fresh process:

* `elfvm simulate-run --trace T --frames 64 --tlb-entries 64 -q --format json`;
* a straightforward Python simulator of the same rules (harness/peers.py pysim: str.split per
  line, OrderedDicts), whose answers must equal elfvm's: goal elfvm <= 0.1x its time;
* the floor, a Python process that only reads the trace's lines (harness/peers.py readlines):
  goal elfvm <= 2x; on the trace repeated 10 times, <= 1x;
* `--policy opt` on the x10 trace: peak RSS per reference, goal <= 4 bytes (bounded memory).

The trace: a small 32-bit C program (sorting and hashing, compiled here with gcc -m32) run under
`valgrind --tool=lackey --trace-mem=yes` (cached in ~/.cache/elfvm-bench); without gcc -m32 or
valgrind, a synthetic trace of the same size with code/stack/heap locality.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (Row, alternate, cache_dir, compile_bytecode, elfvm_cmd, median,  # noqa: E402
                     peer_cmd, print_table, ratio_row, run)

MIN_REFS = 2_300_000
FRAMES = 64
TLB = 64

WORKLOAD_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int cmp(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int *v = malloc(n * sizeof *v);
    unsigned h = 2166136261u, seed = 12345;
    static unsigned table[1 << 16];
    for (int i = 0; i < n; i++) { seed = seed * 1103515245u + 12345u; v[i] = seed >> 8; }
    qsort(v, n, sizeof *v, cmp);
    for (int i = 0; i < n; i++) { h = (h ^ v[i]) * 16777619u; table[h & 0xffff] += v[i]; }
    printf("%u %u\n", h, table[h & 0xffff]);
    return 0;
}
"""


def lackey_trace(workdir: str) -> tuple[str, str]:
    """(path, description) of a lackey trace of at least MIN_REFS records, or ('', why)."""
    if not shutil.which("valgrind") or not shutil.which("gcc"):
        return "", "valgrind or gcc missing"
    out = os.path.join(workdir, "workload.lackey")
    done = out + ".done"
    if os.path.exists(done):
        with open(done) as f:
            return out, f.read()
    src = os.path.join(workdir, "workload.c")
    exe = os.path.join(workdir, "workload")
    with open(src, "w") as f:
        f.write(WORKLOAD_C)
    r = subprocess.run(["gcc", "-m32", "-O1", "-static", src, "-o", exe], capture_output=True)
    if r.returncode != 0:
        return "", "gcc -m32 -static failed"
    n = 3300
    for _ in range(4):
        r = subprocess.run(["valgrind", "--tool=lackey", "--trace-mem=yes", f"--log-file={out}",
                            exe, str(n)], capture_output=True)
        if r.returncode != 0:
            return "", "valgrind cannot run a 32-bit program here"
        with open(out, "rb") as f:
            records = sum(1 for line in f if not line.startswith(b"=="))
        if records >= MIN_REFS:
            what = f"lackey trace of a 32-bit qsort+hash workload (n={n}), {records} records"
            with open(done, "w") as f:
                f.write(what)
            return out, what
        n = int(n * MIN_REFS / max(records, 1) * 1.05) + 1
    return "", "workload too small"


def synthetic_trace(path: str, n: int = MIN_REFS + 50_000) -> str:
    rng = random.Random(1)
    pc, sp, lines = 0x08049000, 0xFFFFD000, []
    heap = [0x0A000000 + i * 4096 for i in range(200)]
    for _ in range(n):
        k = rng.random()
        pc = pc + rng.randrange(1, 8) if rng.random() < 0.97 else 0x08049000 + rng.randrange(1 << 17)
        if k < 0.62:
            lines.append(f"I  {pc:08x},{rng.randrange(1, 8)}\n")
        elif k < 0.85:
            lines.append(f" L {sp - rng.randrange(1 << 13):08x},4\n")
        elif k < 0.97:
            lines.append(f" S {rng.choice(heap) + rng.randrange(4096):08x},4\n")
        else:
            lines.append(f" M {rng.choice(heap) + rng.randrange(4096):08x},4\n")
    with open(path, "w") as f:
        f.writelines(lines)
    return f"synthetic lackey-format trace, {n} records"


def times10(path: str) -> str:
    big = path + ".x10"
    if not os.path.exists(big) or os.path.getsize(big) != 10 * os.path.getsize(path):
        with open(path, "rb") as f:
            data = f.read()
        with open(big + ".tmp", "wb") as f:
            for _ in range(10):
                f.write(data)
        os.replace(big + ".tmp", big)
    return big


def sim_cmd(path: str, *extra: str) -> list[str]:
    return elfvm_cmd("simulate-run", "--trace", path, "--frames", str(FRAMES), "--tlb-entries",
                     str(TLB), "-q", "--format", "json", *extra)


def same_answers(path: str) -> tuple[int, str]:
    """Run both simulators once: (references, '') when they agree, else (0, the difference)."""
    ours = json.loads(run(sim_cmd(path), capture=True).stdout)
    theirs = json.loads(run(peer_cmd("pysim", path), capture=True).stdout)
    mine = {"references": ours["references"], "first-touch": ours["faults_by_kind"]["first-touch"],
            "swap-in": ours["faults_by_kind"]["swap-in"], "evictions": ours["evictions"],
            "dirty_evictions": ours["dirty_evictions"], "tlb_hits": ours["tlb"]["hits"]}
    if mine != theirs:
        return 0, f"elfvm {mine} vs the Python simulator {theirs}"
    return ours["references"], ""


def main(rounds: int = 7) -> list[Row]:
    compile_bytecode()
    d = cache_dir("trace")
    path, what = lackey_trace(d)
    if not path:
        why = what
        path = os.path.join(d, "synthetic.lackey")
        what = synthetic_trace(path) + f" ({why})"
    big = times10(path)
    print(f"trace: {what}; {os.path.getsize(path) / 1e6:.1f} MB (x10: {os.path.getsize(big) / 1e6:.0f} MB)")
    refs, diff = same_answers(path)
    if diff:
        sys.exit(f"the simulators disagree: {diff}")
    print(f"{refs} references; elfvm and the Python simulator give the same counts")

    t = alternate({"elfvm": sim_cmd(path), "pysim": peer_cmd("pysim", path),
                   "floor": peer_cmd("readlines", path)}, max(3, rounds // 2))
    t2 = alternate({"elfvm": sim_cmd(path), "floor": peer_cmd("readlines", path)}, rounds,
                   warm=False)
    e = median(t["elfvm"] + t2["elfvm"])
    f = median(t["floor"] + t2["floor"])
    t10 = alternate({"elfvm": sim_cmd(big), "floor": peer_cmd("readlines", big)}, max(3, rounds // 2))
    opt = run(sim_cmd(big, "--policy", "opt"))
    lru = run(sim_cmd(big))
    rows = [
        ratio_row(f"`simulate-run --trace`, {refs / 1e6:.1f}M-reference lackey trace, LRU 64 frames, "
                  f"TLB 64", median(t["elfvm"]), "straightforward Python simulator",
                  median(t["pysim"]), 0.1),
        ratio_row("same trace", e, "Python reading the lines", f, 2.0),
        ratio_row(f"the same trace x10 ({refs * 10 / 1e6:.0f}M references)", median(t10["elfvm"]),
                  "Python line-read floor", median(t10["floor"]), 1.0),
        Row(f"`--policy opt` on the x10 trace, peak memory", f"{opt.maxrss_kb / 1024:.0f} MB "
            f"(LRU: {lru.maxrss_kb / 1024:.0f} MB), {opt.seconds:.2f} s", "",
            f"{opt.maxrss_kb * 1024 / (refs * 10):.2f} B/reference", "<= 4 B/reference",
            opt.maxrss_kb * 1024 / (refs * 10) <= 4),
    ]
    print_table("simulate-run --trace", rows, "medians of alternating runs, whole processes; a "
                "shared machine: noisy")
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
