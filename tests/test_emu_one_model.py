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
