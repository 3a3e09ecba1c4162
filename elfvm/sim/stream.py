"""Streaming traces through the engine (`elfvm.sim.engine`'s machines): `run_traces()` and
`compare()` read trace files in batches, interleave several by a quantum, and feed every machine
(OPT first learns every next use in bounded memory). A running program's model (`PagingModel`)
never comes here: this module is imported by trace runs only, so a short `simulate-run PROGRAM`
does not pay for loading it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

from elfvm.sim import jit
from elfvm.sim.engine import K, Machine, PageIndex, SimConfig, SimResult, TimelineMachine

if TYPE_CHECKING:
    import numpy as np

    from elfvm.sim.trace import BadLines, TraceReader


# ------------------------------------------------------------------ streaming traces

def interleave(streams: Sequence[Iterable[tuple[np.ndarray, np.ndarray]]], quantum: int,
               batch: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Round-robin: `quantum` references of process 0, then of 1, ... (a process whose trace
    ends gives up the rest of its quantum); yields (procs int32, vpns, flags) batches of at
    most `batch` (default: the trace reader's BATCH) references."""
    import numpy as np

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

        import numpy as np

        self.dtype = np.dtype(dtype)
        self.f = tempfile.TemporaryFile(prefix="elfvm-opt-")
        self.n = 0

    def append(self, a: np.ndarray) -> None:
        self.f.seek(self.n * self.dtype.itemsize)
        self.f.write(a.astype(self.dtype, order="C", copy=False).data)
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
    import numpy as np

    next_uses = jit.compiled(K.next_uses)
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
            next_uses(chunk, a, seen, nexts[:len(chunk)])
            nexts_f.write_at(a, nexts[:len(chunk)])
        del seen
        for a in range(0, n, OPT_CHUNK):
            i, f, x = ids_f.read(a, ids), flags_f.read(a, flags), nexts_f.read(a, nexts)
            for m in machines:
                m.run(i, f, x if m.cfg.policy == "opt" else None)
    finally:
        for sp in (ids_f, flags_f, nexts_f):
            sp.close()


def run_machines(readers: Sequence[TraceReader], machines: Sequence[Machine], quantum: int,
                 progress: Callable[[], None] = lambda: None) -> None:
    """Feed the interleaved references of `readers` to every machine (they share the index).

    A Ctrl-C stops the feeding between two batches: the machines keep what they saw, and
    `interrupted` is set on each (the caller reports the partial run and exits 130)."""
    import numpy as np

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


@dataclass(frozen=True, repr=False, eq=False)
class CompareResult:
    """--compare: the faults of every policy at every memory size, from one pass."""

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
