"""Kernel versions (issue 15): each version rule, the vDSO table, the profile a version gives, and
--kernel / --hwcap / --hwcap2 / --minsigstksz on the command line.  The real kernels are the
oracle in tests/test_oracle_qemu.py; this machine's kernel in tests/test_oracle_layout.py."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from conftest import build_static_guest, fixture_path
from elfvm.cli import cli
from elfvm.emu.run import page_cache_folios
from elfvm.kernel.binfmt_elf import ExecRequest, execve
from elfvm.kernel.profile import make_profile
from elfvm.kernel.versions import (
    DEFAULT_I386_KERNEL, HEAP_OVERLAP_ONLY, RSEQ_AUXV, STATIC_PIE_BRK_WITHOUT_ASLR, VDSO_IMAGES,
    KernelVersion, kernel_rules, nearest_vdso, running_kernel,
)
from elfvm.mm.maps import maps_text

V = KernelVersion.parse


@pytest.mark.parametrize("text, want", [
    ("6.1", (6, 1, None)), ("6.1.176", (6, 1, 176)), ("6.18.44-fc-v657", (6, 18, 44)),
    ("6.12.95+deb12-amd64", (6, 12, 95)), ("6.1.0-50-686-pae", (6, 1, None)), ("5.15.0", (5, 15, 0)),
])
def test_parse_versions(text, want):
    v = V(text)
    assert (v.major, v.minor, v.patch) == want


@pytest.mark.parametrize("bad", ["", "six", "6", "6.x", "6.1 .2", "6.1\x01", "-1.2"])
def test_parse_rejects(bad):
    with pytest.raises(ValueError, match="not a kernel version"):
        V(bad)


@pytest.mark.parametrize("outside", ["0.0", "4.19", "8.0", "99999999999999999999.1"])
def test_parse_rejects_versions_outside_the_rules(outside):
    with pytest.raises(ValueError, match="cover Linux 5.0"):
        V(outside)


def test_since_mainline_and_stable_backports():
    assert not HEAP_OVERLAP_ONLY.holds(V("6.5.10")) and HEAP_OVERLAP_ONLY.holds(V("6.6"))
    assert not RSEQ_AUXV.holds(V("6.1.176")) and RSEQ_AUXV.holds(V("6.3"))
    # the static-PIE brk move reached 6.1.y as a stable backport, not the unmaintained 6.5.y
    assert STATIC_PIE_BRK_WITHOUT_ASLR.holds(V("6.1.176"))
    assert STATIC_PIE_BRK_WITHOUT_ASLR.holds(V("6.1"))          # newest 6.1.y
    assert not STATIC_PIE_BRK_WITHOUT_ASLR.holds(V("6.1.100"))
    assert not STATIC_PIE_BRK_WITHOUT_ASLR.holds(V("6.5.10"))
    assert STATIC_PIE_BRK_WITHOUT_ASLR.holds(V("6.12"))


def test_vdso_table_is_measured_and_self_consistent():
    for img in VDSO_IMAGES:
        assert img.source and img.size in (0x2000, 0x3000)
        assert img.vsyscall < img.sigreturn < img.rt_sigreturn < img.size
    assert nearest_vdso(V("6.1"), "i386").vsyscall == 0x550
    assert nearest_vdso(V("6.5.10"), "i386").vsyscall == 0x580
    assert nearest_vdso(V("6.12.95"), "x86_64").vsyscall == 0x580
    assert nearest_vdso(V("6.18"), "x86_64").vsyscall == 0x5E0


def test_every_vdso_image_has_its_measured_functions():
    """Every build's image lists its exported time functions (glibc looks up __vdso_time,
    __vdso_gettimeofday, __vdso_clock_gettime{,64}, __vdso_clock_getres), inside the image and
    apart from the entry points."""
    glibc = {"__vdso_time", "__vdso_gettimeofday", "__vdso_clock_gettime", "__vdso_clock_gettime64",
             "__vdso_clock_getres"}
    for img in VDSO_IMAGES:
        names = dict(img.functions)
        assert glibc <= set(names), (img.version, img.build)
        assert all(0 < o < img.size and o not in (img.vsyscall, img.sigreturn, img.rt_sigreturn)
                   for o in names.values())


def _kept_vdso_images() -> list[tuple[str, bytes]]:
    from elfvm.oracle.qemu import vdso_images

    return sorted(vdso_images().items())


@pytest.mark.parametrize("name, image", _kept_vdso_images() or [pytest.param(
    None, None, marks=pytest.mark.skip(reason="no kept vDSO images in ~/.cache/elfvm/vdso: "
                                       "run scripts/vdso-images.py (needs qemu and the kernels)"))])
def test_vdso_table_matches_the_kept_images(name, image):
    """The table against the [vdso] each Debian kernel really mapped under qemu (kept by
    scripts/vdso-images.py and tests/test_oracle_qemu.py): size, entry points and every
    __vdso_* function of the image's .dynsym at its offset."""
    from elfvm.oracle.qemu import vdso_symbols

    version, build = V(name.split("-")[0]), "i386" if "686" in name else "x86_64"
    img = nearest_vdso(version, build)
    assert img.version == version, f"{name}: no table entry"
    syms = vdso_symbols(image)
    assert len(image) == img.size
    assert (syms["__kernel_vsyscall"], syms["__kernel_sigreturn"], syms["__kernel_rt_sigreturn"]) == \
        (img.vsyscall, img.sigreturn, img.rt_sigreturn)
    assert dict(img.functions) == {n: o for n, o in syms.items() if n.startswith("__vdso_")}


@pytest.mark.parametrize("version, build, parts", [
    ("6.1.176", "x86_64", [("[vvar]", 4), ("[vdso]", 2)]),
    ("6.12.95", "x86_64", [("[vvar]", 4), ("[vdso]", 2)]),
    ("6.18", "x86_64", [("[vvar]", 4), ("[vvar_vclock]", 2), ("[vdso]", 2)]),
    ("5.4", "x86_64", [("[vvar]", 3), ("[vdso]", 2)]),
])
def test_vvar_pages_by_version(version, build, parts):
    p = make_profile("linux-x86_64-compat", kernel=version)
    assert [(x.name, x.pages) for x in p.vdso_parts] == parts


def test_minsigstksz_auxv_from_5_14():
    assert 51 not in [a.type for a in _layout("hello_pie", "5.10").auxv]
    assert 51 in [a.type for a in _layout("hello_pie", "5.15").auxv]


def test_rseq_auxv_grew_in_7_0():
    assert (make_profile(kernel="6.19").rseq_feature_size, make_profile(kernel="6.19").rseq_align) == (28, 32)
    assert (make_profile(kernel="7.0").rseq_feature_size, make_profile(kernel="7.0").rseq_align) == (33, 64)
    assert make_profile(kernel="7.2").vdso_parts[-1].pages == 3


def test_note_names_the_nearest_measured_vdso():
    assert kernel_rules(V("6.1.176"), "i386").note is None
    note = kernel_rules(V("6.8"), "x86_64").note
    assert "6.8" in note and "6.12.95" in note


def test_defaults():
    assert make_profile("linux-i386").kernel.version == DEFAULT_I386_KERNEL
    assert make_profile().kernel.version == running_kernel()


def _layout(prog, version, profile="linux-x86_64-compat"):
    p = make_profile(profile, kernel=version)
    path = str(fixture_path(prog))
    return execve(ExecRequest(path, [path], [], p))


def test_heap_label_on_bss_before_6_6():
    old = maps_text(_layout("hello_static", "6.5.10", "linux-i386").mm)
    new = maps_text(_layout("hello_static", "6.12", "linux-i386").mm)
    bss = [ln for ln in old.splitlines() if " 00:00 0 " in ln and "080e" in ln]
    assert bss and bss[0].endswith("[heap]")
    assert not any(ln.endswith("[heap]") for ln in new.splitlines())


def test_rseq_auxv_moves_esp():
    a, b = _layout("hello_pie", "6.1.176"), _layout("hello_pie", "6.12.95")
    types = [x.type for x in a.auxv]
    assert 27 not in types and 28 not in types
    assert 27 in [x.type for x in b.auxv]
    assert a.stack.esp == b.stack.esp + 16


def test_static_pie_brk_without_aslr():
    assert _layout("hello_staticpie", "6.1.176", "linux-i386").mm.start_brk == 0x400000
    r = _layout("hello_staticpie", "6.5.10", "linux-i386")
    top = max(v.end for v in r.mm.vmas if v.file is not None or v.kind == "bss")
    assert r.mm.start_brk == top == 0xB8000000


def test_native_i386_maps_pad_to_column_49():
    line = next(ln for ln in maps_text(_layout("hello_pie", "6.1", "linux-i386").mm).splitlines()
                if "hello_pie" in ln)
    assert line.index("/") == 49


def test_fault_around_whole_folio_only_from_6_18():
    assert page_cache_folios(make_profile(kernel="6.18"), "model").whole
    assert not page_cache_folios(make_profile(kernel="6.12"), "model").whole


# --- the command line ---------------------------------------------------------------------------

def run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_layout_kernel_and_cpu_values():
    prog = str(fixture_path("hello_pie"))
    r = run("layout", "--kernel", "6.1.176", "--hwcap", "0x78bfbfd", "--hwcap2", "0",
            "--minsigstksz", "0x5a0", "--format", "json", prog)
    assert r.exit_code == 0, r.output
    aux = {a["name"]: a["value"] for a in json.loads(r.output)["auxv"]}
    assert aux["AT_HWCAP"] == 0x78BFBFD and aux["AT_HWCAP2"] == 0 and aux["AT_MINSIGSTKSZ"] == 0x5A0
    assert aux["AT_SYSINFO"] - aux["AT_SYSINFO_EHDR"] == 0x550          # 6.1.176's vdso32
    assert "AT_RSEQ_ALIGN" not in aux


def test_cli_layout_note_for_unmodelled_version():
    r = run("layout", "--kernel", "6.8", str(fixture_path("hello_pie")))
    assert r.exit_code == 0 and "note: kernel 6.8" in r.output


@pytest.mark.parametrize("args, msg", [
    (["layout", "--kernel", "six"], "not a kernel version"),
    (["layout", "--kernel", ""], "not a kernel version"),
    (["layout", "--kernel", "4.4"], "cover Linux 5.0"),
    (["layout", "--hwcap", "0x1zz"], "not a number"),
    (["layout", "--hwcap2", str(1 << 32)], "32-bit"),
    (["layout", "--kernel", "6.1", "--verify"], "this machine's kernel"),
    (["translate", "--kernel", "x.y", "--elf"], "not a kernel version"),
])
def test_cli_bad_kernel_options(args, msg):
    r = run(*args, str(fixture_path("hello_pie")))
    assert r.exit_code == 2 and msg in r.output and "Traceback" not in r.output


def test_cli_simulate_run_kernel_is_program_mode_only():
    r = run("simulate-run", "--kernel", "6.1", "--trace", "/dev/null")
    assert r.exit_code == 2 and "only when running a PROGRAM" in r.output


def test_cli_translate_uses_the_version_layout():
    # [vdso] sits right below ld.so on both; 6.18's [vvar_vclock] below it is 6.1's [vvar].
    old = run("translate", "--kernel", "6.1", "--format", "json", "--elf", str(fixture_path("hello_pie")),
              "0xf7fc5000")
    new = run("translate", "--kernel", "6.18", "--format", "json", "--elf", str(fixture_path("hello_pie")),
              "0xf7fc5000")
    assert old.exit_code == 0 and new.exit_code == 0
    assert json.loads(old.output)[0]["vma"]["name"] == "[vvar]"
    assert json.loads(new.output)[0]["vma"]["name"] == "[vvar_vclock]"


# --- simulate-run with another version's vDSO ------------------------------------------------

@pytest.mark.parametrize("version", ["6.1.176", "7.0.13"])
def test_emulated_signals_return_through_the_versions_vdso(version, tmp_path):
    """Signal frames return through __kernel_sigreturn / __kernel_rt_sigreturn at the version's
    offsets (7.0's image puts them 0x30 and 0x40 after __kernel_vsyscall, 6.18's 0x20 and 0x30)."""
    from pathlib import Path

    from elfvm.emu.run import RunOptions, run_program

    exe = build_static_guest(Path(__file__).parent / "signal_progs" / "usr1.c", tmp_path / "usr1")
    prof = make_profile(kernel=version)
    rep = run_program(RunOptions(str(exe), profile=prof, max_instructions=100_000_000))
    assert b"handler: signal 10\n" in rep.stdout and rep.exit_status == 128 + 10
    assert {"sigreturn", "rt_sigreturn"} <= {s["name"] for s in rep.syscalls}
    assert prof.vdso_rt_sigreturn_offset - prof.vdso_vsyscall_offset == (0x40 if version == "7.0.13" else 0x30)


def test_cli_simulate_run_kernel_6_1_maps():
    r = run("simulate-run", "--kernel", "6.1", "-q", str(fixture_path("hello_static")))
    assert r.exit_code == 0, r.output
    assert "[vvar_vclock]" not in r.output
    heap = [ln for ln in r.output.splitlines() if ln.endswith("[heap]") and " rw-p " in ln]
    assert heap and heap[0].startswith("080ee000-080f1000")      # the bss touching start_brk
