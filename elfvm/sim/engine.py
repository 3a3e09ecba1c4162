"""Demand paging over memory references: the engine `simulate-run` drives, from traces or live.

Two ways in, one model:

* `elfvm.sim.stream.run_traces()` streams trace files through the compiled core in batches
  (one pass; OPT first learns every next use in a compact pass of its own), several traces
  round-robin by a quantum;
* `PagingModel.access()` takes references one at a time, as a running program makes them (the
  emulator's program-aware mode), with the fault kind its memory manager decided.

Frames are physical frames handed out by `elfvm.phys.FrameAllocator` (bottom-up, deterministic);
walk levels come from the `elfvm.mmu.geometry` of the chosen MMU; the TLB's shape and the
effective access time from `elfvm.mmu.tlb`.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Sequence

from elfvm.mmu.tlb import TlbGeometry, effective_access_ns, tlb_geometry
from elfvm.phys.frames import FrameAllocator, Zone
from elfvm.sim import jit
from elfvm.sim import paging_core as K

if TYPE_CHECKING:
    import numpy as np

    from elfvm.sim.timeline import Timeline
    from elfvm.sim.trace import BadLines

TRACE_FAULT_KINDS = ("first-touch", "swap-in")
PROGRAM_FAULT_KINDS = ("first-touch", "zero-page", "file", "cow", "stack-growth", "swap-in")


@dataclass(repr=False, eq=False)
class SimConfig:
    """One machine to simulate: replacement policy, frames, page size, TLB, walk and timing.
    One per machine, checked once (__post_init__) and only read: not frozen (cheaper to create
    at start-up)."""

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
# Records built once from the model's final state (or one per reference: Access) and only read,
# never hashed: not frozen, which makes a class ~40% cheaper to create at every start-up (and
# its instances cheaper to build). Equality stays: the tests compare runs with it.

@dataclass(repr=False)
class TlbStats:
    """TLB look-ups that hit and missed."""

    hits: int
    misses: int

    @property
    def hit_ratio(self) -> float | None:
        n = self.hits + self.misses
        return self.hits / n if n else None


@dataclass(repr=False)
class PageRow:
    """One PTE of a final page table: page -> frame (None when swapped out)."""

    process: int
    page: int                # virtual page number
    frame: int | None
    dirty: bool
    referenced: bool
    swapped: bool            # not present, its contents in swap


@dataclass(repr=False)
class FrameRow:
    """One physical frame of the final frame table and the page it holds."""

    frame: int
    process: int
    page: int
    dirty: bool
    referenced: bool


@dataclass(repr=False)
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


@dataclass(repr=False)
class Stats:
    """The figures of one process, or of all of them."""

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


@dataclass(repr=False, eq=False)
class SimResult:
    """A whole run: its figures in total and per process, fault events, bad trace lines."""

    config: SimConfig
    names: list[str]
    total: Stats
    processes: list[Stats]
    events: list[FaultEvent]
    bad_lines: list[BadLines]
    fault_kinds: tuple[str, ...] = TRACE_FAULT_KINDS
    timeline: "Timeline | None" = None     # with run_traces(timeline_bins=N): for --svg
    interrupted: bool = False              # a Ctrl-C ended the run: the figures cover a prefix


# ------------------------------------------------------------------ how the kernels see the state

_NP_DTYPES = {"q": "int64", "i": "int32", "B": "uint8"}


class Kernels:
    """One way of running the kernels of `paging_core` over the model's buffers (`array.array`s):

    * `PLAIN`: the Python functions over memoryviews of the buffers: no numpy, no library to
      load (a running program's model starts so: it makes a few hundred calls);
    * `compiled_kernels()`: the compiled functions (`jit.compiled`) over numpy arrays that are
      views of the same buffers (traces, timelines, --exact-tlb, and a program's model once its
      run gets long).

    The kernels' source is one, the state is one: moving from one to the other copies nothing.
    """

    def __init__(self, compiled: bool):
        self.compiled = compiled
        pick = jit.compiled if compiled else (lambda f: f)
        self.resolve = pick(K.resolve)
        self.rehash = pick(K.rehash)
        self.simulate = pick(K.simulate)
        self.page_fault = pick(K._page_fault)
        self.unmap_page = pick(K.unmap_page)
        self._np = None
        if compiled:
            import numpy

            self._np = numpy

    def view(self, buf: array, shape: tuple[int, ...] | None = None):
        """The kernels' view of `buf` (as an array of `shape`; default one-dimensional)."""
        if self._np is not None:
            a = self._np.frombuffer(buf, dtype=_NP_DTYPES[buf.typecode])
            return a if shape is None else a.reshape(shape)
        if shape is None or len(shape) == 1:
            return memoryview(buf)
        return memoryview(buf).cast("B").cast(buf.typecode, shape)

    def vector(self, typecode: str, values) -> object:
        """A one-dimensional argument of the kernels holding `values`."""
        return self.view(array(typecode, values))

    def zeros(self, typecode: str, n: int):
        if self._np is not None:
            return self._np.zeros(n, dtype=_NP_DTYPES[typecode])
        return memoryview(array(typecode, bytes(n * array(typecode).itemsize)))


PLAIN = Kernels(compiled=False)


@cache
def compiled_kernels() -> Kernels:
    return Kernels(compiled=True)


def _filled(typecode: str, row: Sequence[int], n: int) -> array:
    """`n` rows of `row`, flat."""
    return array(typecode, row) * n


class _Buffers:
    """The state arrays of one object as `array.array`s plus the kernels' views of them, which
    are attributes of the same names: `use()` changes the views (memoryviews or numpy), never the
    buffers."""

    kern: Kernels

    def _set(self, name: str, buf: array, shape: tuple[int, ...] | None = None) -> None:
        self._bufs[name] = (buf, shape)
        setattr(self, name, self.kern.view(buf, shape))

    def use(self, kern: Kernels) -> None:
        self.kern = kern
        for name, (buf, shape) in self._bufs.items():
            setattr(self, name, kern.view(buf, shape))

    def buffer(self, name: str) -> array:
        """The buffer behind array `name` (flat; Python ints when indexed)."""
        return self._bufs[name][0]

    def column(self, name: str, col: int, n: int | None = None) -> list[int]:
        """Column `col` of a two-dimensional array (of its first `n` rows), as Python ints."""
        buf, shape = self._bufs[name]
        w = shape[1]
        return memoryview(buf)[col:(len(buf) if n is None else n * w):w].tolist()


# ------------------------------------------------------------------ the page index

class PageIndex(_Buffers):
    """(process, virtual page number) -> dense page id, in order of first reference."""

    MEMO_MAX = 1 << 16               # (process, page) -> id pairs kept by ids() at most

    def __init__(self, capacity: int = 1 << 12, kern: Kernels | None = None):
        self.kern = kern or compiled_kernels()
        self._bufs: dict = {}
        self._alloc(capacity)
        self._set("count", array("q", [0]))
        # ids already given (an id never changes: the table grows by rehashing, never drops a
        # page): a program's model looks pages up one reference at a time, and a dict finds a
        # known page faster than a call of the kernel over one-element vectors
        self._memo: dict[tuple[int, int], int] = {}

    def _alloc(self, cap: int) -> None:
        self._set("keys_proc", _filled("q", [-1], cap))
        self._set("keys_vpn", _filled("q", [0], cap))
        self._set("vals", _filled("q", [0], cap))
        self._set("page_proc", _filled("q", [0], cap // 2))
        self._set("page_vpn", _filled("q", [0], cap // 2))

    @property
    def npages(self) -> int:
        return self.buffer("count")[0]

    def _grow(self) -> None:
        kp, kv, vals, pp, pv = self.keys_proc, self.keys_vpn, self.vals, self.page_proc, self.page_vpn
        old_pp, old_pv = self.buffer("page_proc"), self.buffer("page_vpn")
        self._alloc(2 * len(kp))
        self.kern.rehash(kp, kv, vals, self.keys_proc, self.keys_vpn, self.vals)
        self.buffer("page_proc")[:len(old_pp)] = old_pp
        self.buffer("page_vpn")[:len(old_pv)] = old_pv

    def resolve(self, procs, vpns, out=None):
        """Page ids (int32) of the references (kernel arguments: see `Kernels`); `out`, if given,
        is a big enough array to reuse."""
        n = len(vpns)
        ids = self.kern.zeros("i", n) if out is None else out[:n]
        i = 0
        while True:
            i = self.kern.resolve(procs, vpns, ids, i, self.keys_proc, self.keys_vpn, self.vals,
                                  self.page_proc, self.page_vpn, self.count)
            if i == n:
                return ids
            self._grow()

    def keys(self) -> tuple[list[int], list[int]]:
        """The process and the virtual page number of every page id, as Python ints."""
        n = self.npages
        return self.buffer("page_proc")[:n].tolist(), self.buffer("page_vpn")[:n].tolist()

    def lookup(self, proc: int, vpn: int) -> int:
        """ids() of one page (a program's reference: the memo first)."""
        i = self._memo.get((proc, vpn))
        return i if i is not None else self.ids(proc, (vpn,))[0]

    def ids(self, proc: int, vpns: Sequence[int]) -> list[int]:
        """The page ids of `vpns` of process `proc`, as resolve() gives them: the known ones
        from the memo, the others (new pages get ids in the order of `vpns`) by one resolve()."""
        memo = self._memo
        out = [memo.get((proc, v), -1) for v in vpns]
        miss = [i for i, x in enumerate(out) if x < 0]
        if miss:
            k = self.kern
            got = self.resolve(k.vector("i", [proc] * len(miss)),
                               k.vector("q", [vpns[i] for i in miss])).tolist()
            if len(memo) + len(miss) > self.MEMO_MAX:
                memo.clear()
            for i, x in zip(miss, got):
                out[i] = memo[(proc, vpns[i])] = x
        return out


def user_frames(n: int, page_size: int) -> range:
    """Physical frame numbers for `n` frames of RAM = n pages, as elfvm.phys allocates user
    frames: bottom-up and deterministic (no reserved ranges: trace mode's RAM is all user RAM)."""
    ram = n * page_size
    alloc = FrameAllocator(ram=ram, frame_size=page_size, reserved=[], zones=[Zone("Normal", 0, ram)])
    first = alloc.alloc("user pages", kind="user", frames=n)
    return range(first // page_size, first // page_size + n)


# ------------------------------------------------------------------ one machine's state

class Machine(_Buffers):
    """The state of one configuration: page-table entries, frames, TLB(s), counters, events.

    Its kernels run as its page index's do (`Kernels`: compiled unless told, as a trace's
    batches need); the arrays the kernels take are attributes (pages, frames, tlb, tree, free,
    counters, sc, prm, events); the physical frame numbers (`pfn()`) are Python's own."""

    def __init__(self, cfg: SimConfig, index: PageIndex, nprocs: int, first_kind: int = 0):
        self.cfg = cfg
        self.index = index
        self.nprocs = nprocs
        self.kern = index.kern
        self._bufs: dict = {}
        n = cfg.frames
        self._first_pfn = user_frames(n, cfg.page_size).start
        self._renumbered: dict[int, int] = {}        # frame -> number the program's kernel gave
        self._set("pages", array("q", [-1, 0, -1, -1]), (1, K.NPF))      # grown by ensure_pages
        self._npages = 0
        e = max(cfg.tlb.entries, 1)
        self._set("tlb", _filled("q", [-1], 2 * e * 2), (2, e, 2))
        size = 1 << max(n - 1, 1).bit_length()
        # OPT's segment tree (the other policies never read it): its leaves are set as the frame
        # table grows, inner nodes fill in as frames load
        self._set("tree", _filled("q", [-1], 2 * size if cfg.policy == "opt" else 1))
        self._nframes = 0                    # rows of frames and free: _grow_frames below
        self._set("counters", _filled("q", [0], nprocs * K.NC), (nprocs, K.NC))
        sc = _filled("q", [0], K.NS)
        sc[K.S_CUR] = sc[K.S_HEAD] = sc[K.S_TAIL] = -1
        sc[K.S_NFREE] = n                    # S_FRESH, S_NRET: 0
        self._set("sc", sc)
        prm = _filled("q", [0], K.NR)
        prm[K.R_POLICY] = K.POLICIES[cfg.policy]
        prm[K.R_NFRAMES] = n
        prm[K.R_TLB_ENTRIES] = cfg.tlb.entries
        prm[K.R_TLB_WAYS] = cfg.tlb.ways
        prm[K.R_TLB_SETS] = cfg.tlb.sets
        prm[K.R_SPLIT] = int(cfg.split_tlb)
        prm[K.R_ASID] = int(cfg.asid)
        prm[K.R_EVCAP] = cfg.event_limit
        prm[K.R_TREE] = size
        prm[K.R_FIRST_KIND] = first_kind
        self._set("prm", prm)
        self._set("events", _filled("q", [0], max(cfg.event_limit, 1) * K.NE),
                  (max(cfg.event_limit, 1), K.NE))
        self._no_nexts = self.kern.zeros("q", 0)
        self.interrupted = False             # a Ctrl-C ended the run early
        # the frame table and the stack of frames freed (free[]) hold the frames used so far,
        # grown by ensure_pages (S_FRESH: the lowest frame never used)
        self._grow_frames(0)

    def pfn(self, f: int) -> int:
        """The physical frame number of frame `f`: elfvm.phys's bottom-up user frames, unless
        the caller (the program's kernel) set it."""
        return self._renumbered.get(f, self._first_pfn + f)

    def set_pfn(self, f: int, pfn: int) -> None:
        self._renumbered[f] = pfn

    def pfns(self, n: int) -> list[int]:
        """The physical frame numbers of frames 0 .. n-1."""
        out = list(range(self._first_pfn, self._first_pfn + n))
        for f, pfn in self._renumbered.items():
            if f < n:
                out[f] = pfn
        return out

    @property
    def frames_used(self) -> int:
        """Frames at or above this one were never used (they are taken lowest first)."""
        return self.buffer("sc")[K.S_FRESH]

    def use(self, kern: Kernels) -> None:
        """Run the kernels this way from now on (the same buffers, seen as `kern` sees them)."""
        super().use(kern)
        self._no_nexts = kern.zeros("q", 0)

    def ensure_pages(self) -> None:
        """The tables cover every page id of the index: a row of `pages` each, and as many rows
        of `frames` (and `free`) as those pages could hold (the kernels take frames lowest
        first: they never touch a frame at or above S_FRESH, which is at most the pages seen).
        A model of 1M frames then costs what a run uses, not 56 MB of memory to fill at start."""
        need = self.index.npages
        if self._nframes < need and self._nframes < self.cfg.frames:
            self._grow_frames(need)
        if self._npages >= need:
            return
        cap = max(need, 2 * self._npages, 1024)
        grown = _filled("q", [-1, 0, -1, -1], cap)
        old = self.buffer("pages")
        grown[:self._npages * K.NPF] = old[:self._npages * K.NPF]
        self._set("pages", grown, (cap, K.NPF))
        self._npages = cap

    def _grow_frames(self, need: int) -> None:
        """Rows for at least `need` frames (at most cfg.frames): frames never used yet."""
        old, n = self._nframes, self.cfg.frames
        cap = min(n, max(need, 2 * old, 64))
        frames = _filled("q", [-1, 0, 0, 0, -1, -1, -1], cap)
        free = array("q", bytes(8 * cap))
        if old:
            frames[:old * K.NFF] = self.buffer("frames")
            free[:old] = self.buffer("free")
        self._set("frames", frames, (cap, K.NFF))
        self._set("free", free)
        if self.cfg.policy == "opt":          # OPT's tree: the new frames' leaves
            size = self.buffer("prm")[K.R_TREE]
            self.buffer("tree")[size + old:size + cap] = array("q", range(old, cap))
        self._nframes = cap

    def counters_amended(self) -> None:
        """The caller changed the counters of the last reference after run() (a relabelled
        fault); only a timeline has something to redo."""

    def add_process(self) -> int:
        """One more process (fork): its number."""
        self.nprocs += 1
        self._set("counters", self.buffer("counters") + _filled("q", [0], K.NC),
                  (self.nprocs, K.NC))
        return self.nprocs - 1

    def run(self, ids, flags, nexts=None) -> None:
        """References ids[i] (page ids) with flags[i] through the model; `nexts` for OPT."""
        self.ensure_pages()
        self.kern.simulate(ids, flags, self._no_nexts if nexts is None else nexts, self.pages,
                           self.index.page_proc, self.index.page_vpn, self.frames, self.tlb,
                           self.tree, self.free, self.counters, self.sc, self.prm, self.events)

    def counter_rows(self) -> list[list[int]]:
        """counters[process][column], as Python ints."""
        return self.counters.tolist()

    # -------------------------------------------------------------- results

    def page_rows(self) -> list[PageRow]:
        self.ensure_pages()                 # pages resolved by a batch a Ctrl-C cut short
        proc, vpn = self.index.keys()
        n = len(vpn)
        fr = self.column("pages", K.P_FRAME, n)
        sw = self.column("pages", K.P_SWAPPED, n)
        used = self.frames_used
        dirty = self.column("frames", K.F_DIRTY, used)
        ref = self.column("frames", K.F_REF, used)
        pfn = self.pfns(used)
        by_proc: list[list[int]] = [[] for _ in range(self.nprocs)]
        for p, pr in enumerate(proc):
            by_proc[pr].append(p)
        rows = []
        for ids in by_proc:                      # by process, then by page
            ids.sort(key=vpn.__getitem__)
            for p in ids:
                f = fr[p]
                if f >= 0:
                    rows.append(PageRow(proc[p], vpn[p], pfn[f], bool(dirty[f]), bool(ref[f]), False))
                else:
                    rows.append(PageRow(proc[p], vpn[p], None, False, False, bool(sw[p])))
        return rows

    def frame_rows(self) -> list[FrameRow]:
        rows = []
        page_proc, page_vpn = self.index.buffer("page_proc"), self.index.buffer("page_vpn")
        used = self.frames_used
        dirty = self.column("frames", K.F_DIRTY, used)
        ref = self.column("frames", K.F_REF, used)
        pfn = self.pfns(used)
        for f, p in enumerate(self.column("frames", K.F_PAGE, used)):
            if p >= 0:
                rows.append(FrameRow(pfn[f], page_proc[p], page_vpn[p], bool(dirty[f]),
                                     bool(ref[f])))
        return rows

    def fault_events(self) -> list[FaultEvent]:
        out = []
        page_proc, page_vpn = self.index.buffer("page_proc"), self.index.buffer("page_vpn")
        n = self.buffer("sc")[K.S_NEVENTS]
        for row in self.events[:n].tolist():
            t, proc, p, kind, f, victim, vdirty = row
            out.append(FaultEvent(t, proc, page_vpn[p], K.FAULT_KINDS[kind], self.pfn(f),
                                  page_proc[victim] if victim >= 0 else None,
                                  page_vpn[victim] if victim >= 0 else None, bool(vdirty)))
        return out

    def stats(self, kinds: Sequence[str] = TRACE_FAULT_KINDS, *, with_rows: bool = True) -> tuple[Stats, list[Stats]]:
        """(total, per process) figures."""
        pages = self.page_rows() if with_rows else []
        frames = self.frame_rows() if with_rows else []
        counters = self.counter_rows()
        per = [self._stats(counters[i], kinds, [r for r in pages if r.process == i],
                           [r for r in frames if r.process == i], 0)
               for i in range(self.nprocs)]
        total = self._stats([sum(col) for col in zip(*counters)], kinds, pages, frames,
                            self.buffer("sc")[K.S_SWITCHES])
        return total, per

    def _stats(self, c: list[int], kinds: Sequence[str], pages, frames, switches: int) -> Stats:
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

    def run(self, ids, flags, nexts=None) -> None:
        from elfvm.sim.timeline import run_sampled

        self.ensure_pages()
        r = self.recorder
        jit.compiled(run_sampled)(ids, flags, self._no_nexts if nexts is None else nexts, self.pages, self.index.page_proc, self.index.page_vpn,
                    self.frames, self.tlb, self.tree, self.free, self.counters, self.sc, self.prm,
                    self.events, r.t, r.counters, r.frames, r.last, r.state)


# ------------------------------------------------------------------ one reference at a time

@dataclass(repr=False)
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

    A program calls the model a few hundred times (a TLB fill, a fault, a fault-around window):
    the model starts with the plain Python kernels (no numpy, no library to load) and moves to
    the compiled ones, on the same state, after `jit.plain_calls()` calls of access() (where
    they differ: map and unmap cost the same either way, their loop is Python's).
    """

    def __init__(self, cfg: SimConfig, nprocs: int = 1, kinds: Sequence[str] = PROGRAM_FAULT_KINDS,
                 timeline_bins: int = 0, compiled: bool = False):
        """`timeline_bins` > 0: also sample a timeline of that many bins (`timeline()`);
        `compiled` (and a timeline): the compiled kernels from the start."""
        # accesses the plain kernels take before the compiled ones do (-1: no limit, 0: none)
        self._plain_left = 0 if compiled or timeline_bins > 0 else jit.plain_calls()
        kern = compiled_kernels() if self._plain_left == 0 else PLAIN
        self.index = PageIndex(kern=kern)
        if timeline_bins > 0:
            self.machine: Machine = TimelineMachine(cfg, self.index, nprocs, timeline_bins)
        else:
            self.machine = Machine(cfg, self.index, nprocs)
        self.kinds = tuple(kinds)
        self._one_ref()

    def _one_ref(self) -> None:
        k = self.index.kern
        self._flags = k.vector("B", [0])
        self._ids = k.zeros("i", 1)

    @property
    def compiled(self) -> bool:
        """Do the compiled kernels run (else the plain Python ones)?"""
        return self.index.kern.compiled

    def _count(self) -> None:
        """One more access through the plain kernels: past the budget, the compiled ones take
        over the same buffers."""
        if self._plain_left > 0:
            self._plain_left -= 1
            if self._plain_left == 0:
                self.use_compiled()

    def use_compiled(self) -> None:
        """From now on the compiled kernels run, over numpy views of the same state."""
        if not self.compiled:
            kern = compiled_kernels()
            self.index.use(kern)
            self.machine.use(kern)
            self._one_ref()
        self._plain_left = -1

    def access(self, proc: int, vpn: int, *, write: bool = False, instr: bool = False,
               fault_kind: str = "first-touch", refault_kind: str | None = None) -> Access:
        """One reference. `fault_kind` names a first-touch fault; `refault_kind` names the fault
        of a page brought back after an eviction when it does not come from swap (a clean file
        page read again from the page cache): without it that fault is a swap-in."""
        self._count()
        self._flags[0] = (1 if write else 0) | (2 if instr else 0)
        ids = self._ids
        ids[0] = self.index.lookup(proc, vpn)
        m = self.machine
        m.prm[K.R_FIRST_KIND] = K.FAULT_KINDS.index(fault_kind)
        m.run(ids, self._flags)
        a = self._last()
        if a.fault == "swap-in" and refault_kind is not None and refault_kind != "swap-in":
            self._relabel(proc, "swap-in", refault_kind)
            a = Access(a.tlb_hit, refault_kind, a.frame, a.evicted, a.written_back)
        return a

    def access_many(self, procs: "np.ndarray", vpns: "np.ndarray", flags: "np.ndarray") -> None:
        """A batch of references to resident pages (the caller knows none of them faults): numpy
        arrays (--exact-tlb's batches), for the compiled kernels."""
        if len(vpns):
            self.use_compiled()
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

    def _resolve(self, proc: int, vpns: Sequence[int]) -> list[int]:
        """The page ids of `vpns` of process `proc` (one look-up for all)."""
        return self.index.ids(proc, vpns)

    def map_many(self, proc: int, vpns: Sequence[int], pfns: Sequence[int] | None,
                 dirty: bool = False) -> list[tuple[int, int]]:
        """map() of several pages of one process, each then set_pfn() to its `pfns` entry (None:
        the model's own frame numbers), in one step (fault-around maps up to 16 pages at a
        time): one page-index look-up for all, the counters kept once. The (process, page)
        pairs evicted, in order."""
        if not vpns:
            return []
        m, index = self.machine, self.index
        ps = self._resolve(proc, vpns)
        m.ensure_pages()
        keep = [K.C_TOUCHED, *range(K.C_FAULT, K.NC)]
        counters = m.counters
        before = [int(counters[proc, c]) for c in keep]
        sc = m.sc
        nev = int(sc[K.S_NEVENTS])
        pages, frames, evicted = m.pages, m.frames, []
        page_fault = m.kern.page_fault
        t = int(sc[K.S_T])                  # no reference: the model's time stands still
        args = (pages, index.page_proc, frames, m.tlb, m.tree, m.free, counters, sc, m.prm, m.events)
        for i, p in enumerate(ps):
            if pages[p, K.P_FRAME] >= 0:
                continue
            f = int(page_fault(p, proc, t, *args))
            sc[K.S_NEVENTS] = nev
            if dirty:
                frames[f, K.F_DIRTY] = 1
            if pfns is not None:
                m.set_pfn(f, pfns[i])
            victim = int(sc[K.S_LAST_VICTIM])
            if victim >= 0:
                evicted.append((int(index.page_proc[victim]), int(index.page_vpn[victim])))
        for c, v in zip(keep, before):
            counters[proc, c] = v
        return evicted

    def set_pfn(self, proc: int, vpn: int, pfn: int) -> None:
        """The program's kernel put resident page `vpn` in physical frame `pfn` (its PTE holds
        it): the model's frame that holds the page shows that number from now on."""
        m = self.machine
        p = self.index.lookup(proc, vpn)
        m.ensure_pages()
        f = int(m.pages[p, K.P_FRAME])
        if f >= 0:
            m.set_pfn(f, pfn)

    def set_last_pfn(self, pfn: int) -> None:
        """set_pfn() for the page the last access() or map() made resident (no look-up)."""
        m = self.machine
        m.set_pfn(int(m.sc[K.S_LAST_FRAME]), pfn)

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
        c = self.machine.counters
        return sum(int(c[proc, K.C_FAULT + i]) for i in range(K.NKINDS))

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
                      m.pfn(int(sc[K.S_LAST_FRAME])), evicted,
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
        ps = self._resolve(proc, vpns)
        m.ensure_pages()
        out = []
        unmap_page, pfn = m.kern.unmap_page, m.pfn
        args = (m.pages, m.frames, m.tlb, m.tree, m.free, m.sc, m.prm)
        for p in ps:
            f = int(unmap_page(p, *args))
            out.append(pfn(f) if f >= 0 else None)
        return out

    def stats(self) -> tuple[Stats, list[Stats]]:
        return self.machine.stats(self.kinds)
