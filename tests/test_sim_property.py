"""The fast engine agrees exactly with the simple reference simulator (tests/sim_reference.py)."""

import os
import tempfile

from hypothesis import HealthCheck, given, settings, strategies as st

import sim_reference as ref
from simhelp import run

PAGE = 16
record = st.tuples(st.sampled_from("ILSM"), st.integers(0, 12 * PAGE - 1), st.integers(0, 2 * PAGE))
traces = st.lists(st.lists(record, max_size=60), min_size=1, max_size=3)


@st.composite
def tlb_shapes(draw):
    entries = draw(st.sampled_from([0, 1, 2, 4, 8]))
    if entries == 0:
        return 0, None
    ways = draw(st.sampled_from([w for w in (1, 2, 4, 8) if w <= entries and entries % w == 0]
                                + [None]))
    return entries, ways


def lackey(records):
    return "".join((f"I  {a:08x},{s}\n" if k == "I" else f" {k} {a:08x},{s}\n")
                   for k, a, s in records)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(traces=traces, policy=st.sampled_from(["fifo", "lru", "clock", "opt"]),
       frames=st.integers(1, 6), shape=tlb_shapes(), split=st.booleans(), asid=st.booleans(),
       quantum=st.integers(1, 7), opt_chunk=st.sampled_from([1, 2, 5, 1 << 20]))
def test_engine_matches_reference(traces, policy, frames, shape, split, asid, quantum, opt_chunk):
    """opt_chunk: OPT's passes go through their temporary files in chunks of that many
    references (the answers never depend on it)."""
    from elfvm.sim import stream

    entries, ways = shape
    saved, stream.OPT_CHUNK = stream.OPT_CHUNK, opt_chunk
    try:
        res, want_refs = _engine_run(traces, policy, frames, entries, ways, split, asid, quantum)
    finally:
        stream.OPT_CHUNK = saved
    procs, table, frame_tab, events, switches = ref.simulate(
        want_refs, policy, frames, entries, ways, split, asid, quantum)
    _same(res, procs, table, frame_tab, events, switches)


def _engine_run(traces, policy, frames, entries, ways, split, asid, quantum):
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i, recs in enumerate(traces):
            paths.append(os.path.join(d, f"t{i}.lackey"))
            with open(paths[-1], "w") as f:
                f.write(lackey(recs))
        res = run(paths, policy, frames, page_size=PAGE, tlb=entries, ways=ways, split=split,
                  asid=asid, quantum=quantum, events=10_000)
    return res, [ref.read_lackey(lackey(recs).splitlines(), PAGE) for recs in traces]


def _same(res, procs, table, frame_tab, events, switches):
    for got, want in zip(res.processes, procs):
        assert got.references == want.refs
        assert (got.tlb.hits, got.tlb.misses) == (want.hits, want.misses)
        assert got.faults_by_kind == want.faults
        assert (got.evictions, got.dirty_evictions) == (want.evictions, want.dirty_evictions)
        assert got.pages_touched == want.touched
    assert res.total.context_switches == switches
    assert {(r.process, r.page): (r.frame, r.dirty, r.referenced, r.swapped)
            for r in res.total.pages} == table
    assert [(f.frame, f.process, f.page, f.dirty, f.referenced) for f in res.total.frames] == frame_tab
    assert [(e.ref, e.process, e.page, e.kind, e.frame,
             None if e.victim_page is None else (e.victim_process, e.victim_page), e.written_back)
            for e in res.events] == events


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(["R ", "W ", "r ", "w ", ""]),
                                st.integers(0, 1 << 20), st.booleans()), max_size=40),
       policy=st.sampled_from(["fifo", "lru", "clock", "opt"]), frames=st.integers(1, 5))
def test_plain_traces_match_reference(lines, policy, frames):
    text = "".join(f"{op}{hex(a) if h else a}\n" for op, a, h in lines)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.txt")
        with open(p, "w") as f:
            f.write("# plain\n" + text)
        res = run(p, policy, frames, page_size=4096, fmt="plain")
    procs, table, *_ = ref.simulate([ref.read_plain(text.splitlines(), 4096)], policy, frames)
    assert res.total.faults_by_kind == procs[0].faults
    assert (res.total.tlb.hits, res.total.tlb.misses) == (procs[0].hits, procs[0].misses)
    assert {(r.process, r.page): (r.frame, r.dirty, r.referenced, r.swapped)
            for r in res.total.pages} == table


@settings(max_examples=200, deadline=None)
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=4), quantum=st.integers(1, 9),
       batch=st.integers(1, 17), chunk=st.integers(1, 13))
def test_interleave_matches_reference(lengths, quantum, batch, chunk):
    """Round-robin batching, whatever the batch size and however the readers cut their output."""
    import numpy as np

    from elfvm.sim.stream import interleave

    traces = [[(100 * p + i, i % 2 == 0, False) for i in range(n)] for p, n in enumerate(lengths)]

    def stream(tr):
        for a in range(0, len(tr), chunk):
            part = tr[a:a + chunk]
            yield (np.array([x[0] for x in part], dtype=np.int64),
                   np.array([int(x[1]) for x in part], dtype=np.uint8))

    got = []
    for procs, vpns, flags in interleave([stream(t) for t in traces], quantum, batch):
        assert len(vpns) <= max(batch, chunk)
        got += [(int(p), int(v), bool(f), False) for p, v, f in zip(procs, vpns, flags)]
    assert got == ref.interleave(traces, quantum)


def test_frame_table_grown_as_frames_are_used_matches_reference():
    """The frame table starts with a few rows and grows as frames are first taken: runs that
    cross several growths (64 rows at first), then evict once every frame is used, match the
    reference exactly, for every policy."""
    import random

    rnd = random.Random(14)
    recs = [(rnd.choice("ILSM"), rnd.randrange(400) * PAGE + rnd.randrange(PAGE), 1)
            for _ in range(3000)]
    for policy in ("fifo", "lru", "clock", "opt"):
        for frames in (100, 300):
            res, want_refs = _engine_run([recs], policy, frames, 8, 2, True, False, 7)
            _same(res, *ref.simulate(want_refs, policy, frames, 8, 2, True, False, 7))
