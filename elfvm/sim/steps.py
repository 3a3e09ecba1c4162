"""The textbook view of page replacement: a reference string stepped one reference at a time.

`parse_refs("7 0 1 2 0 3")` reads the lecture's notation (page numbers, spaces or commas);
`step_refs(pages, policy, frames)` feeds them to the simulator's own Machine (the same policies
and kernel as every trace run, no second implementation) one reference at a time and records
what the OSTEP `-c` view shows: hit or miss, the frames' contents after the reference, the
victim. OPT gets the next-use distances the engine computes for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from elfvm.mmu.tlb import tlb_geometry
from elfvm.sim import jit
from elfvm.sim.engine import K, Machine, PageIndex, SimConfig  # K: the engine's core
from elfvm.sim.stream import belady_anomalies

MAX_REFS = 100_000          # a reference string is typed by a person; this bounds the tables


class RefsError(ValueError):
    pass


def parse_refs(text: str) -> list[int]:
    """'7 0 1 2 0 3', '7,0,1,2' or '0x10 0x11': page numbers >= 0."""
    items = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    if not items:
        raise RefsError("empty reference string (page numbers separated by spaces or commas)")
    if len(items) > MAX_REFS:
        raise RefsError(f"{len(items)} references: at most {MAX_REFS} (use --trace for more)")
    out = []
    for t in items:
        try:
            v = int(t, 0)
        except ValueError:
            raise RefsError(f"{t[:40]!r} is not a page number") from None
        if not 0 <= v < 1 << 52:
            raise RefsError(f"page {t[:40]} out of range (0 .. 2^52-1)")
        out.append(v)
    return out


@dataclass(frozen=True)
class Step:
    page: int
    hit: bool
    frames: tuple[int | None, ...]      # the page in each frame after this reference
    victim: int | None                  # the page evicted to make room, if any


@dataclass(frozen=True)
class StepRun:
    policy: str
    nframes: int
    steps: list[Step]

    @property
    def faults(self) -> int:
        return sum(1 for s in self.steps if not s.hit)


def step_refs(pages: list[int], policy: str, nframes: int) -> StepRun:
    """Run the reference string through one Machine (no TLB) and record every step."""
    cfg = SimConfig(policy, nframes, 1, tlb_geometry(0), walk_levels=0)
    index = PageIndex()
    m = Machine(cfg, index, 1)
    ids = index.resolve(np.zeros(len(pages), dtype=np.int32), np.asarray(pages, dtype=np.int64)).copy()
    flags = np.zeros(len(pages), dtype=np.uint8)
    nexts = np.empty(len(ids), dtype=np.int64)
    if policy == "opt":
        seen = np.full(max(index.npages, 1), K.NEVER, dtype=np.int64)
        jit.compiled(K.next_uses)(ids, 0, seen, nexts)  # one chunk: the whole string
    steps = []
    vpn = index.page_vpn
    for i, page in enumerate(pages):
        m.run(ids[i:i + 1], flags[i:i + 1], nexts[i:i + 1] if policy == "opt" else np.zeros(0, np.int64))
        kind = int(m.sc[K.S_LAST_KIND])
        victim = int(m.sc[K.S_LAST_VICTIM]) if kind >= 0 else -1
        held = m.column("frames", K.F_PAGE)            # the frames used so far, then free ones
        held += [-1] * (nframes - len(held))
        slots = tuple(None if p < 0 else int(vpn[p]) for p in held)
        steps.append(Step(page, kind < 0, slots, int(vpn[victim]) if victim >= 0 else None))
    return StepRun(policy, nframes, steps)


def belady(runs: list[StepRun]) -> list[tuple[str, int, int, int, int]]:
    """(policy, frames, faults, more frames, more faults) wherever more frames gave more faults."""
    out = []
    for pol in dict.fromkeys(r.policy for r in runs):
        mine = [r for r in runs if r.policy == pol]
        out += [(pol, *a) for a in belady_anomalies([r.nframes for r in mine], [r.faults for r in mine])]
    return out
