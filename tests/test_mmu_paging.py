"""Page tables written into simulated physical memory, walked from CR3; SDM 4.6 access rules."""

import pytest

from elfvm.mmu import entries as E
from elfvm.mmu.geometry import custom_geometry, get_geometry
from elfvm.mmu.paging import PageTables
from elfvm.mmu.walk import check_access
from elfvm.phys import FrameAllocator, MappedMemory, PhysicalMemory, x86_frames
from elfvm.phys.frames import OutOfMemory, x86_reserved_ranges

RAM = 64 << 20


def tables(name, nxe=True, bits=None, mapped=False):
    g = custom_geometry(bits) if bits else get_geometry(name)
    mem = MappedMemory(RAM) if mapped else PhysicalMemory(RAM)
    return PageTables(g, mem, FrameAllocator(RAM, g.page_size), nxe=nxe), mem


def test_i386_walk_reads_real_entries():
    pt, mem = tables("i386")
    pt.map(0x08049000, 0x3000000, E.P | E.US | E.A)
    w = pt.walk(0x08049123)
    assert [s.level for s in w.steps] == ["PDE", "PTE"]
    assert [s.index for s in w.steps] == [0x20, 0x49]
    pde, pte = w.steps
    assert pde.table == pt.cr3 and mem.read_uint(pt.cr3 + 0x20 * 4, 4) == pde.entry
    assert pde.entry & 0xFFF == 0x067                         # _PAGE_TABLE
    assert mem.read_uint(pde.entry & ~0xFFF, 4) == 0          # index 0 of that PT is empty
    assert pte.entry == 0x3000025
    assert w.physical == 0x3000123 and w.user and not w.writable
    assert not pt.walk(0x0804A000).present


def test_frames_avoid_reserved_ranges_and_are_deterministic():
    a, _ = tables("i386")
    b, _ = tables("i386")
    assert a.cr3 == b.cr3
    for r in x86_reserved_ranges():
        assert not r.start <= a.cr3 < r.end


def test_x86_zones_and_the_emulators_headroom():
    """x86_frames: the zones of an x86-64 kernel's machine (DMA, DMA32, Normal above 4 GiB) or a
    native 32-bit kernel's (HighMem above its direct map); headroom extends the top zone, so
    it moves no frame number the machine's RAM alone would give."""
    from elfvm.phys import x86_frames, x86_zones

    assert [(z.name, z.start, z.end) for z in x86_zones(8 << 30)] == \
        [("DMA", 0, 16 << 20), ("DMA32", 16 << 20, 4 << 30), ("Normal", 4 << 30, 8 << 30)]
    assert [z.name for z in x86_zones(1 << 30, lowmem=896 << 20)] == ["DMA", "Normal", "HighMem"]
    assert x86_zones(256 << 20, headroom=64 << 20)[-1].end == 320 << 20
    for ram in (256 << 20, 4 << 30, 8 << 30):
        plain, roomy = x86_frames(ram), x86_frames(ram, headroom=64 << 20)
        order = [("kernel", "pgd"), ("user", "page"), ("kernel", "pte"), ("user", "page")]
        assert [plain.alloc(w, k) for k, w in order] == [roomy.alloc(w, k) for k, w in order]
    user = x86_frames(8 << 30).alloc("page", "user")
    assert user == 4 << 30                          # GFP_HIGHUSER_MOVABLE: the highest zone


def test_a_freed_frame_is_reused_first():
    a = FrameAllocator(RAM)
    f1, f2 = a.alloc("one"), a.alloc("two")
    a.free(f1)
    assert a.alloc("three") == f1 and a.alloc("four") > f2
    with pytest.raises(ValueError):
        a.free(0x1000)                              # never allocated (reserved: the BIOS area)


@pytest.mark.parametrize("ram,headroom", [(256 << 20, 64 << 20), (20 << 20, 0), (2 << 20, 0)])
def test_alloc_many_takes_the_frames_alloc_takes_one_by_one(ram, headroom):
    """Fault-around's frames taken at once: the same frames, bookkeeping and running out of
    RAM as alloc() one after another, freed frames first, user and kernel, zones filling up."""
    import random

    one, many = x86_frames(ram, headroom=headroom), x86_frames(ram, headroom=headroom)
    rnd = random.Random(ram)
    for step in range(300):
        whats = [f"page {step}.{i}" for i in range(rnd.randint(0, 20))]
        kind = rnd.choice(["user", "user", "kernel"])
        got_one, got_many, err_one, err_many = [], [], None, None
        try:
            for w in whats:
                got_one.append(one.alloc(w, kind))
        except OutOfMemory as e:
            err_one = e
        try:
            many.alloc_many(whats, kind, got_many)
        except OutOfMemory as e:
            err_many = e
        assert got_one == got_many and (err_one is None) == (err_many is None)
        for addr in rnd.sample(got_one, len(got_one) // 2) if rnd.random() < 0.3 else []:
            one.free(addr)
            many.free(addr)
    assert one.allocated == many.allocated and one.free_list == many.free_list
    assert [z.next for z in one.zones] == [z.next for z in many.zones]


def test_a_frame_of_a_contiguous_allocation_is_freed_once():
    a = FrameAllocator(RAM)
    first = a.alloc("block", frames=4)
    a.free(first + 0x2000)                          # the middle of the block
    assert a.alloc("one") == first + 0x2000         # reused first, as any freed frame
    a.free(first)
    a.free(first + 0x3000)
    for addr in (first, first + 0x3000, first + 0x4000, first + 0x800):
        with pytest.raises(ValueError):             # freed already, past the block, unaligned
            a.free(addr)
    a.free(first + 0x1000)
    assert a.runs == []


def test_walk_page_range_lists_every_entry_in_range():
    pt, _ = tables("i386")
    pages = [0x08048000, 0x08049000, 0x0804A000 + (600 << 12), 0xBFFFF000]
    for va in pages:
        pt.map(va, 0x200000 + (va & 0xFFFFF000) % (64 << 20), E.PAGE_KERNEL, level=1, user=True)
    assert [va for va, _ in pt.ptes(0, 1 << 32)] == pages
    assert [va for va, _ in pt.ptes(0x08049000, 0x0804A000 + (601 << 12))] == pages[1:3]
    assert [va for va, _ in pt.ptes(0x08049001, 0x0804A000 + (600 << 12))] == pages[1:2]   # from the page of start


@pytest.mark.parametrize("mapped", [False, True])
@pytest.mark.parametrize("name", ["i386", "pae", "x86-64"])
def test_map_ptes_writes_what_map_writes_page_by_page(name, mapped):
    """A fault-around window mapped at once: the same tables, entries and frames as one map()
    per page (NX dropped where the format has none), in sparse and in mapped RAM."""
    flags = E.P | E.US | E.A | (E.NX if name != "i386" else 0)
    pages = [0x08048000 + i * 0x1000 for i in (0, 1, 3, 7, 15)]
    frames = [0x3000000 + i * 0x1000 for i in range(len(pages))]
    one, mem1 = tables(name, mapped=mapped)
    many, mem2 = tables(name, mapped=mapped)
    for a, fr in zip(pages, frames):
        one.map(a, fr, flags)
    many.map_ptes(pages, frames, flags)
    assert list(one.ptes(0, 1 << 32)) == list(many.ptes(0, 1 << 32))
    assert one.tables() == many.tables()
    with pytest.raises(ValueError, match="one page table"):
        many.map_ptes([0x08048000, 0x08048000 + (4 << 20)], frames[:2], flags)
    if name == "i386":                     # make_entry's checks: no NX, no frame above 4 GiB
        with pytest.raises(ValueError):
            many.map_ptes(pages[:1], [1 << 32], E.P)


@pytest.mark.parametrize("mapped", [False, True])
@pytest.mark.parametrize("name", ["i386", "pae", "x86-64"])
def test_leaf_entries_are_the_entries_of_a_window(name, mapped):
    """A fault-around window's last-level entries read at once: what read_pte gives page by
    page (present, swap and empty entries), zeros where no table exists."""
    pt, _ = tables(name, mapped=mapped)
    base = 0x08040000
    pt.map(base + 0x3000, 0x3000000, E.P | E.US)
    pt.write_pte(base + 0x5000, 7 << 12)                       # a swap entry: not present
    got = pt.leaf_entries(base, base + 0x10000)
    assert got == [pt.read_pte(base + i * 0x1000) for i in range(16)]
    assert got[3] & E.P and got[5] == 7 << 12 and got.count(0) == 14
    assert pt.leaf_entries(0x40000000, 0x40004000) == [0, 0, 0, 0]
    assert pt.leaf_entries(base, base) == []
    with pytest.raises(ValueError, match="one page table"):
        pt.leaf_entries(base, base + (4 << 20))


def test_large_pages():
    pt, _ = tables("i386")
    pt.map(0xC0400000, 0x400000, E.PAGE_KERNEL | E.PS, level=0, user=False)
    w = pt.walk(0xC0512345)
    assert len(w.steps) == 1 and w.page_size == 4 << 20 and w.physical == 0x512345
    pt, _ = tables("pae")
    pt.map(0xC0200000, 0x200000, E.PAGE_KERNEL | E.NX, level=1, user=False)
    w = pt.walk(0xC0212345)
    assert [s.level for s in w.steps] == ["PDPTE", "PDE"] and w.physical == 0x212345 and w.nx
    assert w.steps[0].entry & 0xFFF == E.P                       # PAE PDPTE: only P


def test_custom_geometry_with_1k_pages():
    pt, _ = tables(None, bits="12,10,10")
    pt.map(0x12345400, 0x2800400, E.P | E.RW | E.US)
    w = pt.walk(0x12345678)
    assert [s.index for s in w.steps] == [0x123, 0x115]
    assert w.physical == 0x2800678 and w.page_size == 1024


@pytest.mark.parametrize("name,bits", [("i386", None), ("pae", None), ("x86-64", None),
                                       (None, "12,10,10")])
def test_walk_fast_answers_what_walk_answers(name, bits):
    """The TLB fill's walk (walk_fast) and translate's walk agree on every page: 4 KiB pages,
    large pages, present and not-present entries, the rights of every level."""
    pt, _ = tables(name, bits=bits)
    nx = E.NX if name in ("pae", "x86-64") else 0
    page = pt.geom.page_size
    pt.map(0x08048000, 0x3000000, E.P | E.US | E.A | nx)
    pt.map(0x08049000, 0x3001000, E.P | E.RW | E.US | E.A)
    pt.map(0x10000000, 0x3002000, E.P | E.RW | E.A)
    if pt.geom.large_levels:
        lv = pt.geom.large_levels[-1]
        pt.map(0xC0000000, 0x800000, E.PAGE_KERNEL | E.PS | nx, level=lv, user=False)
    for a in (0x08048000, 0x08048000 + page + 12, 0x08049abc, 0x10000000, 0xC0012345,
              0x0804A000, 0x20000000, 0xFFFFF000):
        w, (base, _lv, user, writable, x) = pt.walk(a), pt.walk_fast(a)
        assert (base if base >= 0 else None) == w.page_base
        if w.present:
            assert (user, writable, x) == (w.user, w.writable, w.nx)


def test_access_rules():
    pt, _ = tables("pae")
    pt.map(0x1000, 0x3000000, E.P | E.US | E.A | E.NX)            # user, read-only, NX
    pt.map(0x2000, 0x3001000, E.P | E.RW | E.A)                   # supervisor, writable
    ro, kern = pt.walk(0x1000), pt.walk(0x2000)
    assert check_access(ro, "r", 3, nxe=True) is None
    assert "read-only" in check_access(ro, "w", 3, nxe=True).reason
    assert "NX" in check_access(ro, "x", 3, nxe=True).reason
    assert check_access(ro, "x", 3, nxe=False) is None
    assert "supervisor page" in check_access(kern, "r", 3, nxe=True).reason
    assert check_access(kern, "w", 0, nxe=True) is None
    assert "WP" in check_access(ro, "w", 0, nxe=True).reason
    assert "SMEP" in check_access(ro, "x", 0, nxe=True).reason
    assert "SMAP" in check_access(ro, "r", 0, nxe=True, ac=False).reason
    v = check_access(ro, "w", 3, nxe=True)
    assert v.error_code == 0x7                                    # P | W | U


def test_physical_memory_bounds():
    mem = PhysicalMemory(1 << 20)
    mem.write_uint(0x1000, 4, 0xDEADBEEF)
    assert mem.read(0x1000, 4) == b"\xef\xbe\xad\xde"
    with pytest.raises(Exception):
        mem.read(1 << 20, 1)
