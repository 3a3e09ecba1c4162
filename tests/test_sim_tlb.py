"""The TLB: sets and ways, LRU within a set, split I/D, ASID vs flush, INVLPG on eviction, EAT."""

import pytest

from elfvm.mmu.tlb import TlbError, access_costs, effective_access_ns, tlb_geometry
from simhelp import cli_json, plain_pages, run, write


def tlb(tmp_path, pages, entries, ways=None, frames=64, **kw):
    p = write(tmp_path, "t.txt", plain_pages(pages))
    return run(p, "lru", frames, tlb=entries, ways=ways, **kw).total.tlb


def test_lecture_effective_access_time():
    # 20 ns TLB, 100 ns memory, one-level table, 95% hits: 0.95 * 120 + 0.05 * 200 = 124 ns
    assert access_costs(20, 100, 1) == (120, 200)
    assert effective_access_ns(0.95, 20, 100, 1) == 124.0
    assert effective_access_ns(1.0, 20, 100, 2) == 120.0
    assert effective_access_ns(0.0, 20, 100, 2) == 300.0


def test_lecture_124ns_from_a_trace():
    # one page referenced 20 times: 1 miss + 19 hits = 95%
    j = cli_json("--trace", "-", "--tlb-ns", "20", "--mem-ns", "100", "--walk-levels", "1",
                 "--frames", "4", input="0x1000\n" * 20)
    assert j["tlb"] == {"hits": 19, "misses": 1, "hit_ratio": 0.95}
    assert j["effective_access_ns"] == 124.0


def test_walk_levels_default_from_the_mmu():
    trace = "0x1000\n" * 20
    for mmu, levels in (("i386", 2), ("pae", 3), ("x86-64", 4)):
        j = cli_json("--trace", "-", "--mmu", mmu, "--frames", "4", input=trace)
        assert j["effective_access_ns"] == pytest.approx(0.95 * 120 + 0.05 * (levels + 1) * 100)
    j = cli_json("--trace", "-", "--mmu", "custom", "--bits", "22,10", "--frames", "4", input=trace)
    assert j["effective_access_ns"] == pytest.approx(0.95 * 120 + 0.05 * 200)


def test_geometry_checks():
    assert tlb_geometry(64).sets == 1 and tlb_geometry(64).fully_associative
    assert tlb_geometry(64, 4).sets == 16
    assert tlb_geometry(8, 1).set_of(13) == 5
    assert tlb_geometry(0).entries == 0
    for entries, ways in ((64, 3), (4, 8), (4, 0), (-1, None)):
        with pytest.raises(TlbError):
            tlb_geometry(entries, ways)


def test_set_conflicts(tmp_path):
    # 4 entries in 2 sets of 2 ways: pages 0, 2, 4 all go to set 0 (page mod 2)
    assert tlb(tmp_path, [0, 2, 4, 0], 4, 2).hits == 0        # 4 evicted 0 (LRU of set 0)
    assert tlb(tmp_path, [0, 2, 4, 0], 4).hits == 1           # fully associative: 0 still there
    assert tlb(tmp_path, [0, 1, 2, 3, 0, 1, 2, 3], 4, 2).hits == 4   # two per set: all fit
    # direct-mapped, 4 sets: 0 and 4 share set 0 and throw each other out
    assert tlb(tmp_path, [0, 4, 0, 4], 4, 1).hits == 0
    assert tlb(tmp_path, [0, 4, 0, 4], 4, 4).hits == 2


def test_lru_within_a_set(tmp_path):
    # 2 entries: 0 miss, 1 miss, 0 hit, 2 miss (evicts 1: least recently used), 0 hit
    t = tlb(tmp_path, [0, 1, 0, 2, 0], 2)
    assert (t.hits, t.misses) == (2, 3)


def test_no_tlb(tmp_path):
    t = tlb(tmp_path, [0, 0, 0], 0)
    assert (t.hits, t.misses, t.hit_ratio) == (0, 3, 0.0)


def test_eviction_from_memory_invalidates_the_tlb_entry(tmp_path):
    # one frame: 0 faults in, 1 evicts it (INVLPG), so 0 misses in the TLB and faults again
    p = write(tmp_path, "t.txt", plain_pages([0, 1, 0]))
    t = run(p, "lru", 1, tlb=64).total
    assert (t.tlb.hits, t.tlb.misses) == (0, 3)
    assert t.faults_by_kind == {"first-touch": 2, "swap-in": 1}


def test_split_tlb(tmp_path):
    # lackey: instruction fetches from page 0, loads from page 1, alternating; 1-entry TLBs
    trace = "I  00000000,4\n L 00001000,4\n" * 3
    p = write(tmp_path, "t.lackey", trace)
    split = run(p, "lru", 8, page_size=4096, tlb=1, split=True).total.tlb
    unified = run(p, "lru", 8, page_size=4096, tlb=1).total.tlb
    assert (split.hits, split.misses) == (4, 2)
    assert (unified.hits, unified.misses) == (0, 6)


def test_asid_versus_flush_on_switch(tmp_path):
    # two processes, each touching its page 0 three times, switching every reference
    a = write(tmp_path, "a.txt", "0\n" * 3)
    b = write(tmp_path, "b.txt", "0\n" * 3)
    flushed = run([a, b], "lru", 8, quantum=1)
    tagged = run([a, b], "lru", 8, quantum=1, asid=True)
    assert (flushed.total.tlb.hits, flushed.total.tlb.misses) == (0, 6)
    assert (tagged.total.tlb.hits, tagged.total.tlb.misses) == (4, 2)
    assert flushed.total.context_switches == tagged.total.context_switches == 5
    # the same virtual page in two processes is two pages with two frames
    assert flushed.total.pages_touched == 2
    assert [(r.process, r.page, r.frame) for r in flushed.total.pages] == [(0, 0, 0), (1, 0, 1)]
    # a longer quantum: one switch only
    once = run([a, b], "lru", 8, quantum=3)
    assert once.total.context_switches == 1 and once.total.tlb.hits == 4


def test_asid_entries_compete_for_the_same_sets(tmp_path):
    # 1-entry TLB with ASIDs: the other process's entry is evicted by the fill, not kept apart
    a = write(tmp_path, "a.txt", "0\n0\n")
    b = write(tmp_path, "b.txt", "0\n0\n")
    t = run([a, b], "lru", 8, tlb=1, quantum=1, asid=True).total.tlb
    assert (t.hits, t.misses) == (0, 4)
