"""elfvm's minor-fault count against the live kernel's own count for the same run.

The live figure is ru_minflt between the exec stop and PTRACE_EVENT_EXIT (plus the waited-for
children), read from /proc/PID/stat: the faults of the program's run, without fork/exec's own.
Tolerance: |elfvm - kernel| <= max(3, 20% of the kernel's figure). Known sources of difference:
the page cache's large folios (6.18 fault-around maps whole folios, whose sizes depend on how the
file was read before) and Unicorn's CPUID (glibc may pick other string-function variants).
"""

import os
import shutil
import subprocess

import pytest

from conftest import fixture_path

pytest.importorskip("unicorn")

from elfvm.emu import RunOptions, run_program  # noqa: E402


def _i386_busybox():
    for cand in (os.environ.get("ELFVM_BUSYBOX_I386"), shutil.which("busybox"), "/bin/busybox"):
        if cand and os.path.exists(cand):
            with open(cand, "rb") as f:
                head = f.read(20)
            if head[:4] == b"\x7fELF" and head[4] == 1 and head[18] == 3:
                return cand
    return None


def _compare(live, path, args, capsys):
    lf = live_faults(live, path, args)
    r = run_program(RunOptions(path, tuple(args)))
    simple = run_program(RunOptions(path, tuple(args), fault_model="simple"))
    with capsys.disabled():
        print(f"\n{os.path.basename(path)} {' '.join(args)}: kernel {lf.total} minor faults "
              f"(getrusage with exec: {lf.rusage_minflt}); elfvm linux {r.page_faults}, "
              f"simple {simple.page_faults}")
    assert r.stdout == lf.stdout
    assert r.exit_status == lf.exit_status
    assert abs(r.page_faults - lf.total) <= max(3, 0.2 * lf.total)
    return lf, r


def live_faults(live, path, args):
    from elfvm.emu.livefaults import live_minflt

    return live_minflt(path, [path, *args])


@pytest.mark.oracle
@pytest.mark.parametrize("name,args", [
    ("hello_static", []), ("tiny", []), ("bigbss", []),
    # the lecture fixtures: stdout, exit status and fault count as the real run's
    ("lazy", ["64"]), ("lazy", ["64", "read"]), ("stackgrow", ["1024"]), ("mallocs", []),
    ("shmem", []), ("segv", [])])
def test_fault_count_close_to_kernel_static(live, name, args, capsys):
    _compare(live, fixture_path(name), args, capsys)


def sort_input(path, n: int) -> str:
    """n deterministic lines in no particular order (the sort benchmark's input)."""
    with open(path, "w") as f:
        for i in range(1, n + 1):
            f.write(f"line {(i * 7919) % 10007:05d} {'qwertyuiopasdfghjklzxcvbnm'[i % 20:i % 20 + 6]}\n")
    return str(path)


@pytest.mark.oracle
def test_fault_count_sortlines(live, tmp_path, capsys):
    """The always-available stand-in for busybox sort (static i386, qsort over a file)."""
    _compare(live, fixture_path("sortlines"), [sort_input(tmp_path / "lines.txt", 3000)], capsys)


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["hello_pie", "vars", "touch"])
def test_fault_count_close_to_kernel_dynamic(live, needs_interp, name, capsys):
    _compare(live, fixture_path(name), [], capsys)


@pytest.mark.oracle
def test_fault_count_busybox_sort(live, capsys):
    bb = _i386_busybox()
    if bb is None:
        pytest.skip("no i386 busybox here: set ELFVM_BUSYBOX_I386=/path/to/busybox (e.g. from "
                    "`apt-get download busybox-static:i386` after `dpkg --add-architecture i386`); "
                    "test_fault_count_sortlines covers the same kind of work")
    lf, r = _compare(live, bb, ["sort", "/etc/services"], capsys)
    simple = run_program(RunOptions(bb, ("sort", "/etc/services"), fault_model="simple"))
    assert simple.page_faults > r.page_faults          # fault-around: fewer faults than pages


def test_simple_model_counts_pages_touched():
    r = run_program(RunOptions(fixture_path("hello_static"), fault_model="simple"))
    linux = run_program(RunOptions(fixture_path("hello_static")))
    assert r.page_faults > linux.page_faults
    assert r.faults_by_kind["zero-page"] == 0 and r.faults_by_kind["cow"] == 0
    assert subprocess is not None
