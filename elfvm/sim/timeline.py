"""A compact timeline of a trace run, for `simulate-run --svg`: the frame table and the counters
sampled at a bounded number of points, whatever the length of the trace.

Only a run that asks for it pays for it: `stream.run_traces(..., timeline_bins=N)` and
`PagingModel(..., timeline_bins=N)` (a running program, `simulate-run PROGRAM --svg`) use a
`TimelineMachine`, whose `run` goes through `run_sampled` below (compiled, calling the unchanged
reference loop `kernel.simulate` between sample points); every other run uses the plain `Machine`
and never comes here. What a program's model does between references (pages mapped by fork or
fault-around, pages unmapped, faults counted without a frame) shows at the next edge.

Sampling: the run is cut at edges every `w` references (w = 1 at first). At each edge the
cumulative counters (per process), the page held by each of the first `FRAME_CAP` frames and the
last reference are copied into preallocated arrays of 2N + 1 edges. When they fill up, every other
edge is dropped and `w` doubles, so memory is fixed (about (2N+1) x FRAME_CAP x 4 bytes at most)
and the number of kernel calls grows only with the logarithm of the trace. At the end exactly
min(N, references) bins are chosen among the stored edges (widths w or 2w, the last one possibly
shorter): the same number of bins for any trace of N references or more.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elfvm.sim import paging_core as K
from elfvm.sim.jit import entry, njit

DEFAULT_BINS = 400
FRAME_CAP = 1024                # frames sampled (frames are handed out lowest first)

# state[*]
ST_M, ST_WIDTH, ST_NEXT = range(3)


@njit
def _record(t, last, sc, counters, frames, tl_t, tl_counters, tl_frames, tl_last, state):
    m = state[ST_M] + 1
    tl_t[m] = t
    for p in range(counters.shape[0]):
        for c in range(counters.shape[1]):
            tl_counters[m, p, c] = counters[p, c]
    nf = frames.shape[0]                          # the frame table holds the frames used so
    for f in range(tl_frames.shape[1]):           # far (engine.Machine.ensure_pages): the rest
        tl_frames[m, f] = frames[f, K.F_PAGE] if f < nf else -1     # are free
    tl_last[m] = last
    cap = tl_t.shape[0] - 1
    if m == cap:                                  # full: keep the even edges, double the width
        for k in range(1, cap // 2 + 1):
            tl_t[k] = tl_t[2 * k]
            tl_last[k] = tl_last[2 * k]
            for p in range(counters.shape[0]):
                for c in range(counters.shape[1]):
                    tl_counters[k, p, c] = tl_counters[2 * k, p, c]
            for f in range(tl_frames.shape[1]):
                tl_frames[k, f] = tl_frames[2 * k, f]
        m = cap // 2
        state[ST_WIDTH] *= 2
    state[ST_M] = m
    state[ST_NEXT] = t + state[ST_WIDTH]


@entry("void(i4[:], u1[:], i8[:], i8[:, :], i8[:], i8[:], i8[:, :], i8[:, :, :], i8[:], i8[:], i8[:, :], i8[:], i8[:], i8[:, :], i8[:], i8[:, :, :], i4[:, :], i4[:], i8[:])")
def run_sampled(ids, flags, nexts, pages, page_proc, page_vpn, frames, tlb, tree, free, counters,
                sc, prm, events, tl_t, tl_counters, tl_frames, tl_last, state):
    """`kernel.simulate` over ids, stopping at every sample edge to record the state there."""
    n = ids.shape[0]
    a = 0
    while a < n:
        take = state[ST_NEXT] - sc[K.S_T]
        if take > n - a:
            take = n - a
        b = a + take
        K.simulate(ids[a:b], flags[a:b], nexts[a:b], pages, page_proc, page_vpn, frames, tlb, tree,
                   free, counters, sc, prm, events)
        a = b
        if sc[K.S_T] == state[ST_NEXT]:
            _record(sc[K.S_T], ids[b - 1], sc, counters, frames, tl_t, tl_counters, tl_frames,
                    tl_last, state)


@dataclass(frozen=True)
class Timeline:
    """`bins` time bins of a run: bin i covers references edges[i] .. edges[i+1] - 1.

    counters[i] are the cumulative counters (per process, `kernel.C_*` columns) at edge i;
    frame_proc/frame_page[i, f] is the process and virtual page held by frame f at the end of bin
    i (-1: free); last_proc/last_page[i] the last reference of bin i. Only the first
    `frames_sampled` of `frames` frames are kept (physical numbers in `pfn`).
    """

    edges: np.ndarray
    counters: np.ndarray
    frame_proc: np.ndarray
    frame_page: np.ndarray
    last_proc: np.ndarray
    last_page: np.ndarray
    pfn: np.ndarray
    frames: int
    page_size: int
    policy: str
    names: tuple[str, ...]

    @property
    def bins(self) -> int:
        return len(self.edges) - 1

    @property
    def frames_sampled(self) -> int:
        return self.frame_proc.shape[1]

    @property
    def references(self) -> int:
        return int(self.edges[-1])

    def per_bin(self, column: int, proc: int | None = None) -> np.ndarray:
        """A counter's increase in each bin (all processes, or one)."""
        c = self.counters[:, :, column].sum(axis=1) if proc is None else self.counters[:, proc, column]
        return np.diff(c)

    def faults_by_kind(self) -> dict[str, np.ndarray]:
        """Page faults in each bin, by kind (the kinds that occur, in `kernel.FAULT_KINDS` order)."""
        out = {}
        for i, kind in enumerate(K.FAULT_KINDS):
            v = self.per_bin(K.C_FAULT + i)
            if v.any():
                out[kind] = v
        return out

    def tlb_hit_ratio(self) -> np.ndarray:
        """TLB hits / look-ups in each bin (NaN for a bin without look-ups)."""
        h = self.per_bin(K.C_HITS).astype(float)
        m = self.per_bin(K.C_MISSES).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(h + m > 0, h / (h + m), np.nan)

    def frames_used(self) -> int:
        """How many of the sampled frames ever held a page (they are used lowest first)."""
        used = (self.frame_proc >= 0).any(axis=0)
        return int(np.nonzero(used)[0].max()) + 1 if used.any() else 0


class Recorder:
    """The sample arrays of one machine (see the module's docstring)."""

    def __init__(self, machine, bins: int = DEFAULT_BINS):
        if bins < 1:
            raise ValueError("need at least one time bin")
        self.bins = bins
        cap = 2 * bins
        nprocs = machine.counters.shape[0]
        r = min(machine.cfg.frames, FRAME_CAP)
        self.t = np.zeros(cap + 1, dtype=np.int64)
        self.counters = np.zeros((cap + 1, nprocs, K.NC), dtype=np.int64)
        self.frames = np.full((cap + 1, r), -1, dtype=np.int32)
        self.last = np.full(cap + 1, -1, dtype=np.int32)
        self.state = np.zeros(3, dtype=np.int64)
        self.state[ST_WIDTH] = 1
        self.state[ST_NEXT] = 1

    def add_process(self) -> None:
        """A process joins (fork): zero counters for it at every edge so far."""
        z = np.zeros((self.counters.shape[0], 1, K.NC), dtype=np.int64)
        self.counters = np.concatenate([self.counters, z], axis=1)

    def amend(self, machine, frames: bool = False) -> None:
        """The counters (and `frames`: the frame table) changed since the edge recorded at the
        last reference (a relabelled fault; at the end, what the model did without a reference):
        that edge takes them. The latest edge is always the last one kept."""
        m = int(self.state[ST_M])
        if m > 0 and self.t[m] == machine.sc[K.S_T]:
            self.counters[m] = machine.counters
            if frames:
                held = machine.frames[:self.frames.shape[1], K.F_PAGE]
                self.frames[m, :len(held)] = held
                self.frames[m, len(held):] = -1

    def finish(self, machine, names) -> Timeline:
        """Record the last (partial) bin and choose the bins."""
        sc = machine.sc
        t = int(sc[K.S_T])
        m = int(self.state[ST_M])
        if t > self.t[m]:
            f = int(sc[K.S_LAST_FRAME])
            _record(t, machine.frames[f, K.F_PAGE], sc, machine.counters, machine.frames, self.t,
                    self.counters, self.frames, self.last, self.state)
            m = int(self.state[ST_M])
        else:
            self.amend(machine, frames=True)
        if m > self.bins:
            idx = np.rint(np.arange(self.bins + 1) * (m / self.bins)).astype(np.int64)
        else:
            idx = np.arange(m + 1)
        page_proc, page_vpn = machine.index.page_proc, machine.index.page_vpn
        held = self.frames[idx[1:]].astype(np.int64)
        free = held < 0
        fp = np.where(free, -1, page_proc[np.where(free, 0, held)])
        fv = np.where(free, -1, page_vpn[np.where(free, 0, held)])
        last = self.last[idx[1:]].astype(np.int64)
        none = last < 0
        lp = np.where(none, -1, page_proc[np.where(none, 0, last)])
        lv = np.where(none, -1, page_vpn[np.where(none, 0, last)])
        r = self.frames.shape[1]
        cfg = machine.cfg
        return Timeline(self.t[idx].copy(), self.counters[idx].copy(), fp, fv, lp, lv,
                        np.array(machine.pfns(r), dtype=np.int64), cfg.frames, cfg.page_size, cfg.policy, tuple(names))
