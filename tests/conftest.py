import os
import pathlib

import pytest

# The ahead-of-time compiled trace engine does not check its arguments' dtypes; in tests it does.
os.environ.setdefault("ELFVM_JIT_CHECK", "1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures" / "bin"
FIXTURE_NAMES = ["hello_pie", "hello_nopie", "hello_static", "hello_staticpie", "bigbss", "tiny",
                 "hello_execstack", "hello_align2m", "vars", "vars_pie", "touch",
                 "lazy", "stackgrow", "mallocs", "shmem", "segv", "sortlines"]


def build_static_guest(src, exe, *extra: str) -> str:
    """`gcc -m32 -static -O1 SRC -o EXE` for a test's own guest program, or a skip saying why
    this machine cannot build one. Returns EXE as a string (built once: kept when it exists)."""
    import shutil
    import subprocess

    exe = pathlib.Path(exe)
    if exe.exists():
        return str(exe)
    if shutil.which("gcc") is None:
        pytest.skip("no gcc")
    r = subprocess.run(["gcc", "-m32", "-static", "-O1", str(src), "-o", str(exe), *extra],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"gcc -m32 -static fails here: {r.stderr.strip()[:200]}")
    return str(exe)


def fixture_path(name: str) -> str:
    p = FIXTURES / name
    if not p.exists():
        pytest.skip(f"{p} is missing: run `make fixtures`")
    return str(p)


@pytest.fixture
def live():
    """The live-kernel oracle, or a skip saying why this machine cannot run i386 code."""
    from elfvm.oracle import live as live_mod

    ok, why = live_mod.can_run_i386()
    if not ok:
        pytest.skip(f"cannot run i386 code here: {why}")
    return live_mod


@pytest.fixture
def needs_interp():
    if not os.path.exists("/lib/ld-linux.so.2"):
        pytest.skip("/lib/ld-linux.so.2 missing: install gcc-multilib (libc6-i386)")
