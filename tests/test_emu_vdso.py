"""The vDSO's time functions: exported where the kernel build's symbols are measured, at their
offsets, reading the vDSO data page and falling back to the system call (elfvm.emu.vdso).

Unit tests read the image as glibc does (PT_DYNAMIC, DT_HASH, DT_SYMTAB); the oracle tests
compare the table with this machine's live vDSO and a dynamic program's fault count (the
function's code page and the data page it reads) with the kernel's.
"""

import io
import os
import shutil
import struct
import subprocess

from dataclasses import replace

import pytest
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile

from elfvm.emu.vdso import PC_THUNK, VDSO_SYSCALLS, vdso_function, vdso_image
from elfvm.kernel.versions import VDSO_IMAGES, nearest_vdso, running_kernel

HERE = os.path.dirname(os.path.abspath(__file__))
FUNCS = (("__vdso_gettimeofday", 0x700), ("__vdso_time", 0xC20), ("__vdso_clock_gettime", 0xC70),
         ("__vdso_clock_gettime64", 0x1220), ("__vdso_clock_getres", 0x1830), ("__vdso_getcpu", 0x18D0))
THUNKS = tuple((n, 0x18C6) for n, _ in FUNCS if n != "__vdso_getcpu")   # 6.18.44's PC thunk
VVAR = 6 * 4096                      # 6.18: [vvar] 4 pages + [vvar_vclock] 2 pages below [vdso]


def exported(image: bytes) -> dict[str, int]:
    elf = ELFFile(io.BytesIO(image))
    dyn = next(s for s in elf.iter_segments() if isinstance(s, DynamicSegment))
    return {s.name: s["st_value"] for s in dyn.iter_symbols() if s.name}


def test_image_exports_the_measured_functions_at_their_offsets():
    img = vdso_image(0x2000, 0x5E0, 0x600, 0x610, FUNCS, VVAR)
    assert exported(img) == dict(FUNCS)
    assert img[0x5E0:0x5E3] == b"\xcd\x80\xc3"                     # __kernel_vsyscall stays


def rel_target(code: bytes, at: int, base: int) -> int:
    """Where the `call rel32` at code[at] (code at image offset `base`) goes."""
    assert code[at] == 0xE8
    return base + at + 5 + struct.unpack("<i", code[at + 1:at + 5])[0]


@pytest.mark.parametrize("name,offset", FUNCS)
@pytest.mark.parametrize("thunks", [(), THUNKS], ids=["no-thunk", "pc-thunk"])
def test_function_reads_the_data_page_then_makes_the_system_call(name, offset, thunks):
    img = vdso_image(0x2000, 0x5E0, 0x600, 0x610, FUNCS, VVAR, thunks)
    nr, reads = VDSO_SYSCALLS[name]
    code = img[offset:offset + 40]
    thunk = dict(thunks).get(name)
    if reads and thunk is None:   # call 1f; 1: pop %ecx; mov disp32(%ecx),%eax: [vvar]'s first page
        assert code[:8] == b"\xe8\0\0\0\0\x59\x8b\x81"
        assert offset + 5 + struct.unpack("<i", code[8:12])[0] == -VVAR
    elif reads:                   # call the thunk (%ecx = the return address); mov disp32(%ecx),%eax
        assert rel_target(code, 0, offset) == thunk and img[thunk:thunk + 4] == PC_THUNK
        assert code[5:7] == b"\x8b\x81" and offset + 5 + struct.unpack("<i", code[7:11])[0] == -VVAR
    else:
        assert b"\x8b\x81" not in code[:12]
    at = code.index(b"\xb8" + struct.pack("<I", nr)) + 5   # mov $nr,%eax; call __kernel_vsyscall
    assert rel_target(code, at, offset) == 0x5E0 and code[at + 5:at + 7] == b"\x5b\xc3"


def test_overlapping_measured_code_is_an_error():
    with pytest.raises(ValueError, match="overlaps"):
        vdso_image(0x2000, 0x5E0, 0x600, 0x610, FUNCS, VVAR, (("__vdso_time", 0xC22),))


@pytest.mark.parametrize("img", VDSO_IMAGES, ids=lambda i: f"{i.version}-{i.build}")
def test_every_builds_image_exports_its_functions_apart(img):
    """Each kernel build's emulated image exports the measured functions elfvm models, at their
    offsets, each function's code clear of the next one and of the entry points."""
    vvar = (img.vvar_pages + img.vclock_pages) * 4096
    image = vdso_image(img.size, img.vsyscall, img.sigreturn, img.rt_sigreturn, img.functions, vvar,
                       img.pc_thunks)
    assert all(image[t:t + 4] == PC_THUNK for _, t in img.pc_thunks)
    modelled = {n: o for n, o in img.functions if n in VDSO_SYSCALLS}
    assert exported(image) == modelled
    spans = sorted([(img.vsyscall, 3), (img.sigreturn, 8), (img.rt_sigreturn, 7)] +
                   [(o, len(vdso_function(o, VDSO_SYSCALLS[n][0], vvar, 0, img.vsyscall)))
                    for n, o in modelled.items()])
    assert all(a + n <= b for (a, n), (b, _) in zip(spans, spans[1:]))
    assert image[img.vsyscall:img.vsyscall + 3] == b"\xcd\x80\xc3"


def test_without_measured_symbols_nothing_is_exported():
    img = vdso_image(0x2000, 0x580, 0x5A0, 0x5B0)
    dyn = next(s for s in ELFFile(io.BytesIO(img)).iter_segments() if s["p_type"] == "PT_DYNAMIC")
    assert dyn["p_filesz"] == 8 and img[dyn["p_offset"]:dyn["p_offset"] + 8] == bytes(8)  # DT_NULL only


@pytest.fixture(scope="module")
def vdsotime(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    exe = tmp_path_factory.mktemp("vdso") / "vdsotime"
    r = subprocess.run(["gcc", "-m32", "-O1", os.path.join(HERE, "guest_progs", "vdsotime.c"), "-o", str(exe)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"gcc -m32 fails here: {r.stderr.strip()[:200]}")
    return str(exe)


@pytest.mark.oracle
def test_table_matches_this_machines_vdso(live, vdsotime):
    img = nearest_vdso(running_kernel(), "x86_64")
    if img.version != running_kernel() or not img.functions:
        pytest.skip(f"this machine's kernel {running_kernel()} has no measured vDSO symbols")
    live_image = subprocess.run([vdsotime, "dump"], capture_output=True, check=True).stdout
    syms = exported(live_image)
    assert {n: o for n, o in syms.items() if n.startswith("__vdso_")} == dict(img.functions)


def test_glibc_calls_the_vdso_function(needs_interp, vdsotime):
    from elfvm.emu import RunOptions, run_program
    from elfvm.kernel.profile import make_profile

    prof = make_profile()
    r = run_program(RunOptions(vdsotime))
    assert r.stdout == b"clocks agree: yes\n"
    if not prof.vdso_functions:
        pytest.skip("no measured vDSO symbols for this kernel: glibc makes the system calls")
    vdso = next(m for m in r.maps if m["name"] == "[vdso]")
    vvar = next(m for m in r.maps if m["name"] == "[vvar]")
    faults = {(e["address"] >> 12 << 12, e["access"]) for e in r.events}
    gettime64 = dict(prof.vdso_functions)["__vdso_clock_gettime64"]
    assert (vdso["start"] + gettime64 & ~0xFFF, "x") in faults
    assert (vvar["start"], "r") in faults
    assert "clock_gettime64" in {s["name"] for s in r.syscalls}      # the vDSO's fallback


@pytest.mark.oracle
@pytest.mark.parametrize("env", [{}, {"VDSOTIME_NOCLOCK": "1"}], ids=["clocks", "no-clock"])
def test_vdso_time_faults_as_the_kernel_counts(live, needs_interp, vdsotime, env):
    """With and without the clock reads: the faults the reads add (the vDSO function's code page
    and the data page) are the kernel's."""
    from elfvm.emu import RunOptions, run_program
    from elfvm.emu.livefaults import live_minflt

    lf = live_minflt(vdsotime, [vdsotime], env=env)
    opts = RunOptions(vdsotime, env=tuple(f"{k}={v}" for k, v in env.items()))
    r = run_program(opts)
    assert r.stdout == lf.stdout
    if r.page_faults != lf.minflt:     # libc's page-cache folios are the host's history: as the
        r = run_program(replace(opts, page_cache="live"))         # kernel's run had them
    assert r.page_faults == lf.minflt
