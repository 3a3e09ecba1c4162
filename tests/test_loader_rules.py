"""One test (or parametrized family) per loader rule of kernel-loader-facts.md.

Every program here is crafted in the test (tests/elfcraft.py), predicted with elfvm, checked
against the value the facts file states, and then, where i386 programs can be run
(can_run_i386()), compared with the live kernel: the verdict (and errno), and for programs that
load, /proc/PID/maps == maps_text() exactly, the auxv (AT_RANDOM bytes excepted), esp, eip and the
mm fields of /proc/PID/stat (tests/livecmp.py).  Rule numbers (R1.2 ...) refer to the facts file.
"""

from __future__ import annotations

import errno
import os
import struct

import pytest

from elfcraft import (
    EM_486, ET_DYN, ET_EXEC, PF_R, PF_W, PF_X, PT_GNU_STACK, PT_NULL,
    PT_PHDR, Ph, R, W, X, build_elf, gnu_stack, interp, load, simple_interp, write_exe,
)
from livecmp import LIVE_OK, LIVE_REASON, RLIM_INFINITY_ELFVM, compare_live, predict
from elfvm.kernel.profile import make_profile
from elfvm.mm.maps import proc_maps
from elfvm.oracle.live import run_to_entry

pytestmark = pytest.mark.oracle

TEXT = 0x08048000
KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
AT_SYSINFO, AT_SYSINFO_EHDR, AT_PHDR, AT_PHNUM, AT_BASE, AT_ENTRY = 32, 33, 3, 5, 7, 9
AT_RANDOM, AT_EXECFN, AT_PLATFORM = 25, 31, 15
MMAP_BASE = 0xF7FFE000                       # mmap_base for an 8 MiB stack (R3.2)
STACK = "fffdd000-ffffe000 rw-p 00000000 [stack]"
STATIC_VDSO = ["f7ff6000-f7ffa000 r--p 00000000 [vvar]",
               "f7ffa000-f7ffc000 r--p 00000000 [vvar_vclock]",
               "f7ffc000-f7ffe000 r-xp 00000000 [vdso]"]


# --- helpers -------------------------------------------------------------------------------

def perms(flags: int) -> str:
    return ("r" if flags & PF_R else "-") + ("w" if flags & PF_W else "-") + \
        ("x" if flags & PF_X else "-") + "p"


def lines(res) -> list[str]:
    """The maps of a prediction as "start-end perms pgoff [name]": file names by basename."""
    out = []
    for ln in proc_maps(res.mm):
        name = os.path.basename(ln.name) if ln.name.startswith("/") else ln.name
        out.append(f"{ln.start:08x}-{ln.end:08x} {ln.perms} {ln.pgoff:08x}" + (f" {name}" if name else ""))
    return out


def aux(res, t: int) -> int | None:
    return next((a.value for a in res.auxv if a.type == t), None)


class Case:
    """Write crafted programs into tmp_path, predict them and, at the end, compare with the live
    kernel (or skip with can_run_i386()'s reason once the facts assertions have passed)."""

    def __init__(self, tmp_path):
        self.dir = tmp_path
        self.runs = []

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def file(self, name: str, data: bytes, mode: int = 0o755) -> str:
        return write_exe(self.dir / name, data, mode)

    def interp(self, data: bytes | None = None, name: str = "ld.so") -> str:
        """A crafted interpreter (simple_interp() by default); returns its absolute path."""
        return self.file(name, simple_interp() if data is None else data)

    def run(self, data: bytes | None, name: str = "prog", argv=None, env=(), *, profile=None,
            rlimit_stack: int = 8 << 20, path: str | None = None):
        if data is not None:
            path = self.file(name, data)
        path = path or self.path(name)
        res = predict(path, argv, env, profile=profile, rlimit_stack=rlimit_stack)
        self.runs.append((res, path, argv, tuple(env), profile, rlimit_stack))
        return res

    def live(self) -> None:
        if not LIVE_OK:
            pytest.skip(f"live comparison: {LIVE_REASON}")
        for res, path, argv, env, profile, rlimit in self.runs:
            compare_live(res, path, argv, env, profile=profile,
                         rlimit_stack=None if rlimit == 8 << 20 else rlimit)


@pytest.fixture
def case(tmp_path):
    return Case(tmp_path)


def exe(loads: list[Ph], *, stack: int | None = R | W, interp_path: str | None = None,
        **kw) -> bytes:
    """[PT_INTERP] + loads + [PT_GNU_STACK]: the usual shape of a program."""
    phs = ([interp()] if interp_path else []) + list(loads)
    if stack is not None:
        phs.append(gnu_stack(stack))
    return build_elf(phs, interp_path=interp_path, **kw)


def text(filesz: int = 0x200, flags: int = R | X) -> Ph:
    """The usual first PT_LOAD: file page 0 (headers included) at 0x08048000."""
    return load(TEXT, filesz, flags=flags, offset=0)


def ok(res) -> None:
    assert res.verdict.result == "ok", res.verdict


# --- R1.2 file mapping ---------------------------------------------------------------------

def test_r1_2_mapping_covers_filesz_plus_page_offset(case):
    # vaddr 0x08048f00 + filesz 0x200 crosses a page: PA(0x200 + 0xf00) = 2 pages.
    res = case.run(exe([load(0x08048F00, 0x200, 0x200, R | X, offset=0xF00)]))
    ok(res)
    assert lines(res)[0] == "08048000-0804a000 r-xp 00000000 prog"
    case.live()


def test_r1_2_pgoff_is_offset_minus_page_offset(case):
    # hello_pie LOAD[3] shape: off 0x2ee8, vaddr ..ee8, filesz 0x124 -> 2 pages at pgoff 0x2000.
    res = case.run(exe([text(), load(0x0804BEE8, 0x124, flags=R | W, offset=0x2EE8)]))
    ok(res)
    assert "0804b000-0804d000 rw-p 00002000 prog" in lines(res)
    case.live()


def test_r1_2_mapping_past_eof_is_created(case):
    # The file ends inside the first page; the 3-page mapping is made anyway (no bss).
    res = case.run(exe([load(TEXT, 0x3000, flags=R | X, offset=0)], size=0x200))
    ok(res)
    assert lines(res)[0] == "08048000-0804b000 r-xp 00000000 prog"
    case.live()


def test_r1_2_later_segment_overwrites_earlier(case):
    # MAP_FIXED for later PT_LOADs: the RW page punches into the 3-page text mapping.
    res = case.run(exe([load(TEXT, 0x3000, flags=R | X, offset=0),
                        load(0x08049000, 0x100, flags=R | W, offset=0x1000)]))
    ok(res)
    assert lines(res)[:3] == ["08048000-08049000 r-xp 00000000 prog",
                              "08049000-0804a000 rw-p 00001000 prog",
                              "0804a000-0804b000 r-xp 00002000 prog"]
    case.live()


def test_r1_2_later_segment_over_stack_is_accepted(case):
    # rej/later_over_stack: a file mapping punched into the stack VMA.
    res = case.run(exe([text(), load(0xFFFE0000, 0x100, flags=R | W, offset=0)]))
    ok(res)
    ls = lines(res)
    assert "fffe0000-fffe1000 rw-p 00000000 prog" in ls
    assert ls[-1] == "fffe1000-ffffe000 rw-p 00000000 [stack]"
    assert "fffdd000-fffe0000 rw-p 00000000" in ls
    case.live()


# --- R1.3 bss ------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, bss_perms", [
    (R | W, "rw-p"), (R, "rw-p"), (0, "rw-p"), (R | X, "rwxp"), (R | W | X, "rwxp"), (X, "rwxp"),
])
def test_r1_3_bss_is_anon_rw_plus_x(case, flags, bss_perms):
    res = case.run(exe([text(), load(0x0804A000, 0x123, 0x3000, flags, offset=0x1000)]))
    ok(res)
    ls = lines(res)
    # The file VMA keeps the padzero tail page; the anonymous bss follows, always rw (+x).
    assert f"0804a000-0804b000 {perms(flags)} 00001000 prog" in ls
    assert f"0804b000-0804d000 {bss_perms} 00000000" in ls
    case.live()


def test_r1_3_hello_static_load3_example(case):
    res = case.run(exe([text(), load(0x080E9BEC, 0x36CC, 0x64A4, R | W, offset=0x1BEC)]))
    ok(res)
    ls = lines(res)
    assert "080e9000-080ee000 rw-p 00001000 prog" in ls
    assert "080ee000-080f1000 rw-p 00000000" in ls
    case.live()


def test_r1_3_bss_inside_last_file_page_has_no_vma(case):
    res = case.run(exe([text(), load(0x0804A000, 0x123, 0x800, R | W, offset=0x1000)]))
    ok(res)
    assert lines(res)[:2] == ["08048000-08049000 r-xp 00000000 prog",
                              "0804a000-0804b000 rw-p 00001000 prog"]
    assert lines(res)[2].startswith("f7ff6000")
    case.live()


@pytest.mark.parametrize("flags, size, result", [
    (R | W, 0x1000, "killed"),   # last file page wholly past EOF: padzero's clear_user faults
    (R, 0x1000, "ok"),           # ... ignored when the segment is not writable
    (R | W, 0x1050, "ok"),       # the page is partly in the file: no fault
])
def test_r1_3_padzero_beyond_eof(case, flags, size, result):
    res = case.run(exe([text(), load(0x0804A000, 0x123, 0x3000, flags, offset=0x1000)], size=size))
    assert res.verdict.result == result, res.verdict
    if result == "killed":
        assert res.verdict.errno == errno.EFAULT
    case.live()


# --- R1.4 p_filesz == 0 --------------------------------------------------------------------

@pytest.mark.parametrize("vaddr, memsz, flags, expect", [
    (0x0804C000, 0x2000, R | W, "0804c000-0804e000 rw-p 00000000"),     # crafted/filesz0
    (0x0804C123, 0x2000, R | W, "0804c000-0804f000 rw-p 00000000"),     # crafted/filesz0_unal
    (0x0804C000, 0x2000, R, "0804c000-0804e000 rw-p 00000000"),         # filesz0_r
    (0x0804C000, 0x2000, 0, "0804c000-0804e000 rw-p 00000000"),         # filesz0_none
    (0x0804C000, 0x2000, R | X, "0804c000-0804e000 rwxp 00000000"),     # filesz0_rx
])
def test_r1_4_filesz0_is_pure_anon(case, vaddr, memsz, flags, expect):
    res = case.run(exe([text(), load(vaddr, 0, memsz, flags, offset=vaddr & 0xFFF)]))
    ok(res)
    assert expect in lines(res)
    case.live()


def test_r1_4_filesz0_memsz0_maps_nothing_but_counts(case):
    res = case.run(exe([text(), load(0x08060000, 0, 0, R | W, offset=0)]))
    ok(res)
    assert not [ln for ln in lines(res) if ln.startswith("0806")]
    assert res.mm.start_data == 0x08060000 and res.mm.end_data == 0x08060000
    assert res.mm.start_brk == 0x08060000
    case.live()


# --- R1.5 permissions ----------------------------------------------------------------------

@pytest.mark.parametrize("flags", list(range(8)) + [0xF0000004, 0x0FFFFFF8 | R | W])
def test_r1_5_file_mapping_permissions_literal(case, flags):
    res = case.run(exe([text(), load(0x0804A000, 0x100, flags=flags, offset=0x1000)]))
    ok(res)
    assert f"0804a000-0804b000 {perms(flags)} 00001000 prog" in lines(res)
    case.live()


# --- R1.6 READ_IMPLIES_EXEC ----------------------------------------------------------------

def three_segments() -> list[Ph]:
    return [load(TEXT, 0x1000, flags=R, offset=0),
            load(0x08049000, 0x1000, flags=R | X, offset=0x1000),
            load(0x0804A000, 0x100, 0x2000, R | W, offset=0x2000)]


def test_r1_6_no_gnu_stack_read_implies_exec(case):
    res = case.run(exe(three_segments(), stack=None))
    ok(res)
    assert res.read_implies_exec
    assert lines(res)[:3] == ["08048000-0804a000 r-xp 00000000 prog",     # r-- and r-x merged
                              "0804a000-0804b000 rwxp 00002000 prog",
                              "0804b000-0804c000 rwxp 00000000"]
    assert lines(res)[-1] == "fffdd000-ffffe000 rwxp 00000000 [stack]"
    assert lines(res)[-2] == "f7ffc000-f7ffe000 r-xp 00000000 [vdso]"  # vvar/vdso unaffected
    assert lines(res)[-4] == "f7ff6000-f7ffa000 r--p 00000000 [vvar]"
    case.live()


@pytest.mark.parametrize("stacks, rie, stack_perms", [
    ([], True, "rwxp"),
    ([R | W], False, "rw-p"),
    ([R | W | X], False, "rwxp"),                # ENABLE_X: only the stack changes
    ([R | W | X, R | W], False, "rw-p"),         # the last PT_GNU_STACK wins
    ([R | W, R | W | X], False, "rwxp"),
    ([X], False, "rwxp"),                        # only PF_X is looked at
    ([0], False, "rw-p"),
])
def test_r1_6_last_gnu_stack_decides(case, stacks, rie, stack_perms):
    res = case.run(build_elf(three_segments() + [gnu_stack(f) for f in stacks]))
    ok(res)
    assert res.read_implies_exec is rie
    assert lines(res)[-1] == f"fffdd000-ffffe000 {stack_perms} 00000000 [stack]"
    assert lines(res)[0] == ("08048000-0804a000 r-xp 00000000 prog" if rie
                             else "08048000-08049000 r--p 00000000 prog")
    case.live()


def test_r1_6_unreadable_segments_stay_unexecutable(case):
    # READ_IMPLIES_EXEC adds PROT_EXEC to PROT_READ mappings only.
    res = case.run(exe([text(), load(0x0804A000, 0x100, flags=0, offset=0x1000),
                        load(0x0804C000, 0x100, flags=W, offset=0x2000)], stack=None))
    ok(res)
    assert "0804a000-0804b000 ---p 00001000 prog" in lines(res)
    assert "0804c000-0804d000 -w-p 00002000 prog" in lines(res)
    case.live()


def test_r1_6_interpreter_mappings_get_x(case):
    ld = case.interp(build_elf([load(0, 0x1000, flags=R, offset=0),
                                load(0x1000, 0x100, 0x100, R | W, offset=0x1000)], e_type=ET_DYN))
    res = case.run(exe([text()], stack=None, interp_path=ld))
    ok(res)
    ls = lines(res)
    assert "f7ffc000-f7ffd000 r-xp 00000000 ld.so" in ls
    assert "f7ffd000-f7ffe000 rwxp 00001000 ld.so" in ls
    case.live()


# --- R1.7 holes ----------------------------------------------------------------------------

def test_r1_7_exec_holes_stay_unmapped(case):
    res = case.run(exe([text(), load(0x08050000, 0x100, flags=R | W, offset=0x1000)]))
    ok(res)
    assert lines(res)[:2] == ["08048000-08049000 r-xp 00000000 prog",
                              "08050000-08051000 rw-p 00001000 prog"]
    case.live()


def test_r1_7_dyn_hole_takes_the_vdso(case):
    # crafted/dyn_hole: the excess of the total_mapping_size reservation is unmapped.
    res = case.run(exe([load(0, 0x1000, flags=R | X, offset=0),
                        load(0x100000, 0x100, flags=R | W, offset=0x1000)], e_type=ET_DYN))
    ok(res)
    assert lines(res)[:5] == ["f7efd000-f7efe000 r-xp 00000000 prog",
                              "f7ff5000-f7ff9000 r--p 00000000 [vvar]",
                              "f7ff9000-f7ffb000 r--p 00000000 [vvar_vclock]",
                              "f7ffb000-f7ffd000 r-xp 00000000 [vdso]",
                              "f7ffd000-f7ffe000 rw-p 00001000 prog"]
    case.live()


# --- R1.8 merging --------------------------------------------------------------------------

def test_r1_8_contiguous_file_offsets_merge(case):
    res = case.run(exe([load(TEXT, 0x1000, flags=R | X, offset=0),
                        load(0x08049000, 0x1000, flags=R | X, offset=0x1000)]))
    ok(res)
    assert lines(res)[0] == "08048000-0804a000 r-xp 00000000 prog"
    case.live()


def test_r1_8_non_contiguous_offsets_do_not_merge(case):
    res = case.run(exe([load(TEXT, 0x1000, flags=R | X, offset=0),
                        load(0x08049000, 0x1000, flags=R | X, offset=0x3000)]))
    ok(res)
    assert lines(res)[:2] == ["08048000-08049000 r-xp 00000000 prog",
                              "08049000-0804a000 r-xp 00003000 prog"]
    case.live()


def test_r1_8_bss_and_filesz0_segment_merge(case):
    res = case.run(exe([text(), load(0x0804A000, 0x100, 0x1100, R | W, offset=0x1000),
                        load(0x0804C000, 0, 0x2000, R | W, offset=0)]))
    ok(res)
    ls = lines(res)
    assert "0804a000-0804b000 rw-p 00001000 prog" in ls      # file and anon never merge
    assert "0804b000-0804e000 rw-p 00000000" in ls
    case.live()


def test_r1_8_different_perms_do_not_merge(case):
    res = case.run(exe([text(), load(0x0804A000, 0x100, 0x1100, R | W, offset=0x1000),
                        load(0x0804C000, 0, 0x2000, R | X, offset=0)]))
    ok(res)
    ls = lines(res)
    assert "0804b000-0804c000 rw-p 00000000" in ls
    assert "0804c000-0804e000 rwxp 00000000" in ls
    case.live()


def test_r1_8_bss_does_not_merge_with_the_next_vma(case):
    # do_brk_flags() only expands the *previous* VMA.  Here LOAD[0]'s huge bss is mapped first;
    # LOAD[1] (MAP_FIXED) punches its file page into it, and LOAD[1]'s own bss then lies right
    # below the rest of LOAD[0]'s bss: two separate lines (found by the fuzz test).
    res = case.run(exe([load(TEXT, 0x200, 0x100000, R | W, offset=0),
                        load(0x0804A000, 0x100, 0x2000, R | W, offset=0x1000)]))
    ok(res)
    ls = lines(res)
    assert ls[:5] == ["08048000-08049000 rw-p 00000000 prog",
                      "08049000-0804a000 rw-p 00000000",
                      "0804a000-0804b000 rw-p 00001000 prog",
                      "0804b000-0804c000 rw-p 00000000",
                      "0804c000-08148000 rw-p 00000000"]
    case.live()


def test_r1_8_bss_merges_with_the_previous_vma(case):
    # ... while a bss right after an anonymous VMA of the same flags expands it (one line).
    res = case.run(exe([text(), load(0x0804A000, 0, 0x1000, R | W, offset=0),
                        load(0x0804B000, 0, 0x1000, R | W, offset=0)]))
    ok(res)
    assert "0804a000-0804c000 rw-p 00000000" in lines(res)
    case.live()


def test_r1_8_split_pieces_do_not_rejoin(case):
    # A MAP_FIXED file page punched into an anonymous bss splits it into two VMAs; a later bss
    # over the punched page expands the lower piece only (do_brk_flags), never the upper one.
    res = case.run(exe([load(TEXT, 0x200, 0x5000, R | W, offset=0),
                        load(0x0804A000, 0x100, flags=R | W, offset=0x1000),
                        load(0x0804A000, 0, 0x1000, R | W, offset=0)]))
    ok(res)
    ls = lines(res)
    assert ls[:3] == ["08048000-08049000 rw-p 00000000 prog",
                      "08049000-0804b000 rw-p 00000000",
                      "0804b000-0804d000 rw-p 00000000"]
    case.live()


# --- R1.10 mm bookkeeping ------------------------------------------------------------------

def test_r1_10_start_data_is_the_highest_p_vaddr(case):
    res = case.run(exe([load(0x0804A000, 0x100, 0x2000, R | W, offset=0x1000),
                        load(TEXT, 0x200, flags=R | X, offset=0),
                        load(0x08050000, 0x300, flags=R, offset=0x2000)]))
    ok(res)
    mm = res.mm
    assert (mm.start_code, mm.end_code) == (TEXT, TEXT + 0x200)          # PF_X segments only
    assert (mm.start_data, mm.end_data) == (0x08050000, 0x08050300)      # max, not min
    assert mm.start_brk == 0x08051000
    case.live()


# --- R2.1 ET_EXEC --------------------------------------------------------------------------

def test_r2_1_exec_is_fixed_and_order_free(case):
    # crafted/descending: data first in the table, text second.
    res = case.run(exe([load(0x0804A000, 0x100, flags=R | W, offset=0x1000), text()]))
    ok(res)
    assert res.load_bias == 0
    assert lines(res)[:2] == ["08048000-08049000 r-xp 00000000 prog",
                              "0804a000-0804b000 rw-p 00001000 prog"]
    case.live()


def test_r2_1_vaddr0_as_root(case):
    if os.geteuid() != 0:
        pytest.skip("mapping page 0 needs root (CAP_SYS_RAWIO)")
    res = case.run(exe([load(0, 0x100, flags=R | X, offset=0)]))
    ok(res)
    assert lines(res)[0] == "00000000-00001000 r-xp 00000000 prog"
    case.live()


def test_r2_1_first_segment_over_stack_is_killed_eexist(case):
    res = case.run(exe([load(0xFFFDD000, 0x100, flags=R | X, offset=0)]))
    assert (res.verdict.result, res.verdict.errno) == ("killed", errno.EEXIST)
    case.live()


def test_r2_1_first_segment_in_stack_guard_gap_is_fine(case):
    # MAP_FIXED_NOREPLACE only fails on a real overlap, not on the stack guard gap.
    res = case.run(exe([load(0xFFFDC000, 0x100, flags=R | X, offset=0)]))
    ok(res)
    assert "fffdc000-fffdd000 r-xp 00000000 prog" in lines(res)
    case.live()


# --- R2.2 PIE ------------------------------------------------------------------------------

def pie(ld: str, first_vaddr: int = 0, align: int = 0x1000, **kw) -> bytes:
    off = first_vaddr & 0xFFF
    return exe([load(first_vaddr, 0x1000 - off, flags=R | X, offset=off, align=align),
                load(first_vaddr + 0x2000 - off, 0x100, 0x100, R | W, offset=0x1000, align=align)],
               interp_path=ld, e_type=ET_DYN, **kw)


@pytest.mark.parametrize("first_vaddr, align, first_page, bias", [
    (0, 0x1000, 0x56555000, 0x56555000),
    (0x10000, 0x1000, 0x56555000, 0x56545000),      # crafted/pie_vaddr10000_interp
    (0x2100, 0x1000, 0x56554000, 0x56552000),       # crafted/pie_unaligned_first
    (0, 0x200000, 0x56400000, 0x56400000),          # -z max-page-size=0x200000
    (0, 0x10000, 0x56550000, 0x56550000),
    (0, 0x30000, 0x56555000, 0x56555000),           # not a power of two: ignored
])
def test_r2_2_pie_load_bias(case, first_vaddr, align, first_page, bias):
    ld = case.interp()
    res = case.run(pie(ld, first_vaddr, align))
    ok(res)
    assert res.load_bias == bias
    assert lines(res)[0].startswith(f"{first_page:08x}-")
    assert aux(res, AT_ENTRY) == bias + first_vaddr
    case.live()


def test_r2_2_pie_3gb(case):
    ld = case.interp()
    res = case.run(pie(ld), profile=make_profile(addr_limit_3gb=True))
    ok(res)
    assert res.load_bias == 0x41000000
    assert lines(res)[-1] == "bffdf000-c0000000 rw-p 00000000 [stack]"
    case.live()


# --- R2.3 ET_DYN without PT_INTERP ---------------------------------------------------------

def static_pie(align: int = 0x1000, bss: int = 0x1F00) -> bytes:
    return exe([load(0, 0x1000, flags=R | X, offset=0, align=align),
                load(0x1000, 0x100, 0x100 + bss, R | W, offset=0x1000, align=align)], e_type=ET_DYN)


def test_r2_3_static_pie_top_down(case):
    res = case.run(static_pie())            # total 0x3000
    ok(res)
    assert res.load_bias == MMAP_BASE - 0x3000 == 0xF7FFB000
    assert lines(res)[:5] == ["f7ff3000-f7ff7000 r--p 00000000 [vvar]",
                              "f7ff7000-f7ff9000 r--p 00000000 [vvar_vclock]",
                              "f7ff9000-f7ffb000 r-xp 00000000 [vdso]",
                              "f7ffb000-f7ffc000 r-xp 00000000 prog",
                              "f7ffc000-f7ffd000 rw-p 00001000 prog"]
    case.live()


@pytest.mark.parametrize("align, bias", [(0x10000, 0xF7FF0000), (0x200000, 0xF7E00000)])
def test_r2_3_static_pie_large_alignment(case, align, bias):
    res = case.run(static_pie(align))
    ok(res)
    assert res.load_bias == bias            # spot f7ffb000 & ~(alignment-1)
    # The vDSO goes into the free gap above the image, below mmap_base.
    assert aux(res, AT_SYSINFO_EHDR) == 0xF7FFC000
    case.live()


def test_r2_3_first_segment_in_phdr_order_quirk(case):
    # crafted/dyn_descending: the first PT_LOAD (data, vaddr 0x2000) takes the top of the block;
    # the lower text segment is MAP_FIXED below it.
    res = case.run(exe([load(0x2000, 0x100, flags=R | W, offset=0x1000),
                        load(0, 0x1000, flags=R | X, offset=0)], e_type=ET_DYN))
    ok(res)
    data_page = MMAP_BASE - 0x3000          # total_mapping_size = 0x2100 -> 0x3000
    assert res.load_bias == data_page - 0x2000
    assert f"{data_page:08x}-{data_page + 0x1000:08x} rw-p 00001000 prog" in lines(res)
    assert f"{data_page - 0x2000:08x}-{data_page - 0x1000:08x} r-xp 00000000 prog" in lines(res)
    case.live()


def test_r2_3_filesz0_first_segment_disables_relocation(case):
    if os.geteuid() != 0:
        pytest.skip("mapping page 0 needs root")
    # crafted/dyn_filesz0_first: load_bias stays 0, the image sits at its raw p_vaddr.
    res = case.run(exe([load(0, 0, 0x3000, R | W, offset=0),
                        load(0x3000, 0x1000, flags=R | X, offset=0)], e_type=ET_DYN))
    ok(res)
    assert res.load_bias == 0
    assert lines(res)[:2] == ["00000000-00003000 rw-p 00000000",
                              "00003000-00004000 r-xp 00000000 prog"]
    case.live()


# --- R2.4 auxv addresses -------------------------------------------------------------------

def test_r2_4_at_phdr_standard(case):
    res = case.run(exe([text()]))
    assert aux(res, AT_PHDR) == TEXT + 52
    assert aux(res, AT_PHNUM) == 2 and aux(res, AT_ENTRY) == TEXT
    case.live()


def test_r2_4_at_phdr_not_in_any_segment(case):
    # crafted/hdr_unmapped: the table is at 52, the only PT_LOAD starts at file offset 0x1000.
    res = case.run(exe([load(0x08049000, 0x100, flags=R | X, offset=0x1000)]))
    ok(res)
    assert aux(res, AT_PHDR) == 0
    case.live()


def test_r2_4_at_phdr_last_containing_segment_and_pt_phdr_ignored(case):
    res = case.run(exe([Ph(PT_PHDR, 52, 0x12345678, 96, 96, R, 4), text(),
                        load(0x08050000, 0x200, flags=R, offset=0)]))
    ok(res)
    assert aux(res, AT_PHDR) == 0x08050000 + 52
    case.live()


def test_r2_4_at_phdr_pie_unaligned_first(case):
    ld = case.interp()
    res = case.run(pie(ld, 0x2100))         # the table (offset 52) lies outside every PT_LOAD
    assert aux(res, AT_PHDR) == 0x56552000 == res.load_bias
    case.live()


# --- R3.2 mmap_base ------------------------------------------------------------------------

@pytest.mark.parametrize("rlimit, base", [
    (100 * KiB, 0xF7FFE000), (8 * MiB, 0xF7FFE000), (64 * MiB, 0xF7FFE000),
    (200 * MiB, 0xF36FE000), (1 * GiB, 0xBFEFE000), (3 * GiB, 0x3FEFE000),
    (RLIM_INFINITY_ELFVM, 0x2AAAB000),
])
def test_r3_2_mmap_base_follows_rlimit_stack(case, rlimit, base):
    ld = case.interp(simple_interp(bss=0x1000))          # total 0x2100 -> 0x3000
    res = case.run(exe([text()], interp_path=ld), rlimit_stack=rlimit)
    ok(res)
    assert res.mm.mmap_base == base
    assert f"{base - 0x3000:08x}-{base - 0x2000:08x} r-xp 00000000 ld.so" in lines(res)
    assert res.interp.base == base - 0x3000
    case.live()


def test_r3_2_mmap_base_3gb(case):
    ld = case.interp(simple_interp(bss=0x1000))
    res = case.run(exe([text()], interp_path=ld), profile=make_profile(addr_limit_3gb=True))
    ok(res)
    assert res.mm.mmap_base == 0xB8000000
    assert res.interp.base == 0xB7FFD000
    case.live()


# --- R3.3 legacy layout --------------------------------------------------------------------

def test_r3_3_legacy_is_bottom_up_from_task_unmapped_base(case):
    ld = case.interp(simple_interp(bss=0x1000))
    res = case.run(exe([text()], interp_path=ld), profile=make_profile(legacy=True))
    ok(res)
    assert res.interp.base == 0x55555000
    assert aux(res, AT_SYSINFO_EHDR) == 0x55558000 + 0x6000   # vDSO block right after ld.so
    assert lines(res)[0] == "08048000-08049000 r-xp 00000000 prog"
    case.live()


def test_r3_3_unlimited_stack_is_not_legacy(case):
    ld = case.interp(simple_interp(bss=0x1000))
    res = case.run(exe([text()], interp_path=ld), rlimit_stack=RLIM_INFINITY_ELFVM)
    assert not res.mm.legacy and res.interp.base == 0x2AAAB000 - 0x3000
    case.live()


@pytest.mark.parametrize("three_gb, base", [(False, 0x55555000), (True, 0x40000000)])
def test_r3_3_legacy_static_pie(case, three_gb, base):
    res = case.run(static_pie(), profile=make_profile(legacy=True, addr_limit_3gb=three_gb))
    ok(res)
    assert res.load_bias == base
    case.live()


def test_r3_3_legacy_static_pie_bss_labelled_heap(case):
    # R6.3: start_brk (0x56555000) falls inside the bss VMA, which is then [heap] at exec.
    res = case.run(static_pie(bss=0x1100000), profile=make_profile(legacy=True))
    ok(res)
    assert res.mm.start_brk == 0x56555000
    assert "55557000-56657000 rw-p 00000000 [heap]" in lines(res)
    case.live()


# --- R3.5 interpreter placement ------------------------------------------------------------

def test_r3_5_exec_interp_at_its_vaddr(case):
    # crafted/pie_interp_exec: ET_EXEC interp, MAP_FIXED at p_vaddr, AT_BASE 0.
    ld = case.interp(simple_interp(vaddr=0x20000000, e_type=ET_EXEC))
    res = case.run(pie(case.path("ld.so")))
    ok(res)
    assert aux(res, AT_BASE) == 0
    assert "20000000-20001000 r-xp 00000000 ld.so" in lines(res)
    assert res.eip == 0x20000080
    assert ld
    case.live()


@pytest.mark.parametrize("main_is_pie, at_base, first", [
    (False, 0, 0x10000),                    # crafted/exec_interp_v10000: the hint is honoured
    (True, 0xF7FFC000 - 0x10000, 0xF7FFC000),   # crafted/pie_interp_v10000: top-down
])
def test_r3_5_dyn_interp_with_nonzero_vaddr(case, main_is_pie, at_base, first):
    ld = case.interp(simple_interp(vaddr=0x10000))       # total 0x1100 -> 0x2000
    res = case.run(pie(ld) if main_is_pie else exe([text()], interp_path=ld))
    ok(res)
    assert aux(res, AT_BASE) == at_base
    assert f"{first:08x}-{first + 0x1000:08x} r-xp 00000000 ld.so" in lines(res)
    assert res.eip == at_base + 0x10080
    case.live()


def test_r3_4_low_hint_is_raised_to_lsm_mmap_min_addr(case):
    # An ET_DYN interp whose first PT_LOAD (phdr order) has p_vaddr 0x1000, under an ET_EXEC
    # main: the hint 0x1000 is below the kernel's mmap_min_addr, which is
    # max(vm.mmap_min_addr, CONFIG_LSM_MMAP_MIN_ADDR=65536), so round_hint_to_min() makes it
    # 0x10000 (found by the fuzz test; elfvm used to honour 0x1000).
    ld = case.interp(build_elf([load(0x1000, 0x1000, flags=R | X, offset=0x1000),
                                load(0, 0x100, flags=R, offset=0)], e_type=ET_DYN, entry=0x1080))
    res = case.run(exe([text()], interp_path=ld))
    ok(res)
    assert aux(res, AT_BASE) == 0xF000
    assert lines(res)[:2] == ["0000f000-00010000 r--p 00000000 ld.so",
                              "00010000-00011000 r-xp 00001000 ld.so"]
    case.live()


@pytest.mark.parametrize("room, result", [(0x10000, "ok"), (0x8000, "killed")])
def test_r3_4_top_down_search_stops_at_mmap_min_addr(case, room, result):
    # A static PIE whose image leaves `room` bytes below mmap_base: vm_unmapped_area() never
    # returns an address below mmap_min_addr (0x10000), and the bottom-up fallback from
    # TASK_UNMAPPED_BASE finds no room either -> ENOMEM after the point of no return.
    total = MMAP_BASE - room
    res = case.run(exe([load(0, 0x1000, flags=R | X, offset=0),
                        load(0x1000, 0x100, total - 0x1000, R | W, offset=0x1000)], e_type=ET_DYN))
    assert res.verdict.result == result, res.verdict
    if result == "ok":
        assert res.load_bias == 0x10000
    case.live()


def test_r3_5_interp_alignment_is_ignored(case):
    ld = case.interp(simple_interp(align=0x200000))
    res = case.run(exe([text()], interp_path=ld))
    ok(res)
    assert aux(res, AT_BASE) == MMAP_BASE - 0x2000       # not 2 MiB aligned
    case.live()


def test_r3_5_interp_bss_anon(case):
    ld = case.interp(simple_interp(bss=0x1000))          # crafted/interp1 shape
    res = case.run(exe([text()], interp_path=ld))
    ok(res)
    ls = lines(res)
    assert ls[-4:-1] == ["f7ffb000-f7ffc000 r-xp 00000000 ld.so",
                         "f7ffc000-f7ffd000 rw-p 00001000 ld.so",
                         "f7ffd000-f7ffe000 rw-p 00000000"]
    case.live()


# --- R4 vDSO -------------------------------------------------------------------------------

def test_r4_vdso_static_exec(case):
    res = case.run(exe([text()]))
    ok(res)
    assert lines(res)[1:] == STATIC_VDSO + [STACK]
    assert aux(res, AT_SYSINFO_EHDR) == 0xF7FFC000
    assert aux(res, AT_SYSINFO) == 0xF7FFC000 + 0x5E0
    assert [a.type for a in res.auxv][:2] == [AT_SYSINFO, AT_SYSINFO_EHDR]
    case.live()


def test_r4_vdso_just_below_interp(case):
    ld = case.interp()                                    # total 0x2000: f7ffc000
    res = case.run(pie(ld))
    ok(res)
    assert aux(res, AT_SYSINFO_EHDR) == 0xF7FFC000 - 0x2000
    assert "f7ff4000-f7ff8000 r--p 00000000 [vvar]" in lines(res)
    case.live()


# --- R5 stack ------------------------------------------------------------------------------

def expected_esp(filename: str, argv: list[str], env: list[str], n_aux: int = 24) -> int:
    """R5.3, written out independently of elfvm."""
    p = 0xFFFFE000 - 8 - (len(filename) + 1)
    for s in env + (argv or [""]):
        p -= len(s.encode()) + 1
    p &= ~0xF
    sp = p - 5 - 16 - 4 * 2 * n_aux
    argc = max(len(argv), 1)
    return (sp - 4 * ((argc + 1) + (len(env) + 1) + 1)) & ~0xF


@pytest.fixture
def hello(case, monkeypatch):
    """A static program ./hello_pie in the current directory (the facts' worked example)."""
    monkeypatch.chdir(case.dir)
    case.file("hello_pie", exe([text()]))
    return "./hello_pie"


def test_r5_worked_example(case, hello):
    res = case.run(None, path=hello, argv=[hello])
    ok(res)
    assert res.stack.esp == 0xFFFFDEF0
    assert aux(res, AT_EXECFN) == 0xFFFFDFEC
    assert res.stack.argv[0].addr == 0xFFFFDFE0
    assert aux(res, AT_PLATFORM) == 0xFFFFDFDB
    assert aux(res, AT_RANDOM) == 0xFFFFDFCB
    assert res.stack.auxv_addr == 0xFFFFDF00
    assert lines(res)[-1] == STACK
    case.live()


@pytest.mark.parametrize("argv, env", [
    (["./hello_pie"], []),
    ([], []),                                    # the kernel adds "" as argv[0]
    (["./hello_pie", "a"], ["X=1"]),
    (["x" * 100, "", "é"], ["A=" + "b" * 37, "C=", "D=1"]),
    (["./hello_pie"] + [str(i) for i in range(50)], [f"E{i}=v" for i in range(30)]),
    (["y" * 5000], ["Z=" + "z" * 9000]),
])
def test_r5_esp_formula(case, hello, argv, env):
    res = case.run(None, path=hello, argv=argv, env=env)
    ok(res)
    assert res.stack.esp == expected_esp(hello, argv, env)
    assert res.stack.execfn.addr == 0xFFFFDFF8 - len(hello) - 1
    assert res.stack.argv[0].value == (argv[0] if argv else "")
    case.live()


def test_r5_top_slot_and_filename(case, hello):
    res = case.run(None, path=hello, argv=["other-argv0"], env=["K=V"])
    ok(res)
    assert res.stack.image[-8:] == bytes(8)                    # [0xffffdff8, 0xffffe000)
    fn = aux(res, AT_EXECFN)
    assert fn == 0xFFFFDFF8 - len(hello) - 1
    if LIVE_OK:
        with run_to_entry(hello, ["other-argv0"], ["K=V"]) as p:
            assert p.read_mem(0xFFFFDFF8, 8) == bytes(8)
            assert p.read_cstring(p.auxv_dict()[AT_EXECFN]) == hello.encode()
    case.live()


@pytest.mark.parametrize("length, result", [(128 * KiB - 1, "ok"), (128 * KiB, "errno")])
def test_r5_max_arg_strlen(case, hello, length, result):
    res = case.run(None, path=hello, argv=[hello, "a" * length])
    assert res.verdict.result == result
    if result == "errno":
        assert res.verdict.errno == errno.E2BIG
    case.live()


def test_r5_small_rlimit_stack_vma(case, hello):
    res = case.run(None, path=hello, argv=[hello], rlimit_stack=100 * KiB)
    ok(res)
    assert lines(res)[-1] == "fffe5000-ffffe000 rw-p 00000000 [stack]"
    case.live()


@pytest.mark.parametrize("env_len, result", [(96 * KiB, "ok"), (101 * KiB, "errno")])
def test_r5_strings_must_fit_rlimit_stack(case, hello, env_len, result):
    # bprm_stack_limits() allows 128 KiB of strings even with a 100 KiB RLIMIT_STACK, but
    # get_arg_page() grows the temporary stack VMA with expand_downwards(), and
    # acct_stack_growth() refuses to make it larger than RLIMIT_STACK: E2BIG (found by fuzzing).
    res = case.run(None, path=hello, argv=[hello], env=["A=" + "x" * env_len], rlimit_stack=100 * KiB)
    assert res.verdict.result == result, res.verdict
    if result == "errno":
        assert (res.verdict.errno, res.verdict.step) == (errno.E2BIG, "get_arg_page")
    case.live()


@pytest.mark.parametrize("flags, result", [(R, "ok"), (0, "killed")])
def test_r5_strings_overlaid_by_a_segment(case, hello, flags, result):
    # A later PT_LOAD (MAP_FIXED) over a page of the argument strings.  create_elf_tables()
    # writes only below the strings (platform, random bytes, argc/argv/envp/auxv), so a
    # read-only page there is fine; but it computes argv[]/envp[] and arg_end/env_end by walking
    # the strings with strnlen_user(): here envp[0] now ends at the zero page (0xffffb000), so
    # envp[1] is 0xffffb001.  An unreadable page makes strnlen_user() fail: EINVAL, killed.
    env = ["A=" + "x" * 20000, "B=1"]
    case.file("hello_pie", exe([text(), load(0xFFFFB000, 0x1000, flags=flags, offset=0x1000)], size=0x2000))
    res = case.run(None, path=hello, argv=[hello], env=env)
    assert res.verdict.result == result, res.verdict
    if result == "ok":
        assert res.stack.envp[1].addr == 0xFFFFB001
        assert res.mm.env_end == 0xFFFFB002
        assert res.stack.esp == expected_esp(hello, [hello], env)
    else:
        assert res.verdict.errno == errno.EINVAL
    case.live()


def test_r5_big_env_expands_by_128k(case, hello):
    env = ["A=" + "x" * 100000]
    res = case.run(None, path=hello, argv=[hello], env=env)
    ok(res)
    lowest = 0xFFFFDFF8 - len(hello) - 1 - len(env[0]) - 1 - len(hello) - 1
    assert res.stack.vma_start == 0xFFFFE000 - ((0xFFFFE000 - (lowest & ~0xFFF)) + 0x20000)
    case.live()


def test_r5_many_args_extend_to_esp(case, hello):
    argv = [hello] + ["x"] * 59999
    res = case.run(None, path=hello, argv=argv)
    ok(res)
    assert res.stack.vma_start == res.stack.esp & ~0xFFF == 0xFFFA6000
    case.live()


# --- R6 brk --------------------------------------------------------------------------------

def test_r6_1_exec_brk_is_end_of_highest_segment(case):
    # The highest p_vaddr + p_memsz decides, whatever the phdr order.
    res = case.run(exe([load(0x0804A000, 0x100, 0x2F00, R | W, offset=0x1000), text()]))
    assert res.mm.start_brk == res.mm.brk == 0x0804D000
    case.live()


def test_r6_1_pie_brk(case):
    ld = case.interp()
    res = case.run(pie(ld))
    assert res.mm.start_brk == 0x56555000 + 0x3000
    case.live()


def test_r6_1_pie_brk_3gb(case):
    ld = case.interp()
    res = case.run(pie(ld), profile=make_profile(addr_limit_3gb=True))
    assert res.mm.start_brk == 0x41003000
    case.live()


@pytest.mark.parametrize("three_gb, brk", [(False, 0x56555000), (True, 0x41000000)])
def test_r6_2_static_pie_brk_at_elf_et_dyn_base(case, three_gb, brk):
    res = case.run(static_pie(), profile=make_profile(addr_limit_3gb=three_gb))
    ok(res)
    assert res.mm.start_brk == res.mm.brk == brk
    assert not any(ln.endswith("[heap]") for ln in lines(res))
    case.live()


# --- R8 rejections -------------------------------------------------------------------------

def patch(data: bytes, off: int, fmt: str, *values) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, off, *values)
    return bytes(b)


GOOD = exe([text()])
E_TYPE, E_MACHINE, E_ENTRY, E_PHOFF, E_PHENTSIZE, E_PHNUM = 16, 18, 24, 28, 42, 44


def _big_table(n: int) -> bytes:
    return build_elf([text()] + [Ph(PT_NULL, 0, 0, 0, 0, 0, 0)] * (n - 2) + [gnu_stack()])


def _ld(c: Case, data: bytes, mode: int = 0o755) -> str:
    return c.file("ld.so", data, mode)


REJECTIONS = {
    # name: (builder(case) -> bytes, result, errno)
    "bad_magic": (lambda c: b"\x7fELG" + GOOD[4:], "errno", errno.ENOEXEC),
    "empty_file": (lambda c: b"", "errno", errno.ENOEXEC),
    "shorter_than_ehdr": (lambda c: GOOD[:40], "errno", errno.ENOEXEC),
    "ei_class_0": (lambda c: patch(GOOD, 4, "B", 0), "ok", None),
    "ei_class_64": (lambda c: patch(GOOD, 4, "B", 2), "ok", None),
    "ei_class_3": (lambda c: patch(GOOD, 4, "B", 3), "ok", None),
    "ei_data_0": (lambda c: patch(GOOD, 5, "B", 0), "ok", None),
    "ei_data_msb": (lambda c: patch(GOOD, 5, "B", 2), "ok", None),
    "ei_version_0": (lambda c: patch(GOOD, 6, "B", 0), "ok", None),
    "ei_osabi_pad": (lambda c: patch(GOOD, 7, "9B", *range(97, 106)), "ok", None),
    "e_version_0": (lambda c: patch(GOOD, 20, "<I", 0), "ok", None),
    "e_version_99": (lambda c: patch(GOOD, 20, "<I", 99), "ok", None),
    "e_ehsize_0_flags_shdr_garbage": (lambda c: patch(GOOD, 32, "<IIHHHHHH", 0xDEADBEEF, 0x7FFFFFFF,
                                                      0, 32, 1, 0xFFFF, 0xFFFF, 0xFFFF), "ok", None),
    "e_type_none": (lambda c: patch(GOOD, E_TYPE, "<H", 0), "errno", errno.ENOEXEC),
    "e_type_rel": (lambda c: patch(GOOD, E_TYPE, "<H", 1), "errno", errno.ENOEXEC),
    "e_type_core": (lambda c: patch(GOOD, E_TYPE, "<H", 4), "errno", errno.ENOEXEC),
    "e_type_ffff": (lambda c: patch(GOOD, E_TYPE, "<H", 0xFFFF), "errno", errno.ENOEXEC),
    "e_machine_0": (lambda c: patch(GOOD, E_MACHINE, "<H", 0), "errno", errno.ENOEXEC),
    "e_machine_x86_64": (lambda c: patch(GOOD, E_MACHINE, "<H", 62), "errno", errno.ENOEXEC),
    "e_machine_arm": (lambda c: patch(GOOD, E_MACHINE, "<H", 40), "errno", errno.ENOEXEC),
    "e_machine_486": (lambda c: patch(GOOD, E_MACHINE, "<H", EM_486), "ok", None),
    "e_phentsize_0": (lambda c: patch(GOOD, E_PHENTSIZE, "<H", 0), "errno", errno.ENOEXEC),
    "e_phentsize_31": (lambda c: patch(GOOD, E_PHENTSIZE, "<H", 31), "errno", errno.ENOEXEC),
    "e_phentsize_56": (lambda c: patch(GOOD, E_PHENTSIZE, "<H", 56), "errno", errno.ENOEXEC),
    "e_phnum_0": (lambda c: patch(GOOD, E_PHNUM, "<H", 0), "errno", errno.ENOEXEC),
    "e_phnum_2049": (lambda c: patch(_big_table(2048), E_PHNUM, "<H", 2049), "errno", errno.ENOEXEC),
    "e_phnum_ffff": (lambda c: patch(GOOD, E_PHNUM, "<H", 0xFFFF), "errno", errno.ENOEXEC),
    "e_phnum_129": (lambda c: _big_table(129), "ok", None),
    "e_phnum_2048": (lambda c: _big_table(2048), "ok", None),
    "phdrs_cut_by_eof": (lambda c: exe([text(0x40)])[:52 + 40], "errno", errno.ENOEXEC),
    "e_phoff_beyond_eof": (lambda c: patch(GOOD, E_PHOFF, "<I", 0x100000), "errno", errno.ENOEXEC),
    "e_phoff_huge": (lambda c: patch(GOOD, E_PHOFF, "<I", 0xFFFFFFF0), "errno", errno.ENOEXEC),
    "e_phoff_unaligned": (lambda c: exe([text()], e_phoff=53), "ok", None),
    "interp_filesz_1": (lambda c: build_elf([interp(filesz=1), text()], interp_path="/x"),
                        "errno", errno.ENOEXEC),
    "interp_filesz_4097": (lambda c: build_elf([interp(filesz=4097), text()], interp_path="/x"),
                           "errno", errno.ENOEXEC),
    "interp_not_nul_terminated": (lambda c: build_elf([interp(), text()], interp_path=b"/lib/ld-linux.so.2"),
                                  "errno", errno.ENOEXEC),
    "interp_offset_beyond_eof": (lambda c: build_elf([interp(offset=0x100000, filesz=20), text()]),
                                 "errno", errno.EIO),
    "interp_missing": (lambda c: exe([text()], interp_path=c.path("nope")), "errno", errno.ENOENT),
    "interp_is_directory": (lambda c: exe([text()], interp_path=str(c.dir)), "errno", errno.EACCES),
    # getname_kernel("") is accepted: the walk ends at the cwd, a directory (found by the fuzz test).
    "interp_empty_path": (lambda c: build_elf([interp(), text()], interp_path=b"\0\0"), "errno", errno.EACCES),
    # The interpreter's open fails before begin_new_exec(): that errno is the verdict, even though
    # the program would also be killed later (fuzz: elfvm used to report the kill).
    "interp_missing_and_filesz_gt_memsz": (
        lambda c: exe([load(TEXT, 0x200, 0x100, R | X, offset=0)], interp_path=c.path("nope")),
        "errno", errno.ENOENT),
    "interp_missing_and_first_over_stack": (
        lambda c: exe([load(0xFFFFD000, 0x10, flags=R | X, offset=0)], interp_path="/etc/passwd"),
        "errno", errno.EACCES),
    "interp_not_executable": (lambda c: exe([text()], interp_path=_ld(c, simple_interp(), 0o644)),
                              "errno", errno.EACCES),
    "interp_shorter_than_ehdr": (lambda c: exe([text()], interp_path=_ld(c, b"#!/bin/sh\nexit 0\n")),
                                 "errno", errno.EIO),
    "interp_bad_magic": (lambda c: exe([text()], interp_path=_ld(c, b"\x7fELG" + simple_interp()[4:])),
                         "errno", errno.ELIBBAD),
    "interp_bad_machine": (lambda c: exe([text()], interp_path=_ld(c, patch(simple_interp(), E_MACHINE, "<H", 62))),
                           "errno", errno.ELIBBAD),
    "interp_bad_phentsize": (lambda c: exe([text()], interp_path=_ld(c, patch(simple_interp(), E_PHENTSIZE, "<H", 56))),
                             "errno", errno.ELIBBAD),
    "interp_phdrs_unreadable": (lambda c: exe([text()], interp_path=_ld(c, patch(simple_interp(), E_PHOFF, "<I", 0x10000))),
                                "errno", errno.ELIBBAD),
    "interp_ei_class_junk": (lambda c: exe([text()], interp_path=_ld(c, patch(simple_interp(), 4, "BB", 9, 9))),
                             "ok", None),
    "interp_first_bad_second_good": (
        lambda c: build_elf([interp(filesz=1), interp(offset=0x300), text(), gnu_stack()],
                            interp_path=_ld(c, simple_interp())), "errno", errno.ENOEXEC),
    "interp_first_good_second_bad": (
        lambda c: build_elf([interp(), interp(filesz=1, offset=0x300), text(), gnu_stack()],
                            interp_path=_ld(c, simple_interp())), "ok", None),
    "interp_e_type_rel": (lambda c: exe([text()], interp_path=_ld(c, patch(simple_interp(), E_TYPE, "<H", 1))),
                          "killed", None),
    "interp_no_pt_load": (lambda c: exe([text()], interp_path=_ld(c, build_elf([gnu_stack()], e_type=ET_DYN))),
                          "killed", None),
    "interp_filesz_gt_memsz": (
        lambda c: exe([text()], interp_path=_ld(c, build_elf([load(0, 0x1000, 0x800, R | X)], e_type=ET_DYN))),
        "killed", None),
    "interp_entry_beyond_task_size": (
        lambda c: exe([text()], interp_path=_ld(c, build_elf([load(0x20000000, 0x100, flags=R | X)],
                                                             entry=0xFFFFF000))), "killed", None),
    "filesz_gt_memsz": (lambda c: exe([load(TEXT, 0x200, 0x100, R | X, offset=0)]), "killed", None),
    "vaddr_beyond_task_size": (lambda c: exe([text(), load(0xFFFFF000, 0x10, flags=R, offset=0)]),
                               "killed", None),
    "memsz_beyond_task_size": (lambda c: exe([text(), load(0x0804A000, 0x10, 0xFFFFF000, R, offset=0)]),
                               "killed", None),
    "vaddr_plus_memsz_beyond_task_size": (
        lambda c: exe([text(), load(0xF0000000, 0x10, 0x0FFFF000, R, offset=0)]), "killed", None),
    "offset_vaddr_misaligned": (lambda c: exe([text(), load(0x0804A000, 0x10, flags=R, offset=0x1004)]),
                                "killed", None),
    "first_over_stack": (lambda c: exe([load(0xFFFFD000, 0x10, flags=R | X, offset=0)]), "killed", None),
    "later_over_stack": (lambda c: exe([text(), load(0xFFFFC000, 0x10, flags=R | W, offset=0)]), "ok", None),
    "overlapping_loads": (lambda c: exe([text(0x3000), load(0x08049000, 0x10, flags=R, offset=0x1000)]),
                          "ok", None),
    "rw_bss_page_past_eof": (
        lambda c: exe([text(), load(0x0804A000, 0x10, 0x2000, R | W, offset=0x3000)], size=0x1000),
        "killed", None),
    "code_past_eof_no_bss": (lambda c: exe([text(), load(0x0804A000, 0x10, flags=R | X, offset=0x3000)],
                                           size=0x1000), "ok", None),
    "dyn_only_load_memsz0": (lambda c: exe([load(0, 0, 0, R)], e_type=ET_DYN), "killed", None),
    "no_pt_load": (lambda c: build_elf([gnu_stack()], entry=TEXT), "ok", None),
    "entry_beyond_task_size": (lambda c: exe([text()], entry=0xFFFFE000), "killed", None),
    "entry_unmapped": (lambda c: exe([text()], entry=0x12345678), "ok", None),
    "p_align_garbage": (lambda c: exe([load(TEXT, 0x200, flags=R | X, offset=0, align=3),
                                       load(0x0804A000, 0x10, flags=R, offset=0x1000, align=0xFFFFFFFF)]),
                        "ok", None),
    "gnu_stack_garbage": (lambda c: build_elf([text(), Ph(PT_GNU_STACK, 0x1234, 0x5678, 9, 1, 0xFFFFFFFE, 3)]),
                          "ok", None),
    "bss_beyond_task_size": (lambda c: exe([text(), load(0x0804A000, 0x10, 0xF7FB5000, R | W, offset=0x1000)]),
                             "killed", None),
    "bss_2g_fits": (lambda c: exe([text(), load(0x0804A000, 0x10, 0x80000000, R | W, offset=0x1000)]),
                    "ok", None),
}


@pytest.mark.parametrize("name", list(REJECTIONS))
def test_r8_rejections(case, name):
    build, result, err = REJECTIONS[name]
    res = case.run(build(case))
    assert res.verdict.result == result, res.verdict
    if err is not None:
        assert res.verdict.errno == err, res.verdict
    if name == "bss_2g_fits":
        assert "0804b000-8804a000 rw-p 00000000" in lines(res)
    case.live()


def test_r8_interp_relative_path_resolves_against_cwd(case, monkeypatch):
    monkeypatch.chdir(case.dir)
    case.interp()
    res = case.run(exe([text()], interp_path="ld.so"))
    ok(res)
    assert res.interp.resolved == case.path("ld.so")
    case.live()
