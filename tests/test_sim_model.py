"""`PagingModel`: the same engine fed one reference at a time, as the emulator will feed it."""

from elfvm.mmu.tlb import tlb_geometry
from elfvm.sim.engine import PagingModel, SimConfig
from simhelp import plain_pages, run, write


def test_one_at_a_time_equals_the_trace_run(tmp_path):
    pages = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
    writes = {0, 6}
    m = PagingModel(SimConfig("fifo", 3, 1, tlb_geometry(4)), kinds=("first-touch", "swap-in"))
    got = [m.access(0, p, write=i in writes) for i, p in enumerate(pages)]
    total, _ = m.stats()
    trace = run(write(tmp_path, "t.txt", plain_pages(pages, writes)), "fifo", 3, tlb=4).total
    assert total.faults_by_kind == trace.faults_by_kind
    assert (total.evictions, total.dirty_evictions, total.tlb) == (
        trace.evictions, trace.dirty_evictions, trace.tlb)
    assert total.pages == trace.pages and total.frames == trace.frames
    assert [a.fault for a in got[:4]] == ["first-touch"] * 3 + ["first-touch"]
    assert got[3].evicted == (0, 1) and got[3].written_back      # page 1 was written
    assert got[4].fault == "swap-in" and got[4].evicted == (0, 2)
    assert not got[4].written_back
    assert got[5].frame == 2
    assert [a.tlb_hit for a in got[:6]] == [False] * 6


def test_program_fault_kinds_unmap_and_cow():
    m = PagingModel(SimConfig("lru", 2, 4096, tlb_geometry(8)))
    a = m.access(0, 0x8049, instr=True, fault_kind="file")
    b = m.access(0, 0xFFFFD, write=True, fault_kind="stack-growth")
    assert (a.fault, b.fault) == ("file", "stack-growth")
    assert m.access(0, 0x8049, instr=True).tlb_hit
    m.count_fault(0, "cow")                                       # resolved by the caller
    assert m.unmap(0, 0xFFFFD) == 1                               # frame 1 back to the free list
    c = m.access(0, 0x804A, fault_kind="zero-page")
    assert c.frame == 1 and c.evicted is None
    d = m.access(0, 0x804B)                                       # memory full: LRU evicts
    assert d.evicted == (0, 0x8049) and d.fault == "first-touch"
    total, per = m.stats()
    assert total.faults_by_kind == {"first-touch": 1, "zero-page": 1, "file": 1, "cow": 1,
                                    "stack-growth": 1, "swap-in": 0}
    assert total.page_faults == 5 and total.pages_touched == 4
    assert per[0].page_faults == 5


def test_map_add_process_and_refault_kind():
    """What the emulator needs beyond access(): pages made present without a reference
    (fault-around, fork, execve), processes added by fork, a re-fault that is not a swap-in."""
    m = PagingModel(SimConfig("fifo", 2, 4096, tlb_geometry(8)))
    a = m.map(0, 5)
    assert a.fault is None and a.frame == 0 and m.map(0, 5) is None
    assert m.access(0, 5).tlb_hit is False                # mapped, not in the TLB
    child = m.add_process()
    assert child == 1 and m.access(child, 6, fault_kind="cow").fault == "cow"
    assert m.access(0, 7).evicted == (0, 5)               # FIFO: the mapped page went first
    b = m.access(0, 5, refault_kind="file")               # a clean file page read again
    assert b.fault == "file"
    total, per = m.stats()
    assert total.faults_by_kind["swap-in"] == 0 and total.faults_by_kind["file"] == 1
    assert total.references == 4 and per[1].page_faults == 1
    assert m.page_faults(0) == 2


def _state(m):
    mm = m.machine
    return (mm.frames.tolist(), mm.pages[:m.index.npages].tolist(), mm.counters.tolist(),
            mm.sc.tolist(), mm.pfns(mm.cfg.frames))


def test_map_many_and_unmap_many_are_map_and_unmap_in_turn():
    """A batch (fault-around's window, exit's range) leaves the model exactly as the same pages
    one by one: frames, page table, counters, evictions, frame numbers."""
    vpns, pfns = [9, 3, 7, 3, 12], [0x500, 0x501, 0x502, 0x503, 0x504]
    one = PagingModel(SimConfig("lru", 4, 4096, tlb_geometry(8)))
    many = PagingModel(SimConfig("lru", 4, 4096, tlb_geometry(8)))
    for m in (one, many):
        m.access(0, 1, write=True)
    evicted = []
    for v, pfn in zip(vpns, pfns):
        a = one.map(0, v, dirty=True)
        if a is not None:
            one.set_pfn(0, v, pfn)
            evicted += [a.evicted] if a.evicted else []
    assert many.map_many(0, vpns, pfns, dirty=True) == evicted == [(0, 1)]
    assert _state(one) == _state(many)
    freed = [one.unmap(0, v) for v in [3, 4, 12]]
    assert many.unmap_many(0, [3, 4, 12]) == freed == [0x501, None, 0x504]
    assert _state(one) == _state(many)


# ------------------------------------------------------------------ plain Python and compiled kernels

import pytest  # noqa: E402

from elfvm.sim import jit  # noqa: E402

needs_plain = pytest.mark.skipif(jit.mode() == "jit", reason="jit mode: the kernels' names are "
                                 "numba dispatchers, a model starts compiled (ELFVM_JIT=jit or no "
                                 "AOT library yet)")


def _workload(m: PagingModel) -> list:
    """Faults of every kind, evictions (dirty and clean), re-faults, pages mapped and unmapped in
    batches, a fork, COW counted by the caller: everything the emulator asks of the model."""
    out = []
    for i in range(40):
        out.append(m.access(0, 0x8048 + i % 13, write=i % 3 == 0, instr=i % 5 == 0,
                            fault_kind=("file", "zero-page", "first-touch")[i % 3]))
        m.set_last_pfn(0x700 + i)
    out.append(m.map_many(0, list(range(0x9000, 0x9010)), [0x800 + i for i in range(16)], True))
    child = m.add_process()
    for i in range(30):
        out.append(m.access(child, 0x8048 + i % 17, write=i % 2 == 0, fault_kind="cow",
                            refault_kind="file" if i % 4 else None))
    m.count_fault(child, "cow")
    out.append(m.unmap_many(0, list(range(0x9000, 0x9008))))
    for i in range(25):
        out.append(m.access(i % 2, 0xFFFF0 - i, write=True, fault_kind="stack-growth"))
    out.append((m.page_faults(0), m.page_faults(1), m.free_frames, m.resident(1, 0x8048)))
    return out


@needs_plain
@pytest.mark.parametrize("policy", ["fifo", "lru", "clock"])
def test_moving_to_the_compiled_kernels_mid_run_changes_nothing(monkeypatch, policy):
    """The same run with the plain Python kernels throughout, the compiled ones throughout, and
    a move after 1, 7 or 50 accesses (ELFVM_JIT_AFTER): the same answers, state and figures."""
    def run(after: str):
        monkeypatch.setenv("ELFVM_JIT_AFTER", after)
        m = PagingModel(SimConfig(policy, 6, 4096, tlb_geometry(4, 2), split_tlb=True,
                                  event_limit=50))
        got = _workload(m)
        return m.compiled, got, _state(m), m.stats(), m.machine.fault_events()

    plain = run("1000000")
    assert plain[0] is False                      # never moved
    for after in ("0", "1", "7", "50"):
        other = run(after)
        assert other[0] is True
        assert other[1:] == plain[1:], after


@needs_plain
@pytest.mark.parametrize("policy", ["fifo", "lru", "clock"])
def test_frame_table_grows_with_use_across_the_move(monkeypatch, policy):
    """A model of 1M frames holds rows for the frames it used, not 1M; the table grows (64 rows
    at first) in plain Python, after the move to the compiled kernels and between the two, and
    then evicts once all of 100 frames are used: the same answers, state and figures."""
    def run(after: str, frames: int):
        monkeypatch.setenv("ELFVM_JIT_AFTER", after)
        m = PagingModel(SimConfig(policy, frames, 4096, tlb_geometry(8), event_limit=500))
        got = [m.access(0, 0x1000 + i * 7 % 230, write=i % 3 == 0) for i in range(600)]
        got.append(m.map_many(0, list(range(0x5000, 0x5050)), None, True))
        got.append(m.unmap_many(0, list(range(0x1000, 0x1000 + 230, 3))))
        got += [m.access(0, 0x1000 + i * 5 % 260) for i in range(300)]
        return m.compiled, got, _state(m), m.stats(), m.machine.fault_events()

    big = run("0", 1 << 20)
    assert len(big[2][0]) < 1024                 # frame rows: the frames used, not 1M
    plain = run("1000000", 100)
    assert plain[3][0].evictions > 0
    for after in ("0", "30", "150"):
        other = run(after, 100)
        assert other[0] is True
        assert other[1:] == plain[1:], after


@needs_plain
def test_plain_and_compiled_page_index_fill_the_same_slots():
    """The page index's hash needs no int64 wraparound: plain Python and the compiled kernel put
    every key in the same slot (a model that moves keeps its table), across a growth."""
    from elfvm.sim.engine import PLAIN, PageIndex, compiled_kernels

    keys = [(p, (v * 2654435761 + p) % (1 << 52)) for p in (0, 1, 7, 1000) for v in range(700)]
    keys += [(3, v) for v in range(3000)] + [(0, (1 << 52) - 1), ((1 << 31) - 1, 1 << 40)]
    tables = []
    for kern in (PLAIN, compiled_kernels()):
        index = PageIndex(capacity=8, kern=kern)
        ids = index.resolve(kern.vector("i", [p for p, _ in keys]), kern.vector("q", [v for _, v in keys]))
        tables.append((list(ids), index.keys_proc.tolist(), index.keys_vpn.tolist(),
                       index.vals.tolist()))
    assert tables[0] == tables[1]
    assert len(set(tables[0][0])) == len(set(keys))
