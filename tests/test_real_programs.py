"""Real programs under simulate-run against the live kernel: stdout bytes, exit status and
minor faults (ru_minflt from the exec stop, + waited children) within 5%.

The corpus (tests/realprog.py CORPUS) is gcc -m32 fixtures for each mechanism (fixtures/bin)
and Debian i386 packages unpacked into a sysroot by scripts/sysroot-i386.sh (skipped, with
the reason, when the package index cannot be reached). The native run is chrooted into the
sysroot, so both runs see the same files. Known differences are marked xfail with the reason
(see KNOWN_FAULTS); `scripts/survey_real_programs.py` prints the whole table.
"""

import os

import pytest

import realprog as rp

pytest.importorskip("unicorn")

# id -> why its fault count may miss the 5% tolerance (only the fault comparison may then
# xfail, naming the reason; stdout and exit status stay strict). gawk's libsigsegv reads
# /proc/self/maps natively too (realprog.mount_proc), the read-modify-write double fault is
# gone (elfvm.emu.x86insn), execve inside a run counts its own faults and the vDSO exports the
# time functions: the tar pipelines are within 1% of the kernel's count on a quiet machine
# (tar -t 288 vs 289, tar -x 586 vs 589). Their kernel count alone moves between runs.
_PIPELINE = ("the kernel's own count for this two-process pipeline depends on what ran before: "
             "289 whenever the case runs alone (8 of 8, also under CPU load and after "
             "drop_caches), 314-328 inside a whole suite run (the page cache's folios of the "
             "files it reads, made by earlier runs, not yet explained)")
KNOWN_FAULTS: dict[str, str] = {"tar-t": _PIPELINE, "tar-x": _PIPELINE}


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("the native run is chrooted into the sysroot: needs root")


@pytest.fixture(scope="module")
def root():
    _need_root()
    path, why = rp.sysroot()
    if path is None:
        pytest.skip(f"no Debian i386 sysroot: {why}")
    return path


def _params():
    out = []
    for cid, argv, stdin in rp.CORPUS:
        marks = [pytest.mark.oracle]
        out.append(pytest.param(cid, argv, stdin, id=cid, marks=marks))
    return out


@pytest.mark.parametrize("cid,argv,stdin", _params())
def test_real_program_reproduces(live, cid, argv, stdin, request, capsys):
    fx_root, av = rp.fixture_argv(argv)
    if fx_root is None:
        sysroot = request.getfixturevalue("root")
    else:
        _need_root()
        if not os.path.exists(av[0]):
            pytest.skip(f"{av[0]} is missing: run `make fixtures`")
        sysroot = fx_root
    n = rp.native(sysroot, av, stdin)
    e = rp.emulated(sysroot, av, stdin)
    with capsys.disabled():
        print(f"\n{cid}: kernel {n.minflt} minor faults, elfvm {e.minflt}")
    assert e.stdout == n.stdout, e.warnings
    assert e.exit_status == n.exit_status
    counts = [n.minflt]
    while not rp.faults_close(e.minflt, counts[-1]) and len(counts) < 3:
        counts.append(rp.native(sysroot, av, stdin).minflt)   # the kernel's own count varies
    if not any(rp.faults_close(e.minflt, c) for c in counts):
        # fault-around maps whole page-cache folios (6.18), and their sizes are the host page
        # cache's history (who read the file first, and how): the default model gives every
        # page its own folio; --page-cache live reads the sizes the kernel's run had
        e = rp.emulated(sysroot, av, stdin, extra=("--page-cache", "live"))
        with capsys.disabled():
            print(f"{cid}: elfvm --page-cache live {e.minflt}")
        counts.append(rp.native(sysroot, av, stdin).minflt)
    if not any(rp.faults_close(e.minflt, c) for c in counts) and cid in KNOWN_FAULTS:
        pytest.xfail(f"{cid}: {KNOWN_FAULTS[cid]} (this run: {e.minflt} vs {counts})")
    assert any(rp.faults_close(e.minflt, c) for c in counts), (e.minflt, counts)
    assert "not implemented" not in e.warnings
