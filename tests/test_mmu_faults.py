"""Lazy allocation and the kernel's fault decisions, on a predicted fixture and on synthetic VMAs."""

import os

import pytest

from elfvm.kernel.profile import make_profile
from elfvm.mm import fault as F
from elfvm.mm.vma import PROT_EXEC, PROT_READ, PROT_WRITE, FileRef, Mm, Vma
from elfvm.mmu import open_address_space

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARS = os.path.join(ROOT, "fixtures", "bin", "vars")
pytestmark = pytest.mark.skipif(not os.path.exists(VARS), reason="fixtures/bin/vars not built")


@pytest.fixture(scope="module")
def vars_space():
    return open_address_space(profile=make_profile(), elf=VARS)


def kinds(space, addr):
    return {a: (t.fault.kind if t.fault else "ok") for a in "rwx" for t in [space.translate(addr, a)]}


def test_present_pages_are_exactly_what_exec_wrote(vars_space):
    s = vars_space
    present = sorted(p for v in s.mm.vmas for p in range(v.start, v.end, 4096) if s.pt.walk(p).present)
    assert present == sorted(s.result.present_pages)


def test_stack_and_bss_tail_pages(vars_space):
    s = vars_space
    t = s.translate(s.result.stack.esp, "w")
    assert t.fault is None and t.physical is not None and t.vma_name == "[stack]"
    assert s.mem.read_uint(t.physical, 4) == 1                         # argc, written by create_elf_tables
    assert kinds(s, s.result.stack.esp)["x"] == "sigsegv-accerr"       # NX stack


def test_lazy_faults_by_kind(vars_space):
    s = vars_space
    text = s.translate(s.images["main"].lookup("square").value, "x")
    assert text.fault.kind == "file-read" and text.section == ".text" and text.symbol == "square"
    assert kinds(s, 0x08048000) == {"r": "file-read", "w": "sigsegv-accerr", "x": "sigsegv-accerr"}
    bss = s.images["main"].lookup("table").value + 0x2000
    assert kinds(s, bss) == {"r": "zero-page", "w": "anonymous-page", "x": "sigsegv-accerr"}
    data_page = 0x0804B000                                               # rw-p file page, not yet written
    assert kinds(s, data_page)["w"] == "cow"
    assert kinds(s, 0x10)["r"] == "sigsegv-maperr"
    below = s.result.stack.vma_start - 0x10
    assert kinds(s, below)["w"] == "stack-growth"
    vdso = next(v for v in s.mm.vmas if v.special == "[vdso]")
    assert kinds(s, vdso.start)["x"] == "special-mapping"


def test_stack_growth_limits(vars_space):
    s = vars_space
    top = s.result.stack.top
    t = s.translate(top - (8 << 20) - 0x1000, "w")
    assert t.fault.kind == "sigsegv-maperr" and "RLIMIT_STACK" in t.fault.reason


def mm(*vmas):
    return Mm(0xFFFFE000, mmap_min_addr=4096, lsm_mmap_min_addr=0, vmas=list(vmas))


def classify(m, addr, access, cpl, present, sizes=None):
    return F.handle_mm_fault(m, addr, access, pte=F.Pte(present=present), cpl=cpl,
                             file_size=lambda v: (sizes or {}).get(v.file.path))


def test_guard_gap_and_sigbus():
    stack = Vma(0xFFF00000, 0xFFFFE000, PROT_READ | PROT_WRITE, growsdown=True)
    blocker = Vma(0xFFC00000, 0xFFC01000, PROT_READ)
    m = mm(blocker, stack)
    ok = classify(m, 0xFFD01000, "w", 3, False)
    assert ok.kind == "stack-growth"
    bad = classify(m, 0xFFD00000 - 1, "w", 3, False)
    assert bad.kind == "sigsegv-maperr" and "stack_guard_gap" in bad.reason
    f = FileRef("/x")
    m = mm(Vma(0x8048000, 0x804A000, PROT_READ, 0, f))
    assert classify(m, 0x8048000, "r", 3, False, {"/x": 0x800}).kind == "file-read"
    assert classify(m, 0x8049000, "r", 3, False, {"/x": 0x800}).kind == "sigbus"


def test_write_protect_and_kernel_uaccess():
    anon = Vma(0x1000, 0x3000, PROT_READ | PROT_WRITE)
    m = mm(anon)
    assert classify(m, 0x1000, "w", 3, True).kind == "write-protect"
    assert classify(m, 0x9000, "r", 0, False).kind == "efault"
    rx = Vma(0x1000, 0x2000, PROT_READ | PROT_EXEC)
    assert classify(mm(rx), 0x1000, "r", 3, True).kind == "sigsegv-accerr"


def test_no_nx_in_i386_paging():
    s = open_address_space(profile=make_profile(), mmu="i386", elf=VARS)
    t = s.translate(s.result.stack.esp, "x")
    assert t.fault is None and t.physical is not None                   # 32-bit paging has no NX
    assert [w.level for w in t.walk] == ["PDE", "PTE"]


def test_tlb_path_agrees_with_full_walks(vars_space):
    import random

    rnd = random.Random(7)
    spaces = [vars_space, open_address_space(profile=make_profile("linux-i386"), mmu="pae", ram=1 << 30,
                                             elf=VARS)]
    for s in spaces:
        addrs = [rnd.randrange(v.start, v.end) for v in s.mm.vmas for _ in range(20)]
        addrs += [rnd.randrange(0, 1 << 32) for _ in range(300)]
        for access, cpl in (("r", 3), ("w", 3), ("x", 3), ("r", 0), ("w", 0)):
            s.flush_tlb()
            fast = s.physical_many([hex(a) for a in addrs], access, cpl)
            assert fast == [s.translate(a, access, cpl).physical for a in addrs]


def test_stack_growth_zone_is_one_check():
    """stack_growth_zone(): every address of a zone gets expand_stack()'s verdict by the same
    check (the same text but for the numbers derived from the address), and the zones of the
    region below the stack tile it, split where a check's bound lies: mmap_min_addr, the guard
    gap above the VMA below, RLIMIT_STACK."""
    import random
    import re

    stack = Vma(0x20000000, 0x20800000, PROT_READ | PROT_WRITE, growsdown=True)
    below = Vma(0x08000000, 0x08001000, PROT_READ)
    m = Mm(0x40000000, mmap_min_addr=0x10000, lsm_mmap_min_addr=0x30000, vmas=[below, stack])
    rlimit = 0x1000000 + 0x800
    shape = lambda a: re.sub(r"0x[0-9a-f]+", "N", F.expand_stack(m, stack, a, rlimit) or "grows")  # noqa: E731
    zones = set()
    rnd = random.Random(1)
    points = [rnd.randrange(below.end, stack.start) for _ in range(3000)]
    for b in (m.effective_mmap_min_addr, below.end + m.stack_guard_gap, stack.end - rlimit):
        points += [b - 1, b, b + 1, b + 0xfff, b + 0x1000]
    for a in points:
        if not below.end <= a < stack.start:
            continue
        lo, hi = F.stack_growth_zone(m, stack, a, rlimit)
        assert lo <= a < hi and lo % 4096 == 0 and hi % 4096 == 0
        assert shape(lo) == shape(hi - 1) == shape(a)
        zones.add((lo, hi))
    zones = sorted(zones)
    assert [z[0] for z in zones[1:]] == [z[1] for z in zones[:-1]]        # they tile the region
    assert zones[0][0] == below.end and zones[-1][1] == stack.start
    assert len({shape(lo) for lo, _ in zones}) == len(zones) == 3       # guard gap, rlimit, grows
