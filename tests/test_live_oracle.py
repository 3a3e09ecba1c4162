"""Tests of elfvm.oracle.live, the live-kernel oracle (fork + PTRACE_TRACEME + execve, stop at entry).

Expected values come from /work/shared/reference/kernel-loader-facts.md (sections 5 and 8) and were
re-observed on the x86-64 6.18 kernel with IA32 emulation.  Skipped where i386 programs cannot be
run under ptrace (the reason comes from can_run_i386()).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import struct
import subprocess
import time

import pytest

from elfvm.oracle import live
from elfvm.oracle.live import (
    ADDR_LIMIT_3GB, ChildSetupError, ExecFailed, ExecKilled, LiveTimeout, LiveVerdict,
    can_run_i386, live_verdict, run_to_entry,
)

OK, REASON = can_run_i386()
pytestmark = [pytest.mark.oracle, pytest.mark.skipif(not OK, reason=REASON or "can run")]

AUXV_ORDER = [32, 33, 51, 16, 6, 17, 3, 4, 5, 7, 8, 9, 11, 12, 13, 14, 23, 25, 26, 31, 15, 27, 28, 0]
AT_PHDR, AT_PHENT, AT_PAGESZ, AT_BASE, AT_ENTRY, AT_RANDOM, AT_EXECFN, AT_PLATFORM = 3, 4, 6, 7, 9, 25, 31, 15

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'
# A static program with no libc and 1 MiB of code: most text pages are never touched before entry.
BIG_S = """
    .text
    .globl _start
_start:
    movl $1, %eax
    xorl %ebx, %ebx
    int $0x80
    .fill 1048576, 1, 0x90
"""


def _children() -> list[int]:
    """Pids of this process's children (zombies and stopped ones included)."""
    me = os.getpid()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == me:
            out.append(int(d))
    return out


def _gcc(args: list[str]) -> None:
    r = subprocess.run(["gcc", "-m32", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"gcc -m32 failed: {r.stderr.strip()[:300]}")


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    d = tmp_path_factory.mktemp("live")
    (d / "hello.c").write_text(HELLO_C)
    (d / "big.s").write_text(BIG_S)
    _gcc([str(d / "hello.c"), "-o", str(d / "hello_pie")])
    _gcc(["-static", "-nostdlib", "-no-pie", str(d / "big.s"), "-o", str(d / "big_static")])
    (d / "badmagic").write_bytes(b"NOTANELF" * 32)
    os.chmod(d / "badmagic", 0o755)
    (d / "noexec").write_bytes((d / "hello_pie").read_bytes())
    os.chmod(d / "noexec", 0o644)
    # p_filesz > p_memsz in the first PT_LOAD: passes the point of no return, then killed (R8).
    from elftools.elf.elffile import ELFFile
    data = bytearray((d / "hello_pie").read_bytes())
    with open(d / "hello_pie", "rb") as f:
        elf = ELFFile(f)
        idx = next(i for i, s in enumerate(elf.iter_segments()) if s["p_type"] == "PT_LOAD")
        off = elf["e_phoff"] + idx * elf["e_phentsize"]
    ph = list(struct.unpack_from("<8I", data, off))
    ph[5] = ph[4] - 0x10  # p_memsz < p_filesz
    struct.pack_into("<8I", data, off, *ph)
    (d / "filesz_gt_memsz").write_bytes(bytes(data))
    os.chmod(d / "filesz_gt_memsz", 0o755)
    (d / "tiny").write_bytes(live.tiny_i386_elf(0))
    os.chmod(d / "tiny", 0o755)
    return d


@pytest.fixture(autouse=True)
def no_leftovers():
    before = set(_children())
    yield
    assert set(_children()) - before == set(), "a child process was left behind"


def _maps_line(maps: str, name: str) -> str:
    return next(line for line in maps.splitlines() if line.endswith(name))


# --- stop at entry --------------------------------------------------------------------------------

def test_hello_pie_matches_facts(progs):
    """R5.3 worked example: ./hello_pie, argv ["./hello_pie"], empty env -> esp 0xffffdef0."""
    from elftools.elf.elffile import ELFFile
    with open(progs / "hello_pie", "rb") as f:
        e_entry = ELFFile(f)["e_entry"]
    with run_to_entry("./hello_pie", ["./hello_pie"], {}, cwd=str(progs)) as p:
        lines = p.maps.splitlines()
        assert lines[0].startswith("56555000-56556000 r--p 00000000 ")
        assert lines[0].endswith(str(progs / "hello_pie"))
        assert lines[-1].startswith("fffdd000-ffffe000 rw-p 00000000 00:00 0 ")
        assert lines[-1].endswith("[stack]")
        assert any(line.endswith("[vdso]") for line in lines)
        r = p.regs
        assert p.is_32bit and p.word_size == 4
        assert r["esp"] == 0xFFFFDEF0
        # R5.5 registers at entry
        assert (r["cs"], r["ss"], r["ds"], r["es"], r["fs"], r["gs"]) == (0x23, 0x2B, 0x2B, 0x2B, 0, 0)
        assert r["eflags"] == 0x202
        assert all(r[k] == 0 for k in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp"))
        # auxv: 24 entries in the documented order
        assert [t for t, _ in p.auxv] == AUXV_ORDER
        aux = p.auxv_dict()
        assert aux[AT_PAGESZ] == 4096 and aux[AT_PHENT] == 32
        assert aux[AT_ENTRY] == 0x56555000 + e_entry
        assert aux[AT_PHDR] == 0x56555034
        # eip is ld.so's entry: inside the interpreter mapped at AT_BASE
        ld_lines = [ln for ln in lines if "ld-linux" in ln]
        assert int(ld_lines[0].split("-")[0], 16) == aux[AT_BASE]
        lo, hi = (int(x, 16) for x in ld_lines[-1].split()[0].split("-"))
        assert aux[AT_BASE] <= r["eip"] < hi
        assert aux[AT_EXECFN] == 0xFFFFDFEC and p.read_cstring(aux[AT_EXECFN]) == b"./hello_pie"
        assert aux[AT_PLATFORM] == 0xFFFFDFDB and p.read_cstring(aux[AT_PLATFORM]) == b"i686"
        assert aux[AT_RANDOM] == 0xFFFFDFCB
        assert p.argc == 1 and p.argv == [(0xFFFFDFE0, "./hello_pie")] and p.envp == []
        # mm fields of /proc/PID/stat
        mm = p.stat_mm
        assert mm["arg_start"] == 0xFFFFDFE0 and mm["arg_end"] == 0xFFFFDFEC
        assert mm["env_start"] == mm["env_end"] == 0xFFFFDFEC
        assert mm["start_stack"] == r["esp"]
        assert mm["start_code"] == 0x56556000
        # stack_words from esp: argc, argv[0], NULL, NULL (envp), then auxv
        words = p.stack_words(r["esp"], r["esp"] + 16 + 8 * 24)
        assert words[:4] == [1, 0xFFFFDFE0, 0, 0]
        assert list(zip(words[4::2], words[5::2])) == p.auxv


def test_tiny_probe_stops_at_entry(progs):
    with run_to_entry(str(progs / "tiny"), ["tiny"], {}) as p:
        assert p.eip == live.TINY_BASE + 84
        assert p.maps.splitlines()[0].startswith("08048000-08049000 r-xp 00000000 ")
        assert p.read_mem(p.eip, 5) == b"\xb8\x01\x00\x00\x00"


def test_auxv_from_stack_equals_proc_auxv(progs):
    with run_to_entry(str(progs / "hello_pie"), ["a", "b"], {"X": "1"}) as p:
        assert p.auxv[-1] == (0, 0)
        assert p.proc_auxv == p.auxv
        # /proc/PID/auxv of a compat task: 32-bit pairs, possibly zero-padded after AT_NULL
        raw = p.proc_auxv_raw
        assert len(raw) >= 8 * len(p.auxv)
        assert raw[8 * len(p.auxv):] == bytes(len(raw) - 8 * len(p.auxv))
    with run_to_entry(str(progs / "big_static"), ["big"], []) as p:
        assert p.proc_auxv == p.auxv
        assert p.auxv_dict()[AT_BASE] == 0          # no interpreter
        assert p.auxv_dict()[AT_ENTRY] == p.eip


def test_argv_env_round_trip(progs):
    argv = ["prog", "with space", "", "ünïcode", "x" * 5000]
    env = ["B=2", "A=1", "B=3", "NOEQUALS", "", "=v"]
    with run_to_entry(str(progs / "hello_pie"), argv, env) as p:
        assert [s for _, s in p.argv] == argv
        assert [s for _, s in p.envp] == env
        # argv strings are packed upward from arg_start, then env strings
        assert p.argv[0][0] == p.stat_mm["arg_start"]
        assert p.envp[0][0] == p.stat_mm["env_start"] == p.stat_mm["arg_end"]
    env_d = {"Z": "last-first", "A": "x", "M": "=="}
    with run_to_entry(str(progs / "hello_pie"), ["p"], env_d) as p:
        assert [s for _, s in p.envp] == ["Z=last-first", "A=x", "M==="]


def test_empty_argv_kernel_inserts_empty_string(progs):
    with run_to_entry(str(progs / "hello_pie"), [], {}) as p:
        assert p.argc == 1
        assert p.argv[0][1] == ""
        assert p.stat_mm["arg_end"] - p.stat_mm["arg_start"] == 1


def test_64bit_program_is_handled():
    true = shutil.which("true") or "/bin/true"
    with run_to_entry(true, ["true", "x"], {"K": "V"}) as p:
        assert not p.is_32bit and p.word_size == 8
        assert [s for _, s in p.argv] == ["true", "x"] and [s for _, s in p.envp] == ["K=V"]
        assert p.proc_auxv == p.auxv


# --- process hygiene ------------------------------------------------------------------------------

def test_no_process_left_after_with_and_after_exception(progs):
    with run_to_entry(str(progs / "hello_pie"), ["x"], {}) as p:
        pid = p.pid
        with open(f"/proc/{pid}/stat") as f:
            assert f.read().split(") ")[1][0] == "t"   # ptrace-stopped
    assert not os.path.exists(f"/proc/{pid}")
    with pytest.raises(RuntimeError):
        with run_to_entry(str(progs / "hello_pie"), ["x"], {}) as p:
            pid = p.pid
            raise RuntimeError("boom")
    assert not os.path.exists(f"/proc/{pid}")
    assert not p.alive
    with pytest.raises(live.LiveOracleError):
        p.read_mem(0xFFFFD000, 4)
    p.kill()  # idempotent


def test_timeout_kills_the_child(progs):
    t0 = time.monotonic()
    with pytest.raises(LiveTimeout):
        with run_to_entry(str(progs / "hello_pie"), ["x"], {}, timeout=0.5,
                          _pre_exec=lambda: time.sleep(60)):
            pass
    assert time.monotonic() - t0 < 30      # the child slept 60 s: the 0.5 s timeout ended it
    with pytest.raises(LiveTimeout):
        live_verdict(str(progs / "hello_pie"), ["x"], {}, timeout=0)


def test_setup_failure_is_not_a_verdict(progs):
    with pytest.raises(ChildSetupError) as ei:
        live_verdict(str(progs / "hello_pie"), ["x"], {}, cwd=str(progs / "no-such-dir"))
    assert ei.value.errno == errno.ENOENT


# --- verdicts -------------------------------------------------------------------------------------

def test_verdicts(progs):
    assert live_verdict(str(progs / "hello_pie"), ["x"], {}) == LiveVerdict("ok")
    assert live_verdict(str(progs / "badmagic"), ["x"], {}) == LiveVerdict("errno", errno=errno.ENOEXEC)
    assert live_verdict(str(progs / "missing"), ["x"], {}) == LiveVerdict("errno", errno=errno.ENOENT)
    assert live_verdict(str(progs / "noexec"), ["x"], {}) == LiveVerdict("errno", errno=errno.EACCES)
    # after the point of no return the kernel forces SIGSEGV; the tracer sees only the death
    assert live_verdict(str(progs / "filesz_gt_memsz"), ["x"], {}) == \
        LiveVerdict("killed", signal=signal.SIGSEGV)
    assert live_verdict(str(progs / "hello_pie"), ["x" * (33 * 4096)], {}) == \
        LiveVerdict("errno", errno=errno.E2BIG)


def test_run_to_entry_raises_for_failures(progs):
    with pytest.raises(ExecFailed) as ei:
        with run_to_entry(str(progs / "badmagic"), ["x"], {}):
            pass
    assert ei.value.errno == errno.ENOEXEC
    with pytest.raises(ExecKilled) as ek:
        with run_to_entry(str(progs / "filesz_gt_memsz"), ["x"], {}):
            pass
    assert ek.value.signal == signal.SIGSEGV


def test_many_verdicts_are_clean(progs):
    """200 verdicts in a row: all right, and no child left behind (checked by the autouse fixture)."""
    cases = [("hello_pie", "ok"), ("badmagic", "errno"), ("filesz_gt_memsz", "killed"), ("tiny", "ok")]
    for _ in range(50):
        for name, want in cases:
            assert live_verdict(str(progs / name), [name], {}).result == want


# --- options --------------------------------------------------------------------------------------

def test_personality_and_rlimit_options(progs):
    with run_to_entry(str(progs / "tiny"), ["t"], {}, personality_extra=ADDR_LIMIT_3GB) as p:
        assert _maps_line(p.maps, "[stack]").split("-")[1].startswith("c0000000 ")
    with run_to_entry(str(progs / "tiny"), ["t"], {}, rlimit_stack=100 * 1024) as p:
        assert _maps_line(p.maps, "[stack]").startswith("fffe5000-ffffe000 ")
    fixed = set()
    for _ in range(3):
        with run_to_entry(str(progs / "hello_pie"), ["t"], {}, aslr=True) as p:
            fixed.add(_maps_line(p.maps, "[stack]").split()[0])
    assert fixed != {"fffdd000-ffffe000"}


# --- pagemap --------------------------------------------------------------------------------------

def test_pagemap_stack_present_and_text_untouched(progs):
    with run_to_entry(str(progs / "big_static"), ["big"], {}) as p:
        st = p.pagemap(p.esp)
        assert st.present and not st.swapped and not st.file_or_shared_anon
        if os.geteuid() == 0:
            assert st.pfn != 0
        text = next(ln for ln in p.maps.splitlines() if " r-xp " in ln and ln.endswith("big_static"))
        lo, hi = (int(x, 16) for x in text.split()[0].split("-"))
        assert hi - lo > 256 * 4096
        far = hi - 4096                       # a code page far away from the entry
        entries = p.pagemap_range(lo, hi)
        assert len(entries) == (hi - lo) // 4096
        assert not any(e.present for e in entries)   # nothing of the text was touched yet
        assert p.pagemap(far).raw == 0
        # reading through /proc/PID/mem faults the page in (FOLL_FORCE): it becomes a present file page
        assert p.read_mem(far, 4) == b"\x90" * 4
        e = p.pagemap(far)
        assert e.present and e.file_or_shared_anon
