"""Time `translate` on 100,000 addresses read from a file against the floor: int(x, 0) alone.

The addresses are a deterministic mix (seed 1) like a memory trace: 90% inside the VMAs of the
predicted address space of fixtures/bin/vars (present and not-yet-present pages alike), 10%
anywhere in the 4 GiB. Both loops run in this process over the same list of lines read from the
file; the ratio is printed (goal: <= 3x). Run: .venv/bin/python benchmarks/bench_translate.py
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from elfvm.kernel.profile import make_profile  # noqa: E402
from elfvm.mmu import open_address_space  # noqa: E402

N = 100_000


def make_addresses(space, n: int = N, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    vmas = space.mm.vmas
    out = []
    for _ in range(n):
        if rnd.random() < 0.9:
            v = rnd.choice(vmas)
            a = rnd.randrange(v.start, v.end)
        else:
            a = rnd.randrange(0, 1 << 32)
        out.append(f"{a:#x}")
    return out


def best_of(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    prog = os.path.join(ROOT, "fixtures", "bin", "vars")
    space = open_address_space(profile=make_profile(), elf=prog)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(make_addresses(space)) + "\n")
        path = f.name
    try:
        with open(path) as f:
            lines = f.read().split()
    finally:
        os.unlink(path)

    floor = best_of(lambda: [int(x, 0) for x in lines])

    def run():
        space.flush_tlb()                     # every run starts with a cold TLB
        return space.physical_many(lines, "r", 3)

    t = best_of(run)
    res = run()
    present = sum(r is not None for r in res)
    print(f"addresses: {len(lines)} ({present} present, {len(lines) - present} faulting)")
    print(f"parse only (int(x, 0)):  {floor * 1e3:8.2f} ms")
    print(f"translate:               {t * 1e3:8.2f} ms")
    print(f"ratio: {t / floor:.2f}x (goal <= 3x)")
    # For the record: no locality at all (every address a new 4 KiB page somewhere in 4 GiB).
    rnd = random.Random(2)
    worst = [f"{rnd.randrange(0, 1 << 32):#x}" for _ in range(len(lines))]
    wfloor = best_of(lambda: [int(x, 0) for x in worst], 3)

    def run_worst():
        space.flush_tlb()
        return space.physical_many(worst, "r", 3)

    tw = best_of(run_worst, 3)
    print(f"uniform random over 4 GiB (no locality): {tw * 1e3:.2f} ms, ratio {tw / wfloor:.2f}x")
    # And the full answers the command prints (walk decoded, fault classified, section and symbol,
    # JSON rendered), for the same 100,000 lines: what `translate --addresses FILE --format json`
    # costs beyond start-up.
    from elfvm.mmu import translate_all
    from elfvm.mmu.render import render_json

    tf = best_of(lambda: render_json(translate_all(space, lines, "r", 3)), 1)
    print(f"full answers + JSON (the command's work): {tf * 1e3:.0f} ms, ratio {tf / floor:.0f}x "
          f"({tf / len(lines) * 1e6:.1f} us per address)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
