"""One model (issue 11): the emulated kernel runs on the MMU model that `translate` shows.

The CPU's TLB fills walk the process's page tables in the one physical memory; the frames the
paging model reports (`--show frames`, `--show pages`, JSON, SVG) are the frames those PTEs hold.
"""

from __future__ import annotations

import pytest

pytest.importorskip("unicorn")

from elfvm.emu.pages import follow_pte, resident_vpns  # noqa: E402
from elfvm.emu.run import RunOptions, boot  # noqa: E402
from elfvm.emu.sched import run  # noqa: E402
from elfvm.mmu import entries as E  # noqa: E402
from conftest import fixture_path  # noqa: E402


def booted(name: str, **kw):
    k, p, _result, _argv = boot(RunOptions(fixture_path(name), **kw))
    return k, p


@pytest.mark.parametrize("extra", [{}, {"exact": True}])
def test_model_frames_are_the_pte_frames(extra):
    """Stopped mid-run (processes alive, page tables intact): every resident page the model
    lists sits in the frame its PTE holds, and the CPU's walk of CR3 finds that frame too."""
    k, p = booted("touch", max_instructions=60000, **extra)
    run(k)
    total, _ = k.model.stats()
    assert total.pages and total.frames
    seen = 0
    for row in total.pages:
        if row.frame is None:
            continue
        q = k.by_mi[row.process]
        pte = follow_pte(q, row.page)
        assert pte is not None, (row.process, hex(row.page))
        assert row.frame == pte.frame >> 12
        walk = q.pt.walk(row.page << 12)
        assert walk.present and walk.page_base == pte.frame
        seen += 1
    assert seen == sum(len(resident_vpns(q)) for q in k.procs.values() if q.pt is not None)
    for row in total.frames:
        q = k.by_mi[row.process]
        assert follow_pte(q, row.page).frame >> 12 == row.frame


def test_page_tables_live_in_the_cpus_memory():
    """The PTE bytes the MMU model writes are in the RAM Unicorn runs on: one physical memory."""
    k, p = booted("hello_static")
    cpu_read = k.cpu.uc.mem_read
    vpn = next(iter(resident_vpns(p)))
    ea = p.pt.pte_addr(vpn << 12)
    size = k.geom.entry_size
    raw = int.from_bytes(bytes(cpu_read(ea, size)), "little")
    assert raw == p.pt.read_pte(vpn << 12) and raw & E.P
    assert ea not in k.frames.info                     # a page-table frame, not a user frame
    k.frames.write(follow_pte(p, vpn).frame, b"\x5a")  # written through the CPU ...
    assert k.mem.read(follow_pte(p, vpn).frame, 1) == b"\x5a"   # ... read in the model's memory


# ---------------------------------------------------------------- one fault decision
def probes(result):
    """(address, why) pairs over a loaded program: every VMA's first and last page, the hole
    below the stack (growth), far below it (RLIMIT_STACK), NULL, kernel space, the stack top."""
    mm = result.mm
    out = [(0x10, "NULL"), (mm.task_size + 0x1000, "kernel space"), (result.stack.esp, "esp")]
    for v in mm.vmas:
        out += [(v.start, v.special or v.kind), (v.end - 4096, v.special or v.kind)]
    stack = next(v for v in mm.vmas if v.growsdown)
    out += [(stack.start - 0x10, "stack growth"), (stack.end - (9 << 20), "over RLIMIT_STACK")]
    return out


def emulator_verdict(name, addr, access):
    """Boot the program, fault once at `addr` as the CPU would: (verdict, page bytes)."""
    from elfvm.emu.fault import do_user_addr_fault
    from elfvm.mmu.mmu import AddressSpace

    k, p, result, _argv = boot(RunOptions(fixture_path(name)))
    space = AddressSpace(k.geom, result.profile, 256 << 20, result)
    t = space.translate(addr, access)
    predicted = ("ok", None) if t.fault is None else (t.fault.kind, t.fault.handler or None)
    before = follow_pte(p, addr >> 12)
    allowed = before is not None and (access != "w" or before.write) and (access != "x" or before.exec)
    d = None if allowed else do_user_addr_fault(k, p, addr, access, 0)
    if allowed:
        emulated = ("ok", None)
    elif d is not None:
        emulated = (f"{d.name.lower()}-{'maperr' if d.code == 1 else 'accerr'}" if d.name == "SIGSEGV"
                    else d.name.lower(), None)
    else:
        ev = k.events[-1]
        emulated = (t.fault.kind if t.fault else "?", ev.handler)
    pte = follow_pte(p, addr >> 12)
    mine = k.mem.read(pte.frame, 4096) if allowed else None
    theirs = space.mem.read(t.physical & ~0xFFF, 4096) if t.fault is None else None
    return predicted, emulated, mine, theirs


@pytest.mark.parametrize("name", ["hello_static", "vars"])
def test_translate_and_the_emulator_decide_alike(name):
    """The same address space and access through `translate` (its prediction) and through the
    emulator (the fault it takes): the same verdict, the same handler, the same page bytes for
    the pages present at exec."""
    _k, _p, result, _argv = boot(RunOptions(fixture_path(name)))
    cases = probes(result)
    for addr, why in cases:
        for access in "rwx":
            predicted, emulated, mine, theirs = emulator_verdict(name, addr, access)
            assert emulated == predicted, (hex(addr), why, access)
            assert mine == theirs, (hex(addr), why, access)


# ---------------------------------------------------------------- exec
def test_exec_in_a_running_task_uses_the_layout_loader():
    """execve inside a run: the loader `layout` uses builds the new image in the task's own
    Mm object (execve(req, mm=p.mm)); exec_mmap swaps the address space: the old pages and page
    tables go, the new image's pages are those the loader wrote, and the map is layout's."""
    from elfvm.emu.exec import exec_mmap
    from elfvm.kernel.binfmt_elf import ExecRequest, execve
    from elfvm.mm.maps import maps_text

    k, p = booted("hello_static")
    old_tables = set(p.pt.tables())
    path = fixture_path("vars")
    req = ExecRequest(path, [path], [])
    mm = p.mm
    result = execve(req, mm=mm)
    assert result.mm is mm and result.verdict.result == "ok"
    exec_mmap(k, p, result)
    assert p.mm is mm
    assert maps_text(p.mm) == maps_text(execve(req).mm)
    assert resident_vpns(p) == {pa >> 12 for pa in result.present_pages}
    # the old image's frames are gone: every frame's reverse map names only the new image's pages
    mapped = {vpn for fi in k.frames.info.values() for pid, vpn in fi.rmap if pid == p.pid}
    assert mapped == resident_vpns(p)
    assert old_tables <= set(k.frames.free_list) | set(p.pt.tables()) | set(k.frames.info)
