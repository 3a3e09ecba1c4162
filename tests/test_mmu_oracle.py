"""The MMU model against the live kernel: present pages at the first instruction (pagemap), the
mappings and sections that symbols land in (/proc/PID/maps), --pid frames, and glibc's %gs."""

import os
import subprocess

import pytest

from elfvm.kernel.profile import make_profile
from elfvm.mmu import open_address_space, translate_all
from elfvm.mmu.live import LiveAddressSpace
from elfvm.mmu.geometry import get_geometry
from elfvm.oracle.live import can_run_i386, run_to_entry

OK, REASON = can_run_i386()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "fixtures", "bin")
pytestmark = [pytest.mark.oracle, pytest.mark.skipif(not OK, reason=REASON or "can run")]
FIXTURES = ["hello_pie", "hello_nopie", "hello_static", "hello_staticpie", "bigbss", "tiny",
            "hello_execstack", "vars", "vars_pie"]
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="pagemap PFNs need CAP_SYS_ADMIN")


def maps_lines(text):
    out = []
    for line in text.splitlines():
        p = line.split(None, 5)
        a, b = (int(x, 16) for x in p[0].split("-"))
        out.append((a, b, p[1], p[5].strip() if len(p) > 5 else ""))
    return out


@pytest.mark.parametrize("name", FIXTURES)
def test_present_at_exec_matches_pagemap(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        pytest.skip("fixture not built")
    s = open_address_space(profile=make_profile(), elf=path)
    predicted = {p for v in s.mm.vmas for p in range(v.start, v.end, 4096) if s.pt.walk(p).present}
    with run_to_entry(path, [path], {}) as lp:
        live = set()
        for a, b, _, _ in maps_lines(lp.maps):
            for i, e in enumerate(lp.pagemap_range(a, b)):
                if e.present:
                    live.add(a + i * 4096)
    assert predicted == live


@pytest.mark.parametrize("name", ["vars", "vars_pie"])
def test_symbols_land_where_the_kernel_maps_them(name):
    path = os.path.join(BIN, name)
    s = open_address_space(profile=make_profile(), elf=path)
    res = {t.input: t for t in translate_all(s, ["counter", "table", "greeting", "square", "main"])}
    expect = {"counter": (".data", "rw-p"), "table": (".bss", "rw-p"), "greeting": (".rodata", "r--p"),
              "square": (".text", "r-xp"), "main": (".text", "r-xp")}
    with run_to_entry(path, [path], {}) as lp:
        lines = maps_lines(lp.maps)
    for sym, (section, perms) in expect.items():
        t = res[sym]
        assert t.section == section and t.symbol == sym
        line = next(l for l in lines if l[0] <= t.linear < l[1])
        assert t.vma.perms == line[2] == perms
        assert t.vma.start >= line[0] and t.vma.end <= line[1]


@ROOT_ONLY
def test_pid_agrees_with_pagemap():
    path = os.path.join(BIN, "vars")
    with run_to_entry(path, [path], {}) as lp:
        space = LiveAddressSpace(lp.pid, get_geometry("x86-64"), make_profile())
        esp = lp.esp
        t = space.translate(esp, "r")
        e = lp.pagemap(esp)
        assert e.present and t.physical == e.pfn * 4096 + (esp & 0xFFF)
        assert t.walk[-1].present and "exclusive" in t.walk[-1].bits
        text = space.translate(lp.eip, "x")                     # ld.so's entry: not faulted in yet
        assert text.physical is None and text.fault.kind == "file-read"
        assert space.seg.registers["cs"] == 0x23 and space.seg.registers["gs"] == 0
        counter = translate_all(space, ["counter"])[0]
        assert counter.section == ".data"
        space.close()


def test_pid_errors():
    from elfvm.mmu import TranslateError

    with pytest.raises(TranslateError, match="no such process"):
        LiveAddressSpace(2 ** 22 + 12345, get_geometry("x86-64"), make_profile())
    with pytest.raises(TranslateError, match="not an i386"):
        LiveAddressSpace(os.getpid(), get_geometry("x86-64"), make_profile())


GS_C = r"""
#include <stdio.h>
__thread int tv = 5;
int main(void) { unsigned short gs; unsigned int tp;
  __asm__("mov %%gs,%0" : "=r"(gs)); __asm__("mov %%gs:0,%0" : "=r"(tp));
  printf("%#x %#x %p\n", gs, tp, (void *)&tv); fflush(stdout); getchar(); return 0; }
"""


def test_glibc_loads_tls_selector_into_gs(tmp_path):
    """On an x86-64 kernel GDT_ENTRY_TLS_MIN is 12: glibc's %gs is 12*8+3 = 0x63, its base the TCB."""
    src = tmp_path / "gs.c"
    src.write_text(GS_C)
    exe = tmp_path / "gs"
    if subprocess.run(["gcc", "-m32", "-O1", str(src), "-o", str(exe)], capture_output=True).returncode:
        pytest.skip("gcc -m32 not available")
    p = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        gs, tp, tv = p.stdout.readline().split()
        assert int(gs, 16) == 0x63
        space = LiveAddressSpace(p.pid, get_geometry("x86-64"), make_profile())
        assert space.seg.registers["gs"] == 0x63
        t, tls = translate_all(space, ["gs:0", "tv"])
        assert t.linear == int(tp, 16)                           # base of GDT entry 12 = the TCB
        assert tls.linear == int(tv, 16)                         # variant II: below the TCB
        if os.geteuid() == 0:
            assert t.physical is not None
        space.close()
    finally:
        p.kill()
        p.wait()
