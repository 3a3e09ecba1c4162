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

# id -> why it does not reproduce yet (strict xfail: a fix shows up as XPASS)
# Fault counts at the edge of the 5% tolerance, with the reason. Only the fault comparison is
# allowed to miss for these (stdout and exit status stay strict): the test then xfails, naming it.
KNOWN_FAULTS = {
    "gawk": "faults 137 vs the kernel's 130-132 (4.6-5.4%): +4 are libsigsegv reading "
            "/proc/self/maps, which the native chroot lacks; +1 is Unicorn's read-then-write "
            "of one read-modify-write instruction in ld.so (the CPU takes one write fault)",
    "tar-t": "the kernel's own count moves 289-309 between runs (page-cache state of the piped "
             "archive); elfvm's 281 is 3-9% under",
    "tar-x": "the kernel's own count moves 598-607+ between runs; elfvm's 570 is 4.7-6% under "
             "(the two-process pipeline)",
}


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
    if not any(rp.faults_close(e.minflt, c) for c in counts) and cid in KNOWN_FAULTS:
        pytest.xfail(f"{cid}: {KNOWN_FAULTS[cid]} (this run: {e.minflt} vs {counts})")
    assert any(rp.faults_close(e.minflt, c) for c in counts), (e.minflt, counts)
    assert "not implemented" not in e.warnings
