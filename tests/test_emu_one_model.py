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


# ---------------------------------------------------------------- one frame numbering
STATIC = ["hello_static", "vars", "bigbss", "hello_staticpie"]
DYNAMIC = ["hello_pie", "hello_nopie", "vars_pie"]


def exec_walks(name: str, mmu: str):
    """The same program exec'd by `translate`'s prediction (open_address_space, what `translate
    --elf` walks) and by the emulator (at its first instruction): both address spaces and the
    pages present at exec."""
    from elfvm.mmu import open_address_space

    k, p, result, argv = boot(RunOptions(fixture_path(name), mmu=mmu))
    space = open_address_space(profile=result.profile, mmu=mmu, elf=fixture_path(name), argv=argv, envp=[])
    pages = sorted(space.result.present_pages)
    assert pages and {pa >> 12 for pa in pages} == resident_vpns(p)
    return k, p, space, pages


@pytest.mark.parametrize("mmu", ["x86-64", "pae", "i386"])
@pytest.mark.parametrize("name", STATIC + DYNAMIC)
def test_translate_and_the_emulator_give_the_same_frames(name, mmu):
    """One frame numbering: every page present at exec sits in the same frame in `translate`'s
    prediction and in the emulator, its page tables sit in the same frames (CR3 and every table
    of the walk), and every entry of the walk holds the same value (frame and bits)."""
    from elfvm.mmu import translate_one

    k, p, space, pages = exec_walks(name, mmu)
    assert p.pt.cr3 == space.pt.cr3
    for pa in pages:
        mine, theirs = p.pt.walk(pa), space.pt.walk(pa)
        assert mine.present and mine.page_base == follow_pte(p, pa >> 12).frame
        assert mine.steps == theirs.steps, hex(pa)              # tables, indexes, entries
        t = translate_one(space, hex(pa))                        # what `translate` prints
        assert t.physical == mine.page_base, hex(pa)
        assert [w.table for w in t.walk] == [s.table for s in mine.steps], hex(pa)
        assert k.mem.read(mine.page_base, 4096) == space.mem.read(t.physical, 4096), hex(pa)
    tables = set(p.pt.tables())
    assert tables == set(space.pt.tables())
    assert not tables & set(k.frames.info)                       # no table is a user frame


def run_cli(*args):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "elfvm", *args], capture_output=True, text=True)


@pytest.mark.parametrize("name", ["vars", "hello_pie"])
def test_translate_cli_and_simulate_run_show_the_same_frames(name):
    """Through the CLI: the frame `translate --elf P ADDR` prints for a page present at exec is
    the frame `simulate-run --show pages P` prints for it at the first instruction, in JSON
    and in the --show pages and --show frames tables."""
    import json
    import re

    path = fixture_path(name)
    _k, _p, _space, pages = exec_walks(name, "x86-64")
    out = run_cli("translate", "--elf", path, "--format", "json", *map(hex, pages))
    assert out.returncode == 0, out.stderr
    predicted = {d["virtual"] >> 12: d["physical"] >> 12 for d in json.loads(out.stdout)}
    assert len(predicted) == len(pages) and all(d["fault"] is None for d in json.loads(out.stdout))
    run = run_cli("simulate-run", "--max-instructions", "1", "--format", "json", path)
    assert run.returncode == 5, run.stderr                       # stopped by --max-instructions
    doc = json.loads(run.stdout)
    shown = {r["page"]: r["frame"] for r in doc["pages"] if r["process"] == 0}
    assert {vpn: shown.get(vpn) for vpn in predicted} == predicted
    assert {r["page"]: r["frame"] for r in doc["frames"] if r["process"] == 0} == shown
    text = run_cli("simulate-run", "--max-instructions", "1", "--show", "pages", "--show", "frames",
                   "--limit", "1000", path).stdout
    rows = re.findall(r"^P0\s+0x([0-9a-f]+) \(0x[0-9a-f]+\)\s+(\d+)", text, re.M)
    cols = re.findall(r"^\s*(\d+)\s+P0\s+0x([0-9a-f]+) ", text, re.M)
    assert {int(v, 16): int(f) for v, f in rows} == shown
    assert {int(v, 16): int(f) for f, v in cols} == shown


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
    assert old_tables <= set(k.frames.phys.free_list) | set(p.pt.tables()) | set(k.frames.info)


def test_ram_the_mmu_cannot_address_is_refused_alike():
    """One machine: --ram beyond what the --mmu's entries can hold is the same usage error
    (exit 2, one line) in `translate` and in `simulate-run`, not frames a PTE cannot name."""
    path = fixture_path("hello_static")
    a = run_cli("translate", "--mmu", "i386", "--ram", "8G", "--elf", path, "0x1000")
    b = run_cli("simulate-run", "--mmu", "i386", "--ram", "8G", path)
    assert a.returncode == b.returncode == 2
    assert a.stderr == b.stderr == "elfvm: --ram 8 GiB: --mmu i386 addresses at most 4 GiB\n"


def test_a_frame_never_handed_out_is_fresh_and_a_reused_one_is_cleared():
    """Frames filled in place (page-cache reads, zeroed pages) must hold no translated code and
    zeros: only a frame the allocator never handed out is; a freed frame handed out again is
    cleared through Unicorn (new_zeroed) and reported as reused (new_many)."""
    from unicorn import UC_ARCH_X86, UC_MODE_32, Uc

    from elfvm.emu.memory import PAGE, Frames
    from elfvm.phys import FrameAllocator, MappedMemory

    fr = Frames(Uc(UC_ARCH_X86, UC_MODE_32), MappedMemory(8 << 20), FrameAllocator(8 << 20))
    assert fr.next_is_fresh()
    a = fr.new("dirty", anon=True)
    fr.write(a.addr, b"\x55" * PAGE)
    fr.release(a)
    assert not fr.next_is_fresh()
    b = fr.new_zeroed("anon", anon=True)                 # the freed frame again: cleared
    assert b.addr == a.addr and fr.read(b.addr, PAGE) == bytes(PAGE)
    assert fr.next_is_fresh()
    got: list = []
    fr.new_many(["p0", "p1"], [("f", 0), ("f", 1)], got)
    assert [fresh for _, fresh in got] == [True, True]
    fr.release(fr.info[got[0][0]])
    more: list = []
    fr.new_many(["p2", "p3"], [("f", 2), ("f", 3)], more)
    assert more[0] == (got[0][0], False) and more[1][1] is True
    assert fr.info[more[0][0]].cache_key == ("f", 2)
