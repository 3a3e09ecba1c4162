"""Demand paging over memory references: the engine `simulate-run` drives, from traces or live.

Two ways in, one model:

* `run_traces()` streams trace files through the compiled core in batches (one pass; OPT first
  learns every next use in a compact pass of its own), several traces round-robin by a quantum;
* `PagingModel.access()` takes references one at a time, as a running program makes them (the
  emulator's program-aware mode), with the fault kind its memory manager decided.

Frames are physical frames handed out by `elfvm.phys.FrameAllocator` (bottom-up, deterministic);
walk levels come from the `elfvm.mmu.geometry` of the chosen MMU; the TLB's shape and the
effective access time from `elfvm.mmu.tlb`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from elfvm.mmu.tlb import TlbGeometry, effective_access_ns, tlb_geometry
from elfvm.phys.frames import FrameAllocator, Zone
from elfvm.sim import paging_core as K

if TYPE_CHECKING:
    from elfvm.sim.timeline import Timeline
    from elfvm.sim.trace import BadLines, TraceReader

EMPTY_NEXTS = np.zeros(0, dtype=np.int64)
TRACE_FAULT_KINDS = ("first-touch", "swap-in")
PROGRAM_FAULT_KINDS = ("first-touch", "zero-page", "file", "cow", "stack-growth", "swap-in")


@dataclass(frozen=True)
class SimConfig:
    policy: str = "lru"
    frames: int = 64
    page_size: int = 4096
    tlb: TlbGeometry = field(default_factory=lambda: tlb_geometry(64))
    split_tlb: bool = False
    asid: bool = False
    walk_levels: int = 2
    tlb_ns: float = 20.0
    mem_ns: float = 100.0
    event_limit: int = 0             # page-fault events kept (the first N)

    def __post_init__(self):
        if self.policy not in K.POLICIES:
            raise ValueError(f"unknown policy {self.policy!r}")
        if self.frames < 1:
            raise ValueError("need at least one frame")
        if self.page_size < 1 or self.page_size & (self.page_size - 1):
            raise ValueError("the page size must be a power of two")

    @property
    def page_shift(self) -> int:
        return self.page_size.bit_length() - 1


# ------------------------------------------------------------------ results

@dataclass(frozen=True)
class TlbStats:
    hits: int
    misses: int

    @property
    def hit_ratio(self) -> float | None:
        n = self.hits + self.misses
        return self.hits / n if n else None


@dataclass(frozen=True)
class PageRow:
    """One PTE of a final page table: page -> frame (None when swapped out)."""

    process: int
    page: int                # virtual page number
    frame: int | None
    dirty: bool
    referenced: bool
    swapped: bool            # not present, its contents in swap


@dataclass(frozen=True)
class FrameRow:
    frame: int
    process: int
    page: int
    dirty: bool
    referenced: bool


@dataclass(frozen=True)
class FaultEvent:
    """A page fault at reference `ref` (0-based), the frame it got and the page it evicted."""

    ref: int
    process: int
    page: int
    kind: str
    frame: int
    victim_process: int | None
    victim_page: int | None
    written_back: bool


@dataclass(frozen=True)
class Stats:
    references: int
    pages_touched: int
    page_faults: int
    faults_by_kind: dict[str, int]
    evictions: int
    dirty_evictions: int
    swap_ins: int
    tlb: TlbStats
    effective_access_ns: float | None
    pages: list[PageRow]
    frames: list[FrameRow]
    context_switches: int = 0


@dataclass(frozen=True)
class SimResult:
    config: SimConfig
    names: list[str]
    total: Stats
    processes: list[Stats]
    events: list[FaultEvent]
    bad_lines: list[BadLines]
    fault_kinds: tuple[str, ...] = TRACE_FAULT_KINDS
    timeline: "Timeline | None" = None     # with run_traces(timeline_bins=N): for --svg
    interrupted: bool = False              # a Ctrl-C ended the run: the figures cover a prefix


# ------------------------------------------------------------------ the page index

class PageIndex:
    """(process, virtual page number) -> dense page id, in order of first reference."""

    def __init__(self, capacity: int = 1 << 12):
        self._alloc(capacity)
        self.count = np.zeros(1, dtype=np.int64)

    def _alloc(self, cap: int) -> None:
        self.keys_proc = np.full(cap, -1, dtype=np.int64)
        self.keys_vpn = np.zeros(cap, dtype=np.int64)
        self.vals = np.zeros(cap, dtype=np.int64)
        self.page_proc = np.zeros(cap // 2, dtype=np.int64)
        self.page_vpn = np.zeros(cap // 2, dtype=np.int64)

    @property
    def npages(self) -> int:
        return int(self.count[0])

    def _grow(self) -> None:
        kp, kv, vals, pp, pv = self.keys_proc, self.keys_vpn, self.vals, self.page_proc, self.page_vpn
        self._alloc(2 * len(kp))
        K.rehash(kp, kv, vals, self.keys_proc, self.keys_vpn, self.vals)
        self.page_proc[:len(pp)] = pp
        self.page_vpn[:len(pv)] = pv

    def resolve(self, procs: np.ndarray, vpns: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Page ids (int32) of the references; `out`, if given, is a big enough array to reuse."""
        ids = np.empty(len(vpns), dtype=np.int32) if out is None else out[:len(vpns)]
        i = 0
        while True:
            i = K.resolve(procs, vpns, ids, i, self.keys_proc, self.keys_vpn, self.vals,
                          self.page_proc, self.page_vpn, self.count)
            if i == len(vpns):
                return ids
            self._grow()

    def lookup(self, proc: int, vpn: int) -> int:
        return int(self.resolve(np.array([proc], dtype=np.int32), np.array([vpn], dtype=np.int64))[0])


def user_frames(n: int, page_size: int) -> np.ndarray:
    """Physical frame numbers for `n` frames of RAM = n pages, as elfvm.phys allocates user
    frames: bottom-up and deterministic (no reserved ranges: trace mode's RAM is all user RAM)."""
    ram = n * page_size
    alloc = FrameAllocator(ram=ram, frame_size=page_size, reserved=[], zones=[Zone("Normal", 0, ram)])
    first = alloc.alloc("user pages", kind="user", frames=n)
    return np.arange(first // page_size, first // page_size + n, dtype=np.int64)


# ------------------------------------------------------------------ one machine's state

class Machine:
    """The state of one configuration: page-table entries, frames, TLB(s), counters, events."""

    def __init__(self, cfg: SimConfig, index: PageIndex, nprocs: int, first_kind: int = 0):
        self.cfg = cfg
        self.index = index
        self.nprocs = nprocs
        n = cfg.frames
        self.pfn = user_frames(n, cfg.page_size)
        self.pages = np.empty((0, K.NPF), dtype=np.int64)
        self.frames = np.zeros((n, K.NFF), dtype=np.int64)
        self.frames[:, K.F_PAGE] = -1
        self.frames[:, K.F_PREV] = -1
        self.frames[:, K.F_NEXT] = -1
        self.frames[:, K.F_KEY] = -1
        self.frames[:, K.F_PFN] = self.pfn
        e = max(cfg.tlb.entries, 1)
        self.tlb = np.full((2, e, 2), -1, dtype=np.int64)
        size = 1 << max(n - 1, 1).bit_length()
        self.tree = np.full(2 * size, -1, dtype=np.int64)
        self.tree[size:size + n] = np.arange(n)     # leaves; inner nodes fill in as frames load
        self.free = np.arange(n - 1, -1, -1, dtype=np.int64)     # popped from the end: frame 0 first
        self.counters = np.zeros((nprocs, K.NC), dtype=np.int64)
        self.sc = np.zeros(K.NS, dtype=np.int64)
        self.sc[K.S_CUR] = -1
        self.sc[K.S_HEAD] = -1
        self.sc[K.S_TAIL] = -1
        self.sc[K.S_NFREE] = n
        self.prm = np.zeros(K.NR, dtype=np.int64)
        self.prm[K.R_POLICY] = K.POLICIES[cfg.policy]
        self.prm[K.R_NFRAMES] = n
        self.prm[K.R_TLB_ENTRIES] = cfg.tlb.entries
        self.prm[K.R_TLB_WAYS] = cfg.tlb.ways
        self.prm[K.R_TLB_SETS] = cfg.tlb.sets
        self.prm[K.R_SPLIT] = int(cfg.split_tlb)
        self.prm[K.R_ASID] = int(cfg.asid)
        self.prm[K.R_EVCAP] = cfg.event_limit
        self.prm[K.R_TREE] = size
        self.prm[K.R_FIRST_KIND] = first_kind
        self.events = np.zeros((max(cfg.event_limit, 1), K.NE), dtype=np.int64)
        self.interrupted = False             # a Ctrl-C ended the run early

    def ensure_pages(self) -> None:
        need = self.index.npages
        if len(self.pages) >= need:
            return
        cap = max(need, 2 * len(self.pages), 1024)
        grown = np.full((cap, K.NPF), -1, dtype=np.int64)
        grown[:, K.P_SWAPPED] = 0
        grown[:len(self.pages)] = self.pages
        self.pages = grown

    def counters_amended(self) -> None:
        """The caller changed the counters of the last reference after run() (a relabelled
        fault); only a timeline has something to redo."""

    def add_process(self) -> int:
        """One more process (fork): its number."""
        self.counters = np.vstack([self.counters, np.zeros((1, K.NC), dtype=np.int64)])
        self.nprocs += 1
        return self.nprocs - 1

    def run(self, ids: np.ndarray, flags: np.ndarray, nexts: np.ndarray = EMPTY_NEXTS) -> None:
        self.ensure_pages()
        K.simulate(ids, flags, nexts, self.pages, self.index.page_proc, self.index.page_vpn,
                   self.frames, self.tlb, self.tree, self.free, self.counters, self.sc, self.prm,
                   self.events)

    # -------------------------------------------------------------- results

    def page_rows(self) -> list[PageRow]:
        self.ensure_pages()                 # pages resolved by a batch a Ctrl-C cut short
        n = self.index.npages
        proc = self.index.page_proc[:n]
        vpn = self.index.page_vpn[:n]
        fr = self.pages[:n, K.P_FRAME]
        sw = self.pages[:n, K.P_SWAPPED]
        order = np.lexsort((vpn, proc))
        rows = []
        for p in order.tolist():
            f = int(fr[p])
            resident = f >= 0
            rows.append(PageRow(int(proc[p]), int(vpn[p]), int(self.pfn[f]) if resident else None,
                                bool(self.frames[f, K.F_DIRTY]) if resident else False,
                                bool(self.frames[f, K.F_REF]) if resident else False,
                                (not resident) and bool(sw[p])))
        return rows

    def frame_rows(self) -> list[FrameRow]:
        rows = []
        page_proc, page_vpn = self.index.page_proc, self.index.page_vpn
        for f in np.nonzero(self.frames[:, K.F_PAGE] >= 0)[0].tolist():
            p = int(self.frames[f, K.F_PAGE])
            rows.append(FrameRow(int(self.pfn[f]), int(page_proc[p]), int(page_vpn[p]),
                                 bool(self.frames[f, K.F_DIRTY]), bool(self.frames[f, K.F_REF])))
        return rows

    def fault_events(self) -> list[FaultEvent]:
        out = []
        page_proc, page_vpn = self.index.page_proc, self.index.page_vpn
        for row in self.events[:int(self.sc[K.S_NEVENTS])].tolist():
            t, proc, p, kind, f, victim, vdirty = row
            out.append(FaultEvent(t, proc, int(page_vpn[p]), K.FAULT_KINDS[kind], int(self.pfn[f]),
                                  int(page_proc[victim]) if victim >= 0 else None,
                                  int(page_vpn[victim]) if victim >= 0 else None, bool(vdirty)))
        return out

    def stats(self, kinds: Sequence[str] = TRACE_FAULT_KINDS, *, with_rows: bool = True) -> tuple[Stats, list[Stats]]:
        """(total, per process) figures."""
        pages = self.page_rows() if with_rows else []
        frames = self.frame_rows() if with_rows else []
        per = [self._stats(self.counters[i], kinds, [r for r in pages if r.process == i],
                           [r for r in frames if r.process == i], 0)
               for i in range(self.nprocs)]
        total = self._stats(self.counters.sum(axis=0), kinds, pages, frames,
                            int(self.sc[K.S_SWITCHES]))
        return total, per

    def _stats(self, c: np.ndarray, kinds: Sequence[str], pages, frames, switches: int) -> Stats:
        c = [int(x) for x in c]
        by_kind = {k: c[K.C_FAULT + K.FAULT_KINDS.index(k)] for k in kinds}
        for i, k in enumerate(K.FAULT_KINDS):       # a kind outside the mode's list still shows
            if c[K.C_FAULT + i] and k not in by_kind:
                by_kind[k] = c[K.C_FAULT + i]
        tlb = TlbStats(c[K.C_HITS], c[K.C_MISSES])
        h = tlb.hit_ratio
        cfg = self.cfg
        eat = None if h is None else effective_access_ns(h, cfg.tlb_ns, cfg.mem_ns, cfg.walk_levels)
        return Stats(c[K.C_REFS], c[K.C_TOUCHED], sum(c[K.C_FAULT:K.C_FAULT + K.NKINDS]), by_kind,
                     c[K.C_EVICT], c[K.C_DIRTY], c[K.C_FAULT + K.K_SWAP_IN], tlb, eat, pages,
                     frames, switches)


class TimelineMachine(Machine):
    """A Machine that also samples a compact timeline (`elfvm.sim.timeline`) as it runs; runs
    without a timeline use the plain Machine and pay nothing for this."""

    def __init__(self, cfg: SimConfig, index: PageIndex, nprocs: int, bins: int):
        from elfvm.sim.timeline import Recorder

        super().__init__(cfg, index, nprocs)
        self.recorder = Recorder(self, bins)

    def add_process(self) -> int:
        self.recorder.add_process()
        return super().add_process()

    def counters_amended(self) -> None:
        self.recorder.amend(self)

    def run(self, ids: np.ndarray, flags: np.ndarray, nexts: np.ndarray = EMPTY_NEXTS) -> None:
        from elfvm.sim.timeline import run_sampled

        self.ensure_pages()
        r = self.recorder
        run_sampled(ids, flags, nexts, self.pages, self.index.page_proc, self.index.page_vpn,
                    self.frames, self.tlb, self.tree, self.free, self.counters, self.sc, self.prm,
                    self.events, r.t, r.counters, r.frames, r.last, r.state)


# ------------------------------------------------------------------ streaming traces

def interleave(streams: Sequence[Iterable[tuple[np.ndarray, np.ndarray]]], quantum: int,
               batch: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Round-robin: `quantum` references of process 0, then of 1, ... (a process whose trace
    ends gives up the rest of its quantum); yields (procs int32, vpns, flags) batches of at
    most `batch` (default: the trace reader's BATCH) references."""
    if batch is None:
        from elfvm.sim.trace import BATCH as batch
    if len(streams) == 1:
        zeros = np.zeros(batch, dtype=np.int32)
        for v, f in streams[0]:
            yield (zeros[:len(v)] if len(v) <= batch else np.zeros(len(v), dtype=np.int32)), v, f
        return
    iters = [iter(s) for s in streams]
    bufs: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(streams)
    offs = [0] * len(streams)
    active = list(range(len(streams)))
    cur, used = 0, 0
    parts_p, parts_v, parts_f, nout = [], [], [], 0
    while active:
        if used == 0 and len(active) > 1 and all(bufs[q] is not None for q in active):
            # whole rounds that every process's buffered references can fill: one numpy step
            rounds = min(min((len(bufs[q][0]) - offs[q]) // quantum for q in active),
                         (batch - nout) // (quantum * len(active)))
            if rounds > 0:
                order = active[cur:] + active[:cur]
                span = rounds * quantum
                vs = [bufs[q][0][offs[q]:offs[q] + span].reshape(rounds, 1, quantum) for q in order]
                fs = [bufs[q][1][offs[q]:offs[q] + span].reshape(rounds, 1, quantum) for q in order]
                ps = np.broadcast_to(np.array(order, dtype=np.int32).reshape(1, -1, 1),
                                     (rounds, len(order), quantum))
                parts_v.append(np.concatenate(vs, axis=1).reshape(-1))
                parts_f.append(np.concatenate(fs, axis=1).reshape(-1))
                parts_p.append(ps.reshape(-1))
                nout += span * len(order)
                for q in order:
                    offs[q] += span
                if nout == batch:
                    yield np.concatenate(parts_p), np.concatenate(parts_v), np.concatenate(parts_f)
                    parts_p, parts_v, parts_f, nout = [], [], [], 0
                continue
        p = active[cur]
        buf = bufs[p]
        if buf is None or offs[p] >= len(buf[0]):
            nxt = next(iters[p], None)
            if nxt is None:
                active.pop(cur)
                used = 0
                if cur >= len(active):
                    cur = 0
                continue
            bufs[p], offs[p] = nxt, 0
            continue
        v, f = buf
        o = offs[p]
        take = min(quantum - used, len(v) - o, batch - nout)
        parts_p.append(np.full(take, p, dtype=np.int32))
        parts_v.append(v[o:o + take])
        parts_f.append(f[o:o + take])
        nout += take
        offs[p] = o + take
        used += take
        if used == quantum:
            used = 0
            cur = (cur + 1) % len(active)
        if nout == batch:
            yield np.concatenate(parts_p), np.concatenate(parts_v), np.concatenate(parts_f)
            parts_p, parts_v, parts_f, nout = [], [], [], 0
    if nout:
        yield np.concatenate(parts_p), np.concatenate(parts_v), np.concatenate(parts_f)


OPT_CHUNK = 1 << 20                 # references per chunk of OPT's passes


class _Spool:
    """An array of one dtype written chunk by chunk to an anonymous temporary file and read back
    in chunks: OPT's passes keep on disk what would otherwise grow with the trace."""

    def __init__(self, dtype):
        import tempfile

        self.dtype = np.dtype(dtype)
        self.f = tempfile.TemporaryFile(prefix="elfvm-opt-")
        self.n = 0

    def append(self, a: np.ndarray) -> None:
        self.f.seek(self.n * self.dtype.itemsize)
        self.f.write(np.ascontiguousarray(a, dtype=self.dtype).data)
        self.n += len(a)

    def write_at(self, i: int, a: np.ndarray) -> None:
        self.f.seek(i * self.dtype.itemsize)
        self.f.write(a.data)
        self.n = max(self.n, i + len(a))

    def read(self, i: int, out: np.ndarray) -> np.ndarray:
        """Elements i .. i+len(out)-1 (fewer at the end) into `out`."""
        k = min(len(out), self.n - i)
        self.f.seek(i * self.dtype.itemsize)
        self.f.readinto(out[:k].data.cast("B"))
        return out[:k]

    def close(self) -> None:
        self.f.close()


def _run_opt(batches, index: PageIndex, machines: Sequence[Machine], progress) -> None:
    """Three passes in bounded memory (a few chunks, and a next-use slot per distinct page):
    1. forward: page ids and flags of the whole stream to temporary files;
    2. backward, chunk by chunk from the end: each reference's next use (`K.next_uses`);
    3. forward: the references and their next uses through every machine.
    A Ctrl-C during pass 1 ends the trace there: the report covers the references read."""
    ids_f, flags_f, nexts_f = _Spool(np.int32), _Spool(np.uint8), _Spool(np.int64)
    try:
        try:
            for procs, vpns, flags in batches:
                ids_f.append(index.resolve(procs, vpns))
                flags_f.append(flags)
                progress()
        except KeyboardInterrupt:
            for m in machines:
                m.interrupted = True
        n = ids_f.n
        ids = np.empty(OPT_CHUNK, dtype=np.int32)
        flags = np.empty(OPT_CHUNK, dtype=np.uint8)
        nexts = np.empty(OPT_CHUNK, dtype=np.int64)
        seen = np.full(max(index.npages, 1), K.NEVER, dtype=np.int64)
        for a in range(((n - 1) // OPT_CHUNK) * OPT_CHUNK if n else -1, -1, -OPT_CHUNK):
            chunk = ids_f.read(a, ids)
            K.next_uses(chunk, a, seen, nexts[:len(chunk)])
            nexts_f.write_at(a, nexts[:len(chunk)])
        del seen
        for a in range(0, n, OPT_CHUNK):
            i, f, x = ids_f.read(a, ids), flags_f.read(a, flags), nexts_f.read(a, nexts)
            for m in machines:
                m.run(i, f, x if m.cfg.policy == "opt" else EMPTY_NEXTS)
    finally:
        for sp in (ids_f, flags_f, nexts_f):
            sp.close()


def run_machines(readers: Sequence[TraceReader], machines: Sequence[Machine], quantum: int,
                 progress: Callable[[], None] = lambda: None) -> None:
    """Feed the interleaved references of `readers` to every machine (they share the index).

    A Ctrl-C stops the feeding between two batches: the machines keep what they saw, and
    `interrupted` is set on each (the caller reports the partial run and exits 130)."""
    from elfvm.sim.trace import BATCH

    index = machines[0].index
    batches = interleave(readers, quantum)
    try:
        if any(m.cfg.policy == "opt" for m in machines):
            _run_opt(batches, index, machines, progress)
            return
        out = np.empty(BATCH, dtype=np.int32)
        for procs, vpns, flags in batches:
            ids = index.resolve(procs, vpns, out if len(vpns) <= BATCH else None)
            for m in machines:
                m.run(ids, flags)
            progress()
    except KeyboardInterrupt:
        for m in machines:
            m.interrupted = True


def open_readers(paths: Sequence[str], fmt: str, cfg: SimConfig, max_addr: int,
                 skip_bad: bool) -> list[TraceReader]:
    from elfvm.sim.trace import TraceReader         # traces only: a program's run never reads one

    if sum(1 for p in paths if p == "-") > 1:
        raise ValueError("stdin can be only one of the traces")
    # one trace: its batches are used one by one, so the reader may reuse its arrays
    return [TraceReader(p, fmt, cfg.page_shift, max_addr, skip_bad=skip_bad,
                        reuse=len(paths) == 1) for p in paths]


def run_traces(paths: Sequence[str], cfg: SimConfig, *, fmt: str = "auto", quantum: int = 10000,
               max_addr: int = (1 << 32) - 1, skip_bad: bool = False,
               progress: Callable[[int, int | None], None] | None = None,
               timeline_bins: int = 0) -> SimResult:
    """Simulate the traces at `paths` (one process each) under `cfg`; with `timeline_bins` > 0
    the result also has a `timeline` of that many time bins (fewer for a shorter trace)."""
    readers = open_readers(paths, fmt, cfg, max_addr, skip_bad)
    index = PageIndex()
    if timeline_bins > 0:
        m = TimelineMachine(cfg, index, len(readers), timeline_bins)
    else:
        m = Machine(cfg, index, len(readers))
    run_machines(readers, [m], quantum, _progress_fn(readers, progress))
    total, per = m.stats()
    names = [r.name for r in readers]
    timeline = m.recorder.finish(m, names) if timeline_bins > 0 else None
    return SimResult(cfg, names, total, per, m.fault_events(), [r.bad for r in readers if r.bad],
                     timeline=timeline, interrupted=m.interrupted)


def _progress_fn(readers, progress):
    if progress is None:
        return lambda: None
    sizes = [r.size for r in readers]
    total = None if any(s is None for s in sizes) else sum(sizes)
    return lambda: progress(sum(r.raw_bytes_read for r in readers), total)


@dataclass(frozen=True)
class CompareResult:
    policies: list[str]
    frames: list[int]
    references: int
    pages_touched: int
    faults: dict[str, list[int]]          # policy -> faults for each frame count
    belady: list[tuple[str, int, int, int, int]]   # (policy, frames, faults, more frames, more faults)
    bad_lines: list[BadLines]
    interrupted: bool = False


def belady_anomalies(frames: Sequence[int], faults: Sequence[int]) -> list[tuple[int, int, int, int]]:
    """Every pair of memory sizes where more frames gave more faults."""
    order = sorted(range(len(frames)), key=lambda i: frames[i])
    out = []
    for a in range(len(order)):
        for b in range(a + 1, len(order)):
            i, j = order[a], order[b]
            if frames[j] > frames[i] and faults[j] > faults[i]:
                out.append((frames[i], faults[i], frames[j], faults[j]))
    return out


def compare(paths: Sequence[str], policies: Sequence[str], frame_counts: Sequence[int],
            base: SimConfig, *, fmt: str = "auto", quantum: int = 10000,
            max_addr: int = (1 << 32) - 1, skip_bad: bool = False,
            progress: Callable[[int, int | None], None] | None = None) -> CompareResult:
    """Faults for every (policy, frames), all machines fed from one pass over the traces."""
    readers = open_readers(paths, fmt, base, max_addr, skip_bad)
    index = PageIndex()
    machines = {}
    for pol in policies:
        for n in frame_counts:
            cfg = SimConfig(pol, n, base.page_size, base.tlb, base.split_tlb, base.asid,
                            base.walk_levels, base.tlb_ns, base.mem_ns, 0)
            machines[pol, n] = Machine(cfg, index, len(readers))
    run_machines(readers, list(machines.values()), quantum, _progress_fn(readers, progress))
    faults = {pol: [int(machines[pol, n].counters[:, K.C_FAULT:K.C_FAULT + K.NKINDS].sum())
                    for n in frame_counts] for pol in policies}
    belady = [(pol, *a) for pol in policies for a in belady_anomalies(frame_counts, faults[pol])]
    any_m = next(iter(machines.values()))
    return CompareResult(list(policies), list(frame_counts), int(any_m.counters[:, K.C_REFS].sum()),
                         index.npages, faults, belady, [r.bad for r in readers if r.bad],
                         any_m.interrupted)


# ------------------------------------------------------------------ one reference at a time

@dataclass(frozen=True)
class Access:
    """What one reference did: TLB hit?, the fault (kind) if any, the frame, the page evicted."""

    tlb_hit: bool
    fault: str | None
    frame: int
    evicted: tuple[int, int] | None       # (process, page) that lost its frame
    written_back: bool


class PagingModel:
    """The same engine for a running program (the emulator): references one at a time.

    The program-aware caller decides the kind of a first-touch fault (zero-page, file, cow,
    stack-growth ...) from its VMAs and passes it; faults the model cannot see (a COW write to a
    resident page, a write after the shared zero page) are added with `count_fault`. Evicted
    pages are returned so the caller can unmap them from its CPU.
    """

    def __init__(self, cfg: SimConfig, nprocs: int = 1, kinds: Sequence[str] = PROGRAM_FAULT_KINDS,
                 timeline_bins: int = 0):
        """`timeline_bins` > 0: also sample a timeline of that many bins (`timeline()`)."""
        self.index = PageIndex()
        if timeline_bins > 0:
            self.machine: Machine = TimelineMachine(cfg, self.index, nprocs, timeline_bins)
        else:
            self.machine = Machine(cfg, self.index, nprocs)
        self.kinds = tuple(kinds)
        self._proc = np.zeros(1, dtype=np.int32)
        self._vpn = np.zeros(1, dtype=np.int64)
        self._flags = np.zeros(1, dtype=np.uint8)

    def access(self, proc: int, vpn: int, *, write: bool = False, instr: bool = False,
               fault_kind: str = "first-touch", refault_kind: str | None = None) -> Access:
        """One reference. `fault_kind` names a first-touch fault; `refault_kind` names the fault
        of a page brought back after an eviction when it does not come from swap (a clean file
        page read again from the page cache): without it that fault is a swap-in."""
        self._proc[0], self._vpn[0] = proc, vpn
        self._flags[0] = (1 if write else 0) | (2 if instr else 0)
        ids = self.index.resolve(self._proc, self._vpn)
        m = self.machine
        m.prm[K.R_FIRST_KIND] = K.FAULT_KINDS.index(fault_kind)
        m.run(ids, self._flags)
        a = self._last()
        if a.fault == "swap-in" and refault_kind is not None and refault_kind != "swap-in":
            self._relabel(proc, "swap-in", refault_kind)
            a = Access(a.tlb_hit, refault_kind, a.frame, a.evicted, a.written_back)
        return a

    def access_many(self, procs: np.ndarray, vpns: np.ndarray, flags: np.ndarray) -> None:
        """A batch of references to resident pages (the caller knows none of them faults)."""
        if len(vpns):
            self.machine.run(self.index.resolve(procs, vpns), flags)

    def map(self, proc: int, vpn: int, dirty: bool = False) -> Access | None:
        """Make a page resident without a reference of the program: the pages that fault-around,
        fork or execve map. Takes a frame (evicting when none is free: that eviction counts) but
        no reference, fault, touch, TLB entry or context switch. None if it was resident."""
        if self.resident(proc, vpn):
            return None
        self.map_many(proc, [vpn], None, dirty)
        a = self._last()
        return Access(False, None, a.frame, a.evicted, a.written_back)

    def map_many(self, proc: int, vpns: Sequence[int], pfns: Sequence[int] | None,
                 dirty: bool = False) -> list[tuple[int, int]]:
        """map() of several pages of one process, each then set_pfn() to its `pfns` entry (None:
        the model's own frame numbers), in one step (fault-around maps up to 16 pages at a
        time): one page-index look-up for all, the counters kept once. The (process, page)
        pairs evicted, in order."""
        if not vpns:
            return []
        m, index = self.machine, self.index
        ps = index.resolve(np.full(len(vpns), proc, dtype=np.int32), np.array(vpns, dtype=np.int64)).tolist()
        m.ensure_pages()
        keep = [K.C_TOUCHED, *range(K.C_FAULT, K.NC)]
        before = m.counters[proc, keep].copy()
        nev = int(m.sc[K.S_NEVENTS])
        pages, frames, sc, evicted = m.pages, m.frames, m.sc, []
        for i, p in enumerate(ps):
            if pages[p, K.P_FRAME] >= 0:
                continue
            f = K._page_fault(p, proc, sc[K.S_T], pages, index.page_proc, frames, m.tlb, m.tree,
                              m.free, m.counters, sc, m.prm, m.events)
            sc[K.S_NEVENTS] = nev
            if dirty:
                frames[f, K.F_DIRTY] = 1
            if pfns is not None:
                m.pfn[f] = frames[f, K.F_PFN] = pfns[i]
            victim = int(sc[K.S_LAST_VICTIM])
            if victim >= 0:
                evicted.append((int(index.page_proc[victim]), int(index.page_vpn[victim])))
        m.counters[proc, keep] = before
        return evicted

    def set_pfn(self, proc: int, vpn: int, pfn: int) -> None:
        """The program's kernel put resident page `vpn` in physical frame `pfn` (its PTE holds
        it): the model's frame that holds the page shows that number from now on."""
        m = self.machine
        p = self.index.lookup(proc, vpn)
        m.ensure_pages()
        f = int(m.pages[p, K.P_FRAME])
        if f >= 0:
            m.pfn[f] = pfn
            m.frames[f, K.F_PFN] = pfn

    def set_last_pfn(self, pfn: int) -> None:
        """set_pfn() for the page the last access() or map() made resident (no look-up)."""
        m = self.machine
        f = int(m.sc[K.S_LAST_FRAME])
        m.pfn[f] = pfn
        m.frames[f, K.F_PFN] = pfn

    def add_process(self) -> int:
        """A new process (fork): its number, for access()."""
        return self.machine.add_process()

    def timeline(self, names: Sequence[str] = ()) -> "Timeline | None":
        """The timeline sampled so far, the model's state now as its end (None without
        `timeline_bins`). Time is the model's reference count."""
        m = self.machine
        return m.recorder.finish(m, names) if isinstance(m, TimelineMachine) else None

    def resident(self, proc: int, vpn: int) -> bool:
        m = self.machine
        p = self.index.lookup(proc, vpn)
        m.ensure_pages()
        return bool(m.pages[p, K.P_FRAME] >= 0)

    def page_faults(self, proc: int) -> int:
        """The faults of one process so far (getrusage's ru_minflt)."""
        return int(self.machine.counters[proc, K.C_FAULT:K.C_FAULT + K.NKINDS].sum())

    @property
    def free_frames(self) -> int:
        return int(self.machine.sc[K.S_NFREE])

    def _last(self) -> Access:
        m = self.machine
        sc = m.sc
        kind = int(sc[K.S_LAST_KIND])
        victim = int(sc[K.S_LAST_VICTIM]) if kind >= 0 else -1
        evicted = None
        if victim >= 0:
            evicted = (int(self.index.page_proc[victim]), int(self.index.page_vpn[victim]))
        return Access(bool(sc[K.S_LAST_HIT]), K.FAULT_KINDS[kind] if kind >= 0 else None,
                      int(m.pfn[sc[K.S_LAST_FRAME]]), evicted,
                      bool(sc[K.S_LAST_VDIRTY]) if evicted else False)

    def _relabel(self, proc: int, old: str, new: str) -> None:
        m = self.machine
        m.counters[proc, K.C_FAULT + K.FAULT_KINDS.index(old)] -= 1
        m.counters[proc, K.C_FAULT + K.FAULT_KINDS.index(new)] += 1
        ne = int(m.sc[K.S_NEVENTS])
        if ne and m.events[ne - 1, K.E_KIND] == K.FAULT_KINDS.index(old):
            m.events[ne - 1, K.E_KIND] = K.FAULT_KINDS.index(new)
        m.counters_amended()

    def count_fault(self, proc: int, kind: str) -> None:
        """A fault the caller resolved without a new frame from the model (e.g. COW)."""
        self.machine.counters[proc, K.C_FAULT + K.FAULT_KINDS.index(kind)] += 1

    def unmap(self, proc: int, vpn: int) -> int | None:
        """munmap/exit: free the page's frame; returns the frame number freed, if any."""
        return self.unmap_many(proc, [vpn])[0]

    def unmap_many(self, proc: int, vpns: Sequence[int]) -> list[int | None]:
        """unmap() of several pages of one process, in order, with one page-index look-up
        (exit and munmap drop whole ranges): the frame numbers freed (None: not resident)."""
        if not vpns:
            return []
        m = self.machine
        ps = self.index.resolve(np.full(len(vpns), proc, dtype=np.int32),
                                np.array(vpns, dtype=np.int64)).tolist()
        m.ensure_pages()
        out = []
        for p in ps:
            f = K.unmap_page(p, m.pages, m.frames, m.tlb, m.tree, m.free, m.sc, m.prm)
            out.append(int(m.pfn[f]) if f >= 0 else None)
        return out

    def stats(self) -> tuple[Stats, list[Stats]]:
        return self.machine.stats(self.kinds)
