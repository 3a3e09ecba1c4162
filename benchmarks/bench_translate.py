"""Benchmark: `elfvm translate --elf P --addresses FILE` on 100,000 addresses against a Python
process that only parses the same addresses with int(x, 0); whole processes, alternating runs,
medians. Goal (issue 14): <= 3x, with compact bulk output: `--format jsonl` (a record per page,
one short line per address); `--format json` (every answer whole) is measured beside it.

The addresses are a deterministic mix (seed 1) like a memory trace: 90% inside the VMAs of the
predicted address space of fixtures/bin/vars (present and not-yet-present pages alike), 10%
anywhere in the 4 GiB.
"""

from __future__ import annotations

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (ROOT, Row, alternate, cache_dir, compile_bytecode, elfvm_cmd, median,  # noqa: E402
                     peer_cmd, print_table, ratio_row, run)

N = 100_000
PROG = os.path.join(ROOT, "fixtures", "bin", "vars")


def make_addresses(path: str, n: int = N, seed: int = 1) -> None:
    sys.path.insert(0, ROOT)
    from elfvm.kernel.profile import make_profile
    from elfvm.mmu import open_address_space

    vmas = open_address_space(profile=make_profile(), elf=PROG).mm.vmas
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        if rnd.random() < 0.9:
            v = rnd.choice(vmas)
            a = rnd.randrange(v.start, v.end)
        else:
            a = rnd.randrange(0, 1 << 32)
        out.append(f"{a:#x}\n")
    with open(path, "w") as f:
        f.writelines(out)


def main(rounds: int = 7) -> list[Row]:
    compile_bytecode()
    path = os.path.join(cache_dir("translate"), f"addresses-{N}.txt")
    make_addresses(path)
    cmds = {f: elfvm_cmd("translate", "--elf", PROG, "--addresses", path, "--format", f)
            for f in ("jsonl", "json")}
    outs = {f: run(c, capture=True, check=False) for f, c in cmds.items()}
    t = alternate({**cmds, "floor": peer_cmd("parseint", path)}, rounds)
    rows = []
    for f, goal in (("jsonl", 3.0), ("json", None)):
        r = ratio_row(f"`translate --elf P --addresses FILE --format {f}`, {N // 1000}k addresses",
                      median(t[f]), "Python parsing the addresses with int()", median(t["floor"]),
                      goal or 3.0)
        r.elfvm += f", {len(outs[f].stdout) / 1e6:.1f} MB of output, peak {outs[f].maxrss_kb / 1024:.0f} MB"
        if goal is None:
            r.goal, r.ok = "(measured only)", None
        rows.append(r)
    print_table("translate --addresses", rows, f"medians of {rounds} alternating runs, whole processes")
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
